// Using what was trained (src/infer, the built CLI as users run it): text sampled from a GPT run, MNIST digits named
// by a ViT run, and the inference model in stock onnxruntime-node and Python onnxruntime.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { loadMnist, MNIST_NORM } from '../src/data/mnist';
import { loadText, TextBatcher } from '../src/data/text';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors';
import { loadModel } from '../src/onnx/io';
import { loadCheckpoint, resolveCheckpoint } from '../src/runner/checkpoint';
import { Rng } from '../src/util/rng';
import { png } from './support/png';
import { runPython } from './support/python';

const CLI = path.resolve(__dirname, '../dist/cli.js');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
let dir: string; let gpt: string; let vit: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'infer-test-'));
  gpt = path.join(dir, 'gpt'); vit = path.join(dir, 'vit');
  for (const [out, args] of [[gpt, ['--steps', '300', '--batch', '16', '--seq', '32']], [vit, ['--model', 'vit-tiny', '--data', 'mnist', '--steps', '300']]] as const) {
    const r = cli(['train', ...args, '--threads', '2', '--quiet', '--out', out]);
    if (r.status !== 0) throw new Error(`train failed: ${r.stderr}`);
  }
}, 240_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const softmaxCE = (logits: Float32Array, V: number, targets: BigInt64Array): number => {
  let sum = 0;
  for (let i = 0; i < targets.length; i++) {
    const row = logits.subarray(i * V, (i + 1) * V);
    let mx = -Infinity; for (const x of row) mx = Math.max(mx, x);
    let z = 0; for (const x of row) z += Math.exp(x - mx);
    sum += Math.log(z) + mx - row[Number(targets[i])];
  }
  return sum / targets.length;
};

/**
 * A validation batch (4 × seq, seeded) through the inference model, its cross-entropy in float64 here, and
 * eval.onnx's loss on the same batch with the run's newest checkpoint.
 */
async function inferenceVsEval(run: string, model: string, seq: number, seed: number) {
  const td = loadText({ source: 'moby-dick', level: 'char' });
  const b = new TextBatcher(td.val, 4, seq, new Rng(seed)).next();
  const s = await ort.InferenceSession.create(model);
  const logits = (await s.run({ tokens: new Tensor('int64', b.tokens, [4, seq]) })).logits;
  const ce = softmaxCE(logits.data as Float32Array, td.vocabSize, b.targets);
  const ck = loadCheckpoint(resolveCheckpoint(run));
  const ev = await ort.InferenceSession.create(path.join(run, 'eval.onnx'));
  const feeds: Record<string, Tensor> = { tokens: new Tensor('int64', b.tokens, [4, seq]), targets: new Tensor('int64', b.targets, [4, seq]) };
  for (const name of ev.inputNames) if (ck.state[name]) feeds[name] = ck.state[name];
  const loss = (await ev.run(feeds)).loss.data[0] as number;
  return { b, logits, ce, loss, ck, ev, feeds };
}

test('sample: streamed text in the run\'s vocabulary, reproducible by seed; greedy is each step\'s argmax', async () => {
  const a = cli(['sample', '--run', gpt, '--tokens', '150', '--seed', '3']);
  expect(a.status).toBe(0);
  expect(a.stderr).toMatch(/^150 tokens at \d+ tokens\/s from .*step-0000300\.safetensors \(step 300\)\n$/);
  const text = a.stdout.replace(/\n$/, '');
  expect(Array.from(text).length).toBe(150);
  const vocab = new Set(loadText({ source: 'moby-dick', level: 'char' }).vocab);
  for (const c of text) expect(vocab.has(c)).toBe(true);
  // after 300 steps the model writes mostly letters and spaces: 0.85 measured, 0.847 on 2026-12-02 (a uniform draw
  // over the 83 characters: 0.67)
  expect(text.replace(/[^a-zA-Z ,.\n]/g, '').length / text.length).toBeGreaterThan(0.75);
  expect(cli(['sample', '--run', gpt, '--tokens', '150', '--seed', '3']).stdout).toBe(a.stdout);
  expect(cli(['sample', '--run', gpt, '--tokens', '150', '--seed', '4']).stdout).not.toBe(a.stdout);

  // temperature 0 against the exported model run here on the whole text: every token is the previous position's argmax
  const g = cli(['sample', '--run', gpt, '--prompt', 'The whale ', '--tokens', '40', '--temperature', '0']);
  expect(g.status).toBe(0);
  const full = g.stdout.replace(/\n$/, '');
  expect(full.startsWith('The whale ')).toBe(true);
  const model = path.join(dir, 'gpt.onnx');
  expect(cli(['export', '--run', gpt, '--inference', '--out', model]).status).toBe(0);
  const td = loadText({ source: 'moby-dick', level: 'char' });
  const ids = Array.from(full, (c) => td.vocab.indexOf(c));
  const s = await ort.InferenceSession.create(model);
  const logits = (await s.run({ tokens: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) })).logits;
  const V = td.vocabSize; const x = logits.data as Float32Array;
  for (let t = 'The whale '.length; t < ids.length; t++) {
    const row = x.subarray((t - 1) * V, t * V);
    expect(ids[t]).toBe(row.indexOf(Math.max(...row)));
  }
});

test('export --inference: standard ops only; its logits give eval.onnx\'s loss; Python onnxruntime gives the same logits', async () => {
  const model = path.join(dir, 'gpt-b.onnx');
  const r = cli(['export', '--run', gpt, '--inference', '--out', model]);
  expect(r.status).toBe(0);
  const proto = loadModel(model);
  expect(proto.opsetImport.map((o) => o.domain)).toEqual(['']);
  expect(proto.graph!.node.every((n) => n.domain === '')).toBe(true);
  expect(proto.functions.length).toBe(0);
  const { b, logits, ce, loss } = await inferenceVsEval(gpt, model, 32, 9);
  // measured |Δ|/loss 4e-8, 1.5e-8 on 2026-12-02 (float32 vs float64 reduction of the same logits)
  expect(Math.abs(ce - loss) / loss).toBeLessThan(2e-7);
  saveSafetensors(path.join(dir, 'feeds.safetensors'), { tokens: { dtype: 'int64', dims: [4, 32], data: b.tokens } });
  runPython('test/fixtures/ort_logits.py', [model, path.join(dir, 'feeds.safetensors'), path.join(dir, 'py.safetensors')]);
  const py = loadSafetensors(path.join(dir, 'py.safetensors')).tensors.get('logits')!.data as Float32Array;
  const node = logits.data as Float32Array;
  let d = 0; for (let i = 0; i < py.length; i++) d = Math.max(d, Math.abs(py[i] - node[i]));
  expect(d).toBe(0); // same ORT version and kernels on both sides: bit-identical (measured 0, again 2026-12-02)
});

test('Schedule-Free runs: the inference model holds x (its loss is eval.onnx\'s, which evaluates x), not the carried y', async () => {
  const run = path.join(dir, 'sf');
  const t = cli(['train', '--optimizer', 'sf-adamw', '--override', 'nLayer=1,nEmbd=32,nHead=2', '--steps', '60', '--batch', '8', '--seq', '16', '--threads', '2', '--quiet', '--out', run]);
  expect(t.status).toBe(0);
  const model = path.join(dir, 'sf.onnx');
  expect(cli(['export', '--run', run, '--inference', '--out', model]).status).toBe(0);
  const { ce, loss, ck, ev, feeds } = await inferenceVsEval(run, model, 16, 5);
  // eval.onnx runs the fused SelfAttention kernel, the inference model ORT's standard ops: their logits round apart,
  // and the float32 loss can land an ulp (6e-8 relative at this loss) away. Measured 2026-12-02: 5.3e-9; 2026-12-03,
  // after the attention kernel's softmax moved to 8-lane sums: 6.1e-8
  expect(Math.abs(ce - loss) / loss).toBeLessThan(3e-7);
  // and y gives a different loss (so the check can tell them apart)
  const y: Record<string, Tensor> = { ...feeds };
  for (const name of ev.inputNames) if (ck.state[`${name}.z`]) y[`${name}.z`] = ck.state[name];
  // measured 2026-12-02: 0.032 apart (x vs itself: 5e-9 relative, above)
  expect(Math.abs(((await ev.run(y)).loss.data[0] as number) - loss)).toBeGreaterThan(3e-3);
});

test('predict names MNIST digits from a ViT run; probabilities agree with Python onnxruntime', async () => {
  const { test: set } = loadMnist(0.15, 0);
  const imgs = path.join(dir, 'digits'); fs.mkdirSync(imgs);
  const n = 40; const px = 28 * 28; const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const k = i * 37 % set.count; labels.push(set.labels[k]);
    // back to pixels as a PNG holds them (the set is normalized for training)
    const u8 = Uint8Array.from(set.images.subarray(k * px, (k + 1) * px), (v) => Math.round((v * MNIST_NORM.std + MNIST_NORM.mean) * 255));
    fs.writeFileSync(path.join(imgs, `d${String(i).padStart(2, '0')}.png`), png(28, 28, 1, u8));
  }
  const r = cli(['predict', '--run', vit, imgs, '--top-k', '10', '--json']);
  expect(r.status).toBe(0);
  const preds = JSON.parse(r.stdout) as { file: string; top: { label: string; p: number }[] }[];
  expect(preds.length).toBe(n);
  let right = 0;
  for (const [i, p] of preds.entries()) {
    expect(Math.abs(p.top.reduce((a, t) => a + t.p, 0) - 1)).toBeLessThan(4e-15); // measured 2026-12-02: 4.4e-16
    if (p.top[0].label === String(labels[i])) right++;
  }
  console.log(`predict: ${right} of ${n} MNIST test digits right`);
  // 300 steps of vit-tiny: 28 of these 40 right, measured 2026-12-02 (chance: 4)
  expect(right).toBeGreaterThanOrEqual(20);
  const human = cli(['predict', '--run', vit, path.join(imgs, 'd00.png')]);
  expect(human.stdout).toMatch(/d00\.png: \d \d+\.\d%, \d \d+\.\d%, \d \d+\.\d%\n$/);
  // the same probabilities from the exported model in Python onnxruntime
  const model = path.join(dir, 'vit.onnx');
  expect(cli(['export', '--run', vit, '--inference', '--out', model]).status).toBe(0);
  const data = new Float32Array(n * px);
  for (let i = 0; i < n; i++) {
    const k = i * 37 % set.count;
    data.set(set.images.subarray(k * px, (k + 1) * px).map((v) => (Math.round((v * MNIST_NORM.std + MNIST_NORM.mean) * 255) / 255 - MNIST_NORM.mean) / MNIST_NORM.std), i * px);
  }
  saveSafetensors(path.join(dir, 'img.safetensors'), { images: { dtype: 'float32', dims: [n, 1, 28, 28], data } });
  runPython('test/fixtures/ort_logits.py', [model, path.join(dir, 'img.safetensors'), path.join(dir, 'img-py.safetensors')]);
  const py = loadSafetensors(path.join(dir, 'img-py.safetensors')).tensors.get('logits')!.data as Float32Array;
  for (const [i, p] of preds.entries()) {
    const row = py.subarray(i * 10, (i + 1) * 10); const mx = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - mx), 0);
    // float32 softmax vs this float64 one of Python's logits: measured 2026-12-02: 2.3e-7
    for (const t of p.top) expect(Math.abs(t.p - Math.exp(row[Number(t.label)] - mx) / z)).toBeLessThan(2e-6);
  }
});

test('bad input: one line naming what is wrong', () => {
  const a = cli(['sample', '--run', vit]);
  expect(a.status).toBe(1);
  expect(a.stderr).toMatch(/^ademamix sample: .*vit-tiny is an image model; use predict\n$/);
  const b = cli(['sample', '--run', gpt, '--temperature', 'hot']);
  expect(b.status).toBe(2);
  expect(b.stderr).toMatch(/^ademamix: sample: --temperature takes a number ≥ 0 .*got 'hot'\n/);
  const c = cli(['predict', '--run', vit, '--frobnicate', 'x.png']);
  expect(c.status).toBe(2);
  expect(c.stderr).toMatch(/unknown option '--frobnicate' \(it takes --run, --checkpoint, --top-k, --json\)/);
  const d = cli(['sample', '--run', gpt, '--prompt', 'snow ☃']);
  expect(d.status).toBe(1);
  expect(d.stderr).toMatch(/^ademamix sample: --prompt: the character "☃" is not in the run's vocabulary \(its 83 characters\)\n$/);
  const e = cli(['sample', '--help']);
  expect(e.status).toBe(0);
  expect(e.stdout).toMatch(/^usage:\n  sample --run DIR/);
});
