// The com.ademamix ops: fused kernels (op library) and function bodies (no library), each against the float64
// reference over 1000 steps with schedules, through the native session with carried state.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { NativeSession } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';
import { optimizerStepModel, type StepOp } from '../src/optim/step-model';
import { AdamWRef, AdemamixRef, SimplifiedAdemamixRef } from '../src/optim/reference';
import { alphaAt, halfLifeBetaAt, lrAt } from '../src/optim/schedules';
import { GraphBuilder } from '../src/graph/builder';
import { ademamixStep } from '../src/optim/nodes';
import { toModelProto } from '../src/graph/serialize';
import { Rng } from '../src/util/rng';

const STEPS = 1000;
const f32 = (a: Float32Array | number[], dims: number[]): Tensor => new Tensor('float32', Float32Array.from(a), dims);
const f64 = (x: number): Tensor => new Tensor('float64', Float64Array.from([x]), []);
const i64 = (x: number): Tensor => new Tensor('int64', BigInt64Array.from([BigInt(x)]), []);

interface Case { name: string; spec: StepOp; dims: number[] }

/** Schedule values at step t, as fed to the op (and to the reference). */
function scalarsAt(spec: StepOp, t: number): Record<string, number> {
  const lr = lrAt(t, { lr: 1e-2, warmup: 50, decay: 'cosine', totalSteps: STEPS, minLr: 1e-3 });
  if (spec.op === 'AdEMAMix') return { lr, alpha: alphaAt(t, 8, STEPS), beta3: halfLifeBetaAt(t, spec.beta1, 0.9999, STEPS) };
  if (spec.op === 'SimplifiedAdEMAMix') return { lr, alpha: 5, beta1: halfLifeBetaAt(t, 0.9, 0.99, STEPS / 2) };
  return { lr };
}

function makeRef(spec: StepOp, p0: Float64Array) {
  if (spec.op === 'AdEMAMix') { const r = new AdemamixRef(p0, spec); return (g: Float32Array, s: Record<string, number>) => r.step(g, s as never); }
  if (spec.op === 'SimplifiedAdEMAMix') { const r = new SimplifiedAdemamixRef(p0, spec); return (g: Float32Array, s: Record<string, number>) => r.step(g, s as never); }
  const r = new AdamWRef(p0, spec); return (g: Float32Array, s: Record<string, number>) => r.step(g, s.lr);
}

/** Runs STEPS steps through a native session; returns final params and the float64 reference's. */
function runCase(c: Case, opsLibrary: string | false, seed: number) {
  const sm = optimizerStepModel(c.spec, c.dims);
  const s = NativeSession.create(encodeModel(sm.model), { opsLibrary, intraOpThreads: 2 });
  s.carry(sm.carry);
  const n = c.dims.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed);
  const p0 = Float32Array.from({ length: n }, () => rng.normal());
  const init: Record<string, Tensor> = { param: f32(p0, c.dims) };
  for (const st of sm.states) init[st] = st === 's1' ? f32([0], []) : f32(new Float32Array(n), c.dims);
  s.setState(init);
  const ref = new Float64Array(p0);
  const refStep = makeRef(c.spec, ref);
  for (let t = 1; t <= STEPS; t++) {
    // gradients of a noisy quadratic around a moving target: realistic signs and scales, many near zero
    const cur = s.getState(['param']).param.data as Float32Array;
    const grad = Float32Array.from(cur, (p, i) => 0.5 * (p - Math.sin(i + t / 100)) + 0.3 * rng.normal());
    const sc = scalarsAt(c.spec, t);
    const feeds: Record<string, Tensor> = { grad: f32(grad, c.dims), step: i64(t) };
    for (const k of sm.scalars) feeds[k] = f64(sc[k]);
    s.run(feeds, []);
    refStep(grad, sc);
  }
  const p = s.getState(['param']).param.data as Float32Array;
  s.release();
  return { p, ref };
}

function relErr(p: Float32Array, ref: Float64Array): number {
  let num = 0; let den = 0;
  for (let i = 0; i < p.length; i++) { num = Math.max(num, Math.abs(p[i] - ref[i])); den = Math.max(den, Math.abs(ref[i])); }
  return num / den;
}

const rng = new Rng(42);
const randomDims = (): number[][] => [[1], [7], [3, 5], [1 + 2 * rng.int(600)], [2, 1, 1 + 2 * rng.int(40)]];

const CASES: Case[] = [];
for (const dims of randomDims()) {
  CASES.push({ name: `AdEMAMix wd=0.1 [${dims}]`, spec: { op: 'AdEMAMix', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }, dims });
}
CASES.push(
  { name: 'AdEMAMix beta1=0 [257]', spec: { op: 'AdEMAMix', beta1: 0, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }, dims: [257] },
  { name: 'AdEMAMix beta1=0 [1]', spec: { op: 'AdEMAMix', beta1: 0, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, dims: [1] },
  { name: 'Simplified bc2 [33,3]', spec: { op: 'SimplifiedAdEMAMix', beta2: 0.999, eps: 1e-8, weightDecay: 0.1, biasCorrection1: false, biasCorrection2: true }, dims: [33, 3] },
  { name: 'Simplified bc1+bc2 [101]', spec: { op: 'SimplifiedAdEMAMix', beta2: 0.95, eps: 1e-8, weightDecay: 0, biasCorrection1: true, biasCorrection2: true }, dims: [101] },
  { name: 'Simplified no bc [1]', spec: { op: 'SimplifiedAdEMAMix', beta2: 0.95, eps: 1e-8, weightDecay: 0.1, biasCorrection1: false, biasCorrection2: false }, dims: [1] },
  { name: 'AdamW wd=0.1 [513]', spec: { op: 'AdamW', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }, dims: [513] },
  { name: 'AdamW [1]', spec: { op: 'AdamW', beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 }, dims: [1] },
);

describe.each(CASES)('$name: 1000 steps vs float64 reference', (c) => {
  test('fused kernel (op library)', () => {
    const { p, ref } = runCase(c, opsLibraryPath(), 7);
    expect(relErr(p, ref)).toBeLessThanOrEqual(1e-5);
  });
  test('function body (no library)', () => {
    const { p, ref } = runCase(c, false, 7);
    expect(relErr(p, ref)).toBeLessThanOrEqual(1e-5);
  });
});

describe('which implementation runs', () => {
  const profiledOps = (opsLibrary: string | false): Set<string> => {
    const sm = optimizerStepModel({ op: 'AdEMAMix', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, [64]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-prof-'));
    const s = NativeSession.create(encodeModel(sm.model), { opsLibrary, profilingPrefix: path.join(dir, 'p'), intraOpThreads: 1 });
    s.carry(sm.carry);
    const z = f32(new Float32Array(64), [64]);
    s.setState({ param: f32(new Float32Array(64).fill(1), [64]), m1: z, m2: z, nu: z });
    s.run({ grad: f32(new Float32Array(64).fill(0.5), [64]), step: i64(1), lr: f64(0.1), alpha: f64(2), beta3: f64(0.999) }, []);
    const file = s.endProfiling();
    s.release();
    const events = JSON.parse(fs.readFileSync(file, 'utf8')) as { cat: string; args?: { op_name?: string } }[];
    fs.rmSync(dir, { recursive: true, force: true });
    return new Set(events.filter((e) => e.cat === 'Node').map((e) => e.args?.op_name ?? ''));
  };
  test('with the library the fused AdEMAMix kernel runs; without it, the standard-op body', () => {
    const withLib = profiledOps(opsLibraryPath());
    expect(withLib.has('AdEMAMix')).toBe(true);
    expect(withLib.has('Sqrt')).toBe(false);
    const without = profiledOps(false);
    expect(without.has('AdEMAMix')).toBe(false);
    expect(without.has('Sqrt')).toBe(true);
  });

  test('stock onnxruntime-node runs the same model (function body) and matches the kernel', async () => {
    const spec: StepOp = { op: 'AdEMAMix', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const sm = optimizerStepModel(spec, [5]);
    const bytes = encodeModel(sm.model);
    const stock = await ort.InferenceSession.create(bytes);
    const nat = NativeSession.create(bytes, { opsLibrary: opsLibraryPath() });
    const feeds = {
      param: f32([1, -2, 3, 0.5, 0], [5]), grad: f32([0.1, 0.2, -0.3, 1e-4, 0], [5]), m1: f32([0.01, 0, 0, 0, 0], [5]),
      m2: f32([0, 0.02, 0, 0, 0], [5]), nu: f32([1e-4, 0, 0, 0, 0], [5]), step: i64(3), lr: f64(0.01), alpha: f64(5), beta3: f64(0.9999),
    };
    const a = await stock.run(feeds as never);
    const b = nat.run(feeds);
    for (const k of ['param_out', 'm1_out', 'm2_out', 'nu_out']) {
      const x = a[k].data as Float32Array; const y = b[k].data as Float32Array;
      for (let i = 0; i < 5; i++) expect(Math.abs(x[i] - y[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(x[i])));
    }
    nat.release();
  });
});

describe('bad input gives one clear error', () => {
  test('mismatched shapes and wrong dtypes are caught when the node is built', () => {
    const g = new GraphBuilder();
    const p = g.input('p', 'float32', [3, 4]);
    const s = g.input('step', 'int64', []); const sc = g.input('lr', 'float64', []);
    const ok = { param: p, grad: p, m1: p, m2: p, nu: p, step: s, lr: sc, alpha: sc, beta3: sc };
    const a = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    expect(() => ademamixStep(g, { ...ok, grad: g.input('g', 'float32', [3, 5]) }, a))
      .toThrow(/AdEMAMix node.*input 'grad' has shape \[3,5\] but 'param' has \[3,4\]/);
    expect(() => ademamixStep(g, { ...ok, nu: g.input('nu', 'float64', [3, 4]) }, a)).toThrow(/input 'nu' must be float32, got float64/);
    expect(() => ademamixStep(g, { ...ok, step: g.input('st', 'float32', []) }, a)).toThrow(/input 'step' must be int64/);
    expect(() => ademamixStep(g, { ...ok, lr: g.input('lr2', 'float32', [2]) }, a)).toThrow(/input 'lr' must be a scalar/);
  });

  test('shapes that only disagree at run time are reported by the kernel, naming the op and inputs', () => {
    const g = new GraphBuilder();
    const p = g.input('param', 'float32', ['n']); const gr = g.input('grad', 'float32', ['k']);
    const st = g.input('step', 'int64', []); const sc = g.input('lr', 'float64', []);
    const r = ademamixStep(g, { param: p, grad: gr, m1: p, m2: p, nu: p, step: st, lr: sc, alpha: sc, beta3: sc }, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    g.output(r.param, 'out');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { opsLibrary: opsLibraryPath() });
    expect(() => s.run({ param: f32([1, 2, 3], [3]), grad: f32([1, 2], [2]), step: i64(1), lr: f64(0.1) }))
      .toThrow(/AdEMAMix.*grad.*param/);
    expect(() => s.run({ param: f32([1, 2], [2]), grad: f32([1, 2], [2]), step: i64(0), lr: f64(0.1) })).toThrow(/step/);
    s.release();
  });

  test('a missing op library is named', () => {
    const sm = optimizerStepModel({ op: 'AdamW', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, [2]);
    expect(() => NativeSession.create(encodeModel(sm.model), { opsLibrary: '/nonexistent/libademamix_ops.so' }))
      .toThrow(/\/nonexistent\/libademamix_ops\.so/);
  });
});
