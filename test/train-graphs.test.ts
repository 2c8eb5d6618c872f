// Whole training graphs (assembleTraining on the GPT and ViT presets): gradients against finite differences, losses
// that fall with each optimizer through the native session, the same train.onnx in a stock InferenceSession (function
// bodies instead of the op library), and the in-graph optimizer against the float64 references.
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { buildGpt, gptConfig } from '../graphs/gpt';
import { buildVit, vitConfig } from '../graphs/vit';
import { NativeSession } from '../src/native';
import { encodeModel } from '../src/onnx/io';
import { AdamWRef, AdemamixRef, SimplifiedAdemamixRef } from '../src/optim/reference';
import { alphaAt, halfLifeBetaAt, lrAt, type LrSchedule } from '../src/optim/schedules';
import { DEFAULT_CONFIG, type OptimizerName, type TrainConfig } from '../src/runner/config';
import { buildTask, type Batch } from '../src/runner/task';
import { Trainer } from '../src/runner/trainer';
import { assembleTraining, defaultWeightDecayMask, type TrainingArtifacts } from '../src/train/assemble';
import { ademamix, adamw, simplifiedAdemamix, type AdamWSpec, type AdemamixSpec, type OptimizerSpec, type SimplifiedSpec } from '../src/train/optimizers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../src/util/rng';

const toTensor = (v: { dtype: string; data: ArrayLike<number> | BigInt64Array | BigUint64Array; dims: number[] }): Tensor =>
  new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims);
const initFeeds = (art: TrainingArtifacts): Record<string, Tensor> =>
  Object.fromEntries([...art.initialState].map(([k, v]) => [k, toTensor(v)]));

/** Moby-Dick char batches (vocabulary 83). */
function textBatches(n: number, batch = 4, seq = 32, seed = 1): { batches: Batch[] } {
  const task = buildTask({ ...DEFAULT_CONFIG, batch, seq, seed, evalBatches: 1 });
  return { batches: Array.from({ length: n }, () => task.train.next()) };
}

describe('whole-model gradients vs central finite differences (float32, per parameter tensor)', () => {
  // For each parameter tensor P: the directional derivative of the loss along û = ∇_P/|∇_P| must equal |∇_P|, and
  // along a random unit direction r̂ it must equal ⟨∇_P, r̂⟩. Steps are large enough that float32 rounding of the
  // loss (~1e-7 relative) is far below the signal; central differences have O(h²) truncation error.
  async function check(model: ReturnType<typeof buildGpt>, feeds: Record<string, Tensor>, tol: { u: number; r: number }): Promise<void> {
    const errs: { p: string; u: number; r: number }[] = [];
    const art = assembleTraining({ forward: model.g, loss: model.loss, optimizer: adamw(), emitGradients: true });
    const train = await ort.InferenceSession.create(encodeModel(art.train));
    const evalS = await ort.InferenceSession.create(encodeModel(art.eval));
    const state = initFeeds(art);
    const out = await train.run({ ...feeds, ...state }, art.params.map((p) => `${p}.grad`));
    const lossAt = async (name: string, dir: Float64Array, h: number): Promise<number> => {
      const base = state[name].data as Float32Array;
      const shifted = Float32Array.from(base, (v, i) => v + h * dir[i]);
      const params = Object.fromEntries(art.params.map((p) => [p, p === name ? new Tensor('float32', shifted, state[p].dims) : state[p]]));
      return (await evalS.run({ ...feeds, ...params })).loss.data[0] as number;
    };
    const rng = new Rng(11);
    let checked = 0;
    for (const p of art.params) {
      const g = Float64Array.from(out[`${p}.grad`].data as Float32Array);
      const norm = Math.hypot(...g);
      if (norm < 1e-6) continue; // e.g. position rows no batch touches: nothing measurable along any direction
      const r = Float64Array.from(g, () => rng.normal()); const rn = Math.hypot(...r);
      for (let i = 0; i < r.length; i++) r[i] /= rn;
      const u = Float64Array.from(g, (v) => v / norm);
      const h = 1e-2 / Math.max(norm, 1e-2); // loss moves by ~1e-2 along û
      const fdU = ((await lossAt(p, u, h)) - (await lossAt(p, u, -h))) / (2 * h);
      const dr = g.reduce((s, v, i) => s + v * r[i], 0);
      const fdR = ((await lossAt(p, r, h)) - (await lossAt(p, r, -h))) / (2 * h);
      errs.push({ p, u: Math.abs(fdU - norm) / norm, r: Math.abs(fdR - dr) / norm });
      checked++;
    }
    const worstU = Math.max(...errs.map((e) => e.u)); const worstR = Math.max(...errs.map((e) => e.r));
    console.log(`${checked} of ${art.params.length} tensors: along the gradient max rel err ${worstU.toExponential(2)}, along a random direction ${worstR.toExponential(2)} (of |grad|)`);
    expect(errs.filter((e) => e.u > tol.u || e.r > tol.r)).toEqual([]);
    expect(checked).toBeGreaterThan(art.params.length * 0.8);
  }

  test('gpt-tiny', async () => {
    const { batches } = textBatches(1);
    // measured 2026-12-02: 3.05e-3 along the gradient, 1.99e-4 along a random direction (worst of 28 tensors)
    await check(buildGpt(gptConfig('gpt-tiny', { vocabSize: 83 }), 3), batches[0].feeds, { u: 1.5e-2, r: 1.5e-3 });
  });

  test('vit-tiny', async () => {
    const task = buildTask({ ...DEFAULT_CONFIG, model: 'vit-tiny', data: 'mnist', batch: 8, evalBatches: 1 });
    // measured 2026-12-02: 1.88e-3 along the gradient, 9.48e-5 along a random direction (worst of 32 tensors)
    await check(buildVit(vitConfig('vit-tiny'), 3), task.train.next().feeds, { u: 1e-2, r: 7e-4 });
  });
});

describe('training through the native session: the loss falls with every optimizer', () => {
  const cases: [string, OptimizerName, number][] = [];
  for (const model of ['gpt-tiny', 'vit-tiny']) for (const opt of ['ademamix', 'simplified', 'adamw'] as const) cases.push([model, opt, 0]);
  test.each(cases)('%s with %s', async (model, optimizer) => {
    const vit = model.startsWith('vit');
    const c: TrainConfig = {
      ...DEFAULT_CONFIG, model, optimizer, data: vit ? 'mnist' : 'moby-dick', steps: 300, batch: vit ? 32 : 8, seq: 32,
      lr: optimizer === 'simplified' ? 3e-4 : 2e-3, warmup: 20, alpha: optimizer === 'simplified' ? 2 : 5, beta3: 0.999,
      evalEvery: 0, checkpointEvery: 0, logEvery: 1, threads: 2,
    };
    const losses: number[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-graphs-'));
    const t = Trainer.create(c, { outDir: dir, quiet: true, onRecord: (r) => losses.push(r.loss!) });
    await t.train(); t.release();
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = losses.slice(-30).reduce((a, b) => a + b) / 30;
    // from ~ln(vocab) (4.4) / ln(10) (2.3) to well below: char statistics / digit shapes are being learned
    expect(last / first).toBeLessThan(vit ? 0.55 : 0.75);
  });
});

describe('the same train.onnx in a stock InferenceSession (function bodies) gives the same losses', () => {
  test.each(['ademamix', 'simplified', 'adamw'] as const)('gpt-tiny, %s', async (name) => {
    const m = buildGpt(gptConfig('gpt-tiny', { vocabSize: 83 }), 5);
    const spec: OptimizerSpec = name === 'ademamix' ? ademamix({ lr: 3e-3, alpha: 5, beta3: 0.999, tAlpha: 20, tBeta3: 20, weightDecay: 0.1 })
      : name === 'simplified' ? simplifiedAdemamix({ lr: 3e-4, alpha: 2, tBeta1: 20, biasCorrection1: true, weightDecay: 0.1 })
        : adamw({ lr: 3e-3, weightDecay: 0.1 });
    const art = assembleTraining({ forward: m.g, loss: m.loss, optimizer: spec });
    const bytes = encodeModel(art.train);
    const { batches } = textBatches(12);
    const native = NativeSession.create(bytes, { intraOpThreads: 2 });
    native.carry(art.carry); native.setState(initFeeds(art));
    const stock = await ort.InferenceSession.create(bytes);
    let state = initFeeds(art);
    for (const [i, b] of batches.entries()) {
      const a = native.run(b.feeds, ['loss']).loss.data[0] as number;
      const out = await stock.run({ ...b.feeds, ...state });
      const s = out.loss.data[0] as number;
      state = Object.fromEntries(Object.entries(art.carry).map(([o, inp]) => [inp, out[o] as unknown as Tensor]));
      expect({ step: i + 1, diff: Math.abs(a - s) / s < 1e-4 }).toEqual({ step: i + 1, diff: true });
    }
    // and the states agree after 12 steps. Not to float32 rounding everywhere: the key part of each qkv bias has an
    // exactly-zero true gradient (softmax ignores a per-query constant), so it moves on rounding noise, which Adam-type
    // updates normalize to steps of ~lr; those elements differ by ~1e-4 relative between the two runtimes.
    const fin = native.getState();
    for (const [k, v] of Object.entries(state)) {
      if (v.type !== 'float32') { expect(Array.from(v.data as BigInt64Array)).toEqual(Array.from(fin[k].data as BigInt64Array)); continue; }
      const x = v.data as Float32Array; const y = fin[k].data as Float32Array;
      let err = 0; let scale = 0;
      for (let i = 0; i < x.length; i++) { err = Math.max(err, Math.abs(x[i] - y[i])); scale = Math.max(scale, Math.abs(y[i])); }
      expect({ k, ok: err <= 2e-3 * scale + 1e-7 }).toEqual({ k, ok: true });
    }
    native.release();
  });
});

describe('the optimizer inside the full graph matches the float64 reference fed the graph\'s own gradients', () => {
  const STEPS = 40;
  const lr: LrSchedule = { lr: 3e-3, warmup: 10, decay: 'cosine', totalSteps: STEPS, minLr: 3e-4 };
  const specs: [string, AdemamixSpec | SimplifiedSpec | AdamWSpec][] = [
    ['AdEMAMix (α, β3 schedules, wd)', ademamix({ lr, alpha: 8, beta3: 0.9999, tAlpha: STEPS, tBeta3: STEPS, weightDecay: 0.1 })],
    ['AdEMAMix β1 = 0', ademamix({ lr, beta1: 0, alpha: 5, beta3: 0.999, tAlpha: STEPS, tBeta3: STEPS, weightDecay: 0.1 })],
    ['Simplified (β1 warmup, both corrections)', simplifiedAdemamix({ lr, alpha: 3, beta1: 0.99, tBeta1: STEPS, biasCorrection1: true, weightDecay: 0.1 })],
    ['AdamW', adamw({ lr, weightDecay: 0.1 })],
  ];
  test.each(specs)('%s', (_n, spec) => {
    const m = buildGpt(gptConfig('gpt-tiny', { vocabSize: 83, nLayer: 1 }), 8);
    const shapes = new Map([...m.g.initializers.keys()].map((v) => [v.name!, v]));
    const art = assembleTraining({ forward: m.g, loss: m.loss, optimizer: spec, emitGradients: true });
    const s = NativeSession.create(encodeModel(art.train), { intraOpThreads: 2 });
    s.carry(art.carry); s.setState(initFeeds(art));
    const refs = art.params.map((p) => {
      const p0 = Float64Array.from(art.initialState.get(p)!.data as Float32Array);
      const wd = defaultWeightDecayMask(p, shapes.get(p)!) ? 0.1 : 0;
      if (spec.kind === 'ademamix') return new AdemamixRef(p0, { beta1: spec.beta1, beta2: spec.beta2, eps: spec.eps, weightDecay: wd });
      if (spec.kind === 'simplified') return new SimplifiedAdemamixRef(p0, { beta2: spec.beta2, eps: spec.eps, weightDecay: wd, biasCorrection1: spec.biasCorrection1, biasCorrection2: spec.biasCorrection2 });
      return new AdamWRef(p0, { beta1: spec.beta1, beta2: spec.beta2, eps: spec.eps, weightDecay: wd });
    });
    const { batches } = textBatches(STEPS, 4, 32, 2);
    for (let t = 1; t <= STEPS; t++) {
      const out = s.run(batches[t - 1].feeds, art.params.map((p) => `${p}.grad`));
      const l = lrAt(t, lr);
      art.params.forEach((p, i) => {
        const g = out[`${p}.grad`].data as Float32Array; const r = refs[i];
        if (r instanceof AdemamixRef && spec.kind === 'ademamix') r.step(g, { lr: l, alpha: alphaAt(t, spec.alpha, spec.tAlpha), beta3: halfLifeBetaAt(t, spec.beta1, spec.beta3, spec.tBeta3) });
        else if (r instanceof SimplifiedAdemamixRef && spec.kind === 'simplified') r.step(g, { lr: l, alpha: spec.alpha, beta1: halfLifeBetaAt(t, spec.betaMin, spec.beta1, spec.tBeta1) });
        else if (r instanceof AdamWRef) r.step(g, l);
      });
    }
    const fin = s.getState(art.params);
    art.params.forEach((p, i) => {
      const got = fin[p].data as Float32Array; const want = refs[i].param;
      let err = 0; let scale = 0;
      for (let k = 0; k < got.length; k++) { err = Math.max(err, Math.abs(got[k] - want[k])); scale = Math.max(scale, Math.abs(want[k])); }
      // float32 params rounded once per step: 40 steps × ~6e-8 relative, well inside 1e-5 of the tensor's scale
      expect({ p, rel: err / scale <= 1e-5 }).toEqual({ p, rel: true });
    });
    s.release();
  });
});

test('global-norm clipping scales every gradient by min(1, clip/‖g‖); grad_norm reports the norm before clipping', async () => {
  const norms: number[] = [];
  for (const clip of [undefined, 0.05]) {
    const m = buildGpt(gptConfig('gpt-tiny', { vocabSize: 83, nLayer: 1 }), 4);
    const art = assembleTraining({ forward: m.g, loss: m.loss, optimizer: adamw(), emitGradients: true, gradClip: clip });
    const s = await ort.InferenceSession.create(encodeModel(art.train));
    const out = await s.run({ ...textBatches(1).batches[0].feeds, ...initFeeds(art) });
    let sq = 0;
    for (const p of art.params) for (const v of out[`${p}.grad`].data as Float32Array) sq += v * v;
    norms.push(Math.sqrt(sq), out.grad_norm.data[0] as number);
  }
  const [raw, rawReported, clipped, reported] = norms;
  expect(rawReported).toBeCloseTo(raw, 4);
  expect(raw).toBeGreaterThan(0.5);
  expect(reported).toBeCloseTo(raw, 4);
  expect(clipped).toBeCloseTo(0.05, 4);
});
