// Models exported with nothing but torch.onnx.export's defaults (both exporters) train every parameter with
// torch.autograd's gradients, or the export stops with one error naming what cannot train and why
// (test/fixtures/torch_defaults.py writes the models, batches, gradients and state_dicts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import type { TensorData } from '../src/graph/tensor-data';
import { exportTorchCheckpoint } from '../src/interop/checkpoint';
import { exportTrainingFromOnnx, type OnnxTrainingResult } from '../src/interop/export';
import { UntrainedError } from '../src/interop/params';
import { loadSafetensors } from '../src/io/safetensors';
import { encodeModel } from '../src/onnx/io';
import { adamw, optimizer } from '../src/train/optimizers';
import { NativeSession } from '../src/native';
import { runPython } from './support/python';

interface Case { case: string; model: string; exporter: string; kind: string; params: string[][]; state_keys: string[] }

// What the defaults fold away for good: with static shapes, position embeddings read as `wpe(arange(T))` become a
// constant holding rows 0..T-1 only, so the table is not in the file. Those exports must fail naming it.
const FOLDED: Record<string, RegExp> = {
  'hf-gpt2-dynamo': /m\.transformer\.wpe\.weight: the exported graph does not hold it \(the exporter folded/,
  'gpt-dynamo': /transformer\.wpe\.weight: the exported graph does not hold it/,
  'gpt-torchscript': /onnx::Add_\d+: a constant the exporter folded/,
};

let dir: string;
let cases: Case[];
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-defaults-'));
  runPython('test/fixtures/torch_defaults.py', ['prepare', dir]);
  cases = JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8')) as Case[];
}, 300_000);
afterAll(() => { if (dir && !process.env.KEEP_INTEROP) fs.rmSync(dir, { recursive: true, force: true }); });

const toTensor = (t: TensorData): Tensor => new Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims);

/**
 * max|a − b| / max(max|b|, 1e-2·scale), scale: the largest gradient of the model. Some parameters have a gradient
 * that is zero in exact arithmetic (key biases: softmax ignores a shift shared by a row of scores; a per-token bias
 * that only reaches LayerNorms): both frameworks compute rounding noise there, compared against the model's scale.
 */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, scale: number): number {
  let d = 0; let s = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return d / Math.max(s, 1e-2 * scale, 1e-30);
}
const maxAbs = (x: ArrayLike<number>): number => { let m = 0; for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i])); return m; };

/** Loss and every gradient of train.onnx (stock onnxruntime-node: the optimizer runs as its function body) vs torch. */
async function compareGradients(c: Case, r: OnnxTrainingResult): Promise<{ worst: number; name: string }> {
  const batch = loadSafetensors(path.join(dir, `${c.model}-batch.safetensors`)).tensors;
  const ref = loadSafetensors(path.join(dir, `${c.model}-grads.safetensors`)).tensors;
  const s = await ort.InferenceSession.create(encodeModel(r.artifacts.train));
  const feeds: Record<string, Tensor> = { x: toTensor(batch.get('x')!), labels: toTensor(batch.get('labels')!) };
  for (const [k, v] of r.artifacts.initialState) feeds[k] = toTensor(v);
  const out = await s.run(feeds);
  const loss = out.loss.data[0] as number; const refLoss = ref.get('loss')!.data[0] as number;
  // measured 2026-12-02: ≤ 1.5e-7 relative over every case (1 ulp; 0 for five of them); the old bound was 1e-5
  expect(Math.abs(loss - refLoss) / Math.abs(refLoss)).toBeLessThan(1e-6);
  let worst = 0; let name = '';
  const scale = Math.max(...[...ref].filter(([k]) => k !== 'loss').map(([, t]) => maxAbs(t.data as Float32Array)));
  for (const e of r.manifest.torch!.params) {
    if (!r.manifest.params.includes(e.onnx)) continue;
    const g = ref.get(e.torch[0]);
    if (!g) throw new Error(`${c.case}: torch has no gradient for '${e.torch[0]}'`);
    const got = out[`${e.onnx}.grad`];
    expect(got.dims).toEqual(g.dims);
    const err = relErr(got.data as Float32Array, g.data as Float32Array, scale);
    if (err > worst) { worst = err; name = e.onnx; }
  }
  return { worst, name };
}

// the gradient bound: measured ≤ 7.9e-7 over every case, 3.6e-6 for the mixer's zero-gradient token bias (ORT 1.30
// CPU vs torch 2.13 CPU, fp32, 2026-12-02); the issue asks for 1e-4
const GRAD_RTOL = 3e-5;

describe('torch.onnx.export defaults: every parameter trains with torch\'s gradient, or a clear error', () => {
  const written = new Map<string, string>();
  test.each([
    'hf-gpt2-torchscript', 'hf-llama-dynamo', 'hf-llama-mha-torchscript', 'hf-vit-dynamo', 'hf-vit-torchscript',
    'vit-dynamo', 'vit-torchscript', 'llama-style-dynamo', 'llama-style-torchscript', 'mixer-dynamo', 'mixer-torchscript',
  ])('%s', async (name) => {
    const c = cases.find((x) => x.case === name)!;
    expect(c).toBeDefined();
    const out = path.join(dir, `${name}-art`);
    const log: string[] = [];
    const r = exportTrainingFromOnnx({ onnx: path.join(dir, `${name}.onnx`), loss: 'ce:labels@logits', optimizer: adamw(), emitGradients: true, out, log: (s) => log.push(s) });
    // as many tensors train as the model has parameters (tied ones once), each torch parameter among them
    expect(r.manifest.params.length).toBe(c.params.length);
    const trainedTorch = new Set(r.manifest.torch!.params.filter((e) => r.manifest.params.includes(e.onnx)).flatMap((e) => e.torch));
    for (const keys of c.params) expect({ keys, found: keys.some((k) => trainedTorch.has(k)) }).toEqual({ keys, found: true });
    expect(log.join('\n')).toMatch(new RegExp(`^trains ${c.params.length} tensors`, 'm'));
    const { worst, name: at } = await compareGradients(c, r);
    console.log(`${name}: ${r.manifest.params.length} parameters train; worst gradient max|Δ|/max|g| ${worst.toExponential(2)} (${at})`);
    expect(worst).toBeLessThan(GRAD_RTOL);
    // the weights go back under the torch names
    const sdFile = path.join(dir, `${name}-sd.safetensors`);
    const sd = exportTorchCheckpoint(out, path.join(out, 'initial_state.safetensors'), sdFile);
    expect(sd.missing).toEqual([]);
    written.set(name, sdFile);
  });

  test.each(Object.keys(FOLDED))('%s: the folded position table is an error naming it; --allow-untrained trains the rest; --torch-state recovers it', async (name) => {
    const c = cases.find((x) => x.case === name)!;
    const onnx = path.join(dir, `${name}.onnx`);
    let err: unknown;
    try { exportTrainingFromOnnx({ onnx, loss: 'ce:labels@logits', optimizer: adamw() }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UntrainedError);
    expect((err as Error).message).toMatch(FOLDED[name]);
    expect((err as Error).message).toMatch(/--allow-untrained/);
    const r = exportTrainingFromOnnx({ onnx, loss: 'ce:labels@logits', optimizer: adamw(), emitGradients: true, allowUntrained: true });
    expect(r.choice.untrained.length).toBe(1);
    expect(r.manifest.params.length).toBe(c.params.length - 1);
    expect((await compareGradients(c, r)).worst).toBeLessThan(GRAD_RTOL);
    // with the model's state_dict beside it, the folded table is recovered by value and everything trains
    const out = path.join(dir, `${name}-art`);
    const log: string[] = [];
    const full = exportTrainingFromOnnx({ onnx, loss: 'ce:labels@logits', optimizer: adamw(), emitGradients: true, out,
      torchState: path.join(dir, `${c.model}-state.safetensors`), log: (s) => log.push(s) });
    expect(full.manifest.params.length).toBe(c.params.length);
    expect(log.join('\n')).toMatch(/wpe\.weight' was folded by the exporter into .*\(its first 8 rows\); recovered from --torch-state/);
    const { worst, name: at } = await compareGradients(c, full);
    console.log(`${name} with --torch-state: ${full.manifest.params.length} parameters train; worst gradient ${worst.toExponential(2)} (${at})`);
    expect(worst).toBeLessThan(GRAD_RTOL);
    const sdFile = path.join(dir, `${name}-sd.safetensors`);
    expect(exportTorchCheckpoint(out, path.join(out, 'initial_state.safetensors'), sdFile).missing).toEqual([]);
    written.set(name, sdFile);
  });

  test('an op without a gradient rule on the loss\'s path: one error naming the op, the node and the source line', () => {
    let err: unknown;
    try { exportTrainingFromOnnx({ onnx: path.join(dir, 'prod-dynamo.onnx'), loss: 'ce:labels@logits', optimizer: adamw() }); } catch (e) { err = e; }
    expect((err as Error).message).toMatch(/no gradient rule for 1 node\(s\) between the parameters and the loss: ReduceProd node '[^']+' \(op ReduceProd, from \S*torch_defaults\.py:\d+\)/);
  });

  test('Schedule-Free: the state_dict handed back holds x = (y − (1−β1)·z)/β1, the point evaluation reads', () => {
    const out = path.join(dir, 'sf-art');
    const r = exportTrainingFromOnnx({ onnx: path.join(dir, 'mixer-dynamo.onnx'), loss: 'ce:labels@logits', optimizer: optimizer('sf-adamw', { lr: 1e-2, beta1: 0.9 }), out });
    const batch = loadSafetensors(path.join(dir, 'mixer-batch.safetensors')).tensors;
    const s = NativeSession.create(path.join(out, 'train.onnx'), { intraOpThreads: 1 });
    try {
      s.carry(r.artifacts.carry);
      s.setState(Object.fromEntries([...r.artifacts.initialState].map(([k, v]) => [k, toTensor(v)])));
      for (let i = 0; i < 3; i++) s.run({ x: toTensor(batch.get('x')!), labels: toTensor(batch.get('labels')!) }, ['loss']);
      const st = s.getState();
      const state = new Map(Object.entries(st).map(([k, t]) => [k, { dtype: t.type as 'float32', dims: [...t.dims], data: t.data as Float32Array }]));
      const sd = exportTorchCheckpoint(out, state, path.join(dir, 'sf-sd.safetensors'));
      let worst = 0;
      for (const p of r.manifest.params) {
        const y = st[p].data as Float32Array; const z = st[`${p}.z`].data as Float32Array;
        const got = sd.tensors.get(p)!.data as Float32Array;
        for (let i = 0; i < y.length; i++) {
          const x = (y[i] - 0.1 * z[i]) / 0.9; // float64, from the definition
          worst = Math.max(worst, Math.abs(got[i] - x) / Math.max(Math.abs(x), 1e-3));
        }
      }
      expect(sd.tensors.get(r.manifest.params[0])!.data).not.toEqual(st[r.manifest.params[0]].data); // x ≠ y after 3 steps
      console.log(`Schedule-Free hand-back: x vs float64 (y − (1−β1)z)/β1, worst relative ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-6); // measured 1.3e-7 (float32 rounding of the same formula)
    } finally { s.release(); }
  });

  test('the state_dicts load into the torch models with strict=True and equal the originals', () => {
    expect(written.size).toBe(14);
    const res = JSON.parse(runPython('test/fixtures/torch_defaults.py', ['check', dir])) as Record<string, { error: string[] | null; max_abs: number; keys: number }>;
    for (const name of written.keys()) {
      expect({ name, error: res[name].error }).toEqual({ name, error: null });
      expect({ name, max_abs: res[name].max_abs }).toEqual({ name, max_abs: 0 });
    }
  });
});
