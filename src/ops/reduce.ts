// Reductions (axes as an input, opset 18+) with their gradients: dY is broadcast back over the reduced axes.
import type { GraphBuilder } from '../graph/builder';
import type { Dim, Node, Value } from '../graph/value';
import { castLike, constInts, intAttr, range, scalarLike } from './grad-util';
import { defineOp, type GradRule, type InferCtx, type OutType } from './registry';
import { normAxis } from './shape';

/** The reduced axes (normalized), [] for a no-op, or null when they are only known at run time. */
function reducedAxes(ctx: InferCtx): number[] | null {
  const x = ctx.input(0);
  if (x.rank === null) return null;
  const axes = ctx.has(1) ? constInts(ctx.inputs[1]) : [];
  if (!axes) return null;
  if (axes.length === 0) return ctx.int('noop_with_empty_axes', 0) ? [] : range(x.rank);
  return axes.map((a) => normAxis(ctx, a, x.rank!));
}

function reduceInfer(ctx: InferCtx): OutType[] {
  const x = ctx.input(0);
  if (ctx.has(1)) ctx.requireDtype(1, ['int64']);
  const axes = reducedAxes(ctx);
  const keep = ctx.int('keepdims', 1);
  if (!x.shape) return [{ dtype: x.dtype, shape: null }];
  if (!axes) return [{ dtype: x.dtype, shape: keep ? x.shape.map(() => null) : null }];
  const out: Dim[] = keep ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
  return [{ dtype: x.dtype, shape: out }];
}

/** v (shaped like the reduction's output) broadcast back to X's run-time shape. */
function expandBack(g: GraphBuilder, node: Node, v: Value): Value {
  const x = node.inputs[0]!;
  if (!intAttr(node, 'keepdims', 1)) {
    const axesV = node.inputs[1];
    const axes = axesV ? constInts(axesV) : [];
    if (!axes) throw new Error('keepdims = 0 with run-time axes is not supported (use keepdims = 1, then Reshape)');
    const noop = axes.length === 0 && intAttr(node, 'noop_with_empty_axes', 0);
    const all = axes.length === 0 ? range(x.rank!) : axes;
    if (!noop) v = g.op('Unsqueeze', [v, g.ints(all.map((a) => (a < 0 ? a + x.rank! : a)))]);
  }
  return g.op('Expand', [v, g.op('Shape', [x])]);
}

const reduceRule = (f: (g: GraphBuilder, node: Node, dX: Value) => Value): GradRule => ({ g, node, dOut }) =>
  [f(g, node, expandBack(g, node, dOut[0]!)), null];

const reductions: Record<string, GradRule | undefined> = {
  ReduceSum: reduceRule((_g, _n, d) => d),
  // ÷ count, with count = |X| / |Y| read at run time (dynamic dims)
  ReduceMean: reduceRule((g, n, d) => {
    const x = n.inputs[0]!; const y = n.outputs[0];
    return g.div(d, g.div(castLike(g, g.op('Size', [x]), y), castLike(g, g.op('Size', [y]), y)));
  }),
  ReduceSumSquare: reduceRule((g, n, d) => g.mul(d, g.mul(n.inputs[0]!, scalarLike(g, 2, d)))),
  ReduceL2: reduceRule((g, n, d) => g.mul(d, g.div(n.inputs[0]!, expandBack(g, n, n.outputs[0])))),
  ReduceLogSumExp: reduceRule((g, n, d) => g.mul(d, g.exp(g.sub(n.inputs[0]!, expandBack(g, n, n.outputs[0]))))),
  // the gradient goes to the extremal elements (each of them on ties)
  ReduceMax: reduceRule((g, n, d) => g.op('Where', [g.op('Equal', [n.inputs[0]!, expandBack(g, n, n.outputs[0])]), d, scalarLike(g, 0, d)])),
  ReduceMin: reduceRule((g, n, d) => g.op('Where', [g.op('Equal', [n.inputs[0]!, expandBack(g, n, n.outputs[0])]), d, scalarLike(g, 0, d)])),
  ReduceProd: undefined,
  ReduceL1: reduceRule((g, n, d) => g.mul(d, g.op('Sign', [n.inputs[0]!]))),
};
for (const [opType, grad] of Object.entries(reductions)) {
  defineOp({ opType, attrTypes: { keepdims: 'int', noop_with_empty_axes: 'int' }, infer: reduceInfer, grad });
}
