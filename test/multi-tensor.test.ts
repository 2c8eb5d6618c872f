// The multi-tensor optimizer ops (<Op>Multi: one node for a list of tensors) against the per-tensor ops: with the op
// library (one fused pass over the list vs one kernel per tensor: bit-equal), without it (the per-arity function
// bodies, selected by FunctionProto overloads: bit-equal to the per-tensor bodies, and within float32 rounding of the
// kernels), in stock onnxruntime-node, and through assembleTraining.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { tensorData } from '../src/graph/tensor-data';
import type { Value } from '../src/graph/value';
import { NativeSession } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { create, ModelProtoSchema, NodeProtoSchema, toBinary, ValueInfoProtoSchema } from '../src/onnx/proto';
import { encodeModel } from '../src/onnx/io';
import {
  ademamixStep, ademamixStepMulti, adamwStep, adamwStepMulti, simplifiedStep, simplifiedStepMulti,
} from '../src/optim/nodes';
import { assembleTraining } from '../src/train/assemble';
import { ademamix, adamw, simplifiedAdemamix, type OptimizerSpec } from '../src/train/optimizers';
import { Rng } from '../src/util/rng';

const f32 = (a: ArrayLike<number>, dims: readonly number[]): Tensor => new Tensor('float32', Float32Array.from(a), dims);
const f64 = (x: number): Tensor => new Tensor('float64', Float64Array.from([x]), []);
const i64 = (x: number): Tensor => new Tensor('int64', BigInt64Array.from([BigInt(x)]), []);
const numel = (d: readonly number[]): number => d.reduce((a, b) => a * b, 1);
/** n samples uniform in [-scale, scale) (one generator step each: the large-tensor case draws ~10^5 per step). */
function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * (rng.nextU32() / 2 ** 31 - 1);
  return a;
}

type Kind = 'ademamix' | 'ademamix-b0' | 'simplified-s1' | 'simplified' | 'adamw';
const STATES: Record<Kind, string[]> = {
  ademamix: ['m1', 'm2', 'nu'], 'ademamix-b0': ['m2', 'nu'], 'simplified-s1': ['m', 'nu'], simplified: ['m', 'nu'], adamw: ['m', 'v'],
};
const SCALARS: Record<Kind, string[]> = {
  ademamix: ['lr', 'alpha', 'beta3'], 'ademamix-b0': ['lr', 'alpha', 'beta3'], 'simplified-s1': ['lr', 'alpha', 'beta1'],
  simplified: ['lr', 'alpha', 'beta1'], adamw: ['lr'],
};
const hasS1 = (k: Kind): boolean => k === 'simplified-s1';

interface StepModel { bytes: Uint8Array; carry: Record<string, string>; model: ReturnType<typeof toModelProto> }

/**
 * One step over tensors of `shapes`: inputs p_i, g_i, <state>_i, step, the schedule scalars (and s1); outputs
 * <name>_out. `multi`: one multi-tensor node; else one per-tensor node per tensor. Same names either way.
 */
function stepModel(kind: Kind, shapes: number[][], multi: boolean): StepModel {
  const g = new GraphBuilder();
  const list = (nm: string): Value[] => shapes.map((s, i) => g.input(`${nm}_${i}`, 'float32', s));
  const params = list('p'); const grads = list('g');
  const st = Object.fromEntries(STATES[kind].map((k) => [k, list(k)]));
  const step = g.input('step', 'int64', []);
  const sc = Object.fromEntries(SCALARS[kind].map((k) => [k, g.input(k, 'float64', [])]));
  const s1 = hasS1(kind) ? g.input('s1', 'float32', []) : null;
  const carry: Record<string, string> = {};
  const out = (v: Value, nm: string): void => { g.output(v, `${nm}_out`); carry[`${nm}_out`] = nm; };
  const outs = (vs: Value[], nm: string): void => vs.forEach((v, i) => out(v, `${nm}_${i}`));
  const n = shapes.length;
  if (kind === 'ademamix' || kind === 'ademamix-b0') {
    const a = { beta1: kind === 'ademamix' ? 0.9 : 0, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const x = { step, lr: sc.lr, alpha: sc.alpha, beta3: sc.beta3 };
    const r = multi
      ? ademamixStepMulti(g, { ...x, params, grads, m1: st.m1 ?? null, m2: st.m2, nu: st.nu }, a, 'multi')
      : (() => {
        const rs = params.map((p, i) => ademamixStep(g, { ...x, param: p, grad: grads[i], m1: st.m1?.[i] ?? null, m2: st.m2[i], nu: st.nu[i] }, a, `t${i}`));
        return { params: rs.map((r) => r.param), m1: st.m1 ? rs.map((r) => r.m1!) : null, m2: rs.map((r) => r.m2), nu: rs.map((r) => r.nu) };
      })();
    outs(r.params, 'p'); if (r.m1) outs(r.m1, 'm1'); outs(r.m2, 'm2'); outs(r.nu, 'nu');
  } else if (kind === 'adamw') {
    const a = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const r = multi ? adamwStepMulti(g, { params, grads, m: st.m, v: st.v, step, lr: sc.lr }, a, 'multi')
      : (() => {
        const rs = params.map((p, i) => adamwStep(g, { param: p, grad: grads[i], m: st.m[i], v: st.v[i], step, lr: sc.lr }, a, `t${i}`));
        return { params: rs.map((r) => r.param), m: rs.map((r) => r.m), v: rs.map((r) => r.v) };
      })();
    outs(r.params, 'p'); outs(r.m, 'm'); outs(r.v, 'v');
  } else {
    const a = { beta2: 0.95, eps: 1e-8, weightDecay: 0.1, biasCorrection1: hasS1(kind), biasCorrection2: true };
    const x = { step, lr: sc.lr, alpha: sc.alpha, beta1: sc.beta1, s1 };
    const r = multi ? simplifiedStepMulti(g, { ...x, params, grads, m: st.m, nu: st.nu }, a, 'multi')
      : (() => {
        const rs = params.map((p, i) => simplifiedStep(g, { ...x, param: p, grad: grads[i], m: st.m[i], nu: st.nu[i] }, a, `t${i}`));
        return { params: rs.map((r) => r.param), m: rs.map((r) => r.m), nu: rs.map((r) => r.nu), s1: rs[0].s1 };
      })();
    outs(r.params, 'p'); outs(r.m, 'm'); outs(r.nu, 'nu'); if (r.s1) out(r.s1, 's1');
  }
  expect(n).toBe(shapes.length);
  const model = toModelProto(g);
  return { bytes: encodeModel(model), carry, model };
}

/** Steps of a noisy quadratic: same gradients and schedules for every run (seeded), states carried natively. */
function runSteps(m: StepModel, kind: Kind, shapes: number[][], opsLibrary: string | false, steps: number, threads = 2): Record<string, Float32Array> {
  const s = NativeSession.create(m.bytes, { opsLibrary, intraOpThreads: threads });
  try {
    s.carry(m.carry);
    const rng = new Rng(5);
    const init: Record<string, Tensor> = {};
    shapes.forEach((d, i) => {
      init[`p_${i}`] = f32(randn(rng, numel(d)), d);
      for (const k of STATES[kind]) init[`${k}_${i}`] = f32(new Float32Array(numel(d)), d);
    });
    if (hasS1(kind)) init.s1 = f32([0], []);
    s.setState(init);
    for (let t = 1; t <= steps; t++) {
      const feeds: Record<string, Tensor> = { step: i64(t), lr: f64(1e-2 * (1 + 0.5 * Math.cos(t / 7))) };
      if (SCALARS[kind].includes('alpha')) feeds.alpha = f64(Math.min(t / 10, 1) * 5);
      if (SCALARS[kind].includes('beta3')) feeds.beta3 = f64(1 - 1e-3 * (1 + 0.5 * Math.sin(t)));
      if (SCALARS[kind].includes('beta1')) feeds.beta1 = f64(0.99 - 0.09 * Math.exp(-t / 10));
      shapes.forEach((d, i) => { feeds[`g_${i}`] = f32(randn(rng, numel(d)), d); });
      s.run(feeds, []);
    }
    return Object.fromEntries(Object.entries(s.getState()).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    s.release();
  }
}

const bitEqual = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const maxRelDiff = (a: Float32Array, b: Float32Array): number => {
  let num = 0; let den = 1e-30;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
};

const SHAPES = [[1], [7], [3, 5], [33], [2, 1, 4]];
const KINDS: Kind[] = ['ademamix', 'ademamix-b0', 'simplified-s1', 'simplified', 'adamw'];

describe.each(KINDS)('%s: one multi-tensor node vs one node per tensor (5 tensors, 40 steps)', (kind) => {
  const multi = stepModel(kind, SHAPES, true);
  const per = stepModel(kind, SHAPES, false);

  test('op library: the multi-tensor kernel is bit-equal to the per-tensor kernels', () => {
    const a = runSteps(multi, kind, SHAPES, opsLibraryPath(), 40);
    const b = runSteps(per, kind, SHAPES, opsLibraryPath(), 40);
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(a)) expect({ k, equal: bitEqual(a[k], b[k]) }).toEqual({ k, equal: true });
  });

  test('no library: the per-arity function body is bit-equal to the per-tensor bodies, and matches the kernel', () => {
    const a = runSteps(multi, kind, SHAPES, false, 40);
    const b = runSteps(per, kind, SHAPES, false, 40);
    const lib = runSteps(multi, kind, SHAPES, opsLibraryPath(), 40);
    for (const k of Object.keys(a)) {
      expect({ k, equal: bitEqual(a[k], b[k]) }).toEqual({ k, equal: true });
      // states: the body takes 1 − β2 from the float32 attribute (0.999f: 1.3e-5 off 1e-3), the kernel from its decimal
      const tol = k.startsWith('p_') ? 1e-5 : 1e-4;
      expect({ k, close: maxRelDiff(a[k], lib[k]) <= tol }).toEqual({ k, close: true });
    }
  });

  test('stock onnxruntime-node runs the multi-tensor model (overloaded function bodies) with equal results', async () => {
    const rng = new Rng(9);
    const feeds: Record<string, Tensor> = { step: i64(3), lr: f64(0.01) };
    if (SCALARS[kind].includes('alpha')) feeds.alpha = f64(4);
    if (SCALARS[kind].includes('beta3')) feeds.beta3 = f64(0.999);
    if (SCALARS[kind].includes('beta1')) feeds.beta1 = f64(0.95);
    if (hasS1(kind)) feeds.s1 = f32([1.5], []);
    SHAPES.forEach((d, i) => {
      const r = (scale: number): number[] => Array.from({ length: numel(d) }, () => scale * rng.normal());
      feeds[`p_${i}`] = f32(r(1), d); feeds[`g_${i}`] = f32(r(0.1), d);
      for (const k of STATES[kind]) feeds[`${k}_${i}`] = f32(k === 'nu' || k === 'v' ? r(0.01).map(Math.abs) : r(0.01), d);
    });
    const stock = await (await ort.InferenceSession.create(multi.bytes)).run(feeds as never);
    const nat = NativeSession.create(multi.bytes, { opsLibrary: false });
    const body = nat.run(feeds);
    nat.release();
    const kern = NativeSession.create(multi.bytes, { opsLibrary: opsLibraryPath() });
    const fused = kern.run(feeds);
    kern.release();
    for (const k of Object.keys(body)) {
      const x = stock[k].data as Float32Array;
      expect({ k, equal: bitEqual(x, body[k].data as Float32Array) }).toEqual({ k, equal: true });
      expect({ k, close: maxRelDiff(x, fused[k].data as Float32Array) <= 1e-6 }).toEqual({ k, close: true });
    }
  });
});

test('one pass over large and small tensors, chunks crossing tensor boundaries, 2 threads: bit-equal to per-tensor', () => {
  const shapes = [[33000], [3], [40001], [1], [5]];  // 73010 elements: 3 pool chunks of 32768, two crossing tensors
  for (const kind of ['ademamix', 'adamw'] as Kind[]) {
    const a = runSteps(stepModel(kind, shapes, true), kind, shapes, opsLibraryPath(), 3, 2);
    const b = runSteps(stepModel(kind, shapes, false), kind, shapes, opsLibraryPath(), 3, 1);
    for (const k of Object.keys(a)) expect({ kind, k, equal: bitEqual(a[k], b[k]) }).toEqual({ kind, k, equal: true });
  }
});

test('with the library the AdEMAMixMulti kernel runs (no standard ops); without it, the standard-op body', () => {
  const m = stepModel('ademamix', SHAPES, true);
  const ops = (opsLibrary: string | false): Set<string> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-multi-prof-'));
    try {
      const s = NativeSession.create(m.bytes, { opsLibrary, profilingPrefix: path.join(dir, 'p'), intraOpThreads: 1 });
      s.carry(m.carry);
      const init: Record<string, Tensor> = {};
      SHAPES.forEach((d, i) => { for (const k of ['p', 'm1', 'm2', 'nu']) init[`${k}_${i}`] = f32(new Float32Array(numel(d)), d); });
      s.setState(init);
      const feeds: Record<string, Tensor> = { step: i64(1), lr: f64(0.1), alpha: f64(2), beta3: f64(0.999) };
      SHAPES.forEach((d, i) => { feeds[`g_${i}`] = f32(new Float32Array(numel(d)).fill(0.5), d); });
      s.run(feeds, []);
      const file = s.endProfiling();
      s.release();
      const events = JSON.parse(fs.readFileSync(file, 'utf8')) as { cat: string; args?: { op_name?: string } }[];
      return new Set(events.filter((e) => e.cat === 'Node').map((e) => e.args?.op_name ?? ''));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const withLib = ops(opsLibraryPath());
  expect(withLib.has('AdEMAMixMulti')).toBe(true);
  expect(withLib.has('Sqrt')).toBe(false);
  const without = ops(false);
  expect(without.has('AdEMAMixMulti')).toBe(false);
  expect(without.has('Sqrt')).toBe(true);
});

describe('assembleTraining: multiTensor', () => {
  /** y ≈ relu(x·W1 + b1)·W2: W1, W2 decay, b1 does not (two groups). */
  function tiny(): { g: GraphBuilder; loss: Value } {
    const g = new GraphBuilder();
    const rng = new Rng(3);
    const init = (name: string, dims: number[]): Value =>
      g.initializer(name, tensorData('float32', dims, Array.from({ length: numel(dims) }, () => 0.3 * rng.normal())));
    const x = g.input('x', 'float32', [4, 6]); const y = g.input('y', 'float32', [4, 3]);
    const w1 = init('w1', [6, 5]); const b1 = init('b1', [5]); const w2 = init('w2', [5, 3]);
    const h = g.op('Relu', [g.add(g.matmul(x, w1), b1)]);
    const d = g.sub(g.matmul(h, w2), y);
    return { g, loss: g.op('ReduceSum', [g.mul(d, d)], { keepdims: 0 }) };
  }
  const specs: [string, OptimizerSpec][] = [
    ['ademamix', ademamix({ lr: 1e-2, weightDecay: 0.1, tAlpha: 10, tBeta3: 10 })],
    ['simplified + bias_correction1', simplifiedAdemamix({ lr: 1e-3, weightDecay: 0.1, biasCorrection1: true })],
    ['adamw', adamw({ lr: 1e-2, weightDecay: 0.1 })],
  ];

  test.each(specs)('%s: grouped by weight decay, same training trajectory as per-tensor nodes (library and function bodies)', (_, opt) => {
    const build = (multiTensor: boolean): ReturnType<typeof assembleTraining> => {
      const m = tiny();
      return assembleTraining({ forward: m.g, loss: m.loss, optimizer: opt, multiTensor });
    };
    const multi = build(true); const per = build(false);
    const optNodes = (art: typeof multi): string[] => art.train.graph!.node.filter((n) => n.domain === 'com.ademamix').map((n) => n.opType);
    expect(optNodes(multi).length).toBe(2); // decay {w1, w2}, no decay {b1}
    expect(optNodes(multi).every((t) => t.endsWith('Multi'))).toBe(true);
    expect(optNodes(per).length).toBe(3);
    expect(multi.carry).toEqual(per.carry);
    const rng = new Rng(1);
    const batches = Array.from({ length: 6 }, () => ({
      x: f32(Array.from({ length: 24 }, () => rng.normal()), [4, 6]), y: f32(Array.from({ length: 12 }, () => rng.normal()), [4, 3]),
    }));
    const train = (art: typeof multi, opsLibrary: string | false): Record<string, Float32Array> => {
      const s = NativeSession.create(encodeModel(art.train), { opsLibrary });
      s.carry(art.carry);
      s.setState(Object.fromEntries([...art.initialState].map(([k, v]) => [k, new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims)])));
      for (const b of batches) s.run(b, ['loss']);
      const st = s.getState(art.params);
      s.release();
      return Object.fromEntries(Object.entries(st).map(([k, v]) => [k, v.data as Float32Array]));
    };
    for (const lib of [opsLibraryPath(), false as const]) {
      const a = train(multi, lib); const b = train(per, lib);
      for (const p of multi.params) expect({ lib: !!lib, p, equal: bitEqual(a[p], b[p]) }).toEqual({ lib: !!lib, p, equal: true });
    }
  });
});

describe('errors', () => {
  test('tensor lists of different lengths are refused when the node is built', () => {
    const g = new GraphBuilder();
    const p = g.input('p', 'float32', [2]); const q = g.input('q', 'float32', [2]);
    const step = g.input('step', 'int64', []); const lr = g.input('lr', 'float64', []);
    expect(() => adamwStepMulti(g, { params: [p, q], grads: [p], m: [p, q], v: [p, q], step, lr }, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }))
      .toThrow(/AdamWMulti: every tensor list needs one entry per parameter: params has 2, grads has 1/);
    expect(() => adamwStepMulti(g, { params: [p], grads: [g.input('g', 'float32', [3])], m: [p], v: [p], step, lr }, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }))
      .toThrow(/input 'grad\[0\]' has shape \[3\] but 'param\[0\]' has \[2\]/);
  });

  test('the kernel names the miscounted lists and mismatched shapes of a hand-written node', () => {
    const vi = (name: string, elemType: number, dims: number[]) => create(ValueInfoProtoSchema, {
      name, type: { value: { case: 'tensorType', value: { elemType, shape: { dim: dims.map((d) => ({ value: { case: 'dimValue' as const, value: BigInt(d) } })) } } } },
    });
    const model = (inputs: string[], outputs: string[]): Uint8Array => toBinary(ModelProtoSchema, create(ModelProtoSchema, {
      irVersion: 10n, opsetImport: [{ domain: '', version: 20n }, { domain: 'com.ademamix', version: 1n }],
      graph: {
        name: 'g', node: [create(NodeProtoSchema, { opType: 'AdamWMulti', domain: 'com.ademamix', input: inputs, output: outputs, name: 'bad' })],
        input: [vi('step', 7, []), vi('lr', 1, []), vi('a', 1, [2]), vi('b', 1, [3])],
        output: outputs.map((o) => create(ValueInfoProtoSchema, { name: o })),
      },
    }));
    const feeds = { step: i64(1), lr: f32([0.1], []), a: f32([1, 2], [2]), b: f32([1, 2, 3], [3]) };
    const run = (bytes: Uint8Array): unknown => NativeSession.create(bytes, { opsLibrary: opsLibraryPath() }).run(feeds);
    expect(() => run(model(['step', 'lr', 'a', 'a', 'a', 'a', 'a'], ['o1', 'o2', 'o3'])))
      .toThrow(/AdamWMulti 'bad': expects the scalar inputs, then N tensors of each of \(params, grads, m, v\): a multiple of 4 tensor inputs, got 5/);
    expect(() => run(model(['step', 'lr', 'a', 'b', 'a', 'a'], ['o1', 'o2', 'o3'])))
      .toThrow(/AdamWMulti '[^']*': input 'grad\[0\]' has shape \[3\] but 'param\[0\]' has \[2\]/);
  });
});
