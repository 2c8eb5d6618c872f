// Reverse-mode autodiff over the graph builder, emitting standard ONNX ops only (a stock inference runtime can run
// the result). Each op's rule lives beside the op in src/ops (micrograd/tinygrad style); this file only walks the
// graph: it finds the nodes that lie between `wrt` and the loss, seeds dL/dL = 1, visits them in reverse creation
// order (creation order is topological), sums the gradients of values used more than once (tied weights), and
// prunes non-differentiable paths (integer/bool values, ops marked nonDifferentiable, inputs a rule returns null for).
import type { GraphBuilder } from '../graph/builder';
import { isFloat } from '../graph/dtype';
import { tensorData } from '../graph/tensor-data';
import { fmtShape, type Node, type Value } from '../graph/value';
import { fill, typed, zerosLike } from '../ops/grad-util';
import { getOp, OpError } from '../ops/registry';

export interface GradientOptions {
  /** What a wrt value that does not reach the loss gets: zeros of its shape (default) or an error. */
  unreachable?: 'zeros' | 'error';
  /** dL/dloss (default 1), e.g. a loss-scale factor; must have the loss's type. */
  seed?: Value;
  /**
   * Fused backward ops (GeluGrad, SoftmaxGrad, LayerNormalizationGrad of com.ademamix, each with its standard-op math as
   * a model-local function body) instead of that math inline. Default false: standard ops only.
   */
  fused?: boolean;
}

/** Can a gradient flow through this value? Unknown dtypes are given the benefit of the doubt. */
const differentiable = (v: Value): boolean => v.dtype === null || isFloat(v.dtype);

/**
 * Adds the backward pass of `loss` to `g` and returns dloss/dw for each w in `wrt` (aligned with `wrt`).
 * The loss must be a float scalar (shape [] or all-1 dims).
 */
export function gradients(g: GraphBuilder, loss: Value, wrt: Value[], opts: GradientOptions = {}): Value[] {
  if (!differentiable(loss)) throw new OpError(`gradients: the loss ${loss.describe()} must be a float tensor`);
  if (loss.shape && loss.shape.some((d) => d !== 1)) {
    throw new OpError(`gradients: the loss ${loss.describe()} must be a scalar (reduce it first, e.g. with ReduceMean)`);
  }
  for (const w of wrt) if (!differentiable(w)) throw new OpError(`gradients: cannot differentiate with respect to ${w.describe()} (not a float tensor)`);

  // 1. Forward: the nodes fed (transitively) by some wrt value, through differentiable values.
  const varying = new Set<Value>(wrt);
  const forward: Node[] = [];
  for (const n of g.nodes) {
    if (!n.inputs.some((v) => v && varying.has(v))) continue;
    if (getOp(n.opType, n.domain)?.nonDifferentiable) continue;
    forward.push(n);
    for (const o of n.outputs) if (!o.absent && differentiable(o)) varying.add(o);
  }
  // 2. Backward: of those, the nodes the loss depends on. `needed` are the values whose gradient is wanted.
  const needed = new Set<Value>([loss]);
  const active: Node[] = [];
  for (let i = forward.length - 1; i >= 0; i--) {
    const n = forward[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    active.push(n);
    for (const v of n.inputs) if (v && varying.has(v)) needed.add(v);
  }
  const missing = active.filter((n) => !getOp(n.opType, n.domain)?.grad).reverse();
  if (missing.length) {
    const list = missing.map((n) => `${n.label} (op ${n.domain ? `${n.domain}::` : ''}${n.opType}${n.source ? `, from ${n.source}` : ''})`);
    throw new OpError(`gradients: no gradient rule for ${missing.length} node(s) between the parameters and the loss: ${list.join('; ')}`);
  }

  // 3. Reverse walk, accumulating dL/dv.
  const grad = new Map<Value, Value>();
  const accumulate = (n: Node, v: Value, d: Value): void => {
    if (d.rank !== null && v.rank !== null && d.rank !== v.rank) {
      throw new OpError(`gradients: the rule for ${n.label} gave a gradient of shape ${fmtShape(d.shape)} for ${v.describe()}`);
    }
    typed(d, v); // a gradient has its value's shape
    const prev = grad.get(v);
    try {
      grad.set(v, prev ? typed(g.add(prev, d), v) : d);
    } catch (e) {
      throw new OpError(`gradients: the rule for ${n.label} gave ${fmtShape(d.shape)} for ${v.describe()}, which does not add to its other gradient ${fmtShape(prev!.shape)}: ${(e as Error).message}`);
    }
  };
  grad.set(loss, opts.seed ?? (loss.shape?.length === 0
    ? g.constant(tensorData(loss.dtype ?? 'float32', [], [1]))
    : fill(g, g.op('Shape', [loss]), loss.dtype ?? 'float32', 1, loss.shape)));

  for (const n of active) {
    const dOut = n.outputs.map((o) => grad.get(o) ?? null);
    if (dOut.every((d) => d === null)) continue;
    const needs = n.inputs.map((v) => !!v && needed.has(v));
    let dIn: (Value | null)[];
    const absorbed = new Set<number>();
    const prior = (i: number): Value | null => {
      const v = n.inputs[i];
      return v && n.inputs.indexOf(v) === n.inputs.lastIndexOf(v) ? grad.get(v) ?? null : null;
    };
    try {
      dIn = getOp(n.opType, n.domain)!.grad!({ g, node: n, dOut, needs, fused: opts.fused ?? false, prior, absorb: (i) => absorbed.add(i) });
    } catch (e) {
      throw new OpError(`gradients: the rule for ${n.label} failed: ${(e as Error).message}`);
    }
    n.inputs.forEach((v, i) => {
      if (!v || !needs[i] || !dIn[i]) return;
      if (absorbed.has(i) && grad.has(v)) grad.delete(v); // dIn[i] holds the sum so far
      accumulate(n, v, dIn[i]!);
    });
  }

  return wrt.map((w) => {
    const d = grad.get(w);
    if (d) return d;
    if (opts.unreachable === 'error') throw new OpError(`gradients: ${w.describe()} does not reach the loss ${loss.label}`);
    return zerosLike(g, w);
  });
}

/** `gradients` as a map from each wrt value to its gradient. */
export function gradientMap(g: GraphBuilder, loss: Value, wrt: Value[], opts: GradientOptions = {}): Map<Value, Value> {
  const ds = gradients(g, loss, wrt, opts);
  return new Map(wrt.map((w, i) => [w, ds[i]]));
}
