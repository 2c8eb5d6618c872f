// Neural-network ops: Softmax, LogSoftmax, LayerNormalization, Dropout, Conv/ConvTranspose, with gradients.
import type { GraphBuilder } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { attr, type Node, type Value } from '../graph/value';
import { castLike, constValue, floatAttr, intAttr, intsAttr, range, requestOutput, scalarLike, stringAttr, sumToShape, typed } from './grad-util';
import { defineOp } from './registry';
import { normAxis, sameDim, sameShape } from './shape';
import { floatUnaryInfer } from './elementwise';
import { emitFused, fusedLayerNormGrad, fusedSoftmaxGrad, layerNormGradMath, softmaxGradMath } from './fused';
import { OPS_DOMAIN } from './optimizers';

const FLOATS: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

defineOp({
  opType: 'Softmax', attrTypes: { axis: 'int' }, infer: floatUnaryInfer,
  grad: ({ g, node, dOut, fused }) => {
    const y = node.outputs[0]; const d = dOut[0]!; const axis = intAttr(node, 'axis', -1);
    const last = y.rank !== null && (axis === -1 || axis === y.rank - 1);
    return [fused && last && y.dtype === 'float32' && d.dtype === 'float32' ? fusedSoftmaxGrad(g, d, y) : softmaxGradMath(g, d, y, axis)];
  },
});
defineOp({
  opType: 'LogSoftmax', attrTypes: { axis: 'int' }, infer: floatUnaryInfer,
  // dX = dY − softmax ⊙ Σ_axis dY
  grad: ({ g, node, dOut }) => {
    const y = node.outputs[0]; const d = dOut[0]!;
    return [g.sub(d, g.mul(g.exp(y), g.op('ReduceSum', [d, g.ints([intAttr(node, 'axis', -1)])], { keepdims: 1 })))];
  },
});

const layerNormDef = defineOp({
  opType: 'LayerNormalization', attrTypes: { axis: 'int', epsilon: 'float', stash_type: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0);
    ctx.requireDtype(0, FLOATS);
    ctx.sameDtype([0, 1, 2]);
    const r = x.rank;
    const ax = r === null ? null : normAxis(ctx, ctx.int('axis', -1), r);
    const norm = x.shape && ax !== null ? x.shape.slice(ax) : null;
    for (const i of [1, 2]) {
      const s = ctx.inputs[i]?.shape;
      if (s && norm && (s.length > norm.length || s.some((d, k) => !sameDim(d, norm[norm.length - s.length + k]) && d !== 1))) {
        ctx.fail(`input ${i} ${ctx.inputs[i]!.describe()} does not broadcast to the normalized dims [${norm}]`);
      }
    }
    const stat = x.shape && ax !== null ? x.shape.map((d, i) => (i < ax ? d : 1)) : null;
    const u = statType(ctx.int('stash_type', 1), x.dtype);
    return [{ dtype: x.dtype, shape: x.shape }, { dtype: u, shape: stat }, { dtype: u, shape: stat }];
  },
  // With x̂ = (x − μ)·σ⁻¹ over the normalized axes: dB = Σ_batch dY, dS = Σ_batch dY·x̂,
  // dX = σ⁻¹·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dY·S. Mean and InvStdDev are outputs 1 and 2 of the
  // forward node; when it was built without them, they are added to it here, so nothing is recomputed.
  grad: ({ g, node, dOut, needs, fused, prior, absorb }) => {
    const [x, scale, bias] = node.inputs as (Value | null)[];
    const d = dOut[0];
    if (!d) throw new Error('gradients through the Mean/InvStdDev outputs are not supported');
    const r = x!.rank;
    if (r === null) throw new Error('the input rank must be known');
    const a0 = intAttr(node, 'axis', -1); const ax = a0 < 0 ? a0 + r : a0;
    const u = statType(intAttr(node, 'stash_type', 1), x!.dtype);
    const stat = x!.shape?.map((dim, i) => (i < ax ? dim : 1)) ?? null;
    const normAxes = range(r).slice(ax);
    let mean: Value; let inv: Value;
    if (x!.dtype === 'float64' && u !== 'float64') {
      // float32 statistics would cap a double graph's gradient at float32 precision: recompute them in double
      mean = g.op('ReduceMean', [x!, g.ints(normAxes)], { keepdims: 1 });
      const cx = g.sub(x!, mean);
      const variance = g.op('ReduceMean', [g.mul(cx, cx), g.ints(normAxes)], { keepdims: 1 });
      inv = g.op('Reciprocal', [g.sqrt(g.add(variance, scalarLike(g, floatAttr(node, 'epsilon', 1e-5), x!)))]);
    } else {
      mean = castLike(g, requestOutput(node, 1, u, stat), x!);
      inv = castLike(g, requestOutput(node, 2, u, stat), x!);
    }
    // the fused node: float32 throughout, scale (and bias) shaped exactly like the normalized dims
    const normShape = x!.shape?.slice(ax);
    const full = (v: Value | null): boolean => !!v && !!v.shape && !!normShape && v.shape.length === normShape.length &&
      v.shape.every((dim, i) => typeof dim === 'number' && dim === normShape[i]);
    if (fused && x!.dtype === 'float32' && d.dtype === 'float32' && u === 'float32' && full(scale) && (!bias || full(bias))) {
      // X's gradient so far (a pre-LN block's residual path) goes into the node, added where dX is written, instead
      // of an Add pass after it (gpt-mini: 8 Adds of [16, 128, 128], ~75 µs each, 2026-12-03)
      const res = needs[0] ? prior(0) : null;
      const use = res && res.dtype === 'float32' && res.shape && x!.shape && sameShape(res.shape, x!.shape) ? res : null;
      if (use) absorb(0);
      const [dx, ds, db] = fusedLayerNormGrad(g, d, x!, scale!, mean, inv, ax, r, use ?? undefined);
      return [needs[0] ? dx : null, needs[1] ? ds : null, bias && needs[2] ? db : null];
    }
    const { dx, dScaleTerm } = layerNormGradMath(g, d, x!, scale, mean, inv, normAxes);
    return [needs[0] ? dx : null, scale && needs[1] ? sumToShape(g, dScaleTerm, scale) : null, bias && needs[2] ? sumToShape(g, d, bias) : null];
  },
});

// The same op in com.ademamix (the same inference and gradient rules): the op library's kernel, about twice as fast as
// ORT's on gpt-mini's [16, 128, 128]; its function body is the standard LayerNormalization.
defineOp({ ...layerNormDef, domain: OPS_DOMAIN });

/**
 * LayerNormalization(x, scale, bias) over the dims from `axis` → [Y, Mean, InvStdDev]: the standard op, or (`fused`,
 * float32, scale and bias shaped like the normalized dims) the com.ademamix node.
 */
export function layerNormalization(g: GraphBuilder, x: Value, scale: Value, bias: Value, axis: number, epsilon: number, fused = false): Value[] {
  const attrs = { axis: attr.i(axis), epsilon: attr.f(epsilon) };
  const norm = x.rank === null ? null : x.shape?.slice(axis < 0 ? axis + x.rank : axis);
  const exact = (v: Value): boolean => !!norm && !!v.shape && v.shape.length === norm.length && v.shape.every((d, i) => typeof d === 'number' && d === norm[i]);
  if (!fused || [x, scale, bias].some((v) => v.dtype !== 'float32') || !exact(scale) || !exact(bias)) {
    return g.opN('LayerNormalization', [x, scale, bias], { axis, epsilon }, { outputs: 3 });
  }
  return emitFused(g, 'LayerNormalization', [x, scale, bias], attrs, 3, `a${axis}e${epsilon}`, (b) => {
    const outs = b.opN('LayerNormalization', [b.input('X', 'float32', null), b.input('Scale', 'float32', null), b.input('B', 'float32', null)],
      { axis, epsilon }, { outputs: 3 });
    b.output(outs[0], 'Y'); b.output(outs[1], 'Mean'); b.output(outs[2], 'InvStdDev');
  }, `LayerNormalization (axis ${axis}, epsilon ${epsilon}) with its Mean and InvStdDev.`);
}

/** LayerNormalization's Mean/InvStdDev type: float32 for stash_type 1 (the default; ORT keeps it for double too). */
const statType = (stash: number, x: DType | null): DType | null => (stash === 1 ? 'float32' : x);

defineOp({
  opType: 'Dropout', attrTypes: { seed: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0);
    ctx.requireDtype(0, FLOATS);
    if (ctx.has(1)) ctx.requireDtype(1, FLOATS);
    if (ctx.has(2)) ctx.requireDtype(2, ['bool']);
    return [{ dtype: x.dtype, shape: x.shape }, { dtype: 'bool', shape: x.shape }];
  },
  // Training mode: dX = dY·mask/(1 − ratio), with the node's mask output (added to the node when it was built
  // without it). Without a training_mode input it is the identity. If training_mode is false at run time the mask
  // is all true and the ratio is ignored by the forward, so the rule divides by (1 − ratio) only in training mode.
  grad: ({ g, node, dOut }) => {
    const [x, ratio, training] = node.inputs as (Value | null)[];
    const d = dOut[0]!;
    const isOff = (v: Value | null): boolean => { const t = constValue(v); return !!t && Number(t.data[0]) === 0; };
    if (!training || isOff(training) || isOff(ratio)) return [d, null, null];
    const mask = requestOutput(node, 1, 'bool', x!.shape);
    const r = ratio ? castLike(g, ratio, x!) : scalarLike(g, 0.5, x!);
    const scale = g.op('Where', [training, g.div(scalarLike(g, 1, x!), g.sub(scalarLike(g, 1, x!), r)), scalarLike(g, 1, x!)]);
    return [g.op('Where', [mask, g.mul(d, scale), scalarLike(g, 0, d)]), null, null];
  },
});

function convOut(inp: number | string | null, k: number, s: number, p0: number, p1: number, dl: number): number | null {
  return typeof inp === 'number' ? Math.floor((inp + p0 + p1 - dl * (k - 1) - 1) / s) + 1 : null;
}

defineOp({
  opType: 'Conv', attrTypes: { kernel_shape: 'ints', strides: 'ints', pads: 'ints', dilations: 'ints', group: 'int', auto_pad: 'string' },
  infer: (ctx) => {
    const x = ctx.input(0); const w = ctx.input(1);
    const dt = ctx.sameDtype([0, 1, 2]);
    if (!x.shape || !w.shape) return [{ dtype: dt, shape: null }];
    if (x.shape.length !== w.shape.length) ctx.fail(`X has rank ${x.shape.length} but W has rank ${w.shape.length}`);
    const n = x.shape.length - 2;
    const ks = ctx.ints('kernel_shape') ?? (w.shape.slice(2) as number[]);
    const st = ctx.ints('strides') ?? Array(n).fill(1); const dl = ctx.ints('dilations') ?? Array(n).fill(1);
    const pads = ctx.ints('pads') ?? Array(2 * n).fill(0);
    const group = ctx.int('group', 1);
    const cin = x.shape[1]; const wc = w.shape[1];
    if (typeof cin === 'number' && typeof wc === 'number' && cin !== wc * group) ctx.fail(`X has ${cin} channels but W expects ${wc}×${group}`);
    const spatial = range(n).map((i) => convOut(x.shape![2 + i], ks[i], st[i], pads[i], pads[n + i], dl[i]));
    return [{ dtype: dt, shape: [x.shape[0], w.shape[0], ...spatial] }];
  },
  grad: ({ g, node, dOut, needs }) => {
    const [x, w, b] = node.inputs as (Value | null)[];
    return [needs[0] ? convGradX(g, node, dOut[0]!) : null, needs[1] ? convGradW(g, node, dOut[0]!) : null,
      b && needs[2] ? g.op('ReduceSum', [dOut[0]!, g.ints([0, ...range(x!.rank! - 2).map((i) => i + 2)])], { keepdims: 0 }) : null];
  },
});

interface ConvParams { n: number; ks: number[]; st: number[]; dl: number[]; pads: number[]; group: number }
function convParams(node: Node): ConvParams {
  const [x, w] = node.inputs as Value[];
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') throw new Error(`auto_pad ${autoPad} is not supported (give explicit pads)`);
  if (x.rank === null || w.shape === null) throw new Error('X and W need known ranks');
  const n = x.rank - 2;
  const ks = intsAttr(node, 'kernel_shape') ?? w.shape.slice(2).map((k) => {
    if (typeof k !== 'number') throw new Error('the kernel shape must be static');
    return k;
  });
  return {
    n, ks, st: intsAttr(node, 'strides') ?? Array(n).fill(1), dl: intsAttr(node, 'dilations') ?? Array(n).fill(1),
    pads: intsAttr(node, 'pads') ?? Array(2 * n).fill(0), group: intAttr(node, 'group', 1),
  };
}

/**
 * dX = ConvTranspose(dY, W) with the forward's strides/pads/dilations/group. Input rows/cols the forward stride
 * never reached get zero: via output_padding when spatial dims are static, else by padding at run time.
 */
function convGradX(g: GraphBuilder, node: Node, d: Value): Value {
  const [x, w] = node.inputs as Value[];
  const { n, ks, st, dl, pads, group } = convParams(node);
  const xs = x.shape!.slice(2); const ys = node.outputs[0].shape?.slice(2) ?? xs.map(() => null);
  const isStatic = xs.every((v) => typeof v === 'number') && ys.every((v) => typeof v === 'number');
  const outPad = range(n).map((i) => (isStatic
    ? (xs[i] as number) + pads[i] + pads[n + i] - ((ys[i] as number - 1) * st[i] + dl[i] * (ks[i] - 1) + 1) : 0));
  const dx = g.op('ConvTranspose', [d, w], { kernel_shape: ks, strides: st, pads, dilations: dl, group, output_padding: outPad });
  if (isStatic || outPad.every((p, i) => p === 0 && st[i] === 1)) return typed(dx, x);
  const missing = g.sub(g.op('Shape', [x], { start: 2 }), g.op('Shape', [dx], { start: 2 }));
  return typed(g.op('Pad', [dx, g.op('Concat', [g.ints(Array(n + 4).fill(0)), missing], { axis: 0 })]), x);
}

/**
 * dW[o, c, k] = Σ_{n, y} dY[n, o, y]·X[n, c, y·s + k·dl − p]: a convolution of X (batch ↔ channels swapped) with dY
 * as the kernel, strides and dilations swapped, cut to the kernel size. Groups: X's channels are regrouped as
 * [C/g, g·N] and the convolution runs with `group` = g.
 */
function convGradW(g: GraphBuilder, node: Node, d: Value): Value {
  const [x, w] = node.inputs as Value[];
  const { n, ks, st, dl, pads, group } = convParams(node);
  const sp = range(n).map((i) => i + 2);
  const cIn = x.shape![1];
  let xt: Value; let dt: Value;
  if (group === 1) {
    xt = g.op('Transpose', [x], { perm: [1, 0, ...sp] });   // [C, N, …]
    dt = g.op('Transpose', [d], { perm: [1, 0, ...sp] });   // [O, N, …]
  } else {
    if (typeof cIn !== 'number') throw new Error('grouped Conv gradient needs a static channel count');
    const cg = cIn / group;
    const x5 = g.op('Reshape', [x, g.op('Concat', [g.ints([0, group, cg]), g.op('Shape', [x], { start: 2 })], { axis: 0 })]);
    const xp = g.op('Transpose', [x5], { perm: [2, 1, 0, ...sp.map((i) => i + 1)] }); // [C/g, g, N, …]
    xt = g.op('Reshape', [xp, g.op('Concat', [g.ints([cg, -1]), g.op('Shape', [x], { start: 2 })], { axis: 0 })]);
    dt = g.op('Transpose', [d], { perm: [1, 0, ...sp] });   // [O, N, …], O ordered by group
  }
  const full = g.op('Conv', [xt, dt], { strides: dl, dilations: st, pads, group }); // [C/g, O, ≥k…]
  const cut = g.op('Slice', [full, g.ints(sp.map(() => 0)), g.ints(ks), g.ints(sp)]);
  return typed(g.op('Transpose', [cut], { perm: [1, 0, ...sp] }), w);
}

defineOp({
  opType: 'ConvTranspose', attrTypes: { kernel_shape: 'ints', strides: 'ints', pads: 'ints', dilations: 'ints', output_padding: 'ints', group: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0); const w = ctx.input(1);
    if (!x.shape || !w.shape) return [{ dtype: x.dtype, shape: null }];
    const n = x.shape.length - 2;
    const ks = ctx.ints('kernel_shape') ?? (w.shape.slice(2) as number[]);
    const st = ctx.ints('strides') ?? Array(n).fill(1); const dl = ctx.ints('dilations') ?? Array(n).fill(1);
    const pads = ctx.ints('pads') ?? Array(2 * n).fill(0); const opd = ctx.ints('output_padding') ?? Array(n).fill(0);
    const sp = range(n).map((i) => {
      const v = x.shape![2 + i];
      return typeof v === 'number' ? st[i] * (v - 1) + opd[i] + ((ks[i] - 1) * dl[i] + 1) - pads[i] - pads[n + i] : null;
    });
    const outC = typeof w.shape[1] === 'number' ? (w.shape[1] as number) * ctx.int('group', 1) : null;
    return [{ dtype: x.dtype, shape: [x.shape[0], outC, ...sp] }];
  },
});
