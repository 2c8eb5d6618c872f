// Data parallelism inside the training graph (used by assemble.ts when a world is given).
//   replicated: one AllReduce(mean) over the bucket of every gradient and the loss, so the norm, clipping, the NaN
//               guard and the optimizer all see the world's gradients, and every rank applies the same update.
//   sharded (ZeRO stage 1): one ReduceScatter(mean) of the gradient bucket gives each rank its 1/N slice of every
//               gradient; the optimizer updates that slice of every parameter with that slice of every state (the
//               states exist only as slices: N× less memory per rank); one AllGather puts the parameters back
//               together. The global norm is the AllReduce of the slices' squared sums.
// Slices are 1-D: tensor p of n elements, flattened, elements [r·k, (r+1)·k) with k = ceil(n / N), zero past the end
// (zero parameter, gradient and states stay zero under the elementwise optimizers, so padding never leaks).
import type { GraphBuilder } from '../graph/builder';
import { tensorData, type TensorData } from '../graph/tensor-data';
import type { Value } from '../graph/value';
import { allGather, allReduce, reduceScatter, sliceLength } from './collective';

export interface WorldSpec {
  size: number;
  rank: number;
  /** ZeRO stage 1: optimizer states split over the ranks. */
  shardStates?: boolean;
}

/** The elementwise optimizers, whose update of a slice is the slice of the update (sharding needs that). */
export const SHARDABLE_OPTIMIZERS = ['ademamix', 'simplified', 'adamw'];

/** Where a sharded tensor's slice lies: its full shape, the slice length, and this rank's element range. */
export interface ShardInfo { dims: number[]; numel: number; k: number; lo: number; hi: number }

export function shardInfo(dims: readonly number[], w: WorldSpec): ShardInfo {
  const numel = dims.reduce((a, b) => a * b, 1);
  const k = sliceLength(numel, w.size);
  const lo = Math.min(numel, w.rank * k); const hi = Math.min(numel, lo + k);
  return { dims: [...dims], numel, k, lo, hi };
}

/** This rank's slice of a whole tensor's data (zero-padded to k elements). */
export function sliceData(t: TensorData, s: ShardInfo): TensorData {
  const out = tensorData(t.dtype, [s.k]);
  (out.data as Float32Array).set((t.data as Float32Array).subarray(s.lo, s.hi));
  return out;
}

/** Graph input and output names of the stop vote: each rank feeds 1 when it wants to stop (Ctrl-C), and every rank
 * reads the same reduced vote after the step, so all stop after the same step. It rides in the step's bucket. */
export const STOP_INPUT = 'world.stop'; export const STOP_OUTPUT = 'world.stop_votes';

/** The mean over ranks of every gradient, the loss (float32) and the stop vote, in one AllReduce. */
export function allReduceGradients(g: GraphBuilder, grads: Value[], loss: Value, stop?: Value): { grads: Value[]; loss: Value; stop?: Value } {
  const lossF = loss.dtype === 'float32' ? loss : g.cast(loss, 'float32');
  const r = allReduce(g, [...grads, lossF, ...(stop ? [stop] : [])], 'mean', 'allreduce_gradients');
  return { grads: r.slice(0, grads.length), loss: r[grads.length], stop: stop ? r[grads.length + 1] : undefined };
}

/** Each rank's slice of every mean-reduced gradient, in one ReduceScatter. */
export const reduceScatterGradients = (g: GraphBuilder, grads: Value[], w: WorldSpec): Value[] =>
  reduceScatter(g, grads, 'mean', w.size, 'reduce_scatter_gradients');

/** The world's squared gradient norm (from each rank's partial sum), mean loss and stop vote, in one AllReduce. */
export function allReduceNormAndLoss(g: GraphBuilder, sqPartial: Value, loss: Value, w: WorldSpec, stop?: Value): { sq: Value; loss: Value; stop?: Value } {
  const lossF = loss.dtype === 'float32' ? loss : g.cast(loss, 'float32');
  const [sq, l, v] = allReduce(g, [sqPartial, g.mul(lossF, 1 / w.size), ...(stop ? [stop] : [])], 'sum', 'allreduce_norm_loss');
  return { sq, loss: l, stop: v };
}

/** This rank's slice of parameter `p` (a graph input of static shape) as a 1-D value of k elements. */
export function paramSlice(g: GraphBuilder, p: Value, s: ShardInfo): Value {
  const flat = g.op('Reshape', [p, g.ints([-1])]);
  const pad = s.k - (s.hi - s.lo);
  if (s.hi === s.lo) return g.constant(tensorData('float32', [s.k]));
  const part = s.lo === 0 && s.hi === s.numel ? flat : g.op('Slice', [flat, g.ints([s.lo]), g.ints([s.hi]), g.ints([0])]);
  return pad ? g.op('Concat', [part, g.constant(tensorData('float32', [pad]))], { axis: 0 }) : part;
}

/** Whole parameters from every rank's updated slices (one AllGather), in their shapes. */
export function gatherParams(g: GraphBuilder, slices: Value[], infos: ShardInfo[], w: WorldSpec): Value[] {
  const flat = allGather(g, slices, infos.map((s) => s.numel), w.size, 'all_gather_params');
  return flat.map((f, i) => g.op('Reshape', [f, g.ints(infos[i].dims)]));
}
