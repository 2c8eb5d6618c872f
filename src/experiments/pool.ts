// Runs training jobs, several at once in child processes. On this 2-core machine one ORT thread per run in two
// processes beats two threads in one run: gpt-tiny's step is too small for ORT's intra-op parallelism (measured
// 73 ms/step with 1 thread vs 63 ms with 2), while two processes keep both cores busy. Each child is the same entry
// script (`ademamix experiment _worker`), takes jobs over IPC one at a time and returns the run's records.
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TrainConfig } from '../runner/config';
import type { MetricRecord } from '../runner/run-dir';
import { Trainer, type RunStatus } from '../runner/trainer';

export interface Job { key: string; config: TrainConfig; outDir: string }
export interface JobResult {
  key: string; status: RunStatus | 'error'; message?: string;
  finalLoss?: number; evalLoss?: number; wallS: number;
  records: MetricRecord[]; trackedAt: number[]; config: TrainConfig;
  /** true when loaded from an earlier identical run (result.json in its directory) */
  reused?: boolean;
}

const RESULT = 'result.json';

/** An earlier result for exactly this configuration, if its run finished. */
function reusable(job: Job, statuses: readonly string[] = ['done']): JobResult | undefined {
  const f = path.join(job.outDir, RESULT);
  if (!fs.existsSync(f)) return undefined;
  try {
    const r = JSON.parse(fs.readFileSync(f, 'utf8')) as JobResult;
    if (statuses.includes(r.status) && JSON.stringify(r.config) === JSON.stringify(job.config)) return { ...r, key: job.key, reused: true };
  } catch { /* unreadable: run again */ }
  return undefined;
}

/** Trains one job in this process and writes result.json into its run directory. */
export async function runJob(job: Job): Promise<JobResult> {
  const t0 = performance.now();
  const records: MetricRecord[] = [];
  let trainer: Trainer | undefined;
  try {
    trainer = Trainer.create(job.config, { outDir: job.outDir, quiet: true, onRecord: (r) => records.push(r) });
    const r = await trainer.train();
    const res: JobResult = {
      key: job.key, status: r.status, message: r.message, finalLoss: r.finalLoss, evalLoss: r.evalLoss,
      wallS: (performance.now() - t0) / 1000, records, trackedAt: trainer.trackedAt, config: job.config,
    };
    fs.writeFileSync(path.join(job.outDir, RESULT), JSON.stringify(res) + '\n');
    return res;
  } catch (e) {
    return { key: job.key, status: 'error', message: (e as Error).message, wallS: (performance.now() - t0) / 1000, records, trackedAt: [], config: job.config };
  } finally { trainer?.release(); }
}

/** The child side: run jobs sent by the parent until it disconnects. */
export function workerLoop(): Promise<number> {
  if (!process.send) throw new Error('experiment _worker is started by `experiment compare` (it needs an IPC channel)');
  return new Promise((resolve) => {
    let queue = Promise.resolve();
    process.on('message', (job: Job) => {
      queue = queue.then(async () => { process.send!(await runJob(job)); });
    });
    process.on('disconnect', () => { void queue.then(() => resolve(0)); });
  });
}

export interface PoolOptions {
  jobs: number;
  /** script the children run (default: this process's entry script, which must dispatch `experiment _worker`) */
  entry?: string;
  reuse: boolean;
  /** statuses of an earlier result that count as finished (default: done; a sweep also keeps runs that diverged,
   * which are as deterministic as finished ones) */
  reuseStatuses?: readonly string[];
  onDone?: (r: JobResult, done: number, total: number) => void;
}

/** Runs all jobs (in order of submission, `jobs` at a time) and returns their results in the same order. */
export async function runJobs(list: Job[], o: PoolOptions): Promise<JobResult[]> {
  const results: JobResult[] = new Array(list.length);
  let done = 0;
  const finish = (i: number, r: JobResult): void => { results[i] = r; o.onDone?.(r, ++done, list.length); };
  const todo: number[] = [];
  list.forEach((j, i) => { const r = o.reuse ? reusable(j, o.reuseStatuses) : undefined; if (r) finish(i, r); else todo.push(i); });
  if (!todo.length) return results;
  if (o.jobs <= 1) {
    for (const i of todo) finish(i, await runJob(list[i]));
    return results;
  }
  const entry = o.entry ?? process.argv[1];
  const worker = async (): Promise<void> => {
    let child: ChildProcess | undefined;
    try {
      while (todo.length) {
        const i = todo.shift()!;
        child ??= fork(entry, ['experiment', '_worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        const c = child;
        const r = await new Promise<JobResult>((resolve) => {
          const onExit = (code: number | null): void => resolve({
            key: list[i].key, status: 'error', message: `worker exited (${code}) during the run`, wallS: 0, records: [], trackedAt: [], config: list[i].config,
          });
          c.once('exit', onExit);
          c.once('message', (m: JobResult) => { c.off('exit', onExit); resolve(m); });
          c.send(list[i]);
        });
        if (r.status === 'error' && r.message?.startsWith('worker exited')) child = undefined;
        finish(i, r);
      }
    } finally { if (child?.connected) child.disconnect(); }
  };
  await Promise.all(Array.from({ length: Math.min(o.jobs, todo.length) }, worker));
  return results;
}
