// Optimizer states stored as bfloat16 (<Op>Bf16, <Op>MultiBf16): float32 math, stores rounded to nearest even.
// - Over 1000 steps the fused kernels follow a float64 reference that stores its states in bf16 the same way (round
//   to nearest even after every step), and the function bodies (no library) do too, up to float32 rounding ties.
// - One step from the same bf16 states: kernel and function body agree to 1 bf16 step in the states.
// - The multi-tensor bf16 op is bit-equal to the per-tensor one; assembleTraining({stateDtype: 'bfloat16'}) trains.
// The accuracy against a float32-state float64 reference is measured here too and printed; custom-ops/README.md
// records it (bf16 round-to-nearest loses EMA updates smaller than half a bf16 step, so m2 with β3 → 0.9999 and ν with
// β2 = 0.999 stagnate: that is what the numbers show).
import { Tensor } from 'onnxruntime-common';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { tensorData } from '../src/graph/tensor-data';
import type { Value } from '../src/graph/value';
import { NativeSession, type RawTensor } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';
import {
  ademamixStep, ademamixStepMulti, adamwStep, adamwStepMulti, simplifiedStep, simplifiedStepMulti,
  type StateDtype,
} from '../src/optim/nodes';
import { AdamWRef, AdemamixRef, SimplifiedAdemamixRef } from '../src/optim/reference';
import { alphaAt, halfLifeBetaAt, lrAt } from '../src/optim/schedules';
import { assembleTraining } from '../src/train/assemble';
import { ademamix } from '../src/train/optimizers';
import { Rng } from '../src/util/rng';

const STEPS = 1000;
const f64 = (x: number): Tensor => new Tensor('float64', Float64Array.from([x]), []);
const i64 = (x: number): Tensor => new Tensor('int64', BigInt64Array.from([BigInt(x)]), []);

// float32 ↔ bfloat16 bits, and a double rounded as the kernels store it (to float32, then to bf16, nearest even)
const f32v = new Float32Array(1); const u32v = new Uint32Array(f32v.buffer);
const bf16Bits = (x: number): number => {
  f32v[0] = x; const u = u32v[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
};
const bf16Value = (bits: number): number => { u32v[0] = (bits << 16) >>> 0; return f32v[0]; };
const roundBf16 = (x: number): number => bf16Value(bf16Bits(x));
const decode = (t: RawTensor): Float64Array =>
  t.type === 'bfloat16' ? Float64Array.from(t.data as Uint16Array, bf16Value) : Float64Array.from(t.data as Float32Array);

type Spec =
  | { op: 'AdEMAMix'; beta1: number; beta2: number; eps: number; weightDecay: number }
  | { op: 'SimplifiedAdEMAMix'; beta2: number; eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean }
  | { op: 'AdamW'; beta1: number; beta2: number; eps: number; weightDecay: number };
const stateNames = (s: Spec): string[] => (s.op === 'AdEMAMix' ? (s.beta1 ? ['m1', 'm2', 'nu'] : ['m2', 'nu']) : s.op === 'AdamW' ? ['m', 'v'] : ['m', 'nu']);
const scalarNames = (s: Spec): string[] => (s.op === 'AdEMAMix' ? ['lr', 'alpha', 'beta3'] : s.op === 'AdamW' ? ['lr'] : ['lr', 'alpha', 'beta1']);
const hasS1 = (s: Spec): boolean => s.op === 'SimplifiedAdEMAMix' && s.biasCorrection1;

interface Model { bytes: Uint8Array; carry: Record<string, string> }

/** `shapes.length` tensors: inputs p_i, g_i, <state>_i (stateDtype), step, scalars[, s1]; outputs <name>_out, carried. */
function model(spec: Spec, shapes: number[][], sd: StateDtype, multi: boolean): Model {
  const g = new GraphBuilder();
  const list = (nm: string, dtype: 'float32' | StateDtype): Value[] => shapes.map((s, i) => g.input(`${nm}_${i}`, dtype, s));
  const params = list('p', 'float32'); const grads = list('g', 'float32');
  const st = Object.fromEntries(stateNames(spec).map((k) => [k, list(k, sd)]));
  const step = g.input('step', 'int64', []);
  const sc = Object.fromEntries(scalarNames(spec).map((k) => [k, g.input(k, 'float64', [])]));
  const s1 = hasS1(spec) ? g.input('s1', 'float32', []) : null;
  const carry: Record<string, string> = {};
  const outs = (vs: Value[], nm: string): void => vs.forEach((v, i) => { g.output(v, `${nm}_${i}_out`); carry[`${nm}_${i}_out`] = `${nm}_${i}`; });
  const o = { stateDtype: sd };
  const each = <R>(f: (i: number) => R): R[] => params.map((_, i) => f(i));
  if (spec.op === 'AdEMAMix') {
    const x = { step, lr: sc.lr, alpha: sc.alpha, beta3: sc.beta3 };
    const r = multi ? ademamixStepMulti(g, { ...x, params, grads, m1: st.m1 ?? null, m2: st.m2, nu: st.nu }, spec, 'm', o) : (() => {
      const rs = each((i) => ademamixStep(g, { ...x, param: params[i], grad: grads[i], m1: st.m1?.[i] ?? null, m2: st.m2[i], nu: st.nu[i] }, spec, `t${i}`, o));
      return { params: rs.map((r) => r.param), m1: st.m1 ? rs.map((r) => r.m1!) : null, m2: rs.map((r) => r.m2), nu: rs.map((r) => r.nu) };
    })();
    outs(r.params, 'p'); if (r.m1) outs(r.m1, 'm1'); outs(r.m2, 'm2'); outs(r.nu, 'nu');
  } else if (spec.op === 'AdamW') {
    const r = multi ? adamwStepMulti(g, { params, grads, m: st.m, v: st.v, step, lr: sc.lr }, spec, 'm', o) : (() => {
      const rs = each((i) => adamwStep(g, { param: params[i], grad: grads[i], m: st.m[i], v: st.v[i], step, lr: sc.lr }, spec, `t${i}`, o));
      return { params: rs.map((r) => r.param), m: rs.map((r) => r.m), v: rs.map((r) => r.v) };
    })();
    outs(r.params, 'p'); outs(r.m, 'm'); outs(r.v, 'v');
  } else {
    const x = { step, lr: sc.lr, alpha: sc.alpha, beta1: sc.beta1, s1 };
    const r = multi ? simplifiedStepMulti(g, { ...x, params, grads, m: st.m, nu: st.nu }, spec, 'm', o) : (() => {
      const rs = each((i) => simplifiedStep(g, { ...x, param: params[i], grad: grads[i], m: st.m[i], nu: st.nu[i] }, spec, `t${i}`, o));
      return { params: rs.map((r) => r.param), m: rs.map((r) => r.m), nu: rs.map((r) => r.nu), s1: rs[0].s1 };
    })();
    outs(r.params, 'p'); outs(r.m, 'm'); outs(r.nu, 'nu');
    if (r.s1) { g.output(r.s1, 's1_out'); carry.s1_out = 's1'; }
  }
  return { bytes: encodeModel(toModelProto(g)), carry };
}

function scalarsAt(spec: Spec, t: number): Record<string, number> {
  const lr = lrAt(t, { lr: 1e-2, warmup: 50, decay: 'cosine', totalSteps: STEPS, minLr: 1e-3 });
  if (spec.op === 'AdEMAMix') return { lr, alpha: alphaAt(t, 8, STEPS), beta3: halfLifeBetaAt(t, spec.beta1, 0.9999, STEPS) };
  if (spec.op === 'SimplifiedAdEMAMix') return { lr, alpha: 5, beta1: halfLifeBetaAt(t, 0.9, 0.99, STEPS / 2) };
  return { lr };
}

const zeros = (sd: StateDtype, n: number, dims: number[]): RawTensor =>
  sd === 'bfloat16' ? { type: 'bfloat16', data: new Uint16Array(n), dims } : { type: 'float32', data: new Float32Array(n), dims };

interface Run { param: Float64Array; states: Record<string, Float64Array>; ref: Float64Array; refStates: Record<string, Float64Array>; qref: Float64Array }

/**
 * 1000 steps on one tensor of n elements (noisy quadratic, gradients from the current parameters) through a native
 * session, beside two float64 references fed the same gradients: `ref` (float64 states) and `qref` (states rounded to
 * bf16 after every step, as the op stores them).
 */
function run1000(spec: Spec, n: number, sd: StateDtype, opsLibrary: string | false): Run {
  const m = model(spec, [[n]], sd, false);
  const s = NativeSession.create(m.bytes, { opsLibrary, intraOpThreads: 2 });
  try {
    s.carry(m.carry);
    const rng = new Rng(7);
    const p0 = new Float32Array(n);
    for (let i = 0; i < n; i++) p0[i] = rng.normal();
    const init: Record<string, RawTensor> = { p_0: { type: 'float32', data: p0, dims: [n] } };
    for (const k of stateNames(spec)) init[`${k}_0`] = zeros(sd, n, [n]);
    if (hasS1(spec)) init.s1 = { type: 'float32', data: Float32Array.from([0]), dims: [] };
    s.setStateRaw(init);
    const mk = (p: Float64Array): AdemamixRef | SimplifiedAdemamixRef | AdamWRef =>
      spec.op === 'AdEMAMix' ? new AdemamixRef(p, spec) : spec.op === 'AdamW' ? new AdamWRef(p, spec) : new SimplifiedAdemamixRef(p, spec);
    const ref = mk(Float64Array.from(p0)); const qref = mk(Float64Array.from(p0));
    const refState = (r: typeof ref, k: string): Float64Array => (r as unknown as Record<string, Float64Array>)[k];
    const grad = new Float32Array(n);
    for (let t = 1; t <= STEPS; t++) {
      const cur = s.getState(['p_0']).p_0.data as Float32Array;
      for (let i = 0; i < n; i++) grad[i] = 0.5 * (cur[i] - Math.sin(i + t / 100)) + 0.3 * rng.normal();
      const sc = scalarsAt(spec, t);
      const feeds: Record<string, Tensor> = { g_0: new Tensor('float32', grad, [n]), step: i64(t) };
      for (const k of scalarNames(spec)) feeds[k] = f64(sc[k]);
      s.run(feeds, []);
      for (const r of [ref, qref]) {
        if (r instanceof AdamWRef) r.step(grad, sc.lr);
        else if (r instanceof AdemamixRef) r.step(grad, sc as never);
        else r.step(grad, sc as never);
      }
      for (const k of stateNames(spec)) {
        const a = refState(qref, k);
        for (let i = 0; i < n; i++) a[i] = roundBf16(a[i]);
      }
    }
    const raw = s.getStateRaw();
    const states = Object.fromEntries(stateNames(spec).map((k) => [k, decode(raw[`${k}_0`])]));
    if (sd === 'bfloat16') for (const k of stateNames(spec)) expect(raw[`${k}_0`].data).toBeInstanceOf(Uint16Array);
    return {
      param: decode(raw.p_0), states, ref: ref.param, qref: qref.param,
      refStates: Object.fromEntries(stateNames(spec).map((k) => [k, refState(ref, k)])),
    };
  } finally {
    s.release();
  }
}

/** max |a − b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0; let den = 1e-30;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
}
/** ‖a − b‖ / ‖b‖ */
function rmsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0; let den = 1e-300;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / den);
}

const SPECS: [string, Spec][] = [
  ['AdEMAMix', { op: 'AdEMAMix', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }],
  ['AdEMAMix beta1=0', { op: 'AdEMAMix', beta1: 0, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }],
  ['Simplified bc2', { op: 'SimplifiedAdEMAMix', beta2: 0.999, eps: 1e-8, weightDecay: 0.1, biasCorrection1: false, biasCorrection2: true }],
  ['Simplified bc1+bc2', { op: 'SimplifiedAdEMAMix', beta2: 0.95, eps: 1e-8, weightDecay: 0, biasCorrection1: true, biasCorrection2: true }],
  ['AdamW', { op: 'AdamW', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }],
];
const N = 129;
// Per spec, about 7× what was measured on 2026-12-02 (kernel, body vs the bf16-rounded float64 reference after 1000
// steps): AdEMAMix 1.36e-6, 6.71e-5; β1 = 0 1.32e-6, 7.09e-6; Simplified bc2 6.61e-4, 1.06e-3; Simplified bc1+bc2
// 1.37e-2, 1.37e-2 (β1 → 0.99 keeps each rounding flip); AdamW 5.97e-6, 9.62e-3 (the body's Cast rounds at other
// points than the kernel).
const BF16_BOUNDS: Record<string, { kernel: number; body: number }> = {
  AdEMAMix: { kernel: 1e-5, body: 5e-4 }, 'AdEMAMix beta1=0': { kernel: 1e-5, body: 5e-5 },
  'Simplified bc2': { kernel: 5e-3, body: 7e-3 }, 'Simplified bc1+bc2': { kernel: 7e-2, body: 7e-2 }, AdamW: { kernel: 4e-5, body: 7e-2 },
};

describe.each(SPECS)('%s with bf16 states, 1000 steps', (name, spec) => {
  test('fused kernel and function body follow the float64 reference with bf16-stored states', () => {
    const k = run1000(spec, N, 'bfloat16', opsLibraryPath());
    const b = run1000(spec, N, 'bfloat16', false);
    const f = run1000(spec, N, 'float32', opsLibraryPath());
    const measured = {
      kernelVsBf16Ref: relErr(k.param, k.qref), bodyVsBf16Ref: relErr(b.param, b.qref),
      kernelVsF64: relErr(k.param, k.ref), f32KernelVsF64: relErr(f.param, f.ref),
      statesVsF64: Object.fromEntries(Object.keys(k.states).map((s) => [s, +rmsErr(k.states[s], k.refStates[s]).toExponential(1)])),
    };
    console.log(`${name} (bf16 states, ${N} params, ${STEPS} steps): ${JSON.stringify(measured, (_, v) => (typeof v === 'number' ? +v.toExponential(2) : v))}`);
    // The kernel stores what the float64 reference stores after rounding, except where float32 arithmetic lands on the
    // other side of a bf16 rounding boundary: each such flip moves a state by one bf16 step (0.4%) and, with β near 1,
    // stays (measured: up to 1.4e-2 for Simplified with β1 → 0.99, 1e-6 to 7e-4 otherwise). The float64-state
    // trajectory is several times further away still (bf16 storage itself, not the kernel).
    const bound = BF16_BOUNDS[name];
    expect(measured.kernelVsBf16Ref).toBeLessThan(bound.kernel);
    expect(measured.bodyVsBf16Ref).toBeLessThan(bound.body);
    expect(measured.f32KernelVsF64).toBeLessThan(3e-5); // measured 2026-12-02: 2.7e-6 to 5.8e-6
    expect(measured.kernelVsBf16Ref).toBeLessThan(measured.kernelVsF64 / 4);
  });
});

describe('one step from the same bf16 states', () => {
  test.each(SPECS)('%s: kernel and function body agree to 1 bf16 step in the states, 1e-6 in the params', (_, spec) => {
    const n = 301;
    const m = model(spec, [[n]], 'bfloat16', false);
    const rng = new Rng(4);
    const init: Record<string, RawTensor> = { p_0: { type: 'float32', data: Float32Array.from({ length: n }, () => rng.normal()), dims: [n] } };
    for (const k of stateNames(spec)) {
      const v = Uint16Array.from({ length: n }, () => bf16Bits((k === 'nu' || k === 'v' ? 1e-2 * Math.abs(rng.normal()) : 0.1 * rng.normal())));
      init[`${k}_0`] = { type: 'bfloat16', data: v, dims: [n] };
    }
    if (hasS1(spec)) init.s1 = { type: 'float32', data: Float32Array.from([3.5]), dims: [] };
    const feeds: Record<string, Tensor> = { g_0: new Tensor('float32', Float32Array.from({ length: n }, () => 0.3 * rng.normal()), [n]), step: i64(7) };
    const sc = scalarsAt(spec, 7);
    for (const k of scalarNames(spec)) feeds[k] = f64(sc[k]);
    const step = (opsLibrary: string | false): Record<string, RawTensor> => {
      const s = NativeSession.create(m.bytes, { opsLibrary });
      s.carry(m.carry); s.setStateRaw(init); s.run(feeds, []);
      const out = s.getStateRaw(); s.release();
      return out;
    };
    const a = step(opsLibraryPath()); const b = step(false);
    expect(relErr(decode(a.p_0), decode(b.p_0))).toBeLessThan(1e-6);
    for (const k of stateNames(spec)) {
      const x = a[`${k}_0`].data as Uint16Array; const y = b[`${k}_0`].data as Uint16Array;
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
      expect({ k, worst: worst <= 1 }).toEqual({ k, worst: true });
    }
  });

  test('a bf16 state is the float32 result rounded to nearest even (AdamW m after one step from zero)', () => {
    const spec: Spec = { op: 'AdamW', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    const m = model(spec, [[4]], 'bfloat16', false);
    const s = NativeSession.create(m.bytes, { opsLibrary: opsLibraryPath() });
    s.carry(m.carry);
    s.setStateRaw({ p_0: { type: 'float32', data: new Float32Array(4), dims: [4] }, m_0: zeros('bfloat16', 4, [4]), v_0: zeros('bfloat16', 4, [4]) });
    // m = 0.1·g: g chosen so 0.1·g in float32 sits just above / below / on a bf16 rounding boundary
    const g = Float32Array.from([10.0390625, 10.1171875, -10.0390625, 3]);
    s.run({ g_0: new Tensor('float32', g, [4]), step: i64(1), lr: f64(0.01) }, []);
    const got = s.getStateRaw(['m_0']).m_0.data as Uint16Array;
    s.release();
    const want = Array.from(g, (x) => { f32v[0] = x; f32v[0] = Math.fround(0.1) * f32v[0]; return bf16Bits(f32v[0]); });
    expect(Array.from(got)).toEqual(want);
  });
});

test('multi-tensor bf16 op: bit-equal to the per-tensor bf16 ops, with and without the library', () => {
  const shapes = [[5], [3, 7], [1], [40]];
  for (const [, spec] of SPECS) {
    const run = (multi: boolean, opsLibrary: string | false): Record<string, RawTensor> => {
      const m = model(spec, shapes, 'bfloat16', multi);
      const s = NativeSession.create(m.bytes, { opsLibrary });
      s.carry(m.carry);
      const rng = new Rng(2);
      const init: Record<string, RawTensor> = {};
      shapes.forEach((d, i) => {
        const n = d.reduce((a, b) => a * b, 1);
        init[`p_${i}`] = { type: 'float32', data: Float32Array.from({ length: n }, () => rng.normal()), dims: d };
        for (const k of stateNames(spec)) init[`${k}_${i}`] = zeros('bfloat16', n, d);
      });
      if (hasS1(spec)) init.s1 = { type: 'float32', data: Float32Array.from([0]), dims: [] };
      s.setStateRaw(init);
      for (let t = 1; t <= 10; t++) {
        const feeds: Record<string, Tensor> = { step: i64(t) };
        const sc = scalarsAt(spec, t);
        for (const k of scalarNames(spec)) feeds[k] = f64(sc[k]);
        shapes.forEach((d, i) => {
          feeds[`g_${i}`] = new Tensor('float32', Float32Array.from({ length: d.reduce((a, b) => a * b, 1) }, () => rng.normal()), d);
        });
        s.run(feeds, []);
      }
      const out = s.getStateRaw(); s.release();
      return out;
    };
    for (const lib of [opsLibraryPath(), false as const]) {
      const a = run(true, lib); const b = run(false, lib);
      for (const k of Object.keys(b)) {
        const x = a[k].data as Uint16Array | Float32Array; const y = b[k].data as Uint16Array | Float32Array;
        expect({ op: spec.op, lib: !!lib, k, equal: a[k].type === b[k].type && Buffer.from(x.buffer).equals(Buffer.from(y.buffer)) })
          .toEqual({ op: spec.op, lib: !!lib, k, equal: true });
      }
    }
  }
});

test('assembleTraining({stateDtype: "bfloat16"}): bf16 state inputs and initial state; the loss falls', () => {
  const g = new GraphBuilder();
  const rng = new Rng(3);
  const init = (nm: string, dims: number[]): Value =>
    g.initializer(nm, tensorData('float32', dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => 0.3 * rng.normal())));
  const x = g.input('x', 'float32', [8, 6]); const y = g.input('y', 'float32', [8, 3]);
  const w = init('w', [6, 3]); const b = init('b', [3]);
  const d = g.sub(g.add(g.matmul(x, w), b), y);
  const loss = g.op('ReduceSum', [g.mul(d, d)], { keepdims: 0 });
  const art = assembleTraining({ forward: g, loss, optimizer: ademamix({ lr: 3e-2, tAlpha: 50, tBeta3: 50 }), stateDtype: 'bfloat16' });
  expect(art.initialState.get('w.m2')!.dtype).toBe('bfloat16');
  expect(art.train.graph!.node.filter((n) => n.domain === 'com.ademamix').every((n) => n.opType.endsWith('Bf16'))).toBe(true);
  const xs = Float32Array.from({ length: 48 }, () => rng.normal());
  const wTrue = Float32Array.from({ length: 18 }, () => rng.normal());
  const ys = new Float32Array(24);
  for (let r = 0; r < 8; r++) for (let c = 0; c < 3; c++) for (let k = 0; k < 6; k++) ys[r * 3 + c] += xs[r * 6 + k] * wTrue[k * 3 + c];
  for (const lib of [opsLibraryPath(), false as const]) {
    const s = NativeSession.create(encodeModel(art.train), { opsLibrary: lib });
    s.carry(art.carry);
    s.setStateRaw(Object.fromEntries([...art.initialState].map(([k, v]) => [k, { type: v.dtype, data: v.data as Float32Array, dims: v.dims }])));
    const losses: number[] = [];
    for (let t = 0; t < 60; t++) {
      const out = s.run({ x: new Tensor('float32', xs, [8, 6]), y: new Tensor('float32', ys, [8, 3]) }, ['loss']);
      losses.push(out.loss.data[0] as number);
    }
    expect(s.getStateRaw(['w.nu'])['w.nu'].type).toBe('bfloat16');
    s.release();
    expect(losses[59]).toBeLessThan(0.1 * losses[0]);
  }
});
