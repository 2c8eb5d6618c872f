// The collective ops of com.ademamix (custom-ops/src/collective.cc) in the graph: inference rules, emitters, and
// model-local function bodies for a world of one process (AllReduce: the identity; ReduceScatter: the flattened
// tensor; AllGather: the identity), so a world-size-1 graph runs on any ONNX Runtime. Each node is one MPI call over
// one bucket holding all its tensors.
import { GraphBuilder } from '../graph/builder';
import { toFunctionProto } from '../graph/serialize';
import { attr, type Value } from '../graph/value';
import { OPS_DOMAIN } from '../ops/optimizers';
import { defineOp, type InferCtx, type OutType } from '../ops/registry';

export type Reduction = 'sum' | 'mean';

/** Elements per rank of a tensor of `n` elements split over `world` ranks (the last slices zero-padded). */
export const sliceLength = (n: number, world: number): number => Math.ceil(n / world);

const numel = (ctx: InferCtx, i: number): number => {
  const s = ctx.input(i).shape;
  if (!s || !s.every((d): d is number => typeof d === 'number')) ctx.fail(`input ${i} needs a static shape to be split over ranks`);
  return s.reduce((a, b) => a * b, 1);
};
const floats = (ctx: InferCtx): void => {
  ctx.inputs.forEach((v, i) => { if (!v) ctx.fail(`input ${i} is missing`); });
  ctx.inputs.forEach((_, i) => ctx.requireDtype(i, ['float32']));
};
const reduction = (ctx: InferCtx): void => {
  const r = ctx.string('reduction', 'mean');
  if (r !== 'sum' && r !== 'mean') ctx.fail(`reduction must be 'sum' or 'mean', got '${r}'`);
};
const worldOf = (ctx: InferCtx): number => {
  const w = ctx.int('world_size', 0);
  if (!(w >= 1)) ctx.fail(`attribute world_size must be ≥ 1, got ${w}`);
  return w;
};

defineOp({
  opType: 'AllReduce', domain: OPS_DOMAIN, attrTypes: { reduction: 'string' }, nonDifferentiable: true,
  infer: (ctx) => { floats(ctx); reduction(ctx); return ctx.inputs.map((v): OutType => ({ dtype: 'float32', shape: v!.shape })); },
});
defineOp({
  opType: 'ReduceScatter', domain: OPS_DOMAIN, attrTypes: { reduction: 'string', world_size: 'int' }, nonDifferentiable: true,
  infer: (ctx) => {
    floats(ctx); reduction(ctx);
    const w = worldOf(ctx);
    return ctx.inputs.map((_, i): OutType => ({ dtype: 'float32', shape: [sliceLength(numel(ctx, i), w)] }));
  },
});
defineOp({
  opType: 'AllGather', domain: OPS_DOMAIN, attrTypes: { world_size: 'int', sizes: 'ints' }, nonDifferentiable: true,
  infer: (ctx) => {
    floats(ctx);
    const w = worldOf(ctx); const sizes = ctx.ints('sizes') ?? [];
    if (sizes.length !== ctx.inputs.length) ctx.fail(`attribute sizes lists ${sizes.length} sizes for ${ctx.inputs.length} inputs`);
    ctx.inputs.forEach((_, i) => {
      if (numel(ctx, i) !== sliceLength(sizes[i], w)) ctx.fail(`input ${i} must hold ${sliceLength(sizes[i], w)} elements (ceil(${sizes[i]} / ${w}))`);
    });
    return sizes.map((n): OutType => ({ dtype: 'float32', shape: [n] }));
  },
});

/** The body of `op` over n tensors for a world of one (overload `n<N>`). */
function worldOfOneBody(op: 'AllReduce' | 'ReduceScatter' | 'AllGather', n: number) {
  const g = new GraphBuilder();
  const xs = Array.from({ length: n }, (_, i) => g.input(`x_${i}`, 'float32', null));
  xs.forEach((x, i) => g.output(op === 'ReduceScatter' ? g.op('Reshape', [x, g.ints([-1])]) : g.identity(x), `y_${i}`));
  const attributes = op === 'AllGather' ? { world_size: attr.i(1), sizes: undefined }
    : op === 'ReduceScatter' ? { reduction: attr.s('mean'), world_size: attr.i(1) } : { reduction: attr.s('mean') };
  const f = toFunctionProto(g, {
    domain: OPS_DOMAIN, name: op, attributes,
    docString: `${op} over ${n} tensors in a world of one process (elsewhere the op library's MPI kernel runs).`,
  });
  f.overload = `n${n}`;
  return f;
}

function emit(g: GraphBuilder, op: 'AllReduce' | 'ReduceScatter' | 'AllGather', xs: Value[], attrs: Record<string, ReturnType<typeof attr.i>>, name: string): Value[] {
  if (!xs.length) throw new Error(`${op} '${name}': no tensors`);
  const f = worldOfOneBody(op, xs.length);
  if (!g.functions.has(`${f.domain}::${f.name}::${f.overload}`)) g.addFunction(f);
  return g.opN(op, xs, attrs, { domain: OPS_DOMAIN, outputs: xs.length, name, overload: f.overload });
}

/** Σ or mean over the world of every tensor, as one bucket. */
export const allReduce = (g: GraphBuilder, xs: Value[], r: Reduction, name = 'allreduce'): Value[] =>
  emit(g, 'AllReduce', xs, { reduction: attr.s(r) }, name);

/** This rank's 1-D slice of each reduced, flattened tensor (sliceLength elements; zero past the end). */
export const reduceScatter = (g: GraphBuilder, xs: Value[], r: Reduction, world: number, name = 'reduce_scatter'): Value[] =>
  emit(g, 'ReduceScatter', xs, { reduction: attr.s(r), world_size: attr.i(world) }, name);

/** The flat tensors of `sizes[i]` elements from every rank's slice. */
export const allGather = (g: GraphBuilder, slices: Value[], sizes: number[], world: number, name = 'all_gather'): Value[] =>
  emit(g, 'AllGather', slices, { world_size: attr.i(world), sizes: attr.is(sizes) }, name);
