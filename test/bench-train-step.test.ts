// `bench train-step --compare-torch`: the PyTorch side trains the same GPT or ViT (same parameter count, an independent
// check that the two models match), blocks of steps alternate between the two, and the result says what was compared.
// Speed itself is a benchmark's business (docs/benchmarks.md), not a test's: nothing here bounds a time.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { python } from './support/python';

test('compare-torch trains the same GPT in both frameworks and reports both medians', () => {
  python(); // the venv with torch (made by scripts/setup-python.sh when missing)
  const cli = path.resolve(__dirname, '../dist/cli.js');
  const r = spawnSync(process.execPath, [cli, 'bench', 'train-step', '--model', 'gpt-tiny', '--batch', '2', '--seq', '16', '--threads', '1',
    '--steps', '2', '--compare-torch', '--json'], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout);
  expect(j).toMatchObject({ compare: 'torch', model: 'gpt-tiny', optimizer: 'adamw', batch: 2, seq: 16, threads: 1, torch_threads: 1, steps: 20 });
  expect(j.torch_params).toBe(j.params);
  expect(j.step_ms).toBeGreaterThan(0);
  expect(j.torch_step_ms).toBeGreaterThan(0);
  // ratio is taken from the unrounded medians, the reported times are rounded to 0.01 ms: equal to within that
  // rounding (a 1 ms step: 0.5 %)
  expect(Math.abs(j.ratio / (j.torch_step_ms / j.step_ms) - 1)).toBeLessThan(0.02);
  // the paired ratio is the median of the ten rounds' ratios (three decimals each)
  expect(j.round_ratios).toHaveLength(10);
  expect(j.paired_ratio).toBe([...j.round_ratios].sort((x: number, y: number) => x - y)[5]);
});

test('compare-torch trains the same ViT in both frameworks', () => {
  python();
  const cli = path.resolve(__dirname, '../dist/cli.js');
  const r = spawnSync(process.execPath, [cli, 'bench', 'train-step', '--model', 'vit-tiny', '--batch', '4', '--threads', '1',
    '--steps', '2', '--compare-torch', '--json'], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout);
  expect(j).toMatchObject({ compare: 'torch', model: 'vit-tiny', optimizer: 'adamw', batch: 4, threads: 1, torch_threads: 1, steps: 20 });
  expect(j.seq).toBeUndefined();
  // the same parameter count on both sides: graphs/vit.ts and graphs/torch_models.py's Vit agree (72,074 for vit-tiny)
  expect(j.torch_params).toBe(j.params);
  expect(j.params).toBe(72_074);
  // ratio is taken from the unrounded medians, the reported times are rounded to 0.01 ms: equal to within that
  // rounding (a 1 ms step: 0.5 %)
  expect(Math.abs(j.ratio / (j.torch_step_ms / j.step_ms) - 1)).toBeLessThan(0.02);
});
