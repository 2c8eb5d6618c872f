// Inference (eager checks) for the com.ademamix optimizer ops. Their semantics live in custom-ops/ (fused kernels)
// and src/optim/functions.ts (the standard-op function bodies).
import type { DType } from '../graph/dtype';
import { fmtShape } from '../graph/value';
import { defineOp, type InferCtx, type OutType } from './registry';
import { sameDim } from './shape';

export const OPS_DOMAIN = 'com.ademamix';

const SCALAR_TYPES: DType[] = ['float32', 'float64'];

/** Tensor inputs `tensors` must match input 0 (param) in shape and be float32; `scalars` are scalar float/double. */
function check(ctx: InferCtx, names: string[], tensors: number[], step: number, scalars: number[]): void {
  const p = ctx.input(0);
  for (const i of tensors) {
    const v = ctx.inputs[i];
    if (!v) continue;
    if (v.dtype !== null && v.dtype !== 'float32') ctx.fail(`input '${names[i]}' must be float32, got ${v.dtype}`);
    const same = v.shape === null || p.shape === null ||
      (v.shape.length === p.shape.length && v.shape.every((d, k) => sameDim(d, p.shape![k])));
    if (!same) ctx.fail(`input '${names[i]}' has shape ${fmtShape(v.shape)} but 'param' has ${fmtShape(p.shape)}`);
  }
  const s = ctx.input(step);
  if (s.dtype !== null && s.dtype !== 'int64') ctx.fail(`input 'step' must be int64, got ${s.dtype}`);
  for (const i of [step, ...scalars]) {
    const v = ctx.inputs[i];
    if (!v) ctx.fail(`input '${names[i]}' is required`);
    if (v.shape && v.shape.length > 0 && !(v.shape.length === 1 && v.shape[0] === 1)) {
      ctx.fail(`input '${names[i]}' must be a scalar, got shape ${fmtShape(v.shape)}`);
    }
    if (i !== step && v.dtype !== null && !SCALAR_TYPES.includes(v.dtype)) {
      ctx.fail(`input '${names[i]}' must be float or double, got ${v.dtype}`);
    }
  }
}

const like = (ctx: InferCtx, i: number): OutType => ({ dtype: 'float32', shape: ctx.input(0).shape ?? ctx.inputs[i]?.shape ?? null });

export const ADEMAMIX_INPUTS = ['param', 'grad', 'm1', 'm2', 'nu', 'step', 'lr', 'alpha', 'beta3'];
export const ADEMAMIX_OUTPUTS = ['param_out', 'm1_out', 'm2_out', 'nu_out'];
export const SIMPLIFIED_INPUTS = ['param', 'grad', 'm', 'nu', 'step', 'lr', 'alpha', 'beta1', 's1'];
export const SIMPLIFIED_OUTPUTS = ['param_out', 'm_out', 'nu_out', 's1_out'];
export const ADAMW_INPUTS = ['param', 'grad', 'm', 'v', 'step', 'lr'];
export const ADAMW_OUTPUTS = ['param_out', 'm_out', 'v_out'];

defineOp({
  opType: 'AdEMAMix', domain: OPS_DOMAIN,
  attrTypes: { beta1: 'float', beta2: 'float', eps: 'float', weight_decay: 'float' },
  infer: (ctx) => {
    check(ctx, ADEMAMIX_INPUTS, [1, 2, 3, 4], 5, [6, 7, 8]);
    if (!ctx.has(2) && ctx.float('beta1', 0.9) !== 0) ctx.fail("input 'm1' may only be absent when beta1 = 0");
    return [like(ctx, 0), like(ctx, 2), like(ctx, 3), like(ctx, 4)];
  },
});

defineOp({
  opType: 'SimplifiedAdEMAMix', domain: OPS_DOMAIN,
  attrTypes: { beta2: 'float', eps: 'float', weight_decay: 'float', bias_correction1: 'int', bias_correction2: 'int' },
  infer: (ctx) => {
    check(ctx, SIMPLIFIED_INPUTS, [1, 2, 3], 4, [5, 6, 7]);
    if (ctx.int('bias_correction1', 0) && !ctx.has(8)) ctx.fail("bias_correction1 needs the scalar state input 's1'");
    return [like(ctx, 0), like(ctx, 2), like(ctx, 3), { dtype: 'float32', shape: [] }];
  },
});

defineOp({
  opType: 'AdamW', domain: OPS_DOMAIN,
  attrTypes: { beta1: 'float', beta2: 'float', eps: 'float', weight_decay: 'float' },
  infer: (ctx) => {
    check(ctx, ADAMW_INPUTS, [1, 2, 3], 4, [5]);
    return [like(ctx, 0), like(ctx, 2), like(ctx, 3)];
  },
});
