// Ops that move, select or re-label data: Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Expand, Concat, Split,
// Slice, Gather, Pad, Tile, and the shape computations (Range, Trilu, ConstantOfShape, OneHot, ScatterND, ArgMax).
import type { GraphBuilder } from '../graph/builder';
import { isFloat } from '../graph/dtype';
import type { Dim, Node, Shape, Value } from '../graph/value';
import { constInts, fill, intAttr, range, stringAttr, sumToShape, typed, zerosLike } from './grad-util';
import { defineOp, type GradRule } from './registry';
import { broadcast, normAxis, reshapeDims, shapeValue, staticNumel } from './shape';

/** The product of dims: static when all are, the symbol itself when it is the only non-1 dim, else unknown. */
function dimProduct(dims: Dim[]): Dim {
  const n = staticNumel(dims);
  if (n !== null) return n;
  const other = dims.filter((d) => d !== 1);
  return other.length === 1 ? other[0] : null;
}

/** Gradient of ops that only relabel the data: reshape it back to the input's runtime shape. */
const reshapeBack: GradRule = (c) => [c.g.op('Reshape', [c.dOut[0]!, c.g.op('Shape', [c.node.inputs[0]!])])];

defineOp({
  opType: 'Reshape', attrTypes: { allowzero: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0); ctx.requireDtype(1, ['int64']);
    const target = shapeValue(ctx.inputs[1]);
    const len = ctx.input(1).shape?.[0];
    if (!target) return [{ dtype: x.dtype, shape: typeof len === 'number' ? Array(len).fill(null) : null }];
    if (target.filter((t) => t === -1).length > 1) ctx.fail(`at most one -1 in the target shape [${target}]`);
    const out = reshapeDims(x.shape, target, !!ctx.int('allowzero', 0));
    const known = staticNumel(x.shape); const outN = staticNumel(out);
    const rest = staticNumel(out.filter((_, i) => target[i] !== -1));
    if (known !== null && rest !== null && (rest === 0 ? known !== 0 : known % rest !== 0)) ctx.fail(`cannot reshape ${known} elements to [${target}]`);
    if (known !== null && outN !== null && known !== outN) ctx.fail(`cannot reshape ${known} elements to [${target}]`);
    return [{ dtype: x.dtype, shape: out }];
  },
  grad: reshapeBack,
});

defineOp({
  opType: 'Transpose', attrTypes: { perm: 'ints' },
  infer: (ctx) => {
    const x = ctx.input(0);
    const perm = ctx.ints('perm') ?? (x.shape ? range(x.shape.length).reverse() : null);
    if (!x.shape || !perm) return [{ dtype: x.dtype, shape: null }];
    if (perm.length !== x.shape.length) ctx.fail(`perm [${perm}] does not match rank ${x.shape.length}`);
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape![p]) }];
  },
  grad: ({ g, node, dOut }) => {
    const x = node.inputs[0]!;
    const a = node.attrs.perm;
    const perm = a?.kind === 'ints' ? a.value.map(Number) : range(x.rank!).reverse();
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.op('Transpose', [dOut[0]!], { perm: inv })];
  },
});

defineOp({
  opType: 'Flatten', attrTypes: { axis: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0);
    if (!x.shape) return [{ dtype: x.dtype, shape: [null, null] }];
    const axis = ctx.int('axis', 1) < 0 ? ctx.int('axis', 1) + x.shape.length : ctx.int('axis', 1);
    return [{ dtype: x.dtype, shape: [dimProduct(x.shape.slice(0, axis)), dimProduct(x.shape.slice(axis))] }];
  },
  grad: reshapeBack,
});

defineOp({
  opType: 'Squeeze',
  infer: (ctx) => {
    const x = ctx.input(0); const axes = constInts(ctx.inputs[1]);
    if (!x.shape) return [{ dtype: x.dtype, shape: null }];
    if (!axes) return [{ dtype: x.dtype, shape: ctx.has(1) ? null : x.shape.filter((d) => d !== 1) }];
    const ax = axes.map((a) => normAxis(ctx, a, x.shape!.length));
    for (const a of ax) if (typeof x.shape[a] === 'number' && x.shape[a] !== 1) ctx.fail(`cannot squeeze axis ${a} of size ${x.shape[a]}`);
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.includes(i)) }];
  },
  grad: reshapeBack,
});

defineOp({
  opType: 'Unsqueeze',
  infer: (ctx) => {
    const x = ctx.input(0); const axes = constInts(ctx.inputs[1]);
    if (!x.shape || !axes) return [{ dtype: x.dtype, shape: null }];
    const r = x.shape.length + axes.length;
    const ax = axes.map((a) => normAxis(ctx, a, r));
    const out: Dim[] = []; let k = 0;
    for (let i = 0; i < r; i++) out.push(ax.includes(i) ? 1 : x.shape[k++]);
    return [{ dtype: x.dtype, shape: out }];
  },
  grad: reshapeBack,
});

defineOp({
  opType: 'Expand',
  infer: (ctx) => {
    const x = ctx.input(0); ctx.requireDtype(1, ['int64']);
    const target = shapeValue(ctx.inputs[1]);
    const len = ctx.input(1).shape?.[0];
    if (!x.shape) return [{ dtype: x.dtype, shape: null }];
    const rank = target ? target.length : typeof len === 'number' ? len : null;
    if (rank === null) return [{ dtype: x.dtype, shape: null }];
    const t = target ?? Array<Dim>(rank).fill(null);
    // broadcasting x against the target (a 1 in the target keeps x's dim)
    return [{ dtype: x.dtype, shape: broadcast(ctx, [x.shape, t.map((d) => (d === 1 ? 1 : d))]) }];
  },
  grad: ({ g, node, dOut }) => [sumToShape(g, dOut[0]!, node.inputs[0]!), null],
});

defineOp({
  opType: 'Concat', attrTypes: { axis: 'int' },
  infer: (ctx) => {
    const dt = ctx.sameDtype(range(ctx.inputs.length));
    const shapes = ctx.inputs.map((v) => v?.shape ?? null);
    if (shapes.some((s) => !s)) return [{ dtype: dt, shape: null }];
    const ss = shapes as Dim[][];
    const ax = normAxis(ctx, ctx.int('axis', 0), ss[0].length);
    if (ss.some((s) => s.length !== ss[0].length)) ctx.fail('inputs must have the same rank');
    // other dims: the first known one (all must agree)
    const out = ss[0].map((_, i) => ss.map((s) => s[i]).find((d) => d !== null) ?? null);
    out[ax] = ss.every((s) => typeof s[ax] === 'number') ? ss.reduce((a, s) => a + (s[ax] as number), 0) : ss.length === 1 ? ss[0][ax] : null;
    return [{ dtype: dt, shape: out }];
  },
  grad: ({ g, node, dOut, needs }) => {
    const axis = Number(node.attrs.axis?.kind === 'int' ? node.attrs.axis.value : 0);
    const xs = node.inputs as Value[];
    const ax = axis < 0 ? axis + xs[0].rank! : axis;
    // sizes along the axis, read at run time (dynamic dims)
    const sizes = g.op('Concat', xs.map((x) => g.op('Shape', [x], { start: ax, end: ax + 1 })), { axis: 0 });
    const parts = g.opN('Split', [dOut[0]!, sizes], { axis: ax }, { outputs: xs.length });
    return parts.map((p, i) => (needs[i] ? p : null));
  },
});

defineOp({
  opType: 'Split', attrTypes: { axis: 'int', num_outputs: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0); const n = ctx.requestedOutputs ?? (ctx.node.outputs.length || ctx.int('num_outputs', 1));
    const sizes = constInts(ctx.inputs[1]);
    if (!x.shape) return Array.from({ length: n }, () => ({ dtype: x.dtype, shape: null }));
    const ax = normAxis(ctx, ctx.int('axis', 0), x.shape.length);
    return Array.from({ length: Math.max(n, sizes?.length ?? 0) }, (_, i) => {
      const s = [...x.shape!];
      s[ax] = sizes ? sizes[i] : typeof x.shape![ax] === 'number' && (x.shape![ax] as number) % n === 0 ? (x.shape![ax] as number) / n : null;
      return { dtype: x.dtype, shape: s };
    });
  },
  grad: ({ g, node, dOut }) => {
    const axis = Number(node.attrs.axis?.kind === 'int' ? node.attrs.axis.value : 0);
    const parts = node.outputs.map((y, i) => dOut[i] ?? zerosLike(g, y));
    return [g.op('Concat', parts, { axis }), null];
  },
});

defineOp({
  opType: 'Slice',
  infer: (ctx) => {
    const x = ctx.input(0);
    if (!x.shape) return [{ dtype: x.dtype, shape: null }];
    const starts = constInts(ctx.inputs[1]); const ends = constInts(ctx.inputs[2]);
    const axes = ctx.has(3) ? constInts(ctx.inputs[3]) : starts ? range(starts.length) : null;
    const steps = ctx.has(4) ? constInts(ctx.inputs[4]) : null;
    const out: Dim[] = [...x.shape];
    if (!starts || !ends || !axes) {
      if (!axes) return [{ dtype: x.dtype, shape: x.shape.map(() => null) }];
      for (const a of axes) out[normAxis(ctx, a, x.shape.length)] = null;
      return [{ dtype: x.dtype, shape: out }];
    }
    axes.forEach((a0, i) => {
      const a = normAxis(ctx, a0, x.shape!.length);
      const dim = x.shape![a]; const step = steps?.[i] ?? 1;
      if (typeof dim !== 'number') { out[a] = null; return; }
      const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
      const norm = (v: number): number => (v < 0 ? v + dim : v);
      if (step > 0) { const s = clamp(norm(starts[i]), 0, dim); const e = clamp(norm(ends[i]), 0, dim); out[a] = Math.max(0, Math.ceil((e - s) / step)); }
      else { const s = clamp(norm(starts[i]), -1, dim - 1); const e = clamp(norm(ends[i]), -1, dim - 1); out[a] = Math.max(0, Math.ceil((e - s) / step)); }
    });
    return [{ dtype: x.dtype, shape: out }];
  },
  grad: ({ g, node, dOut }) => [sliceGrad(g, node, dOut[0]!), null, null, null, null],
});

/**
 * dX for Y = Slice(X, starts, ends, axes, steps), with run-time starts/ends and dynamic dims; axes and steps must be
 * constants. Unit steps: dY padded back with zeros (pads from the clamped starts/ends). Other steps (negative too):
 * per sliced axis, the taken positions are Slice(Range(0, dim)) with the same parameters, and dY is scattered to them.
 */
function sliceGrad(g: GraphBuilder, node: Node, d: Value): Value {
  const [x, starts, ends, axesV, stepsV] = node.inputs as (Value | null)[];
  const rank = x!.rank;
  if (rank === null) throw new Error('the input rank must be known');
  const n = constInts(starts)?.length ?? starts!.shape?.[0];
  const axes = axesV ? constInts(axesV) : typeof n === 'number' ? range(n) : null;
  if (!axes) throw new Error('Slice gradient needs constant axes');
  const steps = stepsV ? constInts(stepsV) : axes.map(() => 1);
  if (!steps) throw new Error('Slice gradient needs constant steps');
  const ax = axes.map((a) => (a < 0 ? a + rank : a));
  const i64 = (v: Value): Value => (v.dtype === 'int64' ? v : g.cast(v, 'int64'));
  if (steps.every((s) => s === 1)) {
    const dims = g.op('Gather', [g.op('Shape', [x!]), g.ints(ax)], { axis: 0 });
    const zero = g.scalar(0, 'int64');
    const clamp = (v: Value): Value => {
      const norm = g.op('Where', [g.op('Less', [v, zero]), g.add(v, dims), v]);
      return g.op('Min', [g.op('Max', [norm, zero]), dims]);
    };
    const s = clamp(i64(starts!)); const e = g.op('Max', [clamp(i64(ends!)), s]);
    const zeros = fill(g, g.ints([rank]), 'int64', 0);
    const padAt = (v: Value): Value => g.op('ScatterElements', [zeros, g.ints(ax), v], { axis: 0 });
    return g.op('Pad', [d, g.op('Concat', [padAt(s), padAt(g.sub(dims, e))], { axis: 0 })]);
  }
  let cur = d;
  ax.forEach((a, i) => {
    const pick = (v: Value | null): Value => g.op('Slice', [i64(v!), g.ints([i]), g.ints([i + 1])]);
    const dim = g.op('Shape', [x!], { start: a, end: a + 1 });
    const positions = g.op('Slice', [g.op('Range', [g.scalar(0, 'int64'), g.op('Squeeze', [dim]), g.scalar(1, 'int64')]),
      pick(starts), pick(ends), g.ints([0]), g.ints([steps[i]])]);
    const bshape = range(rank).map((j) => (j === a ? -1 : 1));
    const idx = g.op('Expand', [g.op('Reshape', [positions, g.ints(bshape)]), g.op('Shape', [cur])]);
    const zshape = g.op('Concat', [...(a > 0 ? [g.op('Shape', [cur], { start: 0, end: a })] : []), dim,
      ...(a < rank - 1 ? [g.op('Shape', [cur], { start: a + 1 })] : [])], { axis: 0 });
    cur = g.op('ScatterElements', [fill(g, zshape, d.dtype ?? 'float32', 0), idx, cur], { axis: a });
  });
  return cur;
}

defineOp({
  opType: 'Gather', attrTypes: { axis: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0); const idx = ctx.input(1);
    ctx.requireDtype(1, ['int64', 'int32']);
    if (!x.shape || !idx.shape) return [{ dtype: x.dtype, shape: null }];
    const ax = normAxis(ctx, ctx.int('axis', 0), x.shape.length);
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, ax), ...idx.shape, ...x.shape.slice(ax + 1)] }];
  },
  grad: ({ g, node, dOut }) => {
    // scatter-add of dY into zeros shaped like the data; the gathered axis is moved to the front for ScatterND
    const [x, idx] = node.inputs as Value[];
    if (!isFloat(x.dtype)) return [null, null];
    const r = x.rank!; const q = idx.rank!;
    const axis0 = Number(node.attrs.axis?.kind === 'int' ? node.attrs.axis.value : 0);
    const ax = axis0 < 0 ? axis0 + r : axis0;
    let d = dOut[0]!;
    const idx64 = g.op('Unsqueeze', [g.cast(idx, 'int64'), g.ints([-1])]);
    if (ax === 0) return [g.op('ScatterND', [zerosLike(g, x), idx64, d], { reduction: 'add' }), null];
    // data perm: ax, 0..ax-1, ax+1..; dY perm: index dims, pre dims, post dims
    const xPerm = [ax, ...range(ax), ...range(r).slice(ax + 1)];
    const dPerm = [...range(q).map((i) => ax + i), ...range(ax), ...range(r - ax - 1).map((i) => ax + q + i)];
    d = g.op('Transpose', [d], { perm: dPerm });
    const zt = zerosLike(g, g.op('Transpose', [x], { perm: xPerm }));
    const st = g.op('ScatterND', [zt, idx64, d], { reduction: 'add' });
    return [g.op('Transpose', [st], { perm: xPerm.map((_, i) => xPerm.indexOf(i)) }), null];
  },
});

defineOp({
  opType: 'ScatterND', attrTypes: { reduction: 'string' },
  infer: (ctx) => [{ dtype: ctx.input(0).dtype, shape: ctx.input(0).shape }],
});
defineOp({
  opType: 'ScatterElements', attrTypes: { axis: 'int', reduction: 'string' },
  infer: (ctx) => [{ dtype: ctx.input(0).dtype, shape: ctx.input(0).shape }],
});
defineOp({
  opType: 'Compress', attrTypes: { axis: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0); ctx.requireDtype(1, ['bool']);
    if (!ctx.attr('axis') || !x.shape) return [{ dtype: x.dtype, shape: [null] }];
    const ax = normAxis(ctx, ctx.int('axis', 0), x.shape.length);
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? null : d)) }];
  },
});
defineOp({ opType: 'NonZero', infer: (ctx) => [{ dtype: 'int64', shape: [ctx.input(0).rank, null] }], nonDifferentiable: true });
defineOp({
  opType: 'Pad', attrTypes: { mode: 'string' },
  infer: (ctx) => {
    const x = ctx.input(0);
    const mode = ctx.string('mode', 'constant');
    if (!['constant', 'reflect', 'edge', 'wrap'].includes(mode)) ctx.fail(`unknown mode '${mode}'`);
    if (ctx.has(2)) ctx.sameDtype([0, 2]);
    if (!x.shape) return [{ dtype: x.dtype, shape: null }];
    const r = x.shape.length;
    const pads = constInts(ctx.inputs[1]);
    const axes = ctx.has(3) ? constInts(ctx.inputs[3])?.map((a) => normAxis(ctx, a, r)) ?? null : range(r);
    if (!pads || !axes) return [{ dtype: x.dtype, shape: x.shape.map(() => null) }];
    if (pads.length !== 2 * axes.length) ctx.fail(`pads has ${pads.length} values for ${axes.length} axes`);
    const out: Dim[] = [...x.shape];
    axes.forEach((a, i) => {
      const add = pads[i] + pads[axes.length + i]; const dim = x.shape![a];
      out[a] = add === 0 ? dim : typeof dim === 'number' ? dim + add : null;
    });
    return [{ dtype: x.dtype, shape: out }];
  },
  // constant mode, non-negative constant pads: dX is dY with the padding sliced off (ends read at run time)
  grad: ({ g, node, dOut }) => {
    const [x, padsV, , axesV] = node.inputs as (Value | null)[];
    const r = x!.rank!;
    if (stringAttr(node, 'mode', 'constant') !== 'constant') throw new Error('Pad gradient supports mode constant only');
    const pads = constInts(padsV); const axes = axesV ? constInts(axesV) : range(r);
    if (!pads || !axes || pads.some((p) => p < 0)) throw new Error('Pad gradient needs constant, non-negative pads and axes');
    const ax = axes.map((a) => (a < 0 ? a + r : a));
    const d = dOut[0]!;
    const ends = g.sub(g.op('Gather', [g.op('Shape', [d]), g.ints(ax)], { axis: 0 }), g.ints(pads.slice(ax.length)));
    return [g.op('Slice', [d, g.ints(pads.slice(0, ax.length)), ends, g.ints(ax)]), null, null, null];
  },
});
defineOp({
  opType: 'Tile',
  infer: (ctx) => {
    const x = ctx.input(0); ctx.requireDtype(1, ['int64']);
    const reps = constInts(ctx.inputs[1]);
    if (!x.shape) return [{ dtype: x.dtype, shape: null }];
    if (reps && reps.length !== x.shape.length) ctx.fail(`repeats has ${reps.length} values for rank ${x.shape.length}`);
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (!reps ? null : reps[i] === 1 ? d : typeof d === 'number' ? d * reps[i] : null)) }];
  },
  // dY viewed as [r0, d0, r1, d1, …] (run-time sizes) and summed over the repeat axes
  grad: ({ g, node, dOut }) => {
    const [x, reps] = node.inputs as Value[];
    const r = x.rank!;
    const parts = range(r).flatMap((i) => [g.op('Slice', [reps, g.ints([i]), g.ints([i + 1])]), g.op('Shape', [x], { start: i, end: i + 1 })]);
    const v = g.op('Reshape', [dOut[0]!, g.op('Concat', parts, { axis: 0 })]);
    return [typed(g.op('ReduceSum', [v, g.ints(range(r).map((i) => 2 * i))], { keepdims: 0 }), x), null];
  },
});
defineOp({
  opType: 'Range',
  infer: (ctx) => [{ dtype: ctx.sameDtype([0, 1, 2]), shape: [null] }],
  nonDifferentiable: true,
});
// (integer use only so far: positions along an axis; no gradient rule)
defineOp({
  opType: 'CumSum', attrTypes: { exclusive: 'int', reverse: 'int' },
  infer: (ctx) => {
    ctx.requireDtype(1, ['int32', 'int64']);
    return [{ dtype: ctx.input(0).dtype, shape: ctx.input(0).shape }];
  },
  nonDifferentiable: true,
});
defineOp({
  opType: 'Trilu', attrTypes: { upper: 'int' },
  infer: (ctx) => {
    const x = ctx.input(0);
    if (x.rank !== null && x.rank < 2) ctx.fail('input must have rank >= 2');
    if (ctx.has(1)) ctx.requireDtype(1, ['int64']);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  // a mask on a float value: the same mask on the gradient (masks built from constants are pruned anyway)
  grad: ({ g, node, dOut }) => [g.op('Trilu', [dOut[0]!, node.inputs[1] ?? null], { upper: intAttr(node, 'upper', 1) }), null],
});
defineOp({
  opType: 'ConstantOfShape',
  infer: (ctx) => {
    const a = ctx.attr('value');
    const len = ctx.input(0).shape?.[0];
    const target = shapeValue(ctx.inputs[0]);
    const shape: Shape = target ? target : typeof len === 'number' ? Array(len).fill(null) : null;
    return [{ dtype: a && a.kind === 'tensor' ? a.value.dtype : 'float32', shape }];
  },
  nonDifferentiable: true,
});
defineOp({
  opType: 'OneHot', attrTypes: { axis: 'int' },
  infer: (ctx) => {
    const idx = ctx.input(0).shape;
    const values = ctx.input(2);
    if (!idx) return [{ dtype: values.dtype, shape: null }];
    const r = idx.length + 1;
    const ax = normAxis(ctx, ctx.int('axis', -1), r);
    const out: Dim[] = [...idx]; out.splice(ax, 0, constInts(ctx.inputs[1])?.[0] ?? null);
    return [{ dtype: values.dtype, shape: out }];
  },
});
for (const op of ['ArgMax', 'ArgMin']) {
  defineOp({
    opType: op, attrTypes: { axis: 'int', keepdims: 'int' },
    infer: (ctx) => {
      const x = ctx.input(0);
      if (!x.shape) return [{ dtype: 'int64', shape: null }];
      const ax = normAxis(ctx, ctx.int('axis', 0), x.shape.length);
      return [{ dtype: 'int64', shape: ctx.int('keepdims', 1) ? x.shape.map((d, i) => (i === ax ? 1 : d)) : x.shape.filter((_, i) => i !== ax) }];
    },
    nonDifferentiable: true,
  });
}
defineOp({
  opType: 'Shape', attrTypes: { start: 'int', end: 'int' },
  infer: (ctx) => {
    const r = ctx.input(0).rank;
    if (r === null) return [{ dtype: 'int64', shape: [null] }];
    const norm = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    const s = norm(ctx.int('start', 0)); const e = norm(ctx.int('end', r));
    return [{ dtype: 'int64', shape: [Math.max(e - s, 0)] }];
  },
  nonDifferentiable: true,
});
