// Trained parameters → a PyTorch state_dict (safetensors), for `model.load_state_dict(safetensors.torch.load_file(f))`.
// Initializer names can differ from state_dict keys (a tie has two keys, a folded `weight.T` is stored transposed),
// so the map graphs/export_torch.py wrote (kept in manifest.json) names them; buffers and frozen parameters come
// from frozen.safetensors. Without a map, the keys are the initializer names. For Schedule-Free, a state that holds z
// (a checkpoint of carried state) hands back x, the point evaluation reads; parameters alone are taken as they are.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { transpose2d, type TensorData } from '../graph/tensor-data';
import { isJsonObject, readJsonFile } from '../io/json';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import type { OnnxManifest } from './export';
import { getOptimizer } from '../optim/derive';

type State = Map<string, TensorData> | Record<string, TensorData>;

function transposed(t: TensorData, key: string): TensorData {
  if (t.dims.length !== 2) throw new Error(`'${key}' is marked transposed but has shape [${t.dims}]`);
  return transpose2d(t);
}

export interface TorchStateDict {
  tensors: Map<string, TensorData>;
  /** state_dict keys the export found no tensor for (load with strict=False, or re-export without folding). */
  missing: string[];
}

const strings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** An export --onnx manifest, checked for what the hand-back reads (a hand-edited or damaged one is one clear error). */
export function readManifest(file: string): OnnxManifest {
  const m = readJsonFile(file);
  const bad = (what: string): Error => new Error(`${file}: ${what}`);
  if (!isJsonObject(m) || m.format !== 'ademamix.onnx-training/1') throw bad('not an export --onnx manifest (format ademamix.onnx-training/1)');
  if (!strings(m.params)) throw bad('params must be a list of tensor names');
  if (m.optimizer !== undefined) {
    if (!isJsonObject(m.optimizer) || typeof m.optimizer.kind !== 'string') throw bad('optimizer must be an object with a kind');
    try { getOptimizer(m.optimizer.kind); } catch (e) { throw bad(`optimizer: ${(e as Error).message}`); }
  }
  const t = m.torch;
  if (t !== null && t !== undefined) {
    const entries = (v: unknown): boolean => Array.isArray(v) && v.every((e) => isJsonObject(e) && typeof e.onnx === 'string' && strings(e.torch));
    if (!isJsonObject(t) || !entries(t.params) || !entries(t.buffers) || (t.missing !== undefined && !strings(t.missing))) {
      throw bad('torch must map tensors to state_dict keys ({params, buffers: [{onnx, torch: [keys]}], missing})');
    }
  }
  return m as unknown as OnnxManifest;
}

/** The state_dict of trained `state` (initializer name → tensor), given the artifacts' manifest and frozen tensors. */
export function torchStateDict(manifest: OnnxManifest, state: State, frozen: State = new Map()): TorchStateDict {
  const get = (m: State, k: string): TensorData | undefined => (m instanceof Map ? m.get(k) : m[k]);
  // what evaluation reads: Schedule-Free's x from the carried y and its z, when the state holds the optimizer's states
  const ep = manifest.optimizer ? getOptimizer(manifest.optimizer.kind).evalParam : undefined;
  const value = (name: string): TensorData => {
    const t = get(state, name) ?? get(frozen, name);
    const shown = name.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`); // a name from a file: one line
    if (!t) throw new Error(`no value for '${shown}' in the trained state or frozen.safetensors`);
    if (ep && manifest.params.includes(name)) {
      const st = ep.states.map((k) => get(state, `${name}.${k}`));
      if (st.every((x) => x)) {
        const states = Object.fromEntries(ep.states.map((k, i) => [k, st[i]!.data as Float32Array]));
        return { dtype: t.dtype, dims: t.dims, data: ep.host(t.data as Float32Array, states, manifest.optimizer) };
      }
    }
    return t;
  };
  const tensors = new Map<string, TensorData>();
  const map = manifest.torch;
  if (!map) {
    for (const p of manifest.params) tensors.set(p, value(p));
    const keys = frozen instanceof Map ? [...frozen.keys()] : Object.keys(frozen);
    for (const k of keys) tensors.set(k, value(k));
    return { tensors, missing: [] };
  }
  for (const e of [...map.params, ...map.buffers]) {
    const t = e.transpose ? transposed(value(e.onnx), e.onnx) : value(e.onnx);
    for (const k of e.torch) tensors.set(k, t);
  }
  return { tensors, missing: map.missing ?? [] };
}

/**
 * Writes the state_dict of an artifacts directory (from exportTrainingFromOnnx) with trained `state`: a map, or a
 * safetensors file holding the parameters by initializer name (a runner checkpoint, initial_state.safetensors).
 */
export function exportTorchCheckpoint(artifactsDir: string, state: State | string, outFile: string): TorchStateDict {
  const manifestFile = path.join(artifactsDir, 'manifest.json');
  if (!fs.existsSync(manifestFile)) throw new Error(`${artifactsDir}: no manifest.json (not an export --onnx directory)`);
  const manifest = readManifest(manifestFile);
  const trained = typeof state === 'string' ? loadSafetensors(state).tensors : state;
  const frozenFile = path.join(artifactsDir, 'frozen.safetensors');
  const frozen = fs.existsSync(frozenFile) ? loadSafetensors(frozenFile).tensors : new Map<string, TensorData>();
  let sd: TorchStateDict;
  try { sd = torchStateDict(manifest, trained, frozen); } catch (e) {
    throw new Error(`${manifestFile}: ${(e as Error).message}${typeof state === 'string' ? ` (trained state: ${state})` : ''}`);
  }
  saveSafetensors(outFile, sd.tensors, { format: 'pt' });
  return sd;
}
