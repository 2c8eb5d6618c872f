// PyTorch interop, end to end: graphs/torch_models.py's GPT and ViT are exported at test time with both exporters
// (TorchScript and dynamo, graphs/export_torch.py), imported, and trained here; PyTorch is the reference
// (test/fixtures/torch_interop.py).
//  1. gradients: every parameter's gradient from train.onnx vs torch.autograd on the same weights and batch;
//  2. trajectories: 50 steps of AdEMAMix (schedules on), Simplified-AdEMAMix and AdamW vs PyTorch training with the
//     optimizers written from the papers' equations (and torch.optim.AdamW);
//  3. the trained parameters as a torch state_dict: load_state_dict(strict=True) gives the logits ORT computes;
//  4. the same train.onnx in Python onnxruntime with the op library gives the Node runner's losses.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import type { TensorData } from '../src/graph/tensor-data';
import { exportTorchCheckpoint } from '../src/interop/checkpoint';
import { exportTrainingFromOnnx, type OnnxTrainingResult } from '../src/interop/export';
import { readParamsOption, type TorchParamMap } from '../src/interop/params';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors';
import { NativeSession } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';
import { ademamix, adamw, simplifiedAdemamix, type OptimizerSpec } from '../src/train/optimizers';
import { runPython } from './support/python';

const MODELS = ['gpt', 'vit'] as const;
const EXPORTERS = ['torchscript', 'dynamo'] as const;
type Model = typeof MODELS[number];
const STEPS = 50;
const ORT_STEPS = 5;
const lr = (peak: number) => ({ lr: peak, warmup: 5, decay: 'cosine' as const, totalSteps: STEPS, minLr: peak / 10 });
// The same settings go to the PyTorch side as JSON.
const OPTIMIZERS: Record<string, OptimizerSpec> = {
  ademamix: ademamix({ lr: lr(2e-3), beta1: 0.9, beta2: 0.999, beta3: 0.999, alpha: 5, tAlpha: STEPS, tBeta3: STEPS, eps: 1e-8, weightDecay: 0.1 }),
  simplified: simplifiedAdemamix({ lr: lr(1e-4), beta1: 0.99, betaMin: 0.9, tBeta1: STEPS, beta2: 0.999, alpha: 2, eps: 1e-8, weightDecay: 0.1 }),
  adamw: adamw({ lr: lr(2e-3), beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }),
};
const BATCH: Record<Model, number[]> = { gpt: [2, 16], vit: [4] };
const lossSpec = (m: Model): string => (m === 'gpt' ? 'ce:targets' : 'ce:labels');
const modelInput = (m: Model): string => (m === 'gpt' ? 'tokens' : 'images');

let dir: string;
const cfgFile = (): string => path.join(dir, 'config.json');
const batches = new Map<Model, Map<string, TensorData>>();

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-torch-'));
  fs.writeFileSync(cfgFile(), JSON.stringify({
    models: MODELS, exporters: EXPORTERS, steps: STEPS, ortSteps: ORT_STEPS, batch: BATCH,
    optimizers: Object.fromEntries(Object.entries(OPTIMIZERS).map(([k, v]) => [k, v])),
    opsLibrary: opsLibraryPath(), // throws when the build lacks it: never a quiet run of the function bodies
  }));
  runPython('test/fixtures/torch_interop.py', ['prepare', dir, cfgFile()]);
  for (const m of MODELS) batches.set(m, loadSafetensors(path.join(dir, `${m}-batches.safetensors`)).tensors);
});
afterAll(() => { if (dir && !process.env.KEEP_INTEROP) fs.rmSync(dir, { recursive: true, force: true }); });

/** Batch i of a stacked [N, …] tensor. */
function slice(t: TensorData, i: number): Tensor {
  const per = t.data.length / t.dims[0];
  const data = t.data.subarray(i * per, (i + 1) * per);
  return new Tensor(t.dtype as 'float32', data as Float32Array, t.dims.slice(1));
}
const feedsAt = (m: Model, i: number): Record<string, Tensor> =>
  Object.fromEntries([...batches.get(m)!].map(([k, t]) => [k, slice(t, i)]));
const toTensor = (t: TensorData): Tensor => new Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims);
const fromTensor = (t: Tensor): TensorData => ({ dtype: t.type as 'float32', dims: [...t.dims], data: t.data as Float32Array });

/** The torch tensor for an initializer: by the export map, transposed where the graph holds it transposed. */
function torchValue(map: TorchParamMap, ref: Map<string, TensorData>, onnx: string): Float32Array {
  const e = map.params.find((p) => p.onnx === onnx);
  if (!e) throw new Error(`'${onnx}' is not in the export map`);
  const t = ref.get(e.torch[0]);
  if (!t) throw new Error(`no PyTorch tensor '${e.torch[0]}'`);
  const x = t.data as Float32Array;
  if (!e.transpose) return x;
  const [r, c] = t.dims; const out = new Float32Array(x.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = x[i * c + j];
  return out;
}

/** max|a − b| / max|b| over the elements `keep` accepts: the error relative to the tensor's scale. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, keep: (i: number) => boolean = () => true): number {
  let d = 0; let s = 0;
  for (let i = 0; i < b.length; i++) {
    if (!keep(i)) continue;
    d = Math.max(d, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i]));
  }
  return s === 0 ? d : d / s;
}

/**
 * The key part of a fused qkv bias has a gradient that is zero in exact arithmetic (softmax ignores a shift shared by
 * a row of scores), so what both frameworks compute there is rounding noise, which Adam-type optimizers turn into
 * full-size steps in arbitrary directions. Those elements are left out of the trajectory comparison.
 */
const notKeyBias = (name: string, n: number): ((i: number) => boolean) =>
  (/(qkv|c_attn)\.bias$/.test(name) ? (i) => i < n / 3 || i >= (2 * n) / 3 : () => true);

const combos = MODELS.flatMap((m) => EXPORTERS.map((e) => [m, e] as const));
const onnxFile = (m: Model, e: string): string => path.join(dir, `${m}-${e}.onnx`);

describe('gradients of imported PyTorch exports vs torch.autograd (fp32, same weights and batch)', () => {
  test.each(combos)('%s, %s exporter: every parameter', async (m, e) => {
    const mapFile = `${onnxFile(m, e)}.params.json`;
    const { map } = readParamsOption(mapFile);
    const r = exportTrainingFromOnnx({ onnx: onnxFile(m, e), loss: lossSpec(m), params: mapFile, optimizer: adamw(), emitGradients: true });
    const torchGrads = loadSafetensors(path.join(dir, `${m}-grads.safetensors`)).tensors;
    // every PyTorch parameter trains, each once
    expect(r.manifest.params.length).toBe(map!.params.length);
    expect(map!.missing).toEqual([]);
    // without the map, the default choice finds the same parameters (and leaves the mask buffer out)
    const byDefault = exportTrainingFromOnnx({ onnx: onnxFile(m, e), loss: lossSpec(m), optimizer: adamw() });
    expect(byDefault.manifest.params.slice().sort()).toEqual(r.manifest.params.slice().sort());
    const s = await ort.InferenceSession.create(encodeModel(r.artifacts.train));
    const state = Object.fromEntries([...r.artifacts.initialState].map(([k, v]) => [k, toTensor(v)]));
    const out = await s.run({ ...feedsAt(m, 0), ...state });
    // measured 2026-12-02: 0 on all four (losses 4.85, 2.43); a few float32 ulps allowed for another summation order
    expect(Math.abs((out.loss.data[0] as number) - (torchGrads.get('loss')!.data[0] as number))).toBeLessThan(2e-6);
    const errs: Record<string, number> = {};
    for (const p of r.manifest.params) errs[p] = relErr(out[`${p}.grad`].data as Float32Array, torchValue(map!, torchGrads, p));
    const worst = Object.entries(errs).sort((a, b) => b[1] - a[1])[0];
    console.log(`${m}/${e}: ${r.manifest.params.length} gradients, worst max|Δ|/max|g| = ${worst[1].toExponential(2)} (${worst[0]})`);
    // measured 2026-12-02: worst 6.2e-7 (vit/torchscript), 5.6e-7 to 6.2e-7 over the four (the old bound was 1e-4)
    for (const [p, err] of Object.entries(errs)) expect({ p, err: err <= 5e-6 }).toEqual({ p, err: true });
  });
});

// Tolerances for 50 steps in float32 (the test prints the measured maxima; on ORT 1.30 CPU / torch 2.13 CPU: loss
// ≤ 1.7e-6 relative, parameters ≤ 4e-5 of each tensor's max |p|; re-measured 2026-12-02: loss ≤ 1.47e-6 (vit/dynamo/
// ademamix), parameters ≤ 9.7e-5 (gpt/torchscript/adamw, c_fc.weight), so the old 2e-4 left only 2×). Each
// framework sums in its own order, so gradients differ by ~1e-6 relative; Adam-type updates divide by √ν, which turns
// that into parameter differences of order lr·1e-6 per step that accumulate, and feed back through the loss.
// The bounds leave 5–7× room.
const LOSS_RTOL = 1e-5;
const PARAM_RTOL = 5e-4;
const trained = new Map<string, { losses: number[]; result: OnnxTrainingResult; state: Map<string, TensorData> }>();

describe('50 training steps vs PyTorch with the optimizers written from the papers', () => {
  const cases = combos.flatMap(([m, e]) => Object.keys(OPTIMIZERS).map((o) => [m, e, o] as const));
  test.each(cases)('%s, %s exporter, %s', (m, e, o) => {
    const out = path.join(dir, `${m}-${e}-${o}`);
    const mapFile = `${onnxFile(m, e)}.params.json`;
    const { map } = readParamsOption(mapFile);
    const r = exportTrainingFromOnnx({ onnx: onnxFile(m, e), loss: lossSpec(m), params: mapFile, optimizer: OPTIMIZERS[o], out });
    // the weight-decay mask mirrored on the PyTorch side (rank ≥ 2, not a position embedding) selects the same tensors
    const torchDecayed = new Set(r.manifest.decayed.map((p) => map!.params.find((x) => x.onnx === p)!.torch[0]));
    expect(torchDecayed.size).toBe(r.manifest.decayed.length);
    const s = NativeSession.create(path.join(out, 'train.onnx'), { intraOpThreads: 1 });
    try {
      s.carry(r.artifacts.carry);
      s.setState(Object.fromEntries([...r.artifacts.initialState].map(([k, v]) => [k, toTensor(v)])));
      const losses: number[] = [];
      for (let i = 0; i < STEPS; i++) losses.push(s.run(feedsAt(m, i), ['loss']).loss.data[0] as number);
      const ref = loadSafetensors(path.join(dir, `${m}-${o}-traj.safetensors`)).tensors;
      const refLoss = ref.get('losses')!.data as Float64Array;
      const lossErr = Math.max(...losses.map((l, i) => Math.abs(l - refLoss[i]) / Math.abs(refLoss[i])));
      const st = s.getState(r.manifest.params);
      const state = new Map(Object.entries(st).map(([k, t]) => [k, fromTensor(t)]));
      let worst = 0; let worstName = '';
      for (const p of r.manifest.params) {
        const a = state.get(p)!.data as Float32Array;
        const err = relErr(a, torchValue(map!, ref, p), notKeyBias(p, a.length));
        if (err > worst) { worst = err; worstName = p; }
      }
      console.log(`${m}/${e}/${o}: loss ${refLoss[0].toFixed(4)} → ${refLoss[STEPS - 1].toFixed(4)}; max rel loss diff ${lossErr.toExponential(2)}; ` +
        `worst param max|Δ|/max|p| ${worst.toExponential(2)} (${worstName})`);
      expect(refLoss[STEPS - 1]).toBeLessThan(refLoss[0]); // it trains
      expect(lossErr).toBeLessThan(LOSS_RTOL);
      expect(worst).toBeLessThan(PARAM_RTOL);
      trained.set(`${m}-${e}-${o}`, { losses, result: r, state });
    } finally { s.release(); }
  });
});

describe('hand-off to PyTorch and Python onnxruntime', () => {
  test('state_dicts load strictly into the PyTorch models and give ORT\'s logits; Python ORT gives the Node losses', async () => {
    for (const [m, e] of combos) {
      const key = `${m}-${e}`;
      const run = trained.get(`${key}-ademamix`);
      if (!run) throw new Error(`${key}: the AdEMAMix training test did not complete`);
      const art = path.join(dir, `${key}-ademamix`);
      const sd = exportTorchCheckpoint(art, run.state, path.join(dir, `${key}-state_dict.safetensors`));
      expect(sd.missing).toEqual([]);
      // ORT's logits with the trained parameters (forward.onnx: the model's own outputs, parameters as inputs)
      const fwd = await ort.InferenceSession.create(path.join(art, 'forward.onnx'));
      const feeds: Record<string, Tensor> = { [modelInput(m)]: feedsAt(m, 0)[modelInput(m)] };
      for (const [k, v] of run.state) feeds[k] = toTensor(v);
      const logits = (await fwd.run(feeds)).logits as Tensor;
      saveSafetensors(path.join(dir, `${key}-ort-logits.safetensors`), { logits: fromTensor(logits) });
    }
    const res = JSON.parse(runPython('test/fixtures/torch_interop.py', ['check', dir, cfgFile()])) as {
      checkpoint: Record<string, { max_abs: number; max_ref: number; keys: number }>; ort: Record<string, number[]>;
    };
    for (const [m, e] of combos) {
      const key = `${m}-${e}`;
      const c = res.checkpoint[key];
      const node = trained.get(`${key}-ademamix`)!.losses.slice(0, ORT_STEPS);
      const py = res.ort[key];
      const pyErr = Math.max(...py.map((l, i) => Math.abs(l - node[i])));
      console.log(`${key}: state_dict of ${c.keys} tensors, logits max|Δ| ${c.max_abs.toExponential(2)} (max|logit| ${c.max_ref.toFixed(3)}); ` +
        `Python ORT vs Node losses over ${ORT_STEPS} steps: max|Δ| ${pyErr.toExponential(2)}`);
      // measured 2026-12-02: logits 7.2e-7 (gpt), 4.8e-7 (vit) at |logit| ≤ 3; Python ORT's losses bit-identical (0)
      expect(c.max_abs).toBeLessThanOrEqual(5e-6);
      expect(pyErr).toBe(0);
    }
  });
});
