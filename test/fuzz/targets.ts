// The fuzz targets: every loader a user points at a file, each fed the fuzzer's bytes as that file, and the native
// boundary (a checkpoint's tensors handed to the session addon). A bad input must raise one clear error that names
// the file (or the setting or tensor) and what is wrong; anything else (an engine TypeError, a hang, an allocation
// a length field asked for, a crash) is a finding.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configFromArgs } from '../../src/cli/train';
import { loadImageArrays, loadImageFolder } from '../../src/data/images';
import { loadText, TextBatcher } from '../../src/data/text';
import { encodeSafetensors, loadSafetensors } from '../../src/io/safetensors';
import { inferenceModel } from '../../src/infer';
import { exportTorchCheckpoint } from '../../src/interop/checkpoint';
import { exportTrainingFromOnnx } from '../../src/interop/export';
import { NativeSession } from '../../src/native';
import { encodeModel, loadModel } from '../../src/onnx/io';
import { loadCheckpoint, listCheckpoints } from '../../src/runner/checkpoint';
import { DEFAULT_CONFIG, validateConfig, type TrainConfig } from '../../src/runner/config';
import { Trainer } from '../../src/runner/trainer';
import { Rng } from '../../src/util/rng';
import { png } from '../support/png';
import type { FuzzTarget } from './engine';

/** Messages the JS engine writes itself: never the clear error a user should get. */
const ENGINE = /Cannot read propert|Cannot destructure|is not a function|is not iterable|is not an object|Invalid typed array length|Invalid array length|Array buffer allocation failed|Maximum call stack|out of memory|Unexpected token|undefined|null is not/;

/** The error is one line, names `file` (or, `alt`, something else the user can find), and is not the engine's own. */
/** An Error of any realm (the addon's come from Node's, not a test sandbox's). */
const isError = (e: unknown): e is Error => typeof e === 'object' && e !== null && typeof (e as Error).message === 'string';

function clearError(e: unknown, file: string, alt?: RegExp): boolean {
  if (!isError(e)) return false;
  const m = e.message;
  if (m.includes('\n') || m.length > 600) return false;
  const rest = m.split(file).join('');
  if (ENGINE.test(rest.replace(/\(.*?JSON.*?\)/g, ''))) return false;
  return m.includes(file) || (alt ? alt.test(m) : false);
}

/** What the targets share: a scratch folder, and a micro run trained once (checkpoint, config, exported artifacts). */
export interface Fixture { dir: string; run: string; checkpoint: string; textFile: string; forward: string; artifacts: string }

export async function makeFixture(): Promise<Fixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-fuzz-'));
  const textFile = path.join(dir, 'text.txt');
  fs.writeFileSync(textFile, 'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse. '.repeat(8));
  const run = path.join(dir, 'run');
  const c: TrainConfig = {
    ...DEFAULT_CONFIG, data: textFile, modelOverrides: { nLayer: 1, nEmbd: 8, nHead: 1 }, optimizer: 'adamw', seq: 8, batch: 2,
    steps: 4, warmup: 0, evalEvery: 0, logEvery: 2, checkpointEvery: 4, keepCheckpoints: 1, threads: 1,
  };
  const t = Trainer.create(c, { outDir: run, quiet: true });
  try { await t.train(); } finally { t.release(); }
  const checkpoint = listCheckpoints(path.join(run, 'checkpoints')).pop()!;
  const forward = path.join(dir, 'forward.onnx');
  fs.writeFileSync(forward, encodeModel(inferenceModel(run).model));
  const artifacts = path.join(dir, 'artifacts');
  exportTrainingFromOnnx({ onnx: forward, loss: 'ce:labels@logits', optimizer: 'adamw', out: artifacts });
  return { dir, run, checkpoint, textFile, forward, artifacts };
}

export function makeTargets(fx: Fixture): FuzzTarget[] {
  const scratch = (name: string): string => path.join(fx.dir, name);
  const write = (file: string, data: Uint8Array): string => { fs.writeFileSync(file, data); return file; };
  const rd = (f: string): Uint8Array => new Uint8Array(fs.readFileSync(f));
  const st = (t: Record<string, { dtype: 'float32' | 'uint8' | 'int64' | 'bfloat16'; dims: number[]; data: ArrayLike<number> }>, meta?: Record<string, string>): Uint8Array => {
    const m = new Map(Object.entries(t).map(([k, v]) => {
      const data = v.dtype === 'float32' ? Float32Array.from(v.data) : v.dtype === 'uint8' ? Uint8Array.from(v.data)
        : v.dtype === 'int64' ? BigInt64Array.from(Array.from(v.data, BigInt)) : Uint16Array.from(v.data);
      return [k, { dtype: v.dtype, dims: v.dims, data }];
    }));
    return encodeSafetensors(m as never, meta);
  };
  const jsonDict = ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"U8"', '"BF16"', '"I64"', '"F64"', '"BOOL"',
    '[', ']', '{', '}', ',', ':', '-1', '1e308', 'null', '[-1]', '[0,0]', '[4294967296]', '"format"', '"config"', '"step"'];

  // one session of the fixture's training graph, kept warm: the resume target feeds it a checkpoint's tensors
  let session: NativeSession | undefined;
  const warm = (): NativeSession => {
    if (!session) {
      session = NativeSession.create(fs.readFileSync(path.join(fx.run, 'train.onnx')), { intraOpThreads: 1 });
      session.setState(loadCheckpoint(fx.checkpoint).state);
    }
    return session;
  };

  const ckFile = path.join(fx.run, 'checkpoints', 'step-0000099.safetensors');
  const imgDir = scratch('images');
  fs.mkdirSync(path.join(imgDir, 'a'), { recursive: true });
  fs.mkdirSync(path.join(imgDir, 'b'), { recursive: true });
  const px = (n: number, seed: number): Uint8Array => { const r = new Rng(seed); return Uint8Array.from({ length: n }, () => r.int(256)); };
  fs.writeFileSync(path.join(imgDir, 'b', 'ok.png'), png(4, 4, 1, px(16, 1)));
  const pngFile = path.join(imgDir, 'a', 'fuzz.png');
  const artManifest = path.join(fx.artifacts, 'manifest.json');
  const manifestBytes = rd(artManifest);

  return [
    {
      name: 'safetensors',
      seeds: () => [st({ w: { dtype: 'float32', dims: [2, 3], data: [1, 2, 3, 4, 5, 6] }, b: { dtype: 'bfloat16', dims: [2], data: [16256, 0] } }, { k: 'v' }),
        st({ e: { dtype: 'int64', dims: [0], data: [] }, s: { dtype: 'uint8', dims: [], data: [7] } })],
      dictionary: jsonDict,
      run: (d) => { loadSafetensors(write(scratch('x.safetensors'), d)); },
      accepts: (e) => clearError(e, scratch('x.safetensors')),
    },
    {
      name: 'checkpoint',
      // what `sample`, `predict` and `export --inference` do with a checkpoint: its config rebuilds the model
      seeds: () => [rd(fx.checkpoint)],
      dictionary: [...jsonDict, '"model"', '"data"', '"optimizer"', '"modelOverrides"', '"nEmbd"', '"vit-tiny"', '"mnist"', '"level"'],
      run: (d) => { inferenceModel(fx.run, write(ckFile, d)); },
      accepts: (e) => clearError(e, ckFile),
    },
    {
      name: 'resume',
      // the native boundary: a checkpoint's tensors (any names, dtypes, shapes, byte lengths) handed to the addon
      seeds: () => [rd(fx.checkpoint)],
      dictionary: jsonDict,
      run: (d) => { warm().setState(loadCheckpoint(write(ckFile, d)).state); },
      accepts: (e) => clearError(e, ckFile, /^'[^']+'|tensor '|state '|input '/),
    },
    {
      name: 'addon',
      // the session addon's own checks: run / setState / setCarry / getState called with what the bytes decode to
      // (any names, type strings, dims, typed arrays and lengths), past the TypeScript wrapper's conversions
      seeds: () => [Uint8Array.from([0, 2, 0, 0, 2, 1, 2, 0, 8]), Uint8Array.from([1, 1, 1, 0, 1, 0, 3, 0, 16]), Uint8Array.from([2, 1, 0, 1]), Uint8Array.from([3, 0])],
      run: (d) => { addonCall(warm(), d); },
      accepts: (e) => isError(e) && !e.message.includes('\n') && !ENGINE.test(e.message),
    },
    {
      name: 'onnx',
      // `export --onnx model.onnx`: reading, importing, choosing parameters, differentiating, assembling
      seeds: () => [rd(fx.forward)],
      maxLen: 256 << 10,
      run: (d) => {
        const f = write(scratch('model.onnx'), d);
        loadModel(f);
        exportTrainingFromOnnx({ onnx: f, loss: 'ce:labels@logits', optimizer: 'adamw' });
      },
      accepts: (e) => clearError(e, scratch('model.onnx'), /node '|op '|tensor '|initializer '|output '|input '|parameter/),
    },
    {
      name: 'png',
      seeds: () => [png(4, 4, 1, px(16, 2)), png(3, 3, 3, px(27, 3)), png(2, 2, 4, px(16, 4))],
      dictionary: ['IHDR', 'IDAT', 'IEND', 'PLTE', '\x00\x00\x00\x0d', '\xff\xff\xff\xff', '\x78\x9c'],
      run: (d) => { write(pngFile, d); loadImageFolder(imgDir); },
      // the folder's other image can be the one named (its shape differs from the fuzzed first one)
      accepts: (e) => clearError(e, pngFile, /image folder|\/images\/b\/ok\.png/),
    },
    {
      name: 'image-arrays',
      seeds: () => [st({ images: { dtype: 'uint8', dims: [3, 2, 2], data: px(12, 5) }, labels: { dtype: 'int64', dims: [3], data: [0, 1, 1] } }),
        st({ images: { dtype: 'float32', dims: [2, 1, 2, 2], data: [0, 0.5, 1, 0.25, 0, 0, 1, 1] }, labels: { dtype: 'int64', dims: [2], data: [1, 0] } })],
      dictionary: [...jsonDict, '"images"', '"labels"'],
      run: (d) => { loadImageArrays(write(scratch('arrays.safetensors'), d)); },
      accepts: (e) => clearError(e, scratch('arrays.safetensors')),
    },
    {
      name: 'text',
      seeds: () => [new Uint8Array(Buffer.from('Call me Ishmael. Some years ago, never mind how long precisely.')), new Uint8Array([0xe2, 0x82, 0xac, 0x41, 0x42, 0x43, 0x0a, 0x44])],
      run: (d) => {
        const f = write(scratch('text.txt'), d);
        for (const level of ['char', 'byte'] as const) {
          const t = loadText({ source: f, level });
          new TextBatcher(t.train, 2, 4, new Rng(1)).next();
        }
      },
      accepts: (e) => clearError(e, scratch('text.txt'), /sequence length \d+ is longer than the data/),
    },
    {
      name: 'config',
      // `train --config file.json`: the file's settings over the defaults, then the checks every run gets
      seeds: () => [new Uint8Array(Buffer.from(JSON.stringify({ model: 'gpt-tiny', steps: 10, lr: 0.001, optimizer: 'lion', hyper: { beta2: 0.98 }, modelOverrides: { nLayer: 1 } }))),
        new Uint8Array(Buffer.from(JSON.stringify({ model: 'vit-tiny', data: 'mnist', beta3: 0.999, gradClip: 1 })))],
      dictionary: [...jsonDict, '"model"', '"steps"', '"lr"', '"hyper"', '"modelOverrides"', '"optimizer"', '"decay"', '"nanPolicy"', '"threads"'],
      run: (d) => {
        const f = write(scratch('config.json'), d);
        validateConfig(configFromArgs({ _: ['train'], config: f }).config);
      },
      // validateConfig's errors name the setting (the CLI prints them after `ademamix train:`)
      accepts: (e) => clearError(e, scratch('config.json'), /^(\w+|[\w-]+) must |^model \S+ |^track-batches /),
    },
    {
      name: 'manifest',
      // `export --torch`: the artifacts' manifest.json maps the trained tensors back to the state_dict's keys
      seeds: () => [manifestBytes],
      dictionary: [...jsonDict, '"params"', '"torch"', '"frozen"', '"carry"', '"batchInputs"', '"decayed"'],
      run: (d) => {
        write(artManifest, d);
        try { exportTorchCheckpoint(fx.artifacts, path.join(fx.artifacts, 'initial_state.safetensors'), scratch('sd.safetensors')); }
        finally { fs.writeFileSync(artManifest, manifestBytes); }
      },
      accepts: (e) => clearError(e, artManifest),
    },
  ];
}

interface AddonSession {
  inputs(): { name: string }[]; outputs(): { name: string }[];
  run(feeds: unknown, fetches?: unknown): unknown; setState(v: unknown): void; setCarry(p: unknown): void; getState(names?: unknown): unknown;
}

/** Decodes fuzz bytes into one call of the addon's session object (src/native/session.ts's AddonSession). */
function addonCall(session: NativeSession, d: Uint8Array): void {
  const s = (session as unknown as { s: AddonSession }).s;
  let at = 0;
  const next = (): number => (at < d.length ? d[at++] : 0);
  const names = [...s.inputs().map((x) => x.name), ...s.outputs().map((x) => x.name)];
  const name = (): string => {
    const k = next();
    if (k < names.length * 4) return names[k % names.length];
    const len = next() % 12;
    return String.fromCharCode(...Array.from({ length: len }, next));
  };
  const TYPES = ['float32', 'int64', 'bfloat16', 'float16', 'uint8', 'bool', 'int32', 'float64', 'string', 'complex64', '', 'FLOAT'];
  const DIMS = [0, 1, 2, 3, 4, 8, 16, 64, -1, 1.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53, Number.NaN, Infinity, 1e300];
  const ARRAYS = [Float32Array, BigInt64Array, Uint16Array, Uint8Array, Float64Array, Int32Array, Int8Array, BigUint64Array] as const;
  const tensor = (): unknown => {
    const shape = next();
    if (shape % 16 === 15) return [null, 7, 'x', [], {}][next() % 5];
    const dims = Array.from({ length: next() % 5 }, () => DIMS[next() % DIMS.length]);
    const A = ARRAYS[next() % ARRAYS.length];
    const n = next() % 80;
    const data = shape % 16 === 14 ? Array.from({ length: n }, () => 0) : new A(n);
    return { type: TYPES[next() % TYPES.length], data, dims: shape % 16 === 13 ? 'dims' : dims };
  };
  const record = (value: () => unknown): Record<string, unknown> => Object.fromEntries(Array.from({ length: next() % 4 }, () => [name(), value()]));
  switch (next() % 4) {
    case 0: s.run(record(tensor), next() % 3 ? undefined : Array.from({ length: next() % 3 }, name)); break;
    case 1: s.setState(record(tensor)); break;
    case 2: s.setCarry(record(name)); break;
    default: s.getState(next() % 2 ? undefined : Array.from({ length: next() % 3 }, name));
  }
}
