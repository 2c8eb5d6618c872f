// Using what was trained: the forward graph of a run's model with a checkpoint's weights inside (standard ONNX ops
// only, so stock onnxruntime-node, onnxruntime-web, Python onnxruntime and Netron open it), text sampling from a GPT
// run and class predictions from a ViT run.
//
// Sampling runs the whole window (up to the block size) through the model for every new token, as nanoGPT's
// sample.py does, rather than a key/value-cached decode graph: at the block sizes of the presets (64-128) one
// full-window forward of gpt-tiny/mini is a fraction of a millisecond to a few, and the exported model stays the
// plain forward graph any runtime runs without extra inputs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { buildGpt, gptConfig } from '../../graphs/gpt';
import { buildVit, vitConfig } from '../../graphs/vit';
import { decodePng, loadImageFolder, loadImageArrays, splitImages, type LabeledImages } from '../data/images';
import { loadMnist, MNIST_NORM } from '../data/mnist';
import { loadText, type TextData } from '../data/text';
import { toModelProto } from '../graph/serialize';
import { readJsonFile } from '../io/json';
import type { TensorData } from '../graph/tensor-data';
import { encodeModel, saveModelSized } from '../onnx/io';
import type { ModelProto } from '../onnx/proto';
import { CheckpointError, loadCheckpoint, resolveCheckpoint, type LoadedCheckpoint } from '../runner/checkpoint';
import { DEFAULT_CONFIG, isVision, validateConfig, type TrainConfig } from '../runner/config';
import type { ReportExtra } from '../runner/report';
import { RunDir } from '../runner/run-dir';
import { optimizerSpec } from '../runner/trainer';
import { getOptimizer } from '../optim/derive';
import { measureStep } from '../bench/train-step';
import { Rng } from '../util/rng';

export interface InferenceModel {
  model: ModelProto;
  config: TrainConfig;
  checkpoint: string;
  step: number;
  /** Text runs: the vocabulary (char or byte level). */
  text?: TextData;
  blockSize?: number;
  /** Vision runs: class names and the input geometry. */
  classes?: string[];
  image?: { channels: number; size: number };
  /** A vision run's own images as loaded (image folder or arrays; MNIST runs: undefined). */
  images?: LabeledImages;
}

/** The forward model (input → logits) of a run's newest checkpoint, or of the given checkpoint file. */
export function inferenceModel(run: string, checkpoint?: string): InferenceModel {
  const file = resolveCheckpoint(checkpoint ?? run);
  const ck = loadCheckpoint(file);
  let config: TrainConfig;
  try { config = validateConfig({ ...DEFAULT_CONFIG, ...ck.info.config } as TrainConfig); } catch (e) {
    throw new CheckpointError(`${file}: the run's config in it is not valid (${(e as Error).message})`);
  }
  try { return buildInference(file, ck, config); } catch (e) {
    const m = (e as Error).message;
    throw e instanceof CheckpointError || m.includes(file) ? e : new CheckpointError(`${file}: ${m}`);
  }
}

function buildInference(file: string, ck: LoadedCheckpoint, config: TrainConfig): InferenceModel {
  let built; let extra: Partial<InferenceModel>;
  if (isVision(config)) {
    // class names and geometry as the run saw them (MNIST, or the user's images)
    let classes = Array.from({ length: 10 }, (_, i) => String(i));
    let overrides = { ...config.modelOverrides };
    let d: LabeledImages | undefined;
    if (config.data !== 'mnist') {
      d = config.data.endsWith('.safetensors') ? loadImageArrays(config.data) : loadImageFolder(config.data);
      classes = d.classes;
      overrides = { imageSize: d.size, channels: d.channels, numClasses: d.classes.length, ...config.modelOverrides };
    }
    const cfg = vitConfig(config.model, overrides);
    built = buildVit(cfg, config.seed);
    extra = { classes, image: { channels: cfg.channels, size: cfg.imageSize }, images: d };
  } else {
    const text = loadText({ source: config.data, level: config.level, valFraction: config.valFraction });
    const cfg = gptConfig(config.model, { ...config.modelOverrides, vocabSize: text.vocabSize });
    built = buildGpt(cfg, config.seed);
    extra = { text, blockSize: cfg.blockSize };
  }
  const { g } = built;
  // the trained weights replace the initial ones (what evaluation reads: Schedule-Free's x, not the carried y); the
  // labels input and the loss go
  const ep = getOptimizer(config.optimizer).evalParam;
  const spec = ep ? optimizerSpec(config) : null;
  const weights = (name: string, t: Tensor): Float32Array => {
    if (!ep) return t.data as Float32Array;
    const st = Object.fromEntries(ep.states.map((k) => {
      const s = ck.state[`${name}.${k}`];
      if (!s) throw new Error(`${file}: '${name}.${k}' is missing (a ${config.optimizer} checkpoint holds it)`);
      return [k, s.data as Float32Array];
    }));
    return ep.host(t.data as Float32Array, st, spec!);
  };
  let replaced = 0;
  for (const v of [...g.initializers.keys()]) {
    const t = ck.state[v.name!];
    if (!t) continue;
    const want = g.initializers.get(v)!;
    const dims = 'data' in want ? want.dims : want.dims.map(Number);
    if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
      throw new Error(`${file}: '${v.name}' is [${t.dims.join(',')}] but ${config.model} has [${dims.join(',')}]`);
    }
    g.initializers.set(v, { dtype: 'float32', dims: [...t.dims], data: weights(v.name!, t) } as TensorData);
    replaced++;
  }
  if (!replaced) throw new Error(`${file}: holds none of ${config.model}'s parameters`);
  const labels = isVision(config) ? built.inputs.labels : built.inputs.targets;
  g.inputs.splice(g.inputs.indexOf(labels), 1);
  g.outputs.splice(0);
  g.output(built.logits, 'logits');
  const model = toModelProto(g, {
    docString: `${config.model} forward pass (logits) at step ${ck.info.step} of ${path.dirname(path.dirname(file))}`,
    metadata: { 'ademamix.role': 'inference', 'ademamix.model': config.model, 'ademamix.step': String(ck.info.step) },
  });
  return { model, config, checkpoint: file, step: ck.info.step, ...extra };
}

/** Writes the model; tensor bytes go to `<file>.data` past 1 GiB (protobuf stops at 2 GiB). */
export function saveInferenceModel(m: InferenceModel, file: string): void {
  saveModelSized(m.model, file);
}

export interface SampleOptions {
  prompt?: string;
  tokens?: number;
  temperature?: number;
  topK?: number;
  seed?: number;
  /** Called with each piece of text as it is decoded. */
  onText?: (s: string) => void;
}

/** Token ids of a prompt in a run's vocabulary; a character the vocabulary lacks is an error naming it. */
export function encodePrompt(text: TextData, prompt: string): number[] {
  if (text.level === 'byte') return Array.from(Buffer.from(prompt, 'utf8'));
  const index = new Map(text.vocab.map((c, i) => [c, i]));
  return Array.from(prompt, (c) => {
    const i = index.get(c);
    if (i === undefined) throw new Error(`--prompt: the character ${JSON.stringify(c)} is not in the run's vocabulary (its ${text.vocab.length} characters)`);
    return i;
  });
}

/** Draws `tokens` tokens after the prompt; returns the generated ids and the rate. */
export async function sample(m: InferenceModel, o: SampleOptions = {}): Promise<{ ids: number[]; text: string; tokensPerSecond: number }> {
  if (!m.text || !m.blockSize) throw new Error(`${m.checkpoint}: not a text model (${m.config.model}); use predict for image models`);
  const text = m.text;
  const n = o.tokens ?? 200; const temperature = o.temperature ?? 0.8; const topK = o.topK ?? 0;
  if (!(n >= 1)) throw new Error('--tokens must be at least 1');
  if (!(temperature >= 0)) throw new Error('--temperature must be ≥ 0 (0: always the most likely token)');
  const rng = new Rng(o.seed ?? 0);
  const s = await ort.InferenceSession.create(encodeModel(m.model), m.config.threads ? { intraOpNumThreads: m.config.threads } : {});
  const newline = text.level === 'byte' ? 10 : text.vocab.indexOf('\n');
  const ctx = o.prompt ? encodePrompt(text, o.prompt) : [newline >= 0 ? newline : 0];
  const out: number[] = [];
  const pending: number[] = []; // bytes of an unfinished UTF-8 character
  const emit = (id: number): void => {
    if (!o.onText) return;
    if (text.level === 'char') { o.onText(text.vocab[id]); return; }
    pending.push(id);
    const str = Buffer.from(pending).toString('utf8');
    if (!str.endsWith('\ufffd') || pending.length >= 4) { o.onText(str); pending.length = 0; }
  };
  const t0 = process.hrtime.bigint();
  try {
    for (let k = 0; k < n; k++) {
      const window = ctx.slice(-m.blockSize);
      const feed = new Tensor('int64', BigInt64Array.from(window.map(BigInt)), [1, window.length]);
      const logits = (await s.run({ tokens: feed })).logits;
      const V = logits.dims[logits.dims.length - 1];
      const last = (logits.data as Float32Array).subarray((window.length - 1) * V, window.length * V);
      const id = pick(last, temperature, topK, rng);
      ctx.push(id); out.push(id); emit(id);
    }
  } finally { await s.release(); }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ids: out, text: text.decode(out), tokensPerSecond: n / secs };
}

/** A token from logits: the argmax at temperature 0, else a draw from softmax(logits / T) over the top k. */
function pick(logits: Float32Array, temperature: number, topK: number, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;
  let cut = -Infinity;
  if (topK > 0 && topK < logits.length) cut = Array.from(logits).sort((a, b) => b - a)[topK - 1];
  const w = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] >= cut) { w[i] = Math.exp((logits[i] - logits[best]) / temperature); sum += w[i]; }
  let r = rng.next() * sum;
  for (let i = 0; i < w.length; i++) { r -= w[i]; if (r < 0) return i; }
  return best;
}

export interface Prediction { file: string; top: { label: string; p: number }[] }

/** Class probabilities of PNG images (files, or folders of them) from a vision run's model. */
export async function predict(m: InferenceModel, inputs: string[], topK = 3): Promise<Prediction[]> {
  if (!m.classes || !m.image) throw new Error(`${m.checkpoint}: not an image model (${m.config.model}); use sample for text models`);
  const files = inputs.flatMap((p) => {
    if (!fs.existsSync(p)) throw new Error(`${p}: no such file or folder`);
    return fs.statSync(p).isDirectory()
      ? fs.readdirSync(p).filter((f) => f.toLowerCase().endsWith('.png')).sort().map((f) => path.join(p, f)) : [p];
  });
  if (!files.length) throw new Error(`no .png images in ${inputs.join(', ')}`);
  const { channels: C, size: S } = m.image;
  const data = new Float32Array(files.length * C * S * S);
  files.forEach((f, i) => {
    const im = decodePng(fs.readFileSync(f), f);
    if (im.width !== S || im.height !== S || im.channels !== C) {
      throw new Error(`${f}: ${im.channels}×${im.height}×${im.width}, but the model takes ${C}×${S}×${S} images`);
    }
    // the run's own input scale: MNIST runs train on normalized pixels, image-folder runs on p ∈ [0, 1]
    const x = m.config.data === 'mnist' ? im.data.map((p) => (p - MNIST_NORM.mean) / MNIST_NORM.std) : im.data;
    data.set(x, i * C * S * S);
  });
  const s = await ort.InferenceSession.create(encodeModel(m.model));
  try {
    const logits = (await s.run({ images: new Tensor('float32', data, [files.length, C, S, S]) })).logits;
    const K = m.classes.length; const x = logits.data as Float32Array;
    return files.map((file, i) => {
      const row = x.subarray(i * K, (i + 1) * K);
      const mx = Math.max(...row);
      const e = Array.from(row, (v) => Math.exp(v - mx)); const z = e.reduce((a, b) => a + b, 0);
      const top = e.map((v, k) => ({ label: m.classes![k], p: v / z })).sort((a, b) => b.p - a.p).slice(0, topK);
      return { file, top };
    });
  } finally { await s.release(); }
}

/** What the report shows of the trained model: a text sample (GPT), or held-out accuracy and confusion (ViT). */
export async function modelSummary(run: string): Promise<ReportExtra> {
  const m = inferenceModel(run);
  // the optimizer's share of a step, profiled on this configuration (skipped for the big presets: minutes on 2 cores)
  const big = /^(gpt-small|vit-s)$/.test(m.config.model);
  const timing = big ? undefined : (() => {
    const r = measureStep({ ...m.config, trackBatches: 0, evalBatches: 1 }, { steps: 8, threads: m.config.threads, warm: 2 });
    return { stepMs: r.step_ms, optimizerShare: r.optimizer_share, steps: 8, threads: m.config.threads };
  })();
  if (m.text) {
    const r = await sample(m, { tokens: 300, temperature: 0.8, seed: 0 });
    return { timing, sample: { prompt: '', text: r.text, tokensPerSecond: r.tokensPerSecond, step: m.step } };
  }
  const c = m.config;
  // the held-out split the run validated on (src/runner/task.ts: the same fractions and seed)
  const set = m.images ? splitImages(m.images, c.valFraction, 0).test : loadMnist(0.15, 0).test;
  const K = m.classes!.length; const px = set.channels * set.size * set.size;
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  const s = await ort.InferenceSession.create(encodeModel(m.model));
  try {
    for (let i = 0; i < set.count; i += 256) {
      const n = Math.min(256, set.count - i);
      const x = new Tensor('float32', set.images.slice(i * px, (i + n) * px), [n, set.channels, set.size, set.size]);
      const logits = (await s.run({ images: x })).logits.data as Float32Array;
      for (let j = 0; j < n; j++) {
        const row = logits.subarray(j * K, (j + 1) * K);
        confusion[set.labels[i + j]][row.indexOf(Math.max(...row))]++;
      }
    }
  } finally { await s.release(); }
  const right = confusion.reduce((a, row, i) => a + row[i], 0);
  return { timing, accuracy: { accuracy: right / set.count, count: set.count, classes: m.classes!, confusion, step: m.step } };
}

/** Adds modelSummary to a finished run's report.html. */
export async function addModelToReport(run: string): Promise<void> {
  const m = readJsonFile(path.join(run, 'config.json')) as TrainConfig;
  new RunDir(run).addToReport(`${m.model} · ${m.optimizer}`, await modelSummary(run));
}
