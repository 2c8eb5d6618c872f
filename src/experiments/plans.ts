// What `experiment compare` trains: per task the base configuration, the optimizer variants with their lr grids (for
// --sweep) and the learning rates picked by that sweep on this machine (used without --sweep; see docs/results.md).
import { DEFAULT_CONFIG, type OptimizerName, type TrainConfig } from '../runner/config';

export type TaskName = 'gpt' | 'vit';

export interface Variant {
  id: string; label: string; /** legend name (the plot legend fits ~20 characters) */ short: string; optimizer: OptimizerName;
  beta1?: number; beta2?: number; beta3?: number; alpha?: number;
  /** learning rate used without --sweep (the sweep's pick, recorded in docs/results.md) */
  lr: number;
  /** lr grid of the sweep (extended by one point past an edge that wins) */
  grid: number[];
}

export interface TaskPlan {
  task: TaskName;
  steps: number;
  sweepSteps: number;
  /** seeds of the sweep runs: apart from the comparison seeds (0..N−1), so the lr is not picked on a test seed */
  sweepSeeds: number[];
  base: TrainConfig;
  variants: Variant[];
  /** the variant the others are measured against ("steps to reach its final loss") */
  baseline: string;
}

// All four share β2 = 0.999 and weight decay 0.1, so the differences are the momentum terms. AdEMAMix: α 5 with the
// short-run β3 0.999, α 8 with the paper's β3 0.9999 (both warmed up over the run: T_α = T_β3 = run length).
// Simplified-AdEMAMix: β1 0.99 warmed from 0.9 over the run, "theory-style" momentum (no 1−β1 factor), so its lr is
// ~30× smaller than Adam's (the authors' lr_adam·√((1−0.9)(1−0.99)) rule); α is large at small batches (authors'
// guidance: it shrinks as the batch grows).
function variants(task: TaskName): Variant[] {
  const gpt = task === 'gpt';
  return [
    { id: 'adamw', label: 'AdamW', short: 'AdamW', optimizer: 'adamw', beta1: 0.9, beta2: 0.999, lr: gpt ? 2e-3 : 8e-3, grid: gpt ? [1e-3, 2e-3, 4e-3, 8e-3] : [2e-3, 4e-3, 8e-3, 1.6e-2] },
    { id: 'ademamix-0.999', label: 'AdEMAMix α5 β3=0.999', short: 'AdEMAMix .999', optimizer: 'ademamix', beta1: 0.9, beta2: 0.999, beta3: 0.999, alpha: 5, lr: gpt ? 2e-3 : 8e-3, grid: gpt ? [5e-4, 1e-3, 2e-3, 4e-3] : [2e-3, 4e-3, 8e-3, 1.6e-2] },
    { id: 'ademamix-0.9999', label: 'AdEMAMix α8 β3=0.9999', short: 'AdEMAMix .9999', optimizer: 'ademamix', beta1: 0.9, beta2: 0.999, beta3: 0.9999, alpha: 8, lr: gpt ? 1e-3 : 8e-3, grid: gpt ? [5e-4, 1e-3, 2e-3, 4e-3] : [2e-3, 4e-3, 8e-3, 1.6e-2] },
    { id: 'simplified', label: 'Simplified-AdEMAMix α100', short: 'Simplified', optimizer: 'simplified', beta1: 0.99, beta2: 0.999, alpha: 100, lr: gpt ? 9e-6 : 3e-5, grid: gpt ? [3e-5, 1e-4, 3e-4, 1e-3] : [1e-5, 3e-5, 1e-4, 3e-4] },
  ];
}

export function taskPlan(task: TaskName, steps?: number, sweepSteps?: number): TaskPlan {
  const gpt = task === 'gpt';
  const n = steps ?? (gpt ? 1500 : 1000);
  const base: TrainConfig = {
    ...DEFAULT_CONFIG,
    ...(gpt
      ? { model: 'gpt-tiny', data: 'moby-dick', batch: 32, seq: 64, evalBatches: 8 }
      // ViT: 64 eval batches (4096 test images): with 1024 the validation loss alone was ±0.03 noisy
      : { model: 'vit-tiny', data: 'mnist', batch: 64, evalBatches: 64 }),
    steps: n, warmup: warmupFor(n), decay: 'cosine', minLrRatio: 0.1, weightDecay: 0.1,
    threads: 1, evalEvery: 50, logEvery: 25, checkpointEvery: 0, keepCheckpoints: 1,
    // K tracked batches injected at round((k+1)·steps/(K+1)); K+1 dividing steps/trackEvery keeps them on the grid
    trackBatches: gpt ? 5 : 4, trackEvery: 25,
  };
  // sweep length: the ViT's runs are cheap (~35 s), so its lr is picked on full-length runs and two seeds (one seed's
  // noise spans a factor of 2 in lr there); the GPT's cost ~3 min each, so its sweep runs are a third as long on one
  // seed (short runs favour larger lrs: a bias noted in docs/results.md)
  const sw = sweepSteps ?? (gpt ? Math.max(100, Math.round(n / 3)) : n);
  return { task, steps: n, sweepSteps: sw, sweepSeeds: gpt ? [1000] : [1000, 1001], base, variants: variants(task), baseline: 'adamw' };
}

/** Linear lr warmup over the first ~7% of the run (100 steps of 1500). */
export const warmupFor = (steps: number): number => Math.max(10, Math.round(steps / 15));

/** The full configuration of one run. */
export function runConfig(plan: TaskPlan, v: Variant, o: { lr: number; seed: number; steps: number; sweep?: boolean }): TrainConfig {
  const c: TrainConfig = {
    ...plan.base, optimizer: v.optimizer, lr: o.lr, seed: o.seed, steps: o.steps, warmup: warmupFor(o.steps),
    beta1: v.beta1, beta2: v.beta2, beta3: v.beta3, alpha: v.alpha,
  };
  // sweep runs: only the final validation loss matters (the trainer always evaluates at the last step)
  if (o.sweep) { c.evalEvery = o.steps; c.trackBatches = 0; }
  // no undefined fields: the config validator takes an undefined α or β3 for a wrong type (in-process runs, --jobs 1,
  // pass the object as it is; worker runs get it through JSON, which drops them). The JSON, and so the reuse of
  // earlier results, is unchanged.
  for (const k of Object.keys(c) as (keyof TrainConfig)[]) if (c[k] === undefined) delete c[k];
  return c;
}
