// Folds small computations on constants while importing. Unoptimized exports (dynamo with optimize=False) build
// axes, starts and shapes as Reshape/Unsqueeze/Concat/Cast of Constant nodes; gradient rules and shape inference
// need such inputs as constants (Slice axes, reduction axes, Split sizes), so they are folded into Constant nodes.
import type { GraphBuilder } from '../graph/builder';
import { typedArrayFor } from '../graph/dtype';
import { numel, type TensorData } from '../graph/tensor-data';
import type { Value } from '../graph/value';
import { constValue } from '../ops/grad-util';

const MAX_ELEMENTS = 4096;
const RELABEL = new Set(['Identity', 'Reshape', 'Squeeze', 'Unsqueeze', 'Flatten']);

const staticDims = (v: Value): number[] | null =>
  v.shape && v.shape.every((d) => typeof d === 'number') ? (v.shape as number[]) : null;

const values = (t: TensorData): (number | bigint)[] => Array.from(t.data as ArrayLike<number | bigint>);

function make(t: { dtype: TensorData['dtype']; dims: number[] }, xs: (number | bigint)[]): TensorData {
  const data = typedArrayFor(t.dtype, xs.length);
  const big = data instanceof BigInt64Array || data instanceof BigUint64Array;
  // bigints stay bigints (INT64_MAX ends of slices do not survive a trip through a double)
  const conv = (x: number | bigint): number | bigint => (!big ? Number(x) : typeof x === 'bigint' ? x : BigInt(Math.trunc(x)));
  xs.forEach((x, i) => { (data as unknown as (number | bigint)[])[i] = conv(x); });
  return { dtype: t.dtype, dims: t.dims, data };
}

/** The folded value of `out` (output 0 of a node on constants), or null when it is not a foldable case. */
export function foldConstant(g: GraphBuilder, opType: string, inputs: (Value | null)[], out: Value, attrs: Record<string, unknown>): Value | null {
  const dims = staticDims(out);
  if (!dims || out.dtype === null || out.dtype === 'string' || numel(dims) > MAX_ELEMENTS) return null;
  const consts = inputs.map((v) => (v ? constValue(v) : null));
  if (inputs.some((v, i) => v && !consts[i])) return null;
  const first = consts[0];
  if (!first) return null;
  let xs: (number | bigint)[] | null = null;
  if (RELABEL.has(opType)) xs = values(first);
  else if (opType === 'Cast') xs = values(first).map((x) => (out.dtype === 'bool' ? (Number(x) !== 0 ? 1 : 0) : x));
  else if (opType === 'Concat' && consts.every((c) => c && c.dims.length === 1)) xs = consts.flatMap((c) => values(c!));
  else if (opType === 'Gather' && first.dims.length === 1 && !(attrs.axis as { value?: unknown } | undefined)?.value) {
    const src = values(first);
    xs = values(consts[1]!).map((i) => src[Number(i) < 0 ? Number(i) + src.length : Number(i)]);
  }
  if (!xs || xs.length !== numel(dims)) return null;
  return g.constant(make({ dtype: out.dtype, dims }, xs));
}
