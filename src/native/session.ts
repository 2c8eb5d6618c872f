// NativeSession: an ONNX Runtime session that can load the com.ademamix op library (stock onnxruntime-node cannot)
// and keeps *carried state* native: declared outputs become the next run's inputs without passing through JS.
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-common';
import { addonPath, hasOpsLibrary, opsLibraryPath, ortLibraryPath } from './paths';

/** An input's or output's declared type; dims hold a symbolic name (string) or -1 where the size is not fixed. */
export interface IOMetadata { name: string; type: string; dims: (number | string)[] }

/**
 * Where the session runs. 'cpu' (default), or ONNX Runtime's CUDA execution provider loaded from its provider library
 * (libonnxruntime_providers_cuda.so of a GPU build of the same ONNX Runtime version): the session keeps its carried
 * state in GPU memory (IoBinding), copies fed inputs in and fetched outputs out. Errors name the missing library or GPU.
 */
export type ExecutionProvider = 'cpu' | {
  cuda: {
    providerLibrary: string;
    /** Which of the GPUs the provider offers (default 0). */
    deviceIndex?: number;
    /** session.disable_cpu_ep_fallback = 1: fail instead of running unsupported nodes on the CPU. */
    disableCpuFallback?: boolean;
    /** Provider options passed to SessionOptionsAppendExecutionProvider_V2. */
    options?: Record<string, string>;
  };
};

export interface NativeSessionOptions {
  intraOpThreads?: number;
  /**
   * Whether idle intra-op pool threads spin (ORT's default, true) or sleep at once. Spinning saves a wake-up per
   * parallel op, but a process that alternates several sessions (benchmarks) has each one's spinning threads take
   * cores from the one running: on 2 cores that halved the optimizer's bandwidth (docs/benchmarks.md).
   */
  intraOpSpinning?: boolean;
  interOpThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode?: 'sequential' | 'parallel';
  /** Op library to register: a path, or false for none. Default: the bundled com.ademamix library when it is built. */
  opsLibrary?: string | false;
  /** Enables ORT profiling into `<prefix>_<date>.json`; endProfiling() stops it and returns the path. */
  profilingPrefix?: string;
  /** Default 'cpu'. See ExecutionProvider. */
  executionProvider?: ExecutionProvider;
}

/**
 * A tensor as it crosses the N-API boundary: plain `{type, data, dims}`, so the addon need not know
 * onnxruntime-common. float16/bfloat16 data are the raw bits in a Uint16Array (onnxruntime-common's Tensor cannot
 * hold bfloat16, e.g. optimizer states stored as bf16: use getStateRaw/setStateRaw for them).
 */
export interface RawTensor { type: string; data: Tensor['data']; dims: readonly number[] }
interface AddonSession {
  inputs(): IOMetadata[];
  outputs(): IOMetadata[];
  setCarry(pairs: Record<string, string>, inPlace?: string[]): void;
  setState(values: Record<string, RawTensor>): void;
  getState(names?: string[]): Record<string, RawTensor>;
  run(feeds: Record<string, RawTensor>, fetches?: string[]): Record<string, RawTensor>;
  runAsync(feeds: Record<string, RawTensor>, fetches?: string[]): Promise<Record<string, RawTensor>>;
  endProfiling(): string;
  release(): void;
}
interface Addon {
  init(ortLibraryPath: string): string;
  Session: new (model: string | Uint8Array, opts: object) => AddonSession;
}

let addon: Addon | undefined;
let ortVersion = '';

// Loaded on first use, so importing this module never needs the native build.
function load(): Addon {
  if (!addon) {
    const a = require(addonPath()) as Addon; // eslint-disable-line @typescript-eslint/no-require-imports
    ortVersion = a.init(ortLibraryPath());
    addon = a;
  }
  return addon;
}

/** The ONNX Runtime version the native sessions run on (loads the addon). */
export function nativeOrtVersion(): string {
  load();
  return ortVersion;
}

function toRaw(t: Tensor, name: string): RawTensor {
  if (t === null || typeof t !== 'object' || !('dims' in t)) throw new TypeError(`'${name}' is not a Tensor`);
  if (t.type === 'string') throw new TypeError(`'${name}': string tensors are not supported`);
  return { type: t.type, data: t.data, dims: t.dims };
}

function fromRaw(r: RawTensor, name: string): Tensor {
  if (r.type === 'bfloat16') throw new TypeError(`'${name}' is bfloat16, which onnxruntime-common's Tensor cannot hold`);
  return new Tensor(r.type as 'float32', r.data as Float32Array, r.dims);
}

const mapObj = <A, B>(o: Record<string, A>, f: (v: A, k: string) => B): Record<string, B> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v, k)]));

export class NativeSession {
  private carried: Record<string, string> = {};

  private constructor(
    private readonly s: AddonSession,
    readonly inputMetadata: readonly IOMetadata[],
    readonly outputMetadata: readonly IOMetadata[],
  ) {}

  /** Loads a model from a file path or its bytes. Errors carry ORT's message and the model path. */
  static create(model: string | Uint8Array, opts: NativeSessionOptions = {}): NativeSession {
    const a = load();
    let opsLibrary: string | undefined;
    if (opts.opsLibrary === undefined) opsLibrary = hasOpsLibrary() ? opsLibraryPath() : undefined;
    else if (opts.opsLibrary !== false) opsLibrary = opts.opsLibrary;
    // ORT loads a provider library relative to its own directory, not the caller's: hand it an absolute path
    const ep = opts.executionProvider;
    const executionProvider = ep && ep !== 'cpu' && typeof ep.cuda?.providerLibrary === 'string'
      ? { cuda: { ...ep.cuda, providerLibrary: path.resolve(ep.cuda.providerLibrary) } } : ep;
    const s = new a.Session(model, { ...opts, opsLibrary, executionProvider });
    return new NativeSession(s, s.inputs(), s.outputs());
  }

  get inputNames(): string[] { return this.inputMetadata.map((m) => m.name); }
  get outputNames(): string[] { return this.outputMetadata.map((m) => m.name); }
  /** The declared carry pairs, output name → input name. */
  get carries(): Readonly<Record<string, string>> { return { ...this.carried }; }

  /**
   * Declares carried state (replacing earlier pairs): after each run, output `o`'s value becomes input `pairs[o]`,
   * natively (double-buffered, nothing copied to JS). Carried inputs need a start value from setState and cannot be fed.
   * `inPlace`: carried inputs whose output is written into the input's own buffer (one buffer instead of two, and
   * the optimizer kernels' in-place path). Only safe where every other reader of the input runs before the node that
   * writes it: inPlaceCarries (src/train/in-place.ts) finds those pairs in a model. A run that fails midway leaves such
   * state partly updated. CPU sessions only.
   */
  carry(pairs: Record<string, string>, opts: { inPlace?: readonly string[] } = {}): void {
    this.s.setCarry(pairs, opts.inPlace ? [...opts.inPlace] : undefined);
    this.carried = { ...pairs };
  }

  /** Copies values into native state: the start of carried inputs, or inputs that then stay fixed across runs. */
  setState(values: Record<string, Tensor>): void { this.s.setState(mapObj(values, toRaw)); }

  /** Copies native state out (default: every input holding state). */
  getState(names?: string[]): Record<string, Tensor> { return mapObj(this.s.getState(names), fromRaw); }

  /** getState without the conversion to Tensor: any element type, bfloat16 as raw Uint16Array bits. */
  getStateRaw(names?: string[]): Record<string, RawTensor> { return this.s.getState(names); }

  /** setState from raw tensors (or Tensors): bfloat16 given as Uint16Array bits, e.g. zero bf16 optimizer states. */
  setStateRaw(values: Record<string, RawTensor | Tensor>): void {
    this.s.setState(mapObj(values, (v, k) => (v instanceof Tensor ? toRaw(v, k) : v)));
  }

  /**
   * Runs with `feeds` for the inputs without native state; returns `fetches` (default: every non-carried output).
   * Feeds are read in place, not copied; only the fetched outputs are copied to JS.
   */
  run(feeds: Record<string, Tensor>, fetches?: string[]): Record<string, Tensor> {
    return mapObj(this.s.run(mapObj(feeds, toRaw), fetches), fromRaw);
  }

  /**
   * run() on a worker thread, so JS can prepare the next batch meanwhile. Feeds are copied at the call, so their buffers
   * may be reused at once. Until the promise settles the session is busy (other calls on it throw).
   */
  runAsync(feeds: Record<string, Tensor>, fetches?: string[]): Promise<Record<string, Tensor>> {
    let pending: Promise<Record<string, RawTensor>>;
    try {
      pending = this.s.runAsync(mapObj(feeds, toRaw), fetches);
    } catch (e) {
      return Promise.reject(e);
    }
    return pending.then((r) => mapObj(r, fromRaw));
  }

  /** Stops ORT profiling (needs the profilingPrefix option); returns the profile file's path. */
  endProfiling(): string { return this.s.endProfiling(); }

  /** Frees the native session and its state now rather than at garbage collection. Idempotent. */
  release(): void { this.s.release(); }
}
