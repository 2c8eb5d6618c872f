// Shared inference checks for the com.ademamix optimizer ops (rules registered by src/optim/derive.ts). Their semantics live in custom-ops/ (fused kernels)
// and src/optim/functions.ts (the standard-op function bodies).
import type { DType } from '../graph/dtype';
import { fmtShape } from '../graph/value';
import type { InferCtx, OutType } from './registry';
import { sameShape } from './shape';

export { OPS_DOMAIN } from '../optim/defs/layout';

const SCALAR_TYPES: DType[] = ['float32', 'float64'];

/**
 * Tensor inputs `tensors` must match input `paramIdx` (param) in shape and be float32 (the inputs in `states`:
 * `stateDtype`); `scalars` are scalar float/double.
 */
export function check(ctx: InferCtx, names: string[], tensors: number[], step: number, scalars: number[],
  states: number[] = [], stateDtype: DType = 'float32', paramIdx = 0): void {
  const p = ctx.input(paramIdx);
  for (const i of tensors) {
    const v = ctx.inputs[i];
    if (!v) continue;
    const want = states.includes(i) ? stateDtype : 'float32';
    if (v.dtype !== null && v.dtype !== want) ctx.fail(`input '${names[i]}' must be ${want}, got ${v.dtype}`);
    if (!sameShape(v.shape, p.shape)) ctx.fail(`input '${names[i]}' has shape ${fmtShape(v.shape)} but '${names[paramIdx]}' has ${fmtShape(p.shape)}`);
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

export const like = (ctx: InferCtx, i: number): OutType => ({ dtype: 'float32', shape: ctx.input(0).shape ?? ctx.inputs[i]?.shape ?? null });

// The ops' inference rules are registered from the optimizer definitions (src/optim/derive.ts): the per-tensor op,
// `<Op>Bf16` (states stored as bfloat16), `<Op>Multi` and `<Op>MultiBf16` (one node for a group of tensors sharing the
// attributes: the scalar inputs first, then N params, N grads and N of each state).

/** Element type of the states for an op name (the Bf16 forms store them as bfloat16). */
export const stateDtypeOf = (opType: string): DType => (opType.endsWith('Bf16') ? 'bfloat16' : 'float32');
