// `bench train-step`: one training step of a preset through the native session, and the optimizer's share of it,
// from ORT's profiler (kernel times of the com.ademamix nodes over the profiled steps' total kernel time).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-common';
import { gptConfig } from '../../graphs/gpt';
import { vitConfig } from '../../graphs/vit';
import { encodeModel } from '../onnx/io';
import { NativeSession, packageRoot, type NativeSessionOptions } from '../native';
import { DEFAULT_CONFIG, type OptimizerName, type TrainConfig } from '../runner/config';
import { buildTask } from '../runner/task';
import { optimizerSpec } from '../runner/trainer';
import { assembleTraining, type TrainingArtifacts } from '../train/assemble';
import { OPTIMIZER_OP_TYPES } from '../optim/derive';

export interface TrainStepBenchOptions {
  model: string; batch?: number; seq?: number; steps?: number; threads?: number; optimizer?: string;
  /** Also time PyTorch eager AdamW on the same GPT, blocks of steps alternated with ours (a venv with torch). */
  compareTorch?: boolean;
  /** Python with torch (compareTorch): default the project's .venv, made by scripts/setup-python.sh. */
  python?: string;
  /** The backward pass with the fused com.ademamix ops (default true; false: standard ops only, `--no-fused`). */
  fused?: boolean;
}

/** A session over the training graph, state carried as the Trainer carries it (in place where allowed), at its start. */
function trainSession(art: TrainingArtifacts, bytes: Uint8Array, opts: NativeSessionOptions): NativeSession {
  const s = NativeSession.create(bytes, opts);
  try {
    const init: Record<string, Tensor> = {};
    for (const [k, v] of art.initialState) init[k] = new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims);
    s.carry(art.carry, { inPlace: art.inPlace }); s.setState(init);
    return s;
  } catch (e) { s.release(); throw e; }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN; };

interface ProfileEvent { cat?: string; name?: string; ts?: number; dur?: number; args?: { op_name?: string } }

/**
 * Kernel time (ms) per model run in an ORT profile: all nodes, and the optimizer nodes alone. The first `skip` runs
 * are warm-up (the first run touches fresh state buffers and grows the arena) and are left out.
 */
export function profileShares(events: ProfileEvent[], skip = 0): { runs: number; kernelMs: number; optimizerMs: number; runMs: number; byOp: Record<string, number> } {
  const runEvents = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
  const from = skip > 0 && runEvents.length > skip ? (runEvents[skip - 1].ts ?? 0) + (runEvents[skip - 1].dur ?? 0) : -Infinity;
  let kernel = 0; let opt = 0; let runs = 0; let run = 0;
  const byOp: Record<string, number> = {};
  for (const e of events) {
    if ((e.ts ?? 0) < from) continue;
    if (e.cat === 'Session' && e.name === 'model_run') { runs++; run += e.dur ?? 0; }
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
    kernel += e.dur ?? 0;
    const op = e.args?.op_name ?? '?';
    byOp[op] = (byOp[op] ?? 0) + (e.dur ?? 0);
    if (OPTIMIZER_OP_TYPES.has(op)) opt += e.dur ?? 0;
  }
  const per = Math.max(runs, 1) * 1000;
  for (const k of Object.keys(byOp)) byOp[k] /= per;
  return { runs, kernelMs: kernel / per, optimizerMs: opt / per, runMs: run / per, byOp };
}

export async function benchTrainStep(o: TrainStepBenchOptions): Promise<Record<string, unknown>> {
  const small = o.model === 'gpt-small' || o.model === 'vit-s';
  const config: TrainConfig = {
    ...DEFAULT_CONFIG, model: o.model, data: o.model.startsWith('vit') ? 'mnist' : 'moby-dick',
    // gpt-small on 2 CPU cores: 4×256 tokens keeps a step around ten seconds and memory in a few GB
    batch: o.batch ?? (small ? 4 : 16), seq: o.seq ?? (small ? 256 : 64), steps: 1000,
    optimizer: (o.optimizer ?? 'ademamix') as OptimizerName, evalBatches: 1, trackBatches: 0,
  };
  if (o.model === 'vit-s') throw new Error('bench train-step: vit-s needs 224×224×3 images; the bundled data is MNIST (use vit-tiny or vit-mini)');
  if (o.compareTorch) {
    return compareWithTorch({ ...config, optimizer: (o.optimizer ?? 'adamw') as OptimizerName }, { steps: o.steps ?? 5, threads: o.threads ?? 2, python: o.python, fused: o.fused });
  }
  return measureStep(config, { steps: o.steps ?? (small ? 3 : 30), threads: o.threads ?? 0, warm: small ? 1 : 3, fused: o.fused });
}

/**
 * Our training step vs PyTorch eager (graphs/torch_models.py's GPT with SDPA attention, or its ViT; torch.optim.AdamW foreach)
 * on the same shapes and threads, in one run: a torch worker process stays alive and blocks of `steps` steps
 * alternate between the two (the machines are shared and noisy), ten rounds after a warm-up block each. `ratio` is
 * torch's median step over ours; `paired_ratio` the median of the rounds' own ratios (each round's two blocks run
 * within a second or two of each other, so a host that changes speed between rounds moves both sides of it).
 */
async function compareWithTorch(config: TrainConfig, o: { steps: number; threads: number; python?: string; rounds?: number; fused?: boolean }): Promise<Record<string, unknown>> {
  const task = buildTask(config, { fused: o.fused ?? true });
  const art = assembleTraining({ forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(config), fusedBackward: o.fused ?? true });
  const s = trainSession(art, encodeModel(art.train), { intraOpThreads: o.threads });
  const ours = (n: number): number[] => Array.from({ length: n }, () => {
    const b = task.train.next();
    const t0 = performance.now(); s.run(b.feeds, ['loss']); return performance.now() - t0;
  });
  // the same model on the torch side (graphs/torch_models.py): the GPT with the data's vocabulary, or the ViT
  let torchModel: Record<string, unknown>;
  if (config.model.startsWith('vit')) {
    const v = vitConfig(config.model, config.modelOverrides as object);
    torchModel = { model: 'vit', image: v.imageSize, patch: v.patchSize, channels: v.channels, classes: v.numClasses, dim: v.dim, depth: v.depth, heads: v.heads, mlp: v.mlpRatio };
  } else {
    const c = gptConfig(config.model, { ...config.modelOverrides, vocabSize: art.initialState.get('wte.weight')!.dims[0] });
    torchModel = { vocab: c.vocabSize, block: c.blockSize, layers: c.nLayer, heads: c.nHead, embd: c.nEmbd, mlp: c.mlpRatio, seq: config.seq };
  }
  const py = o.python ?? path.join(packageRoot(), '.venv', 'bin', 'python');
  if (!fs.existsSync(py)) throw new Error(`bench train-step --compare-torch: no Python with torch at ${py} (run \`bash scripts/setup-python.sh\`)`);
  const torch = new TorchWorker(py, path.join(packageRoot(), 'scripts', 'bench-torch-train-step.py'));
  try {
    const info = await torch.call({ cmd: 'init', ...torchModel, batch: config.batch, threads: o.threads }) as { params: number; threads: number; torch: string };
    ours(3); await torch.call({ cmd: 'run', steps: 3 });
    const a: number[] = []; const b: number[] = []; const rounds: number[] = [];
    for (let r = 0; r < (o.rounds ?? 10); r++) {
      const x = ours(o.steps); const y = ((await torch.call({ cmd: 'run', steps: o.steps })) as { ms: number[] }).ms;
      a.push(...x); b.push(...y); rounds.push(median(y) / median(x));
    }
    const params = art.params.reduce((n, k) => n + art.initialState.get(k)!.data.length, 0);
    return {
      bench: 'train-step', compare: 'torch', model: config.model, optimizer: config.optimizer, fused_backward: o.fused ?? true, params, torch_params: info.params,
      batch: config.batch, ...(config.model.startsWith('vit') ? {} : { seq: config.seq }), threads: o.threads, torch_threads: info.threads, torch_version: info.torch,
      steps: a.length, step_ms: +median(a).toFixed(2), torch_step_ms: +median(b).toFixed(2), ratio: +(median(b) / median(a)).toFixed(3),
      paired_ratio: +median(rounds).toFixed(3), round_ratios: rounds.map((r) => +r.toFixed(3)),
    };
  } finally { torch.close(); s.release(); }
}

/** A line-protocol child process: one JSON command in, one JSON line out. */
class TorchWorker {
  private readonly p: ChildProcessWithoutNullStreams;
  private buf = ''; private waiting: ((line: string) => void)[] = []; private err = '';
  constructor(python: string, script: string) {
    this.p = spawn(python, [script], { stdio: 'pipe' });
    this.p.stdout.setEncoding('utf8');
    this.p.stdout.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) { const line = this.buf.slice(0, i); this.buf = this.buf.slice(i + 1); this.waiting.shift()?.(line); }
    });
    this.p.stderr.on('data', (d: Buffer) => { this.err = (this.err + d.toString()).slice(-4000); });
  }
  call(cmd: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`the PyTorch worker exited (${code}): ${this.err.trim().split('\n').pop() ?? ''}`));
      this.p.once('exit', onExit);
      this.waiting.push((line) => { this.p.off('exit', onExit); resolve(JSON.parse(line)); });
      this.p.stdin.write(`${JSON.stringify(cmd)}\n`);
    });
  }
  close(): void { this.p.stdin.end(); }
}

/** Median step time and the optimizer's share of the kernel time (ORT profile) of a run's configuration. */
export function measureStep(config: TrainConfig, o: { steps: number; threads: number; warm: number; fused?: boolean }): Record<string, unknown> & { step_ms: number; optimizer_share: number } {
  const { steps, threads } = o;
  const task = buildTask(config, { fused: o.fused ?? true });
  const art = assembleTraining({ forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(config), fusedBackward: o.fused ?? true });
  const bytes = encodeModel(art.train);
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-prof-')), 'train');
  const fetches = ['loss'];
  const time = (s: NativeSession, n: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = task.train.next();
      const t0 = performance.now();
      s.run(b.feeds, fetches);
      out.push(performance.now() - t0);
    }
    return out;
  };
  // timed run without the profiler (it costs time itself)
  const s = trainSession(art, bytes, { intraOpThreads: threads });
  let stepMs: number;
  try {
    time(s, o.warm);
    stepMs = median(time(s, steps));
  } finally { s.release(); }
  // profiled run for the shares
  const p = trainSession(art, bytes, { intraOpThreads: threads, profilingPrefix: prefix });
  let shares: ReturnType<typeof profileShares>;
  try {
    const warm = o.warm;
    time(p, warm + Math.max(2, Math.min(steps, 10)));
    const file = p.endProfiling();
    shares = profileShares(JSON.parse(fs.readFileSync(file, 'utf8')) as ProfileEvent[], warm);
    fs.rmSync(path.dirname(prefix), { recursive: true, force: true });
  } finally { p.release(); }
  const params = art.params.reduce((n, k) => n + art.initialState.get(k)!.data.length, 0);
  return {
    bench: 'train-step', model: config.model, optimizer: config.optimizer, fused_backward: o.fused ?? true, params, batch: config.batch, seq: config.seq, threads,
    steps, step_ms: +stepMs.toFixed(2), optimizer_ms: +shares.optimizerMs.toFixed(3),
    optimizer_share: +(shares.optimizerMs / shares.kernelMs).toFixed(4), profiled_kernel_ms: +shares.kernelMs.toFixed(2),
    // ORT's own time for a run (model_run): kernels plus its executor, allocations and output copies
    profiled_run_ms: +shares.runMs.toFixed(2), profiled_runs: shares.runs,
    // where the kernel time goes: the ten ops with the most, ms per step and share
    top_ops: Object.entries(shares.byOp).sort((a, b) => b[1] - a[1]).slice(0, 10)
      .map(([op, ms]) => ({ op, ms: +ms.toFixed(3), share: +(ms / shares.kernelMs).toFixed(4) })),
  };
}
