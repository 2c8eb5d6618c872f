// The `ademamix` command as users run it (the built dist/cli.js): Ctrl-C saves a checkpoint, resume, eval, export,
// and usage errors that name the bad option.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadCheckpoint, resolveCheckpoint } from '../src/runner/checkpoint';

const CLI = path.resolve(__dirname, '../dist/cli.js');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'cli-test-'));
const MICRO = ['--override', 'nLayer=1,nEmbd=32,nHead=2', '--seq', '16', '--batch', '4', '--threads', '2'];
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('Ctrl-C saves a checkpoint of the finished step and exits 130; --resume continues; eval reads it', async () => {
  const dir = tmp();
  const child = spawn(process.execPath, [CLI, 'train', ...MICRO, '--steps', '200000', '--eval-every', '0', '--out', dir]);
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (/step \d+\/200000/.test(err) && !child.killed) child.kill('SIGINT');
    });
    child.on('exit', (c) => resolve(c));
  });
  expect(code).toBe(130);
  expect(err).toMatch(/interrupted at step \d+; checkpoint .*step-\d+\.safetensors/);
  const ck = loadCheckpoint(resolveCheckpoint(dir));
  expect(ck.info.step).toBeGreaterThan(0);
  expect(Number(ck.state.step.data[0])).toBe(ck.info.step + 1);

  const more = ck.info.step + 5;
  const r = cli(['train', '--resume', dir, '--stop-after', String(more), '--quiet']);
  expect(r.status).toBe(0);
  expect(loadCheckpoint(resolveCheckpoint(dir)).info.step).toBe(more);

  const e = cli(['eval', '--run', dir, '--json']);
  expect(e.status).toBe(0);
  const out = JSON.parse(e.stdout);
  expect(out.step).toBe(more);
  expect(out.eval_loss).toBeGreaterThan(0);
  // near or below a uniform guess over the vocabulary (ln 83 = 4.42; a few steps in, so it depends on when the
  // signal lands): measured 2026-12-02: 4.29
  expect(out.eval_loss).toBeLessThan(Math.log(83) + 0.2);
});

test('resume refuses settings that would change the trajectory, naming them', () => {
  const dir = tmp();
  expect(cli(['train', ...MICRO, '--steps', '4', '--eval-every', '0', '--out', dir, '--quiet']).status).toBe(0);
  const r = cli(['train', '--resume', dir, '--lr', '0.5']);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/trained with lr = 0\.002; it cannot continue with 0\.5/);
});

test('usage errors name the bad option or value', () => {
  let r = cli(['train', '--stepz', '10']);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/unknown option --stepz/);
  r = cli(['train', '--optimizer', 'sgd', '--steps', '5']);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/optimizer must be one of ademamix, simplified, adamw, .*, got 'sgd'/);
  r = cli(['train', '--model', 'gpt-huge']);
  expect(r.stderr).toMatch(/unknown GPT preset 'gpt-huge'/);
  r = cli(['frobnicate']);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
});

test('export writes artifacts a stock onnxruntime-node runs (function bodies stand in for the custom ops)', async () => {
  const dir = tmp();
  const r = cli(['export', '--model', 'vit-tiny', '--optimizer', 'adamw', '--out', dir]);
  expect(r.status).toBe(0);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  expect(manifest.batchInputs).toEqual(['images', 'labels']);
  const s = await ort.InferenceSession.create(path.join(dir, 'eval.onnx'));
  expect(s.inputNames).toEqual(expect.arrayContaining(['images', 'labels', 'patch_embed.weight']));
  const t = await ort.InferenceSession.create(path.join(dir, 'train.onnx'));
  expect(t.outputNames).toEqual(expect.arrayContaining(['loss', 'patch_embed.weight.next', 'patch_embed.weight.m.next', 'step.next']));
});

test('--help per command: only that command\'s usage; usage errors are one line with exit code 2', () => {
  const t = cli(['train', '--help']);
  expect(t.status).toBe(0);
  expect(t.stdout).toMatch(/^usage: ademamix train …\n  train \[options\]/);
  expect(t.stdout).not.toMatch(/bench optimizer/);
  const e = cli(['export', '--help']);
  expect(e.stdout).toMatch(/export --model/);
  expect(e.stdout).toMatch(/export --onnx/);
  // an option of another benchmark is refused, not ignored
  const wrong = cli(['bench', 'optimizer', '--optimizer', 'lion']);
  expect(wrong.status).toBe(2);
  expect(wrong.stderr).toMatch(/^ademamix: bench optimizer: --optimizer is not an option of this benchmark \(the optimizer is --op\)/);
  expect(cli(['bench', 'train-step', '--op', 'lion', '--reps', '2']).stderr).toMatch(/bench train-step: --op, --reps are not options of this benchmark/);
  const bad = cli(['train', '--stepz', '3']);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toBe('ademamix: train: unknown option --stepz (see ademamix train --help)\n');
});
