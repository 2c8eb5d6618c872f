// What the browser page trains from: the same train.onnx / eval.onnx the runner builds for a config, a forward graph
// for sampling (params as inputs → logits), the carried state to start from (initial, or a run's checkpoint), the
// training token ids and the run's fixed validation batches, and a manifest that says how to wire them (carry map,
// parameter names, metrics, checkpoint fingerprint, data position). Built in Node, served by ./server.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isJsonObject, readJsonFile } from '../io/json';
import { buildGpt, gptConfig } from '../../graphs/gpt';
import { isFloat } from '../graph/dtype';
import { toModelProto } from '../graph/serialize';
import type { TensorData } from '../graph/tensor-data';
import { encodeModel } from '../onnx/io';
import { loadText } from '../data/text';
import { encodeSafetensors, loadSafetensors } from '../io/safetensors';
import { fingerprint, loadCheckpoint, resolveCheckpoint } from '../runner/checkpoint';
import { isVision, validateConfig, type TrainConfig } from '../runner/config';
import type { MetricRecord } from '../runner/run-dir';
import { buildTask } from '../runner/task';
import { optimizerSpec } from '../runner/trainer';
import { assembleTraining } from '../train/assemble';
import { Rng } from '../util/rng';
import { lrAt } from '../optim/schedules';
import { getOptimizer } from '../optim/derive';
import type { OptimizerSpec } from '../train/optimizers';

/** The manifest the page reads (GET /api/manifest.json). */
export interface WebManifest {
  config: TrainConfig;
  /** carried output → input (`x.next` → `x`) */
  carry: Record<string, string>;
  batchInputs: string[];
  params: string[];
  /** Scalar outputs of train.onnx besides the loss (lr, alpha, beta3 | beta1, grad_norm, skipped). */
  metrics: string[];
  /** Checkpoint fingerprint of the carried tensors (what `train --resume` checks). */
  fingerprint: string;
  /** Completed steps of the state served (0 for an initial state). */
  step: number;
  /** The training stream's position (RNG state) after `step` steps. */
  dataPosition: number[];
  counters: Record<string, number>;
  level: 'char' | 'byte';
  /** Token id → text (char level: the character; byte level: String.fromCharCode(byte)). */
  vocab: string[];
  blockSize: number;
  /** Training token ids: Uint16 (vocab ≤ 65536) or Int32, little-endian (GET /api/train-ids.bin). */
  idsType: 'uint16' | 'int32';
  trainTokens: number;
  /** The run's fixed validation batches: evalBatches × (tokens, targets), each batch × seq int32 (GET /api/val.bin). */
  valBatches: number;
  describe: string;
  /** Where the state came from: 'initial', a checkpoint file or an export directory. */
  source: string;
  /** The schedules over the whole run from the float64 references (the graph computes them in-graph from `step`):
   *  metric name → [step, value] points. */
  planned: Record<string, [number, number][]>;
  /** The optimizer's spec as train.onnx was built with it (kind, lr schedule, hyperparameters). */
  optimizer: OptimizerSpec;
  /** The run's logged records up to the served step (metrics.jsonl of a run directory), plotted as the run's past. */
  history: MetricRecord[];
}

export interface WebArtifacts {
  manifest: WebManifest;
  train: Uint8Array;
  eval: Uint8Array;
  /** tokens [batch, seq] + params → logits [batch, seq, vocab] */
  forward: Uint8Array;
  /** The carried state to start from, as safetensors. */
  state: Uint8Array;
  trainIds: Uint8Array;
  val: Uint8Array;
}

export class WebError extends Error {
  constructor(message: string) { super(message); this.name = 'WebError'; }
}

/**
 * Artifacts for a config (initial state), a run directory / checkpoint file (its newest checkpoint: config, state,
 * data position), or an `ademamix export --model` directory (its manifest, graphs and initial state).
 */
export function webArtifacts(opts: { config?: TrainConfig; run?: string }): WebArtifacts {
  let config: TrainConfig; let state: Map<string, TensorData> | undefined; let step = 0;
  let dataPosition: number[] | undefined; let counters: Record<string, number> = { skipped: 0 };
  let source = 'initial'; let history: MetricRecord[] = [];
  let exported: { train: Uint8Array; eval: Uint8Array; wiring: Pick<WebManifest, 'carry' | 'batchInputs' | 'params' | 'metrics'> } | undefined;
  if (opts.run !== undefined) {
    const manifestFile = path.join(opts.run, 'manifest.json');
    if (fs.existsSync(manifestFile) && fs.statSync(opts.run).isDirectory()) {
      const raw = readJsonFile(manifestFile);
      const names = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
      if (!isJsonObject(raw) || !isJsonObject(raw.config) || !isJsonObject(raw.carry) || !names(raw.batchInputs) || !names(raw.params) || !names(raw.metrics)) {
        throw new WebError(`${manifestFile}: not the manifest of \`ademamix export --model\` (config, carry, batchInputs, params, metrics)`);
      }
      const m = raw as unknown as Pick<WebManifest, 'config' | 'carry' | 'batchInputs' | 'params' | 'metrics'>;
      config = m.config;
      state = loadSafetensors(path.join(opts.run, 'initial_state.safetensors')).tensors;
      exported = {
        train: fs.readFileSync(path.join(opts.run, 'train.onnx')), eval: fs.readFileSync(path.join(opts.run, 'eval.onnx')),
        wiring: { carry: m.carry, batchInputs: m.batchInputs, params: m.params, metrics: m.metrics },
      };
      source = path.resolve(opts.run);
    } else {
      const file = resolveCheckpoint(opts.run);
      const ck = loadCheckpoint(file);
      config = ck.info.config as unknown as TrainConfig;
      state = new Map(Object.entries(ck.state).map(([k, t]) => [k, { dtype: t.type as TensorData['dtype'], dims: [...t.dims], data: t.data as Float32Array }]));
      step = ck.info.step; dataPosition = ck.info.dataPosition; counters = { ...counters, ...ck.info.counters };
      source = path.resolve(file);
      history = runHistory(file, step);
      if (ck.info.fingerprint === undefined) throw new WebError(`${file}: checkpoint has no fingerprint`);
    }
  } else config = opts.config ?? (() => { throw new WebError('webArtifacts needs a config or a run'); })();
  validateConfig(config);
  if (isVision(config)) throw new WebError(`the page trains text models (gpt-*); ${config.model} is a vision preset`);

  // The same assembly as Trainer.create, so the page runs the graph `train` and `train --resume` build.
  const task = buildTask(config);
  const art = assembleTraining({
    forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(config), gradClip: config.gradClip,
    skipNonFinite: config.nanPolicy === 'skip', metadata: { 'ademamix.model': config.model },
  });
  const wiring = exported?.wiring ?? { carry: art.carry, batchInputs: art.batchInputs, params: art.params, metrics: art.metrics };
  const start = state ?? art.initialState;
  const carriedInputs = Object.values(wiring.carry);
  for (const k of carriedInputs) {
    const want = art.initialState.get(k); const got = start.get(k);
    if (!want) throw new WebError(`${source}: carries '${k}', which ${config.model}'s training graph for this config does not have`);
    if (!got) throw new WebError(`${source}: the state lacks '${k}', which ${config.model}'s training graph carries`);
    if (got.dtype !== want.dtype || got.dims.join(',') !== want.dims.join(',')) {
      throw new WebError(`${source}: '${k}' is ${got.dtype}[${got.dims}], the training graph wants ${want.dtype}[${want.dims}]`);
    }
  }
  const fp = fingerprint(Object.fromEntries(carriedInputs.map((k) => [k, { type: start.get(k)!.dtype, dims: start.get(k)!.dims }])));

  const data = loadText({ source: config.data, level: config.level, valFraction: config.valFraction });
  const cfg = gptConfig(config.model, { ...config.modelOverrides, vocabSize: data.vocabSize });
  const u16 = data.vocabSize <= 65536;
  const ids = u16 ? Uint16Array.from(data.train) : Int32Array.from(data.train);
  const B = config.batch; const T = config.seq;
  const val = new Int32Array(task.val.length * 2 * B * T);
  task.val.forEach((b, i) => {
    val.set(Int32Array.from(b.feeds.tokens.data as BigInt64Array, Number), (2 * i) * B * T);
    val.set(Int32Array.from(b.feeds.targets.data as BigInt64Array, Number), (2 * i + 1) * B * T);
  });

  const manifest: WebManifest = {
    config, ...wiring, fingerprint: fp,
    step, dataPosition: dataPosition ?? Array.from(new Rng(config.seed).state), counters,
    level: config.level, vocab: data.vocab, blockSize: cfg.blockSize, idsType: u16 ? 'uint16' : 'int32',
    trainTokens: ids.length, valBatches: task.val.length, describe: task.describe, source,
    planned: plannedSchedules(optimizerSpec(config), config.steps), history, optimizer: optimizerSpec(config),
  };
  const carriedState = new Map(carriedInputs.slice().sort().map((k) => [k, start.get(k)!]));
  return {
    manifest,
    train: exported?.train ?? encodeModel(art.train),
    eval: exported?.eval ?? encodeModel(art.eval),
    forward: forwardModel(config, data.vocabSize),
    state: encodeSafetensors(carriedState),
    trainIds: new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength),
    val: new Uint8Array(val.buffer),
  };
}

/**
 * The GPT forward pass with its parameters as inputs (same names as in train.onnx) and the logits as output. When the
 * optimizer evaluates another point than the carried parameter (Schedule-Free: x from y and z), the forward nodes read
 * that point, computed in-graph from the parameter and its state inputs, as eval.onnx does.
 */
export function forwardModel(config: TrainConfig, vocabSize: number): Uint8Array {
  const cfg = gptConfig(config.model, { ...config.modelOverrides, vocabSize });
  const m = buildGpt(cfg, config.seed);
  const g = m.g;
  const params = [...g.initializers.keys()].filter((p) => isFloat(p.dtype));
  for (const p of params) { g.initializers.delete(p); g.inputs.push(p); }
  const ep = getOptimizer(config.optimizer).evalParam;
  if (ep) {
    const spec = optimizerSpec(config);
    const forwardNodes = [...g.nodes];
    for (const p of params) {
      const st = Object.fromEntries(ep.states.map((k) => [k, g.input(`${p.name}.${k}`, 'float32', p.shape)]));
      const x = ep.graph(g, p, st, spec);
      for (const n of forwardNodes) n.inputs.forEach((v, k) => { if (v === p) n.inputs[k] = x; });
    }
    g.nodes.unshift(...g.nodes.splice(forwardNodes.length)); // the x nodes (inputs and constants only) go first
  }
  g.inputs.splice(g.inputs.indexOf(m.inputs.targets), 1);
  g.outputs.splice(0);
  g.output(m.logits, 'logits');
  return encodeModel(toModelProto(g, { metadata: { 'ademamix.model': config.model, 'ademamix.role': 'forward' } }));
}

/** The schedules' float64 reference curves at ~300 steps of the run (1-based steps, as the graph's `step`): lr and
 *  every scalar the optimizer's definition reports as a metric (AdEMAMix: α, β3), from the definitions' `at`. */
export function plannedSchedules(o: OptimizerSpec, steps: number, points = 300): Record<string, [number, number][]> {
  const ts = [...new Set(Array.from({ length: points + 1 }, (_, i) => Math.max(1, Math.round((i * steps) / points))))];
  const curve = (f: (t: number) => number): [number, number][] => ts.map((t) => [t, f(t)]);
  const out: Record<string, [number, number][]> = { lr: curve((t) => lrAt(t, o.lr)) };
  for (const sd of getOptimizer(o.kind).scalars) if (sd.name !== 'lr' && sd.metric !== false) out[sd.name] = curve((t) => sd.at(t, o));
  return out;
}

/** metrics.jsonl records (steps ≤ `step`) of the run a checkpoint belongs to (<run>/checkpoints/step-N.safetensors). */
function runHistory(checkpoint: string, step: number): MetricRecord[] {
  const dir = path.dirname(path.resolve(checkpoint));
  const file = path.join(path.basename(dir) === 'checkpoints' ? path.dirname(dir) : dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) return [];
  const out: MetricRecord[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as MetricRecord;
      if (r.step <= step) out.push({ step: r.step, loss: r.loss, eval_loss: r.eval_loss, lr: r.lr, alpha: r.alpha, beta3: r.beta3, beta1: r.beta1 });
    } catch { /* a torn last line of a crashed run: skip it */ }
  }
  return out;
}
