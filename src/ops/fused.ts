// Fused backward ops of com.ademamix (custom-ops/src/nn_ops.cc): GeluGrad, SoftmaxGrad, LayerNormalizationGrad, and
// WeightGrad (a linear layer's weight and bias gradients in one pass over its flattened input and output gradient).
// Each gradient rule below is written once, in standard ops (`*GradMath`); a rule asked for fused gradients
// (GradCtx.fused) emits the one-node form instead, whose model-local function body is that same standard-op math, so
// the graph runs on any ONNX Runtime and the op library's single-pass CPU kernel runs where it is loaded. On
// gpt-mini's backward the standard-op forms are 4–12 elementwise passes and broadcast reductions per op.
import type { GraphBuilder } from '../graph/builder';
import { toFunctionProto } from '../graph/serialize';
import { attr, type Attr, type Value } from '../graph/value';
import { range, scalarLike } from './grad-util';
import { OPS_DOMAIN } from './optimizers';
import { defineOp, type InferCtx, type OutType } from './registry';
import { normAxis, sameShape } from './shape';

/** dY ⊙ GELU'(x): y = xΦ(x) (y' = Φ(x) + xφ(x)), or the tanh approximation y = ½x(1 + tanh u). */
export function geluGradMath(g: GraphBuilder, d: Value, x: Value, tanh: boolean): Value {
  const k = (v: number): Value => scalarLike(g, v, x);
  if (tanh) {
    // u = √(2/π)(x + 0.044715x³)
    const s = Math.sqrt(2 / Math.PI);
    const x2 = g.mul(x, x);
    const t = g.op('Tanh', [g.mul(k(s), g.add(x, g.mul(k(0.044715), g.mul(x2, x))))]);
    const du = g.mul(k(s), g.add(k(1), g.mul(k(3 * 0.044715), x2)));
    return g.mul(d, g.add(g.mul(k(0.5), g.add(k(1), t)), g.mul(g.mul(k(0.5), x), g.mul(g.sub(k(1), g.mul(t, t)), du))));
  }
  const cdf = g.mul(k(0.5), g.add(k(1), g.op('Erf', [g.mul(x, k(Math.SQRT1_2))])));
  const pdf = g.mul(k(1 / Math.sqrt(2 * Math.PI)), g.exp(g.mul(k(-0.5), g.mul(x, x))));
  return g.mul(d, g.add(cdf, g.mul(x, pdf)));
}

/** dX = Y ⊙ (dY − Σ_axis dY ⊙ Y). */
export function softmaxGradMath(g: GraphBuilder, d: Value, y: Value, axis: number): Value {
  const s = g.op('ReduceSum', [g.mul(d, y), g.ints([axis])], { keepdims: 1 });
  return g.mul(y, g.sub(d, s));
}

/**
 * LayerNormalization's input gradient over `normAxes` with x̂ = (x − mean)·inv: dX = inv·(dx̂ − mean(dx̂) −
 * x̂·mean(dx̂ ⊙ x̂)), dx̂ = dY ⊙ scale; and the products whose sums over the other axes are dScale (dY ⊙ x̂) and dBias (dY).
 */
export function layerNormGradMath(g: GraphBuilder, d: Value, x: Value, scale: Value | null, mean: Value, inv: Value, normAxes: number[]): { dx: Value; dScaleTerm: Value } {
  const xhat = g.mul(g.sub(x, mean), inv);
  const dxhat = scale ? g.mul(d, scale) : d;
  const m1 = g.op('ReduceMean', [dxhat, g.ints(normAxes)], { keepdims: 1 });
  const m2 = g.op('ReduceMean', [g.mul(dxhat, xhat), g.ints(normAxes)], { keepdims: 1 });
  return { dx: g.mul(inv, g.sub(g.sub(dxhat, m1), g.mul(xhat, m2))), dScaleTerm: g.mul(d, xhat) };
}

const float32s = (ctx: InferCtx, n: number): void => {
  for (let i = 0; i < n; i++) { if (!ctx.inputs[i]) ctx.fail(`input ${i} is missing`); ctx.requireDtype(i, ['float32']); }
};
defineOp({
  opType: 'GeluGrad', domain: OPS_DOMAIN, attrTypes: { approximate: 'string' }, nonDifferentiable: true,
  infer: (ctx) => {
    float32s(ctx, 2);
    const a = ctx.string('approximate', 'none');
    if (a !== 'none' && a !== 'tanh') ctx.fail(`attribute approximate must be 'none' or 'tanh', got '${a}'`);
    return [{ dtype: 'float32', shape: ctx.input(0).shape }];
  },
});
defineOp({
  opType: 'SoftmaxGrad', domain: OPS_DOMAIN, attrTypes: { axis: 'int' }, nonDifferentiable: true,
  infer: (ctx) => {
    float32s(ctx, 2);
    const r = ctx.input(0).rank;
    if (r !== null && normAxis(ctx, ctx.int('axis', -1), r) !== r - 1) ctx.fail('only the last axis is supported');
    return [{ dtype: 'float32', shape: ctx.input(0).shape }];
  },
});
defineOp({
  opType: 'LayerNormalizationGrad', domain: OPS_DOMAIN, attrTypes: { axis: 'int' }, nonDifferentiable: true,
  infer: (ctx): OutType[] => {
    float32s(ctx, ctx.has(5) ? 6 : 5);
    return [{ dtype: 'float32', shape: ctx.input(1).shape }, { dtype: 'float32', shape: ctx.input(2).shape }, { dtype: 'float32', shape: ctx.input(2).shape }];
  },
});

defineOp({
  opType: 'WeightGrad', domain: OPS_DOMAIN, nonDifferentiable: true,
  infer: (ctx): OutType[] => {
    float32s(ctx, 2);
    const x = ctx.input(0).shape; const d = ctx.input(1).shape;
    if ((x && x.length < 2) || (d && d.length < 2)) ctx.fail('X and dY must be [rows…, features] (rank ≥ 2)');
    if (x && d && !sameShape(x.slice(0, -1), d.slice(0, -1))) ctx.fail('X and dY must have the same leading (row) dims');
    return [{ dtype: 'float32', shape: x && d ? [x[x.length - 1], d[d.length - 1]] : null }, { dtype: 'float32', shape: d ? [d[d.length - 1]] : null }];
  },
});

/** Adds the body (once per overload) and emits the node (the fused backward ops here, attention.ts's ops too). */
export function emitFused(g: GraphBuilder, op: string, inputs: Value[], attrs: Record<string, Attr>, outputs: number, overload: string, body: (b: GraphBuilder) => void, doc: string): Value[] {
  if (!g.functions.has(`${OPS_DOMAIN}::${op}::${overload}`)) {
    const b = g.emptyLike();
    body(b);
    const f = toFunctionProto(b, { domain: OPS_DOMAIN, name: op, attributes: attrs, docString: doc });
    f.overload = overload;
    g.addFunction(f);
  }
  return g.opN(op, inputs, attrs, { domain: OPS_DOMAIN, outputs, overload });
}

export function fusedGeluGrad(g: GraphBuilder, d: Value, x: Value, tanh: boolean): Value {
  const approximate = tanh ? 'tanh' : 'none';
  return emitFused(g, 'GeluGrad', [d, x], { approximate: attr.s(approximate) }, 1, approximate, (b) => {
    b.output(geluGradMath(b, b.input('dY', 'float32', null), b.input('X', 'float32', null), tanh), 'dX');
  }, `dY times the derivative of Gelu(approximate='${approximate}') at X.`)[0];
}

export function fusedSoftmaxGrad(g: GraphBuilder, d: Value, y: Value): Value {
  return emitFused(g, 'SoftmaxGrad', [d, y], { axis: attr.i(-1) }, 1, 'last', (b) => {
    b.output(softmaxGradMath(b, b.input('dY', 'float32', null), b.input('Y', 'float32', null), -1), 'dX');
  }, 'The input gradient of Softmax over the last axis from its output Y.')[0];
}

/** For x of rank `rank` normalized from `axis` (≥ 0), with scale shaped like the normalized dims: [dX, dScale, dBias]. */
export function fusedLayerNormGrad(g: GraphBuilder, d: Value, x: Value, scale: Value, mean: Value, inv: Value, axis: number, rank: number, residual?: Value): Value[] {
  const inputs = [d, x, scale, mean, inv, ...(residual ? [residual] : [])];
  return emitFused(g, 'LayerNormalizationGrad', inputs, { axis: attr.i(axis) }, 3, `r${rank}a${axis}${residual ? 'res' : ''}`, (b) => {
    const sym = (n: number): (string | null)[] => Array.from({ length: n }, () => null);
    const [bd, bx] = [b.input('dY', 'float32', sym(rank)), b.input('X', 'float32', sym(rank))];
    const bs = b.input('Scale', 'float32', sym(rank - axis));
    const [bm, bi] = [b.input('Mean', 'float32', sym(rank)), b.input('InvStdDev', 'float32', sym(rank))];
    const { dx, dScaleTerm } = layerNormGradMath(b, bd, bx, bs, bm, bi, range(rank).slice(axis));
    const lead = b.ints(range(axis));
    // dR: X's gradient from elsewhere, added first-operand-first as the backward pass's own Add would
    b.output(residual ? b.add(b.input('dR', 'float32', sym(rank)), dx) : dx, 'dX');
    b.output(b.op('ReduceSum', [dScaleTerm, lead], { keepdims: 0 }), 'dScale');
    b.output(b.op('ReduceSum', [bd, lead], { keepdims: 0 }), 'dBias');
  }, `LayerNormalization's gradients (axis ${axis}, rank ${rank}) from its saved Mean and InvStdDev${residual ? ', dX plus dR (X\'s gradient from its other consumers)' : ''}.`);
}

/** [dW, dB] of y = x·W (+ b) in standard ops: flat(x)ᵀ·flat(d) as one Gemm and Σ_rows flat(d) (the leading dims are rows). */
export function weightGradMath(g: GraphBuilder, x: Value, d: Value): Value[] {
  const flat = (v: Value): Value => g.op('Flatten', [v], { axis: -1 });
  const fd = flat(d);
  return [g.op('Gemm', [flat(x), fd], { transA: 1 }), g.op('ReduceSum', [fd, g.ints([0])], { keepdims: 0 })];
}

// One WeightGrad node per (layer input, output gradient): the bias's rule (Add, which runs first) and the weight's
// (MatMul) both take their output from it.
const weightGrads = new WeakMap<Value, Map<Value, Value[]>>();

/**
 * [dW, dB] of y = x·W (+ b) with W 2-D and x of rank > 2, from dY = d: dW = flat(x)ᵀ·flat(d), dB = Σ_rows flat(d), as one
 * node (GPT's weight gradients: K = batch × sequence rows, where ORT's transposed-A Gemm ran at half its forward speed).
 */
export function fusedWeightGrad(g: GraphBuilder, x: Value, d: Value): Value[] {
  let byX = weightGrads.get(d);
  if (!byX) weightGrads.set(d, (byX = new Map()));
  const hit = byX.get(x);
  if (hit) return hit;
  // rank ≥ 2 goes in as it is (the kernel takes the leading dims as rows: a Flatten node per input, 34 on gpt-mini,
  // cost more than their no-op); the function body flattens
  const rows = (v: Value): Value => (v.rank! >= 2 ? v : g.op('Flatten', [v], { axis: 0 }));
  const out = emitFused(g, 'WeightGrad', [rows(x), rows(d)], {}, 2, 'rows', (b) => {
    const [dw, db] = weightGradMath(b, b.input('X', 'float32', null), b.input('dY', 'float32', null));
    b.output(dw, 'dW'); b.output(db, 'dB');
  }, 'A linear layer\'s weight gradient XᵀdY and bias gradient Σ_rows dY from its input X [..., M] and output gradient dY [..., N] (the leading dims are the rows).');
  byX.set(x, out);
  return out;
}

/** y = MatMul(x, W) with W 2-D, x float32 of rank > 2: the linear layer WeightGrad serves (else null). */
export function linearOf(y: Value): { x: Value; w: Value } | null {
  const n = y.producer;
  if (!n || n.opType !== 'MatMul' || n.domain !== '') return null;
  const [x, w] = n.inputs as Value[];
  return x.dtype === 'float32' && w.dtype === 'float32' && w.rank === 2 && x.rank !== null && x.rank > 2 ? { x, w } : null;
}

defineOp({
  opType: 'SumSquares', domain: OPS_DOMAIN, nonDifferentiable: true,
  infer: (ctx): OutType[] => {
    if (ctx.inputs.length === 0) ctx.fail('needs at least one input');
    ctx.inputs.forEach((_, i) => ctx.requireDtype(i, ['float32']));
    return [{ dtype: 'float32', shape: [] }];
  },
});

/**
 * Σ_i Σ x_i² over tensors of any shapes (the squared global gradient norm): one com.ademamix SumSquares node
 * (`fused`, float32; its function body is the standard form) or one ReduceSumSquare per tensor and a Sum.
 */
export function sumSquares(g: GraphBuilder, xs: Value[], fused = false): Value {
  const standard = (b: GraphBuilder, vs: Value[]): Value => {
    const sq = vs.map((v) => b.op('ReduceSumSquare', [v], { keepdims: 0 }));
    return sq.length === 1 ? sq[0] : b.op('Sum', sq);
  };
  if (!fused || xs.length === 0 || xs.some((v) => v.dtype !== 'float32')) return standard(g, xs);
  return emitFused(g, 'SumSquares', xs, {}, 1, `n${xs.length}`, (b) => {
    b.output(standard(b, xs.map((_, i) => b.input(`X${i + 1}`, 'float32', null))), 'Y');
  }, `The sum of the squares of every element of its ${xs.length} inputs.`)[0];
}
