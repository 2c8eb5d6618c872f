// Helpers for gradient rules: reducing broadcast gradients back to an input's shape, constants in a value's type,
// zeros, and requesting optional outputs (LayerNormalization's Mean/InvStdDev, Dropout's mask) from a forward node.
import type { GraphBuilder } from '../graph/builder';
import { toOnnxType, type DType } from '../graph/dtype';
import { tensorData, type TensorData } from '../graph/tensor-data';
import { Value, type Node, type Shape } from '../graph/value';

/** The value of a Constant-produced value, or null (e.g. a runtime tensor). */
export function constValue(v: Value | null | undefined): TensorData | null {
  const n = v?.producer;
  if (!n || n.opType !== 'Constant') return null;
  const a = n.attrs.value;
  return a && a.kind === 'tensor' ? a.value : null;
}

export function constInts(v: Value | null | undefined): number[] | null {
  const t = constValue(v);
  return t ? Array.from(t.data as ArrayLike<number | bigint>, Number) : null;
}

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** An int attribute of a node, or its default. */
export const intAttr = (node: Node, name: string, dflt: number): number => {
  const a = node.attrs[name];
  return a && a.kind === 'int' ? Number(a.value) : dflt;
};
export const floatAttr = (node: Node, name: string, dflt: number): number => {
  const a = node.attrs[name];
  return a && a.kind === 'float' ? a.value : dflt;
};
export const intsAttr = (node: Node, name: string): number[] | null => {
  const a = node.attrs[name];
  return a && a.kind === 'ints' ? a.value.map(Number) : null;
};
export const stringAttr = (node: Node, name: string, dflt: string): string => {
  const a = node.attrs[name];
  return a && a.kind === 'string' ? a.value : dflt;
};

/**
 * Gives v the static shape `like` has where inference could not tell (a ReduceSum with run-time axes, an Expand
 * to a run-time shape): fills unknown dims and an unknown rank. Returns v.
 */
export function typed(v: Value, like: { shape: Shape }): Value {
  const ls = like.shape;
  if (!ls) return v;
  if (v.shape === null) v.shape = [...ls];
  else if (v.shape.length === ls.length) v.shape = v.shape.map((d, i) => d ?? ls[i]);
  return v;
}

/**
 * Sums a broadcast gradient `d` (shaped like the op's output) back to the shape of input `x`.
 * Ranks are static, so leading broadcast axes are reduced at build time. For the remaining axes:
 *  - x's dim statically 1 (and the output's not): reduced at build time;
 *  - x's dim a static size > 1, or the same symbol as the output's: nothing to do;
 *  - otherwise (x's dim symbolic and may be 1 where the output's is N): the axes are picked at run time
 *    (those where Shape(x) is 1) and reduced with keepdims, so dynamic dims are handled without baking shapes.
 */
export function sumToShape(g: GraphBuilder, d: Value, x: Value): Value {
  const xs = x.shape; const ds = d.shape;
  if (!xs || !ds) {
    if (x.shape === null) throw new Error(`cannot reduce a broadcast gradient to ${x.describe()}: its rank is unknown`);
    return d; // d's rank unknown: it is the output's gradient, assume same shape
  }
  let out = d;
  const lead = ds.length - xs.length;
  if (lead > 0) out = g.op('ReduceSum', [out, g.ints(range(lead))], { keepdims: 0 });
  const rest = ds.slice(Math.max(lead, 0));
  const fixed: number[] = []; const maybe: number[] = [];
  xs.forEach((xd, i) => {
    const od = rest[i];
    if (xd === 1) { if (od !== 1) fixed.push(i); return; }
    if (typeof xd === 'number' || (xd !== null && xd === od)) return;
    if (od === 1) return;
    maybe.push(i);
  });
  if (fixed.length) out = g.op('ReduceSum', [out, g.ints(fixed)], { keepdims: 1 });
  if (maybe.length) {
    const cand = g.ints(maybe);
    const isOne = g.op('Equal', [g.op('Gather', [g.op('Shape', [x]), cand], { axis: 0 }), g.scalar(1, 'int64')]);
    const axes = g.op('Compress', [cand, isOne], { axis: 0 });
    out = typed(g.op('ReduceSum', [out, axes], { keepdims: 1, noop_with_empty_axes: 1 }), x);
  }
  return out;
}

/** Zeros shaped like x at run time. */
export function zerosLike(g: GraphBuilder, x: Value): Value {
  return fill(g, g.op('Shape', [x]), x.dtype ?? 'float32', 0, x.shape);
}

/** ConstantOfShape(shape) filled with `v` in `dtype`. */
export function fill(g: GraphBuilder, shape: Value, dtype: DType, v: number, staticShape: Shape = null): Value {
  return typed(g.op('ConstantOfShape', [shape], { value: tensorData(dtype, [1], [v]) }), { shape: staticShape });
}

export function castLike(g: GraphBuilder, v: Value, like: Value): Value {
  if (!like.dtype || v.dtype === like.dtype) return v;
  return g.op('Cast', [v], { to: toOnnxType(like.dtype) });
}

/** A scalar constant in `like`'s float type. */
export const scalarLike = (g: GraphBuilder, x: number, like: Value): Value => g.scalar(x, like.dtype ?? 'float32');

/**
 * Output `k` of a forward node, adding it when the node was emitted without it (an optional output such as
 * LayerNormalization's Mean/InvStdDev or Dropout's mask): the backward pass then reuses what the forward computed.
 */
export function requestOutput(node: Node, k: number, dtype: DType | null, shape: Shape): Value {
  while (node.outputs.length <= k) {
    const v = new Value(null, null, node, node.outputs.length);
    v.absent = true;
    node.outputs.push(v);
  }
  const v = node.outputs[k];
  if (v.absent) {
    v.absent = false;
    if (v.dtype === null) v.dtype = dtype;
    if (v.shape === null) v.shape = shape;
  }
  return v;
}
