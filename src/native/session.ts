// NativeSession: an ONNX Runtime session that can load the com.ademamix op library (stock onnxruntime-node cannot)
// and keeps *carried state* native: declared outputs become the next run's inputs without passing through JS.
import { Tensor } from 'onnxruntime-common';
import { addonPath, hasOpsLibrary, opsLibraryPath, ortLibraryPath } from './paths';

export interface IOMetadata { name: string; type: string; dims: (number | string)[] }

export interface NativeSessionOptions {
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode?: 'sequential' | 'parallel';
  /** Op library to register: a path, or false for none. Default: the bundled library when it is built. */
  opsLibrary?: string | false;
  /** Enables ORT profiling, writing `<prefix>_<date>.json`; see endProfiling(). */
  profilingPrefix?: string;
}

interface RawTensor { type: string; data: Tensor['data']; dims: number[] }
interface AddonSession {
  inputs(): IOMetadata[]; outputs(): IOMetadata[];
  setCarry(pairs: Record<string, string>): void;
  setState(values: Record<string, RawTensor>): void;
  getState(names?: string[]): Record<string, RawTensor>;
  run(feeds: Record<string, RawTensor>, fetches?: string[]): Record<string, RawTensor>;
  runAsync(feeds: Record<string, RawTensor>, fetches?: string[]): Promise<Record<string, RawTensor>>;
  endProfiling(): string;
  release(): void;
}
interface Addon { init(ortPath: string): string; Session: new (model: string | Uint8Array, opts: object) => AddonSession }

let addon: Addon | undefined;
let ortVersion = '';

function load(): Addon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const a = require(addonPath()) as Addon;
    ortVersion = a.init(ortLibraryPath());
    addon = a;
  }
  return addon;
}

/** The ONNX Runtime version the native sessions run on. */
export function nativeOrtVersion(): string { load(); return ortVersion; }

const toRaw = (t: Tensor, name: string): RawTensor => {
  if (t.type === 'string') throw new TypeError(`tensor '${name}': string tensors are not supported`);
  return { type: t.type, data: t.data, dims: t.dims as number[] };
};
const fromRaw = (r: RawTensor): Tensor => new Tensor(r.type as 'float32', r.data as Float32Array, r.dims);
const mapObj = <A, B>(o: Record<string, A>, f: (v: A, k: string) => B): Record<string, B> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v, k)]));

export class NativeSession {
  private constructor(private s: AddonSession, readonly inputMetadata: IOMetadata[], readonly outputMetadata: IOMetadata[]) {}

  static create(model: string | Uint8Array, opts: NativeSessionOptions = {}): NativeSession {
    const a = load();
    const opsLibrary = opts.opsLibrary === undefined ? (hasOpsLibrary() ? opsLibraryPath() : undefined) : opts.opsLibrary || undefined;
    const s = new a.Session(model, { ...opts, opsLibrary });
    return new NativeSession(s, s.inputs(), s.outputs());
  }

  get inputNames(): string[] { return this.inputMetadata.map((m) => m.name); }
  get outputNames(): string[] { return this.outputMetadata.map((m) => m.name); }

  /** Declares carried state: each output's value becomes the named input's value for the next run. */
  carry(pairs: Record<string, string>): void { this.s.setCarry(pairs); }

  /** Copies values into native state (carried inputs, or inputs that stay fixed across runs). */
  setState(values: Record<string, Tensor>): void { this.s.setState(mapObj(values, toRaw)); }

  /** Copies native state out (default: every input holding state). */
  getState(names?: string[]): Record<string, Tensor> { return mapObj(this.s.getState(names), fromRaw); }

  /** Runs with `feeds` for the inputs without state; returns `fetches` (default: every non-carried output). */
  run(feeds: Record<string, Tensor>, fetches?: string[]): Record<string, Tensor> {
    return mapObj(this.s.run(mapObj(feeds, toRaw), fetches), fromRaw);
  }

  /** Like run() off the JS thread (feeds are copied), so the next batch can be prepared meanwhile. */
  async runAsync(feeds: Record<string, Tensor>, fetches?: string[]): Promise<Record<string, Tensor>> {
    return mapObj(await this.s.runAsync(mapObj(feeds, toRaw), fetches), fromRaw);
  }

  /** Stops profiling; returns the profile file's path. */
  endProfiling(): string { return this.s.endProfiling(); }

  release(): void { this.s.release(); }
}
