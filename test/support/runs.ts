// Short training runs for the tests: a one-layer 32-wide GPT on the bundled text, trained through the runner.
import { DEFAULT_CONFIG, type TrainConfig } from '../../src/runner/config';
import { Trainer } from '../../src/runner/trainer';

export const micro = (o: Partial<TrainConfig> = {}): TrainConfig => ({
  ...DEFAULT_CONFIG, modelOverrides: { nLayer: 1, nEmbd: 32, nHead: 2 }, seq: 16, batch: 4, steps: 20, warmup: 5,
  lr: 3e-3, evalEvery: 5, evalBatches: 2, logEvery: 5, checkpointEvery: 4, keepCheckpoints: 2, threads: 2, ...o,
});

export async function train(c: TrainConfig, outDir: string, extra: Partial<Parameters<typeof Trainer.create>[1]> = {}) {
  const t = Trainer.create(c, { outDir, quiet: true, ...extra });
  try { return { r: await t.train(), t }; } finally { t.release(); }
}
