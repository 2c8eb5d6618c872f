/// <reference lib="dom" />
// Training in the page with onnxruntime-web's WASM backend: the served train.onnx runs one step per call, and its
// carried outputs (`x.next`: params, optimizer states, step) become the next call's inputs in JS, as the native
// session does natively. Batches come from the project's own TextBatcher and RNG over the served token ids, so the
// data order is the runner's and a saved checkpoint resumes with `ademamix train --resume`.
import * as ort from 'onnxruntime-web';

export { ort };
import { TextBatcher } from '../../data/text';
import type { DType } from '../../graph/dtype';
import type { TensorData } from '../../graph/tensor-data';
import { decodeSafetensors, encodeSafetensors } from '../../io/safetensors';
import { CHECKPOINT_FORMAT } from '../../runner/checkpoint';
import { Rng } from '../../util/rng';
import type { WebManifest } from '../artifacts';

export interface StepRecord {
  step: number;
  loss: number;
  /** lr, alpha, beta3 (AdEMAMix) or beta1 (Simplified), grad_norm, as train.onnx outputs them */
  metrics: Record<string, number>;
  /** wall time of the step: batch, run, carry */
  ms: number;
  tokens: number;
  skipped: boolean;
}

export class NonFiniteError extends Error {
  constructor(message: string) { super(message); this.name = 'NonFiniteError'; }
}

const fetchBytes = async (url: string): Promise<Uint8Array> => {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${r.statusText}`);
  return new Uint8Array(await r.arrayBuffer());
};

/** int32 ids → int64 tensor data, through the low words (ids are small and non-negative), as TextBatcher does. */
function int64From(ids: Int32Array): BigInt64Array {
  const out = new BigInt64Array(ids.length);
  const w = new Int32Array(out.buffer);
  for (let i = 0; i < ids.length; i++) w[2 * i] = ids[i];
  return out;
}

export class BrowserTrainer {
  /** carried input → its current value */
  state: Record<string, ort.Tensor> = {};
  /** Completed steps. */
  step: number;
  counters: Record<string, number>;
  /** The data position after the last completed step's batch (the batcher may be ahead while a step runs). */
  private position: number[];
  private evalSession?: ort.InferenceSession;
  private forwardSession?: ort.InferenceSession;
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly manifest: WebManifest,
    readonly session: ort.InferenceSession,
    private readonly batcher: TextBatcher,
    private readonly val: { tokens: ort.Tensor; targets: ort.Tensor }[],
    private readonly base: string,
  ) {
    this.step = manifest.step;
    this.counters = { ...manifest.counters };
    this.position = [...manifest.dataPosition];
  }

  /** Loads the manifest, graphs, state and data from the server (`base`: the /api/ folder URL). */
  static async load(base: string, threads: number): Promise<BrowserTrainer> {
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.wasmPaths = new URL('/ort/', base).href;
    ort.env.logLevel = 'error';
    const manifest = await (await fetch(new URL('manifest.json', base))).json() as WebManifest;
    const [train, state, ids, val] = await Promise.all(['train.onnx', 'state.safetensors', 'train-ids.bin', 'val.bin']
      .map((f) => fetchBytes(new URL(f, base).href)));
    const session = await ort.InferenceSession.create(train, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    const c = manifest.config;
    const ids32 = manifest.idsType === 'uint16' ? Int32Array.from(new Uint16Array(ids.buffer, ids.byteOffset, ids.byteLength / 2))
      : new Int32Array(ids.buffer, ids.byteOffset, ids.byteLength / 4);
    const batcher = new TextBatcher(ids32, c.batch, c.seq, new Rng(c.seed));
    batcher.seek(manifest.dataPosition);
    const n = c.batch * c.seq; const v = new Int32Array(val.buffer, val.byteOffset, val.byteLength / 4);
    const valBatches = Array.from({ length: manifest.valBatches }, (_, i) => ({
      tokens: new ort.Tensor('int64', int64From(v.subarray(2 * i * n, (2 * i + 1) * n)), [c.batch, c.seq]),
      targets: new ort.Tensor('int64', int64From(v.subarray((2 * i + 1) * n, (2 * i + 2) * n)), [c.batch, c.seq]),
    }));
    const t = new BrowserTrainer(manifest, session, batcher, valBatches, base);
    for (const [name, td] of decodeSafetensors(state, 'state.safetensors').tensors) t.state[name] = toOrt(td);
    return t;
  }

  /** Runs `fn` after every earlier job (steps, evals and samples share the WASM instance one at a time). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  /** One training step: the next batch of the stream, the carried state in, the updated state kept. */
  trainStep(): Promise<StepRecord> {
    return this.exclusive(async () => {
      const m = this.manifest; const c = m.config;
      const t0 = performance.now();
      const pos = this.batcher.position();
      const b = this.batcher.next();
      const out = await this.session.run({
        ...this.state,
        tokens: new ort.Tensor('int64', b.tokens, [c.batch, c.seq]), targets: new ort.Tensor('int64', b.targets, [c.batch, c.seq]),
      });
      const loss = Number(out.loss.data[0]);
      const metrics: Record<string, number> = {};
      for (const k of m.metrics) metrics[k] = Number(out[k].data[0]);
      const skipped = metrics.skipped === 1;
      const t = this.step + 1;
      if (!skipped && !(Number.isFinite(loss) && Number.isFinite(metrics.grad_norm ?? 0))) {
        // Unlike the native session, the old state is still here: keep it, and the batch, so nothing is lost.
        this.batcher.seek(pos);
        throw new NonFiniteError(`non-finite ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} (loss ${loss}, grad-norm ` +
          `${metrics.grad_norm}) at step ${t}; stopped with the state of step ${this.step} kept (policy 'stop')`);
      }
      for (const [o, i] of Object.entries(m.carry)) this.state[i] = out[o];
      this.step = t; this.position = this.batcher.position();
      if (skipped) this.counters.skipped = (this.counters.skipped ?? 0) + 1;
      return { step: t, loss, metrics, ms: performance.now() - t0, tokens: c.batch * c.seq, skipped };
    });
  }

  /** A graph's inputs: the given ones, the rest from the carried state (params; Schedule-Free's z for its x). */
  private feedsFor(s: ort.InferenceSession, given: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of s.inputNames) {
      const t = given[name] ?? this.state[name];
      if (!t) throw new Error(`no value for the graph input '${name}'`);
      feeds[name] = t;
    }
    return feeds;
  }

  /** Mean loss of eval.onnx over the run's fixed validation batches with the current parameters. */
  evaluate(): Promise<number> {
    return this.exclusive(async () => {
      this.evalSession ??= await ort.InferenceSession.create(await fetchBytes(new URL('eval.onnx', this.base).href), { executionProviders: ['wasm'] });
      let sum = 0;
      for (const b of this.val) sum += Number((await this.evalSession.run(this.feedsFor(this.evalSession, b))).loss.data[0]);
      return sum / this.val.length;
    });
  }

  /** Text from the current weights: `n` tokens after `prompt`, temperature 0 = greedy, sampled with a seeded RNG. */
  sample(prompt: string, n: number, temperature: number, seed = 0): Promise<string> {
    return this.exclusive(async () => {
      const m = this.manifest;
      this.forwardSession ??= await ort.InferenceSession.create(await fetchBytes(new URL('forward.onnx', this.base).href), { executionProviders: ['wasm'] });
      const fs = this.forwardSession;
      const V = m.vocab.length; const rng = new Rng(seed);
      const ids = encode(m, prompt);
      if (!ids.length) ids.push(Math.max(0, m.vocab.indexOf('\n')));
      const start = ids.length;
      for (let k = 0; k < n; k++) {
        const ctx = ids.slice(-m.blockSize);
        const tokens = new ort.Tensor('int64', BigInt64Array.from(ctx, BigInt), [1, ctx.length]);
        const logits = (await fs.run(this.feedsFor(fs, { tokens }))).logits.data as Float32Array;
        const last = logits.subarray((ctx.length - 1) * V, ctx.length * V);
        ids.push(temperature <= 0 ? argmax(last) : draw(last, temperature, rng));
      }
      return decode(m, ids.slice(0, start)) + decode(m, ids.slice(start));
    });
  }

  /**
   * The carried state as an ademamix checkpoint (the runner's format: every carried tensor, and in the metadata the
   * step, config, data position, fingerprint and counters), so `ademamix train --resume <file>` continues from it.
   * State, step and data position change together when a step completes, so a save during a running step holds the
   * previous step's consistent triple.
   */
  checkpoint(): Uint8Array {
    const tensors = new Map<string, TensorData>();
    for (const name of Object.keys(this.state).sort()) {
      const t = this.state[name];
      tensors.set(name, { dtype: t.type as DType, dims: [...t.dims], data: t.data as TensorData['data'] });
    }
    const m = this.manifest;
    return encodeSafetensors(tensors, {
      format: CHECKPOINT_FORMAT, step: String(this.step), config: JSON.stringify(m.config),
      data_position: JSON.stringify(this.position), fingerprint: m.fingerprint, counters: JSON.stringify(this.counters),
    });
  }

  get checkpointName(): string { return `step-${String(this.step).padStart(7, '0')}.safetensors`; }
}

function toOrt(t: TensorData): ort.Tensor {
  if (t.dtype !== 'float32' && t.dtype !== 'int64') throw new Error(`state tensor of type ${t.dtype}: the page carries float32 and int64 only`);
  return new ort.Tensor(t.dtype, t.data as Float32Array, t.dims);
}

function encode(m: WebManifest, text: string): number[] {
  if (m.level === 'byte') return Array.from(new TextEncoder().encode(text));
  const index = new Map(m.vocab.map((c, i) => [c, i]));
  return Array.from(text).map((c) => index.get(c)).filter((i): i is number => i !== undefined);
}

function decode(m: WebManifest, ids: number[]): string {
  if (m.level === 'byte') return new TextDecoder().decode(Uint8Array.from(ids));
  return ids.map((i) => m.vocab[i] ?? '?').join('');
}

function argmax(x: Float32Array): number {
  let k = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[k]) k = i;
  return k;
}

function draw(logits: Float32Array, temperature: number, rng: Rng): number {
  let mx = -Infinity;
  for (const v of logits) mx = Math.max(mx, v);
  const p = Array.from(logits, (v) => Math.exp((v - mx) / temperature));
  let u = rng.next() * p.reduce((a, b) => a + b, 0);
  for (let i = 0; i < p.length; i++) { u -= p[i]; if (u <= 0) return i; }
  return p.length - 1;
}
