// Inference (eager checks) for the com.ademamix optimizer ops. Their semantics live in custom-ops/ (fused kernels)
// and src/optim/functions.ts (the standard-op function bodies).
import type { DType } from '../graph/dtype';
import { fmtShape, type AttrType } from '../graph/value';
import { defineOp, type InferCtx, type OutType } from './registry';
import { sameDim } from './shape';

export const OPS_DOMAIN = 'com.ademamix';

const SCALAR_TYPES: DType[] = ['float32', 'float64'];

/**
 * Tensor inputs `tensors` must match input `paramIdx` (param) in shape and be float32 (the inputs in `states`:
 * `stateDtype`); `scalars` are scalar float/double.
 */
function check(ctx: InferCtx, names: string[], tensors: number[], step: number, scalars: number[],
  states: number[] = [], stateDtype: DType = 'float32', paramIdx = 0): void {
  const p = ctx.input(paramIdx);
  for (const i of tensors) {
    const v = ctx.inputs[i];
    if (!v) continue;
    const want = states.includes(i) ? stateDtype : 'float32';
    if (v.dtype !== null && v.dtype !== want) ctx.fail(`input '${names[i]}' must be ${want}, got ${v.dtype}`);
    const same = v.shape === null || p.shape === null ||
      (v.shape.length === p.shape.length && v.shape.every((d, k) => sameDim(d, p.shape![k])));
    if (!same) ctx.fail(`input '${names[i]}' has shape ${fmtShape(v.shape)} but '${names[paramIdx]}' has ${fmtShape(p.shape)}`);
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

// ---- bf16 states and the multi-tensor forms ----------------------------------------------------------------------
// `<Op>Bf16`: the per-tensor op with its states (m1/m2/ν, m/ν, m/v) stored as bfloat16 (math in float32, stores
// rounded to nearest even). `<Op>Multi` / `<Op>MultiBf16`: one node for a group of tensors sharing the attributes:
// the scalar inputs first, then N params, N grads and N of each state (outputs: N params_out, N of each state out;
// Simplified: the optional s1_out first). Semantics: exactly the per-tensor op applied to each tensor i.

/** Element type of the states for an op name (the Bf16 forms store them as bfloat16). */
export const stateDtypeOf = (opType: string): DType => (opType.endsWith('Bf16') ? 'bfloat16' : 'float32');

/** States per tensor of a multi-tensor node (AdEMAMix without m1 when beta1 = 0). */
export function multiStates(base: 'AdEMAMix' | 'SimplifiedAdEMAMix' | 'AdamW', beta1: number): string[] {
  if (base === 'AdEMAMix') return beta1 === 0 ? ['m2', 'nu'] : ['m1', 'm2', 'nu'];
  return base === 'SimplifiedAdEMAMix' ? ['m', 'nu'] : ['m', 'v'];
}

/** Where a multi-tensor node's scalars end and its variadic tensor list starts. */
export const MULTI_SCALARS: Record<'AdEMAMix' | 'SimplifiedAdEMAMix' | 'AdamW', string[]> = {
  AdEMAMix: ['step', 'lr', 'alpha', 'beta3'],
  SimplifiedAdEMAMix: ['step', 'lr', 'alpha', 'beta1', 's1'],
  AdamW: ['step', 'lr'],
};

const likeDtype = (ctx: InferCtx, i: number, dtype: DType): OutType => ({ ...like(ctx, i), dtype });

for (const bf of [false, true]) {
  const sd: DType = bf ? 'bfloat16' : 'float32';
  const suffix = bf ? 'Bf16' : '';
  if (bf) {
    defineOp({
      opType: 'AdEMAMixBf16', domain: OPS_DOMAIN,
      attrTypes: { beta1: 'float', beta2: 'float', eps: 'float', weight_decay: 'float' },
      infer: (ctx) => {
        check(ctx, ADEMAMIX_INPUTS, [1, 2, 3, 4], 5, [6, 7, 8], [2, 3, 4], sd);
        if (!ctx.has(2) && ctx.float('beta1', 0.9) !== 0) ctx.fail("input 'm1' may only be absent when beta1 = 0");
        return [like(ctx, 0), likeDtype(ctx, 2, sd), likeDtype(ctx, 3, sd), likeDtype(ctx, 4, sd)];
      },
    });
    defineOp({
      opType: 'SimplifiedAdEMAMixBf16', domain: OPS_DOMAIN,
      attrTypes: { beta2: 'float', eps: 'float', weight_decay: 'float', bias_correction1: 'int', bias_correction2: 'int' },
      infer: (ctx) => {
        check(ctx, SIMPLIFIED_INPUTS, [1, 2, 3], 4, [5, 6, 7], [2, 3], sd);
        if (ctx.int('bias_correction1', 0) && !ctx.has(8)) ctx.fail("bias_correction1 needs the scalar state input 's1'");
        return [like(ctx, 0), likeDtype(ctx, 2, sd), likeDtype(ctx, 3, sd), { dtype: 'float32', shape: [] }];
      },
    });
    defineOp({
      opType: 'AdamWBf16', domain: OPS_DOMAIN,
      attrTypes: { beta1: 'float', beta2: 'float', eps: 'float', weight_decay: 'float' },
      infer: (ctx) => {
        check(ctx, ADAMW_INPUTS, [1, 2, 3], 4, [5], [2, 3], sd);
        return [like(ctx, 0), likeDtype(ctx, 2, sd), likeDtype(ctx, 3, sd)];
      },
    });
  }
  for (const base of ['AdEMAMix', 'SimplifiedAdEMAMix', 'AdamW'] as const) {
    const attrTypes: Record<string, AttrType> = base === 'SimplifiedAdEMAMix'
      ? { beta2: 'float', eps: 'float', weight_decay: 'float', bias_correction1: 'int', bias_correction2: 'int' }
      : { beta1: 'float', beta2: 'float', eps: 'float', weight_decay: 'float' };
    defineOp({
      opType: `${base}Multi${suffix}`, domain: OPS_DOMAIN, attrTypes,
      infer: (ctx) => {
        const scal = MULTI_SCALARS[base];
        const states = multiStates(base, base === 'SimplifiedAdEMAMix' ? 0.9 : ctx.float('beta1', 0.9));
        const per = 2 + states.length;
        const tensors = ctx.inputs.length - scal.length;
        if (tensors <= 0 || tensors % per !== 0) {
          ctx.fail(`expects ${scal.join(', ')}, then N tensors of each of (params, grads, ${states.join(', ')}): a multiple of ` +
            `${per} tensor inputs, got ${Math.max(tensors, 0)}`);
        }
        const n = tensors / per;
        if (base === 'SimplifiedAdEMAMix' && ctx.int('bias_correction1', 0) && !ctx.has(4)) {
          ctx.fail("bias_correction1 needs the scalar state input 's1'");
        }
        const groups = ['param', 'grad', ...states];
        const names = [...scal, ...groups.flatMap((gname) => Array.from({ length: n }, (_, i) => `${gname}[${i}]`))];
        const outs: OutType[] = base === 'SimplifiedAdEMAMix' ? [{ dtype: 'float32', shape: [] }] : [];
        const paramOuts: OutType[] = []; const stateOuts: OutType[] = [];
        for (let i = 0; i < n; i++) {
          const at = (k: number): number => scal.length + k * n + i;
          const stateIdx = states.map((_, k) => at(2 + k));
          const scalars = scal.slice(1).map((_, k) => k + 1).filter((k) => scal[k] !== 's1');
          check(ctx, names, [at(1), ...stateIdx], 0, scalars, stateIdx, sd, at(0));
          paramOuts.push({ dtype: 'float32', shape: ctx.input(at(0)).shape });
        }
        for (let k = 0; k < states.length; k++) {
          for (let i = 0; i < n; i++) stateOuts.push({ dtype: sd, shape: ctx.input(scal.length + i).shape });
        }
        return [...outs, ...paramOuts, ...stateOuts];
      },
    });
  }
}
