// Elementwise ops: numpy-broadcasting binaries and unaries, each with its gradient rule.
import type { DType } from '../graph/dtype';
import type { GraphBuilder } from '../graph/builder';
import { attr, type Attr, type Value } from '../graph/value';
import { castLike, scalarLike, sumToShape } from './grad-util';
import { defineOp, type GradRule, type InferCtx, type OutType } from './registry';
import { broadcast } from './shape';
import { emitFused, fusedGeluGrad, fusedWeightGrad, geluGradMath, linearOf } from './fused';
import { OPS_DOMAIN } from './optimizers';

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

/** A binary rule from the two partial-derivative products, reduced back to each input's shape. */
const binaryGrad = (da: ((d: Value) => Value) | null, db: ((d: Value) => Value) | null): GradRule => ({ g, node, dOut, needs }) => {
  const d = dOut[0]!;
  const [a, b] = node.inputs as Value[];
  return [needs[0] && da ? sumToShape(g, da(d), a) : null, needs[1] && db ? sumToShape(g, db(d), b) : null];
};

defineOp({
  opType: 'Add', infer: binaryInfer,
  grad: (c) => {
    // a linear layer's bias (MatMul(x, W) + b): its gradient comes with the weight's from one WeightGrad node
    const d = c.dOut[0]!; const out = c.node.outputs[0];
    for (const k of [0, 1]) {
      const y = c.node.inputs[k]!; const b = c.node.inputs[1 - k]!; const lin = c.fused ? linearOf(y) : null;
      const n = y.shape?.[y.shape.length - 1];
      const isBias = lin && d.dtype === 'float32' && b.dtype === 'float32' && b.shape?.length === 1 && typeof n === 'number' &&
        b.shape[0] === n && !!out.shape && !!y.shape && out.shape.length === y.shape.length && out.shape.every((s, i) => s !== null && s === y.shape![i]);
      if (!isBias) continue;
      const r: (Value | null)[] = [null, null];
      r[k] = c.needs[k] ? d : null;
      r[1 - k] = c.needs[1 - k] ? fusedWeightGrad(c.g, lin.x, d)[1] : null;
      return r;
    }
    return binaryGrad((dd) => dd, (dd) => dd)(c);
  },
});
defineOp({ opType: 'Sub', infer: binaryInfer, grad: (c) => binaryGrad((d) => d, (d) => c.g.neg(d))(c) });
defineOp({
  opType: 'Mul', infer: binaryInfer,
  grad: (c) => { const [a, b] = c.node.inputs as Value[]; return binaryGrad((d) => c.g.mul(d, b), (d) => c.g.mul(d, a))(c); },
});
defineOp({
  opType: 'Div', infer: binaryInfer,
  // d(a/b)/db = −(a/b)/b
  grad: (c) => {
    const [, b] = c.node.inputs as Value[]; const y = c.node.outputs[0];
    return binaryGrad((d) => c.g.div(d, b), (d) => c.g.neg(c.g.div(c.g.mul(d, y), b)))(c);
  },
});
defineOp({
  opType: 'Pow',
  // Pow allows a different exponent type (T1), so only the base sets the output type.
  infer: (ctx) => [{ dtype: ctx.input(0).dtype, shape: broadcast(ctx, [ctx.input(0).shape, ctx.input(1).shape]) }],
  grad: (c) => {
    const { g } = c; const [a, b0] = c.node.inputs as Value[]; const y = c.node.outputs[0];
    const b = castLike(g, b0, a);
    return binaryGrad(
      (d) => g.mul(d, g.mul(b, g.pow(a, g.sub(b, scalarLike(g, 1, a))))),
      (d) => castLike(g, g.mul(d, g.mul(y, g.log(a))), b0),
    )(c);
  },
});
/** Variadic Max/Min/Sum/Mean (numpy broadcasting over all inputs). */
function variadicInfer(ctx: InferCtx): OutType[] {
  if (!ctx.inputs.length) ctx.fail('needs at least one input');
  return [{ dtype: ctx.sameDtype(ctx.inputs.map((_, i) => i)), shape: broadcast(ctx, ctx.inputs.map((_, i) => ctx.input(i).shape)) }];
}
for (const op of ['Max', 'Min']) {
  defineOp({
    opType: op, infer: variadicInfer,
    // the gradient flows to the input(s) equal to the result (ties: to each tied input)
    grad: ({ g, node, dOut, needs }) => {
      const y = node.outputs[0]; const d = dOut[0]!; const zero = scalarLike(g, 0, y);
      return (node.inputs as Value[]).map((x, i) => (needs[i] ? sumToShape(g, g.op('Where', [g.op('Equal', [x, y]), d, zero]), x) : null));
    },
  });
}
defineOp({
  opType: 'Sum', infer: variadicInfer,
  grad: ({ g, node, dOut, needs }) => (node.inputs as Value[]).map((x, i) => (needs[i] ? sumToShape(g, dOut[0]!, x) : null)),
});
defineOp({
  opType: 'Mean', infer: variadicInfer,
  grad: ({ g, node, dOut, needs }) => {
    const d = g.div(dOut[0]!, scalarLike(g, node.inputs.length, dOut[0]!));
    return (node.inputs as Value[]).map((x, i) => (needs[i] ? sumToShape(g, d, x) : null));
  },
});
defineOp({ opType: 'Mod', attrTypes: { fmod: 'int' }, infer: binaryInfer }); // no rule: integer Mod is pruned by its type
for (const op of ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']) {
  defineOp({ opType: op, infer: compareInfer, nonDifferentiable: true });
}
for (const op of ['And', 'Or', 'Xor']) defineOp({ opType: op, infer: compareInfer, nonDifferentiable: true });
for (const op of ['Not', 'Sign', 'Floor', 'Ceil', 'Round']) defineOp({ opType: op, infer: unaryInfer, nonDifferentiable: true });
for (const op of ['IsNaN', 'IsInf']) defineOp({ opType: op, infer: (c) => [{ dtype: 'bool', shape: c.input(0).shape }], nonDifferentiable: true });

/** A unary rule: dX = dY · f'(x, y). */
const unary = (opType: string, deriv: ((c: Parameters<GradRule>[0], x: Value, y: Value) => Value) | 'identity', infer = floatUnaryInfer): void => {
  defineOp({
    opType, infer,
    grad: (c) => {
      const x = c.node.inputs[0]!; const y = c.node.outputs[0]; const d = c.dOut[0]!;
      return [deriv === 'identity' ? d : c.g.mul(d, deriv(c, x, y))];
    },
  });
};
unary('Identity', 'identity', unaryInfer);
defineOp({ opType: 'Neg', infer: unaryInfer, grad: (c) => [c.g.neg(c.dOut[0]!)] });
unary('Abs', ({ g }, x) => g.op('Sign', [x]), unaryInfer);
unary('Relu', ({ g }, x, y) => castLike(g, g.op('Greater', [x, scalarLike(g, 0, x)]), y), unaryInfer);
unary('Sqrt', ({ g }, _x, y) => g.div(scalarLike(g, 0.5, y), y));
unary('Exp', (_c, _x, y) => y);
unary('Log', ({ g }, x) => g.op('Reciprocal', [x]));
unary('Reciprocal', ({ g }, _x, y) => g.neg(g.mul(y, y)));
unary('Tanh', ({ g }, _x, y) => g.sub(scalarLike(g, 1, y), g.mul(y, y)));
unary('Sigmoid', ({ g }, _x, y) => g.mul(y, g.sub(scalarLike(g, 1, y), y)));
unary('Sin', ({ g }, x) => g.op('Cos', [x]));
unary('Cos', ({ g }, x) => g.neg(g.op('Sin', [x])));
// erf'(x) = 2/√π · e^(−x²)
unary('Erf', ({ g }, x) => g.mul(scalarLike(g, 2 / Math.sqrt(Math.PI), x), g.exp(g.neg(g.mul(x, x)))));
const geluDef = {
  opType: 'Gelu', attrTypes: { approximate: 'string' } as const, infer: floatUnaryInfer,
  grad: ((c) => {
    const { g } = c; const x = c.node.inputs[0]!; const d = c.dOut[0]!;
    const tanh = c.node.attrs.approximate?.kind === 'string' && c.node.attrs.approximate.value === 'tanh';
    return [c.fused && x.dtype === 'float32' && d.dtype === 'float32' ? fusedGeluGrad(g, d, x, tanh) : geluGradMath(g, d, x, tanh)];
  }) as GradRule,
};
defineOp(geluDef);
// The same op in com.ademamix (the same inference and gradient rules): the op library's kernel, 16 lanes with its
// input prefetched (gpt-mini's four [16, 128, 512] nodes: see docs/benchmarks.md); its function body is the standard Gelu.
defineOp({ ...geluDef, domain: OPS_DOMAIN });

/** Gelu(x): the standard op, or (`fused`, float32) the com.ademamix node whose function body is the standard op. */
export function gelu(g: GraphBuilder, x: Value, approximate: 'none' | 'tanh' = 'none', fused = false): Value {
  const attrs: Record<string, Attr> = approximate === 'tanh' ? { approximate: attr.s('tanh') } : {};
  if (!fused || x.dtype !== 'float32') return g.op('Gelu', [x], attrs);
  return emitFused(g, 'Gelu', [x], attrs, 1, approximate, (b) => {
    b.output(b.op('Gelu', [b.input('X', 'float32', null)], attrs), 'Y');
  }, `Gelu (approximate ${approximate}).`)[0];
}
defineOp({
  opType: 'Where',
  infer: (ctx) => {
    ctx.requireDtype(0, ['bool']);
    return [{ dtype: ctx.sameDtype([1, 2]), shape: broadcast(ctx, [ctx.input(0).shape, ctx.input(1).shape, ctx.input(2).shape]) }];
  },
  grad: ({ g, node, dOut, needs }) => {
    const [cond, a, b] = node.inputs as Value[]; const d = dOut[0]!;
    const zero = scalarLike(g, 0, d);
    return [null, needs[1] ? sumToShape(g, g.op('Where', [cond, d, zero]), a) : null,
      needs[2] ? sumToShape(g, g.op('Where', [cond, zero, d]), b) : null];
  },
});
