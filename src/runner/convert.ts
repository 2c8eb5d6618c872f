// `ademamix convert-checkpoint`: a checkpoint's optimizer states re-stored in other precisions (fp32 / bf16 / 8-bit
// per slot, src/optim/precision.ts). Each state is decoded to float32 exactly as the kernels load it and encoded as
// the kernels store it (round to nearest); params, step, data position and counters are kept, the config gets the
// new --states, and the fingerprint is the new training graph's. Written as <out>/checkpoints/step-N.safetensors,
// so `ademamix train --resume <out>` continues from it.
import * as path from 'node:path';
import { encodeModel } from '../onnx/io';
import { NativeSession, type RawTensor } from '../native';
import { getOptimizer } from '../optim/derive';
import { absmaxName, decodeState, dtypeOfFormat, encodeState, formatStates, parseStates, type StateFormat, type StoredState } from '../optim/precision';
import { assembleTraining } from '../train/assemble';
import { CheckpointError, fingerprint, loadCheckpoint, resolveCheckpoint, saveCheckpoint } from './checkpoint';
import { validateConfig, type TrainConfig } from './config';
import { buildTask } from './task';
import { optimizerSpec, statePrecision } from './trainer';

export interface ConvertResult { file: string; from: string; to: string; converted: number }

export function convertCheckpoint(source: string, states: string, out: string, stochasticRounding?: boolean): ConvertResult {
  const file = resolveCheckpoint(source);
  const ck = loadCheckpoint(file);
  const config = ck.info.config as unknown as TrainConfig;
  const def = getOptimizer(config.optimizer);
  const from = parseStates(def, config.states);
  const to = parseStates(def, states);
  const toText = formatStates(to);
  const next: TrainConfig = {
    ...config, states: toText === 'fp32' ? undefined : toText,
    stochasticRounding: toText === 'fp32' ? undefined : stochasticRounding ?? config.stochasticRounding,
  };
  validateConfig(next);
  const raw: Record<string, RawTensor> = { ...ck.raw };
  let converted = 0;
  for (const name of Object.keys(ck.raw)) {
    const slot = def.states.find((s) => name.endsWith(`.${s.name}`) && ck.raw[name.slice(0, -s.name.length - 1)]?.type === 'float32');
    if (!slot) continue;
    const t = ck.raw[name];
    const f: StateFormat = from[slot.name];
    if (t.type !== dtypeOfFormat(f)) throw new CheckpointError(`${file}: '${name}' is ${t.type}, but the run stores ${slot.name} as ${f}`);
    const stored: StoredState = f === '8bit'
      ? { format: f, data: t.data as Uint8Array, absmax: ck.raw[absmaxName(name)]?.data as Float32Array }
      : f === 'bf16' ? { format: f, data: t.data as Uint16Array } : { format: f, data: t.data as Float32Array };
    if (stored.format === '8bit' && !stored.absmax) throw new CheckpointError(`${file}: 8-bit state '${name}' has no '${absmaxName(name)}'`);
    const e = encodeState(decodeState(stored, !slot.unsigned), to[slot.name], !slot.unsigned);
    raw[name] = { type: dtypeOfFormat(e.format), data: e.data, dims: t.dims };
    delete raw[absmaxName(name)];
    if (e.format === '8bit') raw[absmaxName(name)] = { type: 'float32', data: e.absmax, dims: [e.absmax.length] };
    converted++;
  }
  // the new training graph decides the fingerprint and checks that the converted state is exactly what it carries
  const task = buildTask(next);
  const art = assembleTraining({ forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(next), gradClip: next.gradClip,
    skipNonFinite: next.nanPolicy === 'skip', states: statePrecision(next), seed: next.seed });
  const s = NativeSession.create(encodeModel(art.train), { intraOpThreads: 1 });
  try {
    const carried = new Set(Object.values(art.carry));
    const meta = s.inputMetadata.filter((m) => carried.has(m.name));
    for (const m of meta) if (!raw[m.name]) throw new CheckpointError(`${file}: no tensor '${m.name}' for the converted run`);
    s.setStateRaw(Object.fromEntries(meta.map((m) => [m.name, raw[m.name]])));
    const fp = fingerprint(Object.fromEntries(meta.map((m) => [m.name, m])));
    const dst = saveCheckpoint(path.join(out, 'checkpoints'), Object.fromEntries(meta.map((m) => [m.name, raw[m.name]])),
      { ...ck.info, config: next as unknown as Record<string, unknown>, fingerprint: fp }, 1 << 30);
    return { file: dst, from: formatStates(from), to: toText, converted };
  } finally { s.release(); }
}
