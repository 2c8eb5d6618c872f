// Checkpoints: one safetensors file per save holding every carried tensor (params, optimizer states, step) and, in its
// metadata, the config, the data-order position and run counters, so `--resume` continues bit-exactly. Written
// atomically (temp file, fsync, rename) so a crash mid-write leaves the previous checkpoint intact; keep-last-N. A temp
// file a killed process left is removed by the next save; a failed write (a full disk) removes its own and is one
// CheckpointError naming the file, the previous checkpoints untouched.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-common';
import type { DType } from '../graph/dtype';
import type { TensorData } from '../graph/tensor-data';
import { loadSafetensors, saveSafetensors, SafetensorsError } from '../io/safetensors';
import type { RawTensor } from '../native/session';

export const CHECKPOINT_FORMAT = 'ademamix-checkpoint/1';
const NAME = /^step-(\d+)\.safetensors$/;
/** A checkpoint's temp file while it is written (src/onnx/io.ts writeFileAtomic: `<file>.tmp-<pid>`). */
const TEMP = /^step-\d+\.safetensors\.tmp-(\d+)$/;

export interface CheckpointInfo {
  /** The next step to run (the carried `step` input). */
  step: number;
  config: Record<string, unknown>;
  dataPosition: number[];
  /** Model fingerprint: names, dtypes and shapes of the carried tensors. */
  fingerprint: string;
  counters: Record<string, number>;
}

export class CheckpointError extends Error {
  constructor(message: string) { super(message); this.name = 'CheckpointError'; }
}

export function fingerprint(shapes: Record<string, { type: string; dims: readonly (number | string)[] }>): string {
  const desc = Object.keys(shapes).sort().map((k) => `${k}:${shapes[k].type}[${shapes[k].dims.join(',')}]`).join(';');
  return createHash('sha256').update(desc).digest('hex').slice(0, 16);
}

export const checkpointPath = (dir: string, step: number): string => path.join(dir, `step-${String(step).padStart(7, '0')}.safetensors`);

export function listCheckpoints(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => NAME.test(f)).sort().map((f) => path.join(dir, f));
}

/** A carried tensor as the native session hands it out: bf16 states as raw Uint16Array bits, 8-bit states as uint8
 * codes beside their float32 `.absmax` (saved as they are: safetensors BF16 / U8 / F32). */
export type StateTensor = RawTensor;

export function saveCheckpoint(dir: string, state: Record<string, StateTensor>, info: CheckpointInfo, keep: number): string {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, TensorData>();
  for (const name of Object.keys(state).sort()) {
    const t = state[name];
    tensors.set(name, { dtype: t.type as DType, dims: [...t.dims], data: t.data as TensorData['data'] });
  }
  const file = checkpointPath(dir, info.step);
  // temp files of writes a killed process never finished (or a failed write's own) are no checkpoint: removed
  const dropTemps = (own: boolean): void => {
    for (const f of fs.readdirSync(dir)) {
      const m = TEMP.exec(f);
      if (m && (own ? f.startsWith(`${path.basename(file)}.tmp-`) : Number(m[1]) !== process.pid)) fs.rmSync(path.join(dir, f), { force: true });
    }
  };
  dropTemps(false);
  const previous = listCheckpoints(dir).pop(); // a failed write leaves it (and every other) as it was
  try {
    saveSafetensors(file, tensors, {
      format: CHECKPOINT_FORMAT, step: String(info.step), config: JSON.stringify(info.config),
      data_position: JSON.stringify(info.dataPosition), fingerprint: info.fingerprint, counters: JSON.stringify(info.counters),
    });
  } catch (e) {
    try { dropTemps(true); } catch { /* the error below is the one to report */ }
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOSPC' || code === 'EDQUOT' ? `the disk is full (${code})` : (e as Error).message;
    throw new CheckpointError(`cannot write checkpoint ${file}: ${why}; ` +
      (previous ? `the previous checkpoint ${previous} is intact` : 'no earlier checkpoint exists'));
  }
  const all = listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(old, { force: true });
  return file;
}

export interface LoadedCheckpoint {
  file: string; info: CheckpointInfo;
  /** every tensor except bfloat16 ones (which onnxruntime-common's Tensor cannot hold) */
  state: Record<string, Tensor>;
  /** every tensor, bfloat16 as raw bits (what a session's setStateRaw takes) */
  raw: Record<string, StateTensor>;
}

export function loadCheckpoint(file: string): LoadedCheckpoint {
  if (!fs.existsSync(file)) throw new CheckpointError(`checkpoint ${file} does not exist`);
  let st;
  try { st = loadSafetensors(file); } catch (e) {
    throw new CheckpointError(e instanceof SafetensorsError ? `checkpoint ${e.message}` : `checkpoint ${file}: ${(e as Error).message}`);
  }
  const m = st.metadata;
  if (m.format !== CHECKPOINT_FORMAT) throw new CheckpointError(`${file} is not an ademamix checkpoint (format '${m.format ?? 'none'}')`);
  let info: CheckpointInfo;
  try {
    info = { step: Number(m.step), config: JSON.parse(m.config), dataPosition: JSON.parse(m.data_position), fingerprint: m.fingerprint, counters: JSON.parse(m.counters) };
  } catch {
    throw new CheckpointError(`checkpoint ${file}: corrupt metadata (not valid JSON)`);
  }
  if (!Number.isInteger(info.step) || info.step < 1) {
    throw new CheckpointError(`checkpoint ${file}: ${typeof m.step === 'string' ? `bad step '${m.step.slice(0, 40)}'` : 'no step in its metadata'}`);
  }
  const record = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!record(info.config)) throw new CheckpointError(`checkpoint ${file}: corrupt metadata (config is not an object)`);
  if (!Array.isArray(info.dataPosition) || info.dataPosition.some((x) => !Number.isSafeInteger(x))) {
    throw new CheckpointError(`checkpoint ${file}: corrupt metadata (data_position is not a list of integers)`);
  }
  if (!record(info.counters) || Object.values(info.counters).some((x) => typeof x !== 'number')) {
    throw new CheckpointError(`checkpoint ${file}: corrupt metadata (counters are not numbers)`);
  }
  if (typeof info.fingerprint !== 'string') throw new CheckpointError(`checkpoint ${file}: corrupt metadata (no fingerprint)`);
  const state: Record<string, Tensor> = {}; const raw: Record<string, StateTensor> = {};
  for (const [name, t] of st.tensors) {
    if (t.dtype === 'bfloat16') { raw[name] = { type: 'bfloat16', data: t.data as Uint16Array, dims: t.dims }; continue; }
    raw[name] = state[name] = new Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims);
  }
  return { file, info, state, raw };
}

/** A checkpoint file, or the newest one in a run directory (or its checkpoints/ folder). */
export function resolveCheckpoint(p: string): string {
  if (!fs.existsSync(p)) throw new CheckpointError(`${p} does not exist (expected a run directory or a checkpoint file)`);
  if (fs.statSync(p).isFile()) return p;
  for (const dir of [path.join(p, 'checkpoints'), p]) {
    const all = listCheckpoints(dir);
    if (all.length) return all[all.length - 1];
  }
  throw new CheckpointError(`${p} holds no checkpoints (looked for checkpoints/step-*.safetensors)`);
}
