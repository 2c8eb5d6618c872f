// `bench runner`: the training loop's own cost. Per step, from JS time stamps: step_ms = start of one native run to the
// start of the next; ort_ms = start of the run to its result arriving in JS (ORT's run plus the worker-thread hop);
// overhead_ms = the rest (reading outputs, logging, metrics, the next batch when it is not ready). bare_run_ms is the
// same step run synchronously with a fixed batch, in alternating blocks, as a cross-check. RSS must stay flat.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CONFIG, type TrainConfig } from '../runner/config';
import { Trainer } from '../runner/trainer';

export interface RunnerBenchOptions { model: string; steps: number; batch: number; seq: number; threads: number; overrides?: Record<string, number> }

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN; };

export async function benchRunner(o: RunnerBenchOptions): Promise<Record<string, unknown>> {
  if (o.steps < 200) throw new Error('bench runner: --steps must be at least 200 (blocks of 50 steps)');
  const config: TrainConfig = {
    ...DEFAULT_CONFIG, model: o.model, modelOverrides: o.overrides ?? {}, data: o.model.startsWith('vit') ? 'mnist' : 'moby-dick',
    steps: o.steps, batch: o.batch, seq: o.seq, threads: o.threads, evalEvery: 0, checkpointEvery: 0, logEvery: 10,
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-bench-'));
  const marks: { step: number; t: number; rss: number }[] = [];
  const trainer = Trainer.create(config, {
    outDir: dir, quiet: true, collectTimings: true, onRecord: (r) => marks.push({ step: r.step, t: performance.now(), rss: process.memoryUsage().rss }),
  });
  try {
    const block = 50; const bare: number[] = [];
    const b = trainer.task.train.next();
    const fetches = ['loss', ...trainer.artifacts.metrics];
    await trainer.train(block); // warm-up
    trainer.timings.length = 0;
    while (trainer.completed + block <= o.steps) {
      await trainer.train(trainer.completed + block);
      const t0 = performance.now();
      for (let r = 0; r < block / 2; r++) trainer.session.run(b.feeds, fetches);
      bare.push((performance.now() - t0) / (block / 2));
    }
    const step: number[] = []; const ortT: number[] = []; const over: number[] = [];
    const ts = trainer.timings;
    for (let i = 0; i + 1 < ts.length; i++) {
      if (ts[i + 1].step !== ts[i].step + 1 || ts[i].step % block === 0) continue; // across calls of train(): not a loop step
      step.push(ts[i + 1].call - ts[i].call); ortT.push(ts[i].done - ts[i].call); over.push(ts[i + 1].call - ts[i].done);
    }
    const stepMs = median(step); const ortMs = median(ortT); const overMs = median(over);
    const rssAt = (f: number): number => marks[Math.min(marks.length - 1, Math.floor(f * marks.length))].rss / 2 ** 20;
    return {
      bench: 'runner', model: o.model, steps: o.steps, measured_steps: step.length, batch: o.batch, seq: o.seq, threads: o.threads,
      step_ms: +stepMs.toFixed(3), ort_ms: +ortMs.toFixed(3), overhead_ms: +overMs.toFixed(3),
      overhead_share: +(overMs / stepMs).toFixed(4), bare_run_ms: +median(bare).toFixed(3),
      rss_mb_10pct: +rssAt(0.1).toFixed(1), rss_mb_end: +rssAt(1).toFixed(1),
    };
  } finally { trainer.release(); fs.rmSync(dir, { recursive: true, force: true }); }
}
