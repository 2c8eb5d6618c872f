// The training loop. Per step only the batch goes in and the scalar outputs (loss, lr, α, β3, grad-norm) come out:
// params, optimizer states and the step counter are carried inside the native session. The next batch is prepared
// while ORT runs the current step (runAsync on a worker thread). Checkpoints hold the carried state, the data
// position and the config, so a resumed run continues bit-exactly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from 'onnxruntime-common';
import { Tensor as OrtTensor } from 'onnxruntime-common';
import { encodeModel, saveModel } from '../onnx/io';
import { NativeSession, type RawTensor } from '../native';
import { saveSafetensors } from '../io/safetensors';
import type { TensorData } from '../graph/tensor-data';
import type { DType } from '../graph/dtype';
import { assembleTraining, exportedParams, type TrainingArtifacts } from '../train/assemble';
import { STOP_INPUT, STOP_OUTPUT } from '../train/data-parallel';
import { getOptimizer, makeSpec, type OptimizerSpec } from '../optim/derive';
import { parseStates, type StatePrecision } from '../optim/precision';
import { configHyper, lrSchedule, validateConfig, type TrainConfig } from './config';
import { checkpointPath, fingerprint, loadCheckpoint, saveCheckpoint, CheckpointError, type CheckpointInfo } from './checkpoint';
import { Progress } from './progress';
import { RunDir, type MetricRecord } from './run-dir';
import { buildTask, type Batch, type Task } from './task';
import { joinWorld, stateDigest, type World } from '../parallel/world';
import { checkShardable, shardBatch } from '../parallel/shard';
import { gatherState, sliceState } from '../parallel/state';

export interface TrainerOptions {
  /** Run directory (created). */
  outDir: string;
  /** Checkpoint file to continue from (its config must match; see resumeConfig). */
  resumeFrom?: string;
  /** Stop after this many completed steps (the schedule still spans `config.steps`); used to test resume. */
  stopAfter?: number;
  quiet?: boolean;
  /** Called with every logged metrics record. */
  onRecord?: (r: MetricRecord) => void;
  /** Record when each step's native run was started and when its result arrived (for `bench runner`). */
  collectTimings?: boolean;
  /** The MPI world this process is a rank of (default: the one mpirun started it in, else a world of one). */
  world?: World;
  /** ZeRO stage 1: optimizer states split over the ranks (the trajectory is the unsharded one). */
  shardStates?: boolean;
}

/** performance.now() stamps of one step: native run started, result back in JS. */
export interface StepTiming { step: number; call: number; done: number }

export type RunStatus = 'done' | 'interrupted' | 'stopped-nonfinite';
export interface RunResult {
  status: RunStatus; step: number; runDir: string; lastCheckpoint?: string;
  finalLoss?: number; evalLoss?: number; skipped: number; message?: string;
  /** Seconds this rank spent in collectives (in-graph and outside), for the communication share of a step. */
  commSeconds?: number;
}

/** The run's optimizer spec from its definition: each hyperparameter from the config (schedule lengths default to
 * the run length), the lr schedule from the config (without decay for optimizers that must not decay). */
export function optimizerSpec(c: TrainConfig): OptimizerSpec {
  const def = getOptimizer(c.optimizer);
  const sched = lrSchedule(c);
  const o: Record<string, unknown> = { lr: def.noLrDecay ? { ...sched, decay: 'constant' } : sched };
  for (const h of def.hyper) {
    const v = configHyper(c, h.config ?? h.key);
    if (v !== undefined) o[h.key] = v;
    else if (h.runLength) o[h.key] = c.steps;
  }
  return makeSpec(def, o);
}

/** The run's state storage per slot (--states, --stochastic-rounding), from its optimizer's definition. */
export function statePrecision(c: TrainConfig): StatePrecision {
  return { formats: parseStates(getOptimizer(c.optimizer), c.states), stochasticRounding: c.stochasticRounding === true };
}

const scalar = (t: Tensor | undefined): number => (t ? Number(t.data[0]) : NaN);

export class Trainer {
  private stopRequested = false;
  readonly timings: StepTiming[] = [];
  private readonly progress: Progress;
  private evalSession?: NativeSession;

  private constructor(
    readonly config: TrainConfig,
    readonly task: Task,
    readonly artifacts: TrainingArtifacts,
    readonly session: NativeSession,
    readonly run: RunDir,
    private step: number,
    private counters: Record<string, number>,
    private readonly opts: TrainerOptions,
    readonly world: World,
  ) {
    this.progress = new Progress(process.stderr, opts.quiet || !world.lead); // rank 0 alone reports
  }

  static create(config: TrainConfig, opts: TrainerOptions): Trainer {
    validateConfig(config);
    const resumed = opts.resumeFrom ? loadCheckpoint(opts.resumeFrom) : undefined;
    const world = opts.world ?? joinWorld();
    const parallel = world.size > 1 || opts.shardStates === true;
    if (parallel) checkShardable(config.batch, world.size);
    const task = buildTask(config, { fused: true }); // the Trainer's session is on the CPU
    const art = assembleTraining({
      forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(config), gradClip: config.gradClip,
      skipNonFinite: config.nanPolicy === 'skip', metadata: { 'ademamix.model': config.model },
      world: parallel ? { size: world.size, rank: world.rank, shardStates: opts.shardStates } : undefined,
      states: statePrecision(config), seed: config.seed, fusedBackward: true, // the Trainer's session is on the CPU
    });
    const session = NativeSession.create(encodeModel(art.train), { intraOpThreads: config.threads });
    // parameters and optimizer states in place (one buffer each; the kernels' in-place path), the rest double-buffered
    session.carry(art.carry, { inPlace: art.inPlace });
    const fp = carriedFingerprint(session, art);
    const run = new RunDir(opts.outDir);
    let step = 0; let counters: Record<string, number> = { skipped: 0 };
    if (resumed) {
      if (resumed.info.fingerprint !== fp) {
        throw new CheckpointError(`checkpoint ${resumed.file} was written for a different model ` +
          `(${String(resumed.info.config.model)}, fingerprint ${resumed.info.fingerprint}) than ${config.model} (fingerprint ${fp})`);
      }
      // sharded states are fp32 (assembleTraining refuses others): this rank takes its slices; else every tensor as stored
      if (art.shards?.size) session.setState(sliceState(resumed.state, art.shards)); else session.setStateRaw(resumed.raw);
      task.train.seek(resumed.info.dataPosition);
      step = resumed.info.step; counters = { ...counters, ...resumed.info.counters };
      if (world.lead) run.loadRecords(step + 1);
    } else {
      const init: Record<string, RawTensor> = {};
      for (const [k, v] of art.initialState) init[k] = { type: v.dtype, data: v.data as RawTensor['data'], dims: v.dims };
      session.setStateRaw(init);
      if (world.lead && fs.existsSync(run.metricsFile)) fs.rmSync(run.metricsFile);
    }
    // every rank runs the same configuration from the same parameters, step and data position (one seed or one checkpoint)
    world.assertSame(stateDigest({ config: { dims: [], data: new TextEncoder().encode(JSON.stringify(config)) } }), 'the run configuration');
    const replicated = Object.values(art.carry).filter((k) => !art.shards?.has(k));
    world.assertSame(stateDigest(session.getStateRaw(replicated) as Record<string, { dims: readonly number[]; data: ArrayBufferView }>), 'the starting state');
    world.assertSame(stateDigest({ pos: { dims: [], data: Float64Array.from(task.train.position()) } }), 'the data position');
    if (world.lead) {
      run.writeJson('config.json', config);
      saveModel(art.train, path.join(run.dir, 'train.onnx'));
      saveModel(art.eval, path.join(run.dir, 'eval.onnx'));
    }
    return new Trainer(config, task, art, session, run, step, counters, opts, world);
  }

  /** Completed steps. */
  get completed(): number { return this.step; }

  /** Ends the run after the current step, with a checkpoint (Ctrl-C). */
  requestStop(): void { this.stopRequested = true; }

  /** Steps at which each tracked batch replaces the training batch, spread evenly over the run. */
  get trackedAt(): number[] {
    const K = this.config.trackBatches;
    return Array.from({ length: K }, (_, k) => Math.round(((k + 1) * this.config.steps) / (K + 1)));
  }

  /** Mean loss over batches with the current parameters (eval.onnx; params copied out of the training session). */
  evaluate(batches: Batch[]): number[] {
    if (!this.evalSession) this.evalSession = NativeSession.create(encodeModel(this.artifacts.eval), { intraOpThreads: this.config.threads });
    this.evalSession.setState(this.session.getState(this.artifacts.evalInputs));
    return batches.map((b) => scalar(this.evalSession!.run(b.feeds, ['loss']).loss));
  }

  /** Every rank calls it (sharded states are gathered); rank 0 writes. */
  checkpoint(): string {
    const info: CheckpointInfo = {
      step: this.step, config: this.config as unknown as Record<string, unknown>, dataPosition: this.task.train.position(),
      fingerprint: carriedFingerprint(this.session, this.artifacts), counters: this.counters,
    };
    const state = this.artifacts.shards?.size ? gatherState(this.session.getState(), this.artifacts.shards, this.world) : this.session.getStateRaw();
    if (!this.world.lead) return checkpointPath(this.run.checkpoints, this.step);
    return saveCheckpoint(this.run.checkpoints, state, info, this.config.keepCheckpoints);
  }

  /** Final parameters alone (for hand-off, e.g. to PyTorch). */
  saveParams(file: string): void {
    const st = this.session.getState(this.artifacts.evalInputs);
    const m = new Map<string, TensorData>(Object.entries(exportedParams(this.artifacts, st))
      .map(([k, t]) => [k, { dtype: t.type as DType, dims: [...t.dims], data: t.data as Float32Array }]));
    saveSafetensors(file, m, { step: String(this.step), model: this.config.model });
  }

  /** Trains to the end of the run (or `until` completed steps, or the stopAfter option); may be called again to go on. */
  async train(until?: number): Promise<RunResult> {
    const c = this.config; const end = Math.min(c.steps, until ?? this.opts.stopAfter ?? c.steps);
    const title = `${c.model} · ${c.optimizer}`;
    const tracked = new Map(this.trackedAt.map((s, k) => [s, k]));
    this.run.trackedAt = this.trackedAt;
    const fetches = ['loss', ...this.artifacts.metrics];
    // several ranks: a stop request (Ctrl-C) is a vote fed with the step, and all ranks stop after the step whose
    // reduced vote is non-zero, so none is left waiting in a collective
    const voting = this.world.size > 1;
    if (voting) fetches.push(STOP_OUTPUT);
    const vote = (): Record<string, Tensor> => (voting ? { [STOP_INPUT]: new OrtTensor('float32', Float32Array.of(this.stopRequested ? 1 : 0), []) } : {});
    const next = (t: number): Batch => {
      const b = this.task.train.next(); // always drawn, so tracking never shifts the data order
      const k = tracked.get(t);
      return shardBatch(k === undefined ? b : this.task.tracked[k], this.world.rank, this.world.size); // this rank's rows
    };
    if (this.step === 0) this.progress.line(`training ${this.task.describe} with ${c.optimizer}, ${this.artifacts.params.length} tensors, ` +
      `${paramCount(this.artifacts)} parameters; run directory ${this.run.dir}`);
    else this.progress.line(`resuming ${this.run.dir} at step ${this.step}`);

    let lastCkpt: string | undefined; let lastEval: number | undefined; let lastLoss = NaN;
    let window: number[] = []; let windowStart = performance.now(); let windowItems = 0; let lastRender = 0;
    let secsPerStep = NaN; const t0 = performance.now(); const step0 = this.step;
    let batch = this.step < end ? next(this.step + 1) : undefined;
    let dataPos = this.task.train.position(); // after the batch of the step being run, before any prefetch
    let status: RunStatus = 'done'; let message: string | undefined;
    while (batch && this.step < end) {
      const t = this.step + 1;
      const call = this.opts.collectTimings ? performance.now() : 0;
      const pending = this.session.runAsync({ ...batch.feeds, ...vote() }, fetches);
      const items = batch.items;
      dataPos = this.task.train.position();
      batch = t < end ? next(t + 1) : undefined; // prepared while ORT runs step t
      const out = await pending;
      if (this.opts.collectTimings) this.timings.push({ step: t, call, done: performance.now() });
      const loss = scalar(out.loss); const gnorm = scalar(out.grad_norm);
      const skipped = scalar(out.skipped) === 1;
      if (!skipped && !(Number.isFinite(loss) && Number.isFinite(gnorm))) {
        // The update already ran on non-finite values: the native state is unusable, so nothing is saved.
        status = 'stopped-nonfinite';
        message = `non-finite ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} (loss ${loss}, grad-norm ${gnorm}) at step ${t}; ` +
          `stopped (policy 'stop'; use --nan-policy skip to skip such updates). Last good checkpoint: ${lastCkpt ?? latestOr(this.run.checkpoints)}`;
        break;
      }
      this.step = t;
      if (skipped) {
        this.counters.skipped = (this.counters.skipped ?? 0) + 1;
        this.progress.line(`step ${t}: non-finite loss or gradients, update skipped (${this.counters.skipped} so far)`);
      } else window.push(loss);
      windowItems += items;
      const rec: MetricRecord = { step: t };
      const doLog = t % c.logEvery === 0 || t === end;
      const lead = this.world.lead; // rank 0 alone evaluates and writes metrics
      if (lead && c.evalEvery > 0 && (t % c.evalEvery === 0 || t === c.steps)) {
        lastEval = mean(this.evaluate(this.task.val)); rec.eval_loss = lastEval;
      }
      if (lead && c.trackBatches > 0 && (t % c.trackEvery === 0 || tracked.has(t) || tracked.has(t + 1))) rec.tracked = this.evaluate(this.task.tracked);
      if (lead && (doLog || rec.eval_loss !== undefined || rec.tracked)) {
        const now = performance.now();
        if (window.length) rec.loss = lastLoss = mean(window);
        for (const k of this.artifacts.metrics) if (k !== 'skipped') (rec as unknown as Record<string, number>)[k] = scalar(out[k]);
        rec.items_per_s = windowItems / ((now - windowStart) / 1000);
        if (this.counters.skipped) rec.skipped = this.counters.skipped;
        this.run.append(rec); this.opts.onRecord?.(rec);
        secsPerStep = (now - t0) / 1000 / (t - step0);
        this.progress.update({ step: t, total: c.steps, loss: rec.loss ?? lastLoss, itemsPerS: rec.items_per_s, unit: this.task.unit, evalLoss: lastEval }, secsPerStep);
        window = []; windowStart = now; windowItems = 0;
        if (now - lastRender > 5000 || rec.eval_loss !== undefined) { this.run.render(title, true); lastRender = now; }
      }
      if (voting ? scalar(out[STOP_OUTPUT]) > 0 : this.stopRequested) { status = 'interrupted'; break; }
      if (c.checkpointEvery > 0 && t % c.checkpointEvery === 0 && t !== end) lastCkpt = this.saveAt(dataPos);
    }
    if (status !== 'stopped-nonfinite') {
      lastCkpt = this.saveAt(dataPos);
      if (this.step === c.steps && this.world.lead) this.saveParams(path.join(this.run.dir, 'params.safetensors'));
    }
    if (this.world.lead) this.run.render(title, false);
    this.progress.line(status === 'done'
      ? `finished step ${this.step}: train loss ${lastLoss.toFixed(4)}${lastEval !== undefined ? `, validation loss ${lastEval.toFixed(4)}` : ''}`
      : status === 'interrupted' ? `interrupted at step ${this.step}; checkpoint ${lastCkpt}` : message!);
    this.progress.line(`run directory: ${this.run.dir} (report.html, metrics.jsonl, checkpoints/)`);
    return { status, step: this.step, runDir: this.run.dir, lastCheckpoint: lastCkpt, finalLoss: lastLoss, evalLoss: lastEval,
      skipped: this.counters.skipped ?? 0, message, commSeconds: this.world.commSeconds() };
  }

  /**
   * Saves a checkpoint at the current step. `dataPos` is the data position after this step's batch: the next batch
   * may already be prefetched, so the stream is rewound to it for the save and put back after.
   */
  private saveAt(dataPos: number[]): string {
    const now = this.task.train.position();
    this.task.train.seek(dataPos);
    try { return this.checkpoint(); } finally { this.task.train.seek(now); }
  }

  release(): void { this.session.release(); this.evalSession?.release(); }
}

function carriedFingerprint(s: NativeSession, art: TrainingArtifacts): string {
  const carriedInputs = new Set(Object.values(art.carry));
  // a sharded state counts with its whole shape: checkpoints hold it whole, for any world size
  return fingerprint(Object.fromEntries(s.inputMetadata.filter((m) => carriedInputs.has(m.name))
    .map((m) => [m.name, art.shards?.has(m.name) ? { ...m, dims: art.shards.get(m.name)!.dims } : m])));
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const paramCount = (art: TrainingArtifacts): number =>
  art.params.reduce((n, p) => n + art.initialState.get(p)!.data.length, 0);
const latestOr = (dir: string): string => {
  const all = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort() : [];
  return all.length ? path.join(dir, all[all.length - 1]) : 'none (no checkpoint was written yet)';
};
