// `ademamix web`: serves the training page on 127.0.0.1 for a fresh run (the train options' config), a run directory
// or checkpoint (continued), or an `export --model` directory; `--bench` measures the page's tokens/s in headless
// Chromium (1 and N WASM threads) against the native session on the same graph and batches.
import * as os from 'node:os';
import { Tensor } from 'onnxruntime-common';
import { UsageError, type Args, type OptionKinds } from '../cli/args';
import { configFromArgs, OPTIMIZER_FLAGS, TRAIN_OPTIONS } from '../cli/train';
import { TextBatcher } from '../data/text';
import { decodeSafetensors } from '../io/safetensors';
import { NativeSession } from '../native';
import { hasOpsLibrary, opsLibraryPath } from '../native/paths';
import { Rng } from '../util/rng';
import { webArtifacts, type WebArtifacts } from './artifacts';
import { startWebServer } from './server';

export const WEB_USAGE = `  web [--run DIR] [--port N] [train options]   train in the browser: serves a page on http://127.0.0.1:N/ (default
      8808) that trains with onnxruntime-web (WASM), plots loss and schedules, samples, saves checkpoints
      --run <run dir|checkpoint|export dir>: continue that state (default: a fresh run of the train options' config)
      --bench [--bench-steps N] [--threads N]: tokens/s in headless Chromium (1 and N threads) vs the native session`;

// the train options that shape the run (and every optimizer's own hyperparameter flags)
const TRAIN_FLAGS = ['model', 'data', 'level', 'val-fraction', 'optimizer', 'lr', 'warmup', 'decay', 'min-lr-ratio', 'grad-clip',
  'steps', 'batch', 'seq', 'seed', 'eval-every', 'eval-batches', 'nan-policy', 'config', 'override', ...OPTIMIZER_FLAGS.keys()];

/** What `ademamix web` takes (for the CLI's parser): the train options that shape a run, and its own. */
export const WEB_OPTIONS = (): OptionKinds => {
  const train = TRAIN_OPTIONS();
  return {
    ...Object.fromEntries(TRAIN_FLAGS.filter((k) => k in train).map((k) => [k, train[k]])),
    run: 'string', port: 'string', bench: 'boolean', 'bench-steps': 'string', threads: 'string',
  };
};

export function webArtifactsFromArgs(args: Args): WebArtifacts {
  const allowed = new Set(['_', 'help', 'run', 'port', 'bench', 'bench-steps', 'threads', ...TRAIN_FLAGS]);
  const bad = Object.keys(args).filter((k) => !allowed.has(k));
  if (bad.length) throw new UsageError(`web: unknown option${bad.length > 1 ? 's' : ''} ${bad.map((b) => `--${b}`).join(', ')}`);
  if (args.threads !== undefined && args.bench !== true) throw new UsageError('web: --threads is for --bench; the page takes ?threads=N in its URL');
  if (args.run !== undefined) {
    if (typeof args.run !== 'string') throw new UsageError('--run needs a run directory, a checkpoint file or an export directory');
    const given = TRAIN_FLAGS.filter((k) => args[k] !== undefined);
    if (given.length) throw new UsageError(`web --run: the run's own config is used; drop ${given.map((k) => `--${k}`).join(', ')}`);
    return webArtifacts({ run: args.run });
  }
  return webArtifacts({ config: configFromArgs(args).config });
}

export async function webCommand(args: Args): Promise<number> {
  const artifacts = webArtifactsFromArgs(args);
  if (args.bench === true) {
    const r = await benchWeb(artifacts, { steps: args['bench-steps'] === undefined ? 30 : Number(args['bench-steps']), threads: args.threads === undefined ? 2 : Number(args.threads) });
    console.log(JSON.stringify(r));
    return 0;
  }
  const port = args.port === undefined ? 8808 : Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port needs a port number, got '${String(args.port)}'`);
  let server;
  try { server = await startWebServer({ artifacts, port }); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`port ${port} is in use: pick another with --port N (0: any free port)`);
    throw e;
  }
  const m = artifacts.manifest;
  console.log(`training page for ${m.describe}\n  state: ${m.source === 'initial' ? 'initial' : `${m.source} (step ${m.step})`}\n` +
    `  open ${server.url} (Ctrl-C stops the server; the page saves checkpoints as downloads: ` +
    `npx ademamix train --resume <file> [--out <run dir>] continues one)`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  await server.close();
  return 0;
}

/** Throughput of one configuration: tokens over the summed step times, and at the median step time. */
export interface Throughput { tokens_s: number; median_tokens_s: number }

export interface WebBench {
  model: string; batch: number; seq: number; steps: number; warmup: number; threads: number; isolated: boolean;
  /** 1-minute load average when the benchmark started (the machine may be shared). */
  load: number;
  browser_1t: Throughput; browser_nt: Throughput;
  native_function_body_1t: Throughput; native_function_body_nt: Throughput;
  /** With the op library's fused kernel (null when it is not built). */
  native_ops_nt: Throughput | null;
}

function throughput(ms: number[], tokens: number): Throughput {
  const sorted = [...ms].sort((x, y) => x - y);
  const med = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return { tokens_s: Math.round((ms.length * tokens) / (ms.reduce((x, y) => x + y, 0) / 1000)), median_tokens_s: Math.round(tokens / (med / 1000)) };
}

/**
 * The page's steps (batch, run, carry through JS) in headless Chromium with 1 and N WASM threads, and the native
 * session's runs (state carried natively) on the same train.onnx and batches, after `warmup` warm-up steps each.
 */
export async function benchWeb(a: WebArtifacts, o: { steps: number; threads: number }): Promise<WebBench> {
  const { launchChromium, openPage, trainInPage } = await import('./browser');
  const warmup = 5; const total = warmup + o.steps;
  const c = a.manifest.config; const tokens = c.batch * c.seq;
  const load = os.loadavg()[0];
  const server = await startWebServer({ artifacts: a, port: 0 });
  const chromium = await launchChromium();
  const browser: Record<number, Throughput> = {}; let isolated = false;
  try {
    for (const threads of [1, o.threads]) {
      const { page } = await openPage(chromium.context, `${server.url}?threads=${threads}&stop=${a.manifest.step + total}&sample=8`);
      const run = await trainInPage(page, 600_000);
      browser[threads] = throughput(run.records.slice(warmup).map((r) => r.ms), tokens);
      isolated = run.isolated;
      await page.close();
    }
  } finally { await chromium.close(); await server.close(); }
  const native = (opsLibrary: string | false, threads: number): Throughput => {
    const s = NativeSession.create(a.train, { opsLibrary, intraOpThreads: threads });
    try {
      s.carry(a.manifest.carry);
      const st = decodeSafetensors(a.state).tensors;
      s.setState(Object.fromEntries([...st].map(([k, t]) => [k, new Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims)])));
      const b = new TextBatcher(idsOf(a), c.batch, c.seq, new Rng(c.seed)); b.seek(a.manifest.dataPosition);
      const ms: number[] = [];
      for (let i = 0; i < total; i++) {
        const t0 = performance.now();
        const x = b.next();
        s.run({ tokens: new Tensor('int64', x.tokens, [c.batch, c.seq]), targets: new Tensor('int64', x.targets, [c.batch, c.seq]) }, ['loss']);
        if (i >= warmup) ms.push(performance.now() - t0);
      }
      return throughput(ms, tokens);
    } finally { s.release(); }
  };
  const ops = hasOpsLibrary() ? native(opsLibraryPath(), o.threads) : null;
  return {
    model: c.model, batch: c.batch, seq: c.seq, steps: o.steps, warmup, threads: o.threads, isolated, load: Number(load.toFixed(2)),
    browser_1t: browser[1], browser_nt: browser[o.threads],
    native_function_body_1t: native(false, 1), native_function_body_nt: native(false, o.threads), native_ops_nt: ops,
  };
}

/** The served training ids as Int32 (what TextBatcher takes). */
export function idsOf(a: WebArtifacts): Int32Array {
  const b = a.trainIds;
  return a.manifest.idsType === 'uint16' ? Int32Array.from(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2))
    : new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
