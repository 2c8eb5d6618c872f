// Each rank's share of a global batch: every rank draws the same global batch (same seed, same data-order position)
// and keeps rows [rank·B/N, (rank+1)·B/N) of every feed. So N ranks × B/N see exactly the examples of 1 rank × B,
// the data position is the same on every rank, and a checkpoint resumes under any world size that divides B.
import { Tensor } from 'onnxruntime-common';

export interface Feeds { feeds: Record<string, Tensor>; items: number }

export class ShardError extends Error {
  constructor(message: string) { super(message); this.name = 'ShardError'; }
}

/** Checks that `size` ranks split a batch of `batch` evenly; the message names the flags. */
export function checkShardable(batch: number, size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new ShardError(`--world must be an integer ≥ 1, got ${size}`);
  if (batch % size !== 0) {
    throw new ShardError(`--batch ${batch} is not divisible by the world size ${size} (--world / mpirun -np): ` +
      `each rank takes an equal share of every global batch`);
  }
}

/** Rows [rank·B/N, (rank+1)·B/N) along the first axis of every feed; `items` stays the global batch's. */
export function shardBatch<B extends Feeds>(b: B, rank: number, size: number): B {
  if (size === 1) return b;
  const feeds: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(b.feeds)) {
    const rows = t.dims[0];
    if (rows % size !== 0) throw new ShardError(`feed '${k}': ${rows} rows do not split over ${size} ranks`);
    const per = rows / size; const rowLen = t.size / rows;
    const data = (t.data as Float32Array).subarray(rank * per * rowLen, (rank + 1) * per * rowLen);
    feeds[k] = new Tensor(t.type as 'float32', data, [per, ...t.dims.slice(1)]);
  }
  return { ...b, feeds };
}
