// `bench runner`: the training loop's own cost. step_ms is the loop's wall time per step (batch preparation, the
// native run, logging); ort_ms is the bare native run of the same step on the same session with a ready batch;
// overhead_ms = step_ms − ort_ms is what the runner adds. Also reports RSS over the run (it must stay flat).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CONFIG, type TrainConfig } from '../runner/config';
import { Trainer } from '../runner/trainer';

export interface RunnerBenchOptions { model: string; steps: number; batch: number; seq: number; threads: number; overrides?: Record<string, number> }

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN; };

export async function benchRunner(o: RunnerBenchOptions): Promise<Record<string, unknown>> {
  const config: TrainConfig = {
    ...DEFAULT_CONFIG, model: o.model, modelOverrides: o.overrides ?? {}, data: o.model.startsWith('vit') ? 'mnist' : 'moby-dick',
    steps: o.steps, batch: o.batch, seq: o.seq, threads: o.threads, evalEvery: 0, checkpointEvery: 0, logEvery: 10,
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-bench-'));
  const marks: { step: number; t: number; rss: number }[] = [];
  const trainer = Trainer.create(config, {
    outDir: dir, quiet: true, onRecord: (r) => marks.push({ step: r.step, t: performance.now(), rss: process.memoryUsage().rss }),
  });
  try {
    await trainer.train();
    // per-step wall time from consecutive log records (10 steps apart); the first windows are warm-up
    const per: number[] = [];
    for (let i = 3; i < marks.length; i++) per.push((marks[i].t - marks[i - 1].t) / (marks[i].step - marks[i - 1].step));
    const stepMs = median(per);
    const b = trainer.task.train.next();
    const fetches = ['loss', ...trainer.artifacts.metrics];
    const ort: number[] = [];
    for (let r = 0; r < 30; r++) {
      const t0 = performance.now();
      trainer.session.run(b.feeds, fetches);
      ort.push(performance.now() - t0);
    }
    const ortMs = median(ort.slice(3));
    const rssAt = (f: number): number => marks[Math.min(marks.length - 1, Math.floor(f * marks.length))].rss / 2 ** 20;
    return {
      bench: 'runner', model: o.model, steps: o.steps, batch: o.batch, seq: o.seq, threads: o.threads,
      step_ms: +stepMs.toFixed(3), ort_ms: +ortMs.toFixed(3), overhead_ms: +(stepMs - ortMs).toFixed(3),
      overhead_share: +((stepMs - ortMs) / stepMs).toFixed(4),
      rss_mb_10pct: +rssAt(0.1).toFixed(1), rss_mb_end: +rssAt(1).toFixed(1),
    };
  } finally { trainer.release(); fs.rmSync(dir, { recursive: true, force: true }); }
}
