// Losses: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss (reduction none/sum/mean, ignore_index, optional
// class weights), with their gradients for the scores.
import type { GraphBuilder } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { attr, type Attr, type Node, type Value } from '../graph/value';
import { castLike, fill, requestOutput, stringAttr } from './grad-util';
import { emitFused } from './fused';
import { OPS_DOMAIN } from './optimizers';
import { defineOp, type GradRule, type InferCtx, type OutType } from './registry';
import { sameDim } from './shape';

const FLOATS: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

/** Scores [N, C, d…], targets [N, d…], optional weights [C]. Outputs: the loss and (SCE) log_prob. */
function lossInfer(ctx: InferCtx): OutType[] {
  const x = ctx.input(0); const t = ctx.input(1);
  ctx.requireDtype(0, FLOATS);
  ctx.requireDtype(1, ['int64', 'int32']);
  if (ctx.has(2)) ctx.sameDtype([0, 2]);
  const red = ctx.string('reduction', 'mean');
  if (!['none', 'sum', 'mean'].includes(red)) ctx.fail(`unknown reduction '${red}' (none, sum or mean)`);
  if (x.shape && x.shape.length < 2) ctx.fail('scores must have shape [N, C, d…]');
  if (x.shape && t.shape) {
    if (x.shape.length !== t.shape.length + 1) ctx.fail(`scores of rank ${x.shape.length} need targets of rank ${x.shape.length - 1}`);
    const expect = [x.shape[0], ...x.shape.slice(2)];
    if (t.shape.some((d, i) => !sameDim(d, expect[i]))) ctx.fail(`targets must have shape [${expect}] (scores without the class axis)`);
  }
  const w = ctx.inputs[2]?.shape;
  if (w && x.shape && (w.length !== 1 || !sameDim(w[0], x.shape[1]))) ctx.fail('weights must have shape [C]');
  return [{ dtype: x.dtype, shape: red === 'none' ? t.shape : [] }, { dtype: x.dtype, shape: x.shape }];
}

/**
 * What both rules share: the per-target factor w = weight[t]·(t ≠ ignore_index)·dLoss (÷ Σ weight[t]·mask for
 * mean), unsqueezed on the class axis, and the one-hot targets. An ignored target may be out of range: its one-hot
 * row is then zero, and its factor is zero anyway. `scores`: the scores, or anything shaped and typed like them.
 */
function perTarget(g: GraphBuilder, scores: Value, target: Value, weights: Value | null, red: string, ign: Attr | undefined, dLoss: Value): { w: Value; onehot: Value } {
  const t = target.dtype === 'int64' ? target : g.cast(target, 'int64');
  const keep = ign?.kind === 'int' ? g.op('Not', [g.op('Equal', [t, g.scalar(ign.value, 'int64')])]) : null;
  let w: Value;
  if (weights) {
    const safeT = keep ? g.op('Where', [keep, t, g.scalar(0, 'int64')]) : t;
    w = g.op('Gather', [weights, safeT], { axis: 0 });
    if (keep) w = g.mul(w, castLike(g, keep, scores));
  } else {
    w = keep ? castLike(g, keep, scores) : fill(g, g.op('Shape', [t]), scores.dtype ?? 'float32', 1, t.shape);
  }
  if (red === 'mean') w = g.div(w, g.op('ReduceSum', [w], { keepdims: 0 }));
  w = g.mul(w, dLoss); // dLoss: a scalar (mean/sum) or shaped like the targets (none)
  // one-hot as (t == class index), classes shaped [1, C, 1…] (ORT's OneHot has no double kernel)
  const depth = g.op('Squeeze', [g.op('Shape', [scores], { start: 1, end: 2 })]);
  const classes = g.op('Reshape', [g.op('Range', [g.scalar(0, 'int64'), depth, g.scalar(1, 'int64')]),
    g.ints([1, -1, ...Array(scores.rank! - 2).fill(1)])]);
  const onehot = castLike(g, g.op('Equal', [g.op('Unsqueeze', [t, g.ints([1])]), classes]), scores);
  return { w: g.op('Unsqueeze', [w, g.ints([1])]), onehot };
}
function nodeTargets(g: GraphBuilder, node: Node, dLoss: Value, needs: boolean[]): { w: Value; onehot: Value } {
  if (needs[2]) throw new Error('the gradient for the class weights is not supported (make them a constant)');
  const [scores, target, weights] = node.inputs as (Value | null)[];
  return perTarget(g, scores!, target!, weights ?? null, stringAttr(node, 'reduction', 'mean'), node.attrs.ignore_index, dLoss);
}

/** The loss node's attributes as Attrs (reduction always written out), and the overload name of its fused forms. */
function lossAttrs(red: string, ign: Attr | undefined): { attrs: Record<string, Attr>; overload: string } {
  const attrs: Record<string, Attr> = { reduction: attr.s(red) };
  if (ign?.kind === 'int') attrs.ignore_index = ign;
  return { attrs, overload: `${red}${ign?.kind === 'int' ? `i${ign.value}` : ''}` };
}

/**
 * dScores of a 2-D float32 SoftmaxCrossEntropyLoss from dLoss, its log_prob and int64 targets: (e^log_prob − onehot)·w,
 * as one com.ademamix SoftmaxCrossEntropyLossGrad node whose function body is that standard-op math.
 */
function fusedSceGrad(g: GraphBuilder, dLoss: Value, lp: Value, target: Value, red: string, ign: Attr | undefined): Value {
  const { attrs, overload } = lossAttrs(red, ign);
  return emitFused(g, 'SoftmaxCrossEntropyLossGrad', [dLoss, lp, target], attrs, 1, overload, (b) => {
    const d = b.input('dLoss', 'float32', red === 'none' ? ['N'] : []);
    const l = b.input('log_prob', 'float32', ['N', 'C']);
    const { w, onehot } = perTarget(b, l, b.input('target', 'int64', ['N']), null, red, ign, d);
    b.output(b.mul(b.sub(b.exp(l), onehot), w), 'dScores');
  }, `SoftmaxCrossEntropyLoss's score gradient (reduction ${red}) from dLoss, log_prob [N, C] and the targets [N].`)[0];
}

const sceDef = {
  opType: 'SoftmaxCrossEntropyLoss', attrTypes: { ignore_index: 'int', reduction: 'string' } as const, infer: lossInfer,
  // loss: dScores = (softmax − onehot)·w, with softmax = exp(log_prob) from the node's own log_prob output (added
  // to the node when it was built without it). log_prob: dScores = dLP − softmax·Σ_C dLP.
  grad: (({ g, node, dOut, needs, fused }) => {
    const [scores, target, weights] = node.inputs as (Value | null)[];
    const lp = requestOutput(node, 1, scores!.dtype, scores!.shape);
    if (fused && dOut[0] && !dOut[1] && !weights && scores!.dtype === 'float32' && scores!.rank === 2 && target!.dtype === 'int64') {
      return [fusedSceGrad(g, dOut[0], lp, target!, stringAttr(node, 'reduction', 'mean'), node.attrs.ignore_index), null, null];
    }
    const p = g.exp(lp);
    let ds: Value | null = null;
    if (dOut[0]) {
      const { w, onehot } = nodeTargets(g, node, dOut[0], needs);
      ds = g.mul(g.sub(p, onehot), w);
    }
    if (dOut[1]) {
      const dlp = dOut[1];
      const viaLp = g.sub(dlp, g.mul(p, g.op('ReduceSum', [dlp, g.ints([1])], { keepdims: 1 })));
      ds = ds ? g.add(ds, viaLp) : viaLp;
    }
    return [ds, null, null];
  }) as GradRule,
};
defineOp(sceDef);
// The same op in com.ademamix (the same inference and gradient rules) for 2-D float32 scores without class weights:
// the op library's kernel (ORT runs the standard op's function body, a LogSoftmax over axis 1 of [N, C, 1] among
// others); its function body is the standard op.
defineOp({ ...sceDef, domain: OPS_DOMAIN });
defineOp({
  opType: 'SoftmaxCrossEntropyLossGrad', domain: OPS_DOMAIN, attrTypes: { ignore_index: 'int', reduction: 'string' }, nonDifferentiable: true,
  infer: (ctx): OutType[] => {
    ctx.requireDtype(0, ['float32']); ctx.requireDtype(1, ['float32']); ctx.requireDtype(2, ['int64']);
    return [{ dtype: 'float32', shape: ctx.input(1).shape }];
  },
});

/**
 * SoftmaxCrossEntropyLoss(scores, target) → the loss: the standard op, or (`fused`, float32 scores [N, C] and int64
 * targets) the com.ademamix node, whose function body is the standard op and whose gradient is one fused node too.
 */
export function softmaxCrossEntropy(g: GraphBuilder, scores: Value, target: Value, reduction: 'mean' | 'sum' | 'none' = 'mean', fused = false, ignoreIndex?: number): Value {
  const { attrs, overload } = lossAttrs(reduction, ignoreIndex === undefined ? undefined : attr.i(ignoreIndex));
  if (!fused || scores.dtype !== 'float32' || scores.rank !== 2 || target.dtype !== 'int64') return g.op('SoftmaxCrossEntropyLoss', [scores, target], attrs);
  return emitFused(g, 'SoftmaxCrossEntropyLoss', [scores, target], attrs, 2, overload, (b) => {
    const [loss, lp] = b.opN('SoftmaxCrossEntropyLoss', [b.input('scores', 'float32', ['N', 'C']), b.input('target', 'int64', ['N'])], attrs, { outputs: 2 });
    b.output(loss, 'loss'); b.output(lp, 'log_prob');
  }, `SoftmaxCrossEntropyLoss (reduction ${reduction}) of scores [N, C] and targets [N], with its log_prob.`)[0];
}

defineOp({
  opType: 'NegativeLogLikelihoodLoss', attrTypes: { ignore_index: 'int', reduction: 'string' },
  infer: (ctx) => [lossInfer(ctx)[0]],
  // dInput = −onehot·w
  grad: ({ g, node, dOut, needs }) => {
    const { w, onehot } = nodeTargets(g, node, dOut[0]!, needs);
    return [g.mul(g.neg(onehot), w), null, null];
  },
});

