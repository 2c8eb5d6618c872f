// Carried state under sharded optimizer states: a checkpoint always holds whole tensors (gathered from every rank's
// slice), and each rank takes its slice of a whole checkpoint on resume, so any world size resumes any checkpoint.
import { Tensor } from 'onnxruntime-common';
import type { TensorData } from '../graph/tensor-data';
import { sliceData, type ShardInfo } from '../train/data-parallel';
import type { World } from './world';

/** Whole tensors from every rank's slices (a collective: every rank calls it); other tensors as they are. */
export function gatherState(state: Record<string, Tensor>, shards: Map<string, ShardInfo> | undefined, w: World): Record<string, Tensor> {
  if (!shards?.size) return state;
  const out: Record<string, Tensor> = {};
  // one all-gather over every sharded tensor (sorted names: the same order on every rank)
  const names = Object.keys(state).filter((k) => shards.has(k)).sort();
  const K = names.reduce((n, k) => n + shards.get(k)!.k, 0);
  const send = new Float32Array(K);
  let at = 0;
  for (const k of names) {
    const t = state[k];
    if (t.type !== 'float32') throw new Error(`sharded state '${k}' is ${t.type}; gathering is implemented for float32 states`);
    send.set(t.data as Float32Array, at); at += shards.get(k)!.k;
  }
  const all = w.allgather(send);
  at = 0;
  for (const k of names) {
    const s = shards.get(k)!;
    const whole = new Float32Array(s.numel);
    for (let r = 0; r < w.size; r++) {
      const lo = r * s.k; const hi = Math.min(s.numel, lo + s.k);
      if (lo < hi) whole.set(all.subarray(r * K + at, r * K + at + (hi - lo)), lo);
    }
    at += s.k;
    out[k] = new Tensor('float32', whole, s.dims);
  }
  for (const [k, t] of Object.entries(state)) if (!shards.has(k)) out[k] = t;
  return out;
}

/** This rank's slices of whole (checkpointed) tensors; other tensors as they are. */
export function sliceState(state: Record<string, Tensor>, shards: Map<string, ShardInfo> | undefined): Record<string, Tensor> {
  if (!shards?.size) return state;
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(state)) {
    const s = shards.get(k);
    if (!s) { out[k] = t; continue; }
    if (t.size !== s.numel) throw new Error(`state '${k}' holds ${t.size} elements; a whole tensor of ${s.numel} was expected`);
    const d = sliceData({ dtype: t.type as TensorData['dtype'], dims: [...t.dims], data: t.data as Float32Array }, s);
    out[k] = new Tensor('float32', d.data as Float32Array, d.dims);
  }
  return out;
}
