// Elementwise ops: numpy-broadcasting binaries and unaries.
import type { DType } from '../graph/dtype';
import { defineOp, type InferCtx, type OutType } from './registry';
import { broadcast } from './shape';

const FLOATS: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

export function binaryInfer(ctx: InferCtx): OutType[] {
  const a = ctx.input(0); const b = ctx.input(1);
  return [{ dtype: ctx.sameDtype([0, 1]), shape: broadcast(ctx, [a.shape, b.shape]) }];
}
export function compareInfer(ctx: InferCtx): OutType[] {
  return [{ dtype: 'bool', shape: binaryInfer(ctx)[0].shape }];
}
export function unaryInfer(ctx: InferCtx): OutType[] {
  const a = ctx.input(0);
  return [{ dtype: a.dtype, shape: a.shape }];
}
export function floatUnaryInfer(ctx: InferCtx): OutType[] {
  ctx.requireDtype(0, FLOATS);
  return unaryInfer(ctx);
}

for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Mod']) defineOp({ opType: op, infer: binaryInfer });
defineOp({
  opType: 'Pow',
  // Pow allows a different exponent type (T1), so only the base sets the output type.
  infer: (ctx) => [{ dtype: ctx.input(0).dtype, shape: broadcast(ctx, [ctx.input(0).shape, ctx.input(1).shape]) }],
});
for (const op of ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']) {
  defineOp({ opType: op, infer: compareInfer, nonDifferentiable: true });
}
for (const op of ['And', 'Or', 'Xor']) defineOp({ opType: op, infer: compareInfer, nonDifferentiable: true });
defineOp({ opType: 'Not', infer: unaryInfer, nonDifferentiable: true });
for (const op of ['Neg', 'Abs', 'Identity', 'Relu', 'Sign']) defineOp({ opType: op, infer: unaryInfer });
for (const op of ['Sqrt', 'Exp', 'Log', 'Reciprocal', 'Erf', 'Tanh', 'Sigmoid', 'Sin', 'Cos', 'Floor', 'Ceil', 'Round', 'IsNaN', 'IsInf']) {
  defineOp({ opType: op, infer: op === 'IsNaN' || op === 'IsInf' ? (c) => [{ dtype: 'bool', shape: unaryInfer(c)[0].shape }] : floatUnaryInfer });
}
defineOp({ opType: 'Gelu', attrTypes: { approximate: 'string' }, infer: floatUnaryInfer });
defineOp({
  opType: 'Where',
  infer: (ctx) => {
    ctx.requireDtype(0, ['bool']);
    return [{ dtype: ctx.sameDtype([1, 2]), shape: broadcast(ctx, [ctx.input(0).shape, ctx.input(1).shape, ctx.input(2).shape]) }];
  },
});
