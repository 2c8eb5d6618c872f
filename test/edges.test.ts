// Numerics at the edges, for every optimizer in OPTIMIZERS, through the training graph (assembleTraining) run by the
// session addon with the op library (fused kernels) and without it (the standard-op function bodies):
// NaN / inf in the gradients (the skip guard of --nan-policy skip; what --nan-policy stop sees), lr 0, a huge lr,
// β = 1 and ε = 0 (refused by the definitions' ranges), a zero-size parameter, an empty parameter list.
// docs/runner.md "Numerics at the edges" states each behaviour tested here.
import { Tensor } from 'onnxruntime-common';
import { GraphBuilder } from '../src/graph/builder';
import { tensorData } from '../src/graph/tensor-data';
import type { Value } from '../src/graph/value';
import { NativeSession } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';
import { create, ModelProtoSchema, NodeProtoSchema, toBinary, ValueInfoProtoSchema } from '../src/onnx/proto';
import { activeStates, hyperOf, makeSpec, OPTIMIZERS } from '../src/optim/derive';
import type { OptimizerDef } from '../src/optim/defs/types';
import { DEFAULT_CONFIG, validateConfig } from '../src/runner/config';
import { assembleTraining, type TrainingArtifacts } from '../src/train/assemble';

const W0 = [0.5, -0.3, 0.2];
const f32 = (a: ArrayLike<number>, dims: readonly number[]): Tensor => new Tensor('float32', Float32Array.from(a), dims);

/** loss = Σ (x·w − y)² + Σ e² with w: [3] and e: [0] (a zero-size parameter) when `empty`. */
function tiny(empty: boolean): { g: GraphBuilder; loss: Value } {
  const g = new GraphBuilder();
  const w = g.initializer('w', tensorData('float32', [3], W0));
  const x = g.input('x', 'float32', [3]); const y = g.input('y', 'float32', []);
  const d = g.sub(g.mul(x, w), y);
  let loss = g.op('ReduceSum', [g.mul(d, d)], { keepdims: 0 });
  if (empty) {
    const e = g.initializer('e', tensorData('float32', [0], []));
    loss = g.add(loss, g.op('ReduceSum', [g.mul(e, e)], { keepdims: 0 }));
  }
  return { g, loss };
}

interface Run { art: TrainingArtifacts; s: NativeSession }
function start(def: OptimizerDef, o: { lr: number; skip?: boolean; empty?: boolean; lib: boolean }): Run {
  const m = tiny(o.empty ?? false);
  const art = assembleTraining({ forward: m.g, loss: m.loss, optimizer: makeSpec(def, { lr: o.lr }), skipNonFinite: o.skip ?? false });
  const s = NativeSession.create(encodeModel(art.train), { opsLibrary: o.lib ? opsLibraryPath() : false, intraOpThreads: 1 });
  s.carry(art.carry);
  s.setState(Object.fromEntries([...art.initialState].map(([k, v]) => [k, new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims)])));
  return { art, s };
}
const X = [1, 2, -1]; const Y = 0.25;
const step = (r: Run, x: number[] = X, y = Y): Record<string, Tensor> => r.s.run({ x: f32(x, [3]), y: f32([y], []) });
/** Every carried value, copied (params, states, step). */
const snapshot = (r: Run): Record<string, number[]> => Object.fromEntries(Object.entries(r.s.getState(Object.values(r.art.carry)))
  .map(([k, v]) => [k, Array.from(v.data as ArrayLike<number | bigint>, Number)]));
const scalar = (t: Tensor): number => Number((t.data as ArrayLike<number | bigint>)[0]);
const bits = (a: number[]): string => Buffer.from(Float32Array.from(a).buffer).toString('hex');
/** Distance in float32 units in the last place, element by element (same-sign values). */
const ulps = (a: number[], b: number[]): number[] => {
  const ia = new Int32Array(Float32Array.from(a).buffer); const ib = new Int32Array(Float32Array.from(b).buffer);
  return Array.from(ia, (v, i) => Math.abs(v - ib[i]));
};

const LIBS = [['kernels', true], ['function bodies', false]] as const;
const CASES = OPTIMIZERS.flatMap((def) => LIBS.map(([impl, lib]) => ({ name: `${def.name} (${impl})`, def, lib })));

describe.each(CASES)('$name', ({ def, lib }) => {
  test.each([['NaN', NaN], ['inf', Infinity]])('%s in the gradients: skip policy keeps params, states and step; stop policy sees a non-finite grad_norm', (_, bad) => {
    const r = start(def, { lr: 1e-2, skip: true, lib });
    step(r);
    const before = snapshot(r);
    const out = step(r, [1, bad, -1]);
    expect(scalar(out.skipped)).toBe(1);
    const after = snapshot(r);
    for (const k of Object.keys(before)) expect({ k, v: bits(after[k]) }).toEqual({ k, v: bits(before[k]) });
    expect(scalar(step(r).skipped)).toBe(0); // a finite batch trains again
    r.s.release();
    // without the guard (--nan-policy stop) the update runs and the runner stops on the non-finite grad_norm / loss
    const q = start(def, { lr: 1e-2, skip: false, lib });
    const o = step(q, [1, bad, -1]);
    expect(Number.isFinite(scalar(o.grad_norm)) && Number.isFinite(scalar(o.loss))).toBe(false);
    expect(o.skipped).toBeUndefined();
    q.s.release();
  });

  test('lr 0: parameters unchanged bit for bit, states updated as the float64 reference does, step advances', () => {
    const r = start(def, { lr: 0, lib });
    const before = snapshot(r);
    step(r);
    const after = snapshot(r);
    if (def.evalParam) {
      // Schedule-Free carries y and re-derives it from x and z each step: z stays bit for bit, y within float32
      // rounding (measured: 1 ulp on one element with the kernel, 0 with the function body)
      expect(bits(after['w.z'])).toBe(bits(before['w.z']));
      expect(Math.max(...ulps(after.w, before.w))).toBeLessThanOrEqual(2);
    } else expect(bits(after.w)).toBe(bits(before.w));
    expect(after.step).toEqual([2]);
    // the reference after one step at lr 0 from the same gradient: 2 (x·w − y) x
    const spec = makeSpec(def, { lr: 0 });
    const ref = def.reference(hyperOf(def, spec, 0), [Float64Array.from(W0)]);
    const grad = X.map((x, i) => 2 * (x * W0[i] - Y) * x);
    ref.step([grad], Object.fromEntries(def.scalars.map((sd) => [sd.name, sd.at(1, spec)])));
    for (const st of activeStates(def, spec)) {
      const want = Array.from(ref.state(st, 0));
      const got = after[`w.${st}`];
      got.forEach((v, i) => expect({ st, i, err: Math.abs(v - want[i]) <= 1e-6 * (1 + Math.abs(want[i])) }).toEqual({ st, i, err: true }));
    }
    r.s.release();
  });

  test('a huge lr (1e30): with the skip policy every parameter stays finite (overflowing steps are skipped)', () => {
    const r = start(def, { lr: 1e30, skip: true, lib });
    let skipped = 0;
    for (let t = 0; t < 5; t++) skipped += scalar(step(r, X.map((x) => x * (t + 1))).skipped);
    const st = snapshot(r);
    expect(st.w.every(Number.isFinite)).toBe(true);
    expect(st.step[0] + skipped).toBe(6); // each step either ran or was skipped
    r.s.release();
  });

  test('a zero-size parameter trains next to a non-empty one: stays [0], states [0], same trajectory as without it', () => {
    const a = start(def, { lr: 1e-2, empty: true, lib }); const b = start(def, { lr: 1e-2, lib });
    for (let t = 0; t < 3; t++) { step(a); step(b); }
    const sa = a.s.getState(); const sb = b.s.getState();
    expect(sa.e.dims).toEqual([0]);
    for (const st of activeStates(def, makeSpec(def))) expect(sa[`e.${st}`].dims).toEqual([0]);
    expect(bits(Array.from(sa.w.data as Float32Array))).toBe(bits(Array.from(sb.w.data as Float32Array)));
    a.s.release(); b.s.release();
  });
});

describe.each(OPTIMIZERS.map((def) => ({ name: def.name, def })))('$name: hyperparameter ranges', ({ def }) => {
  const betas = def.hyper.filter((h) => h.key.startsWith('beta') && h.type !== 'bool');
  test.each(betas.length ? betas.map((h) => h.key) : ['(none)'])('%s = 1 is refused, naming it and its range', (key) => {
    if (key === '(none)') return;
    expect(() => makeSpec(def, { [key]: 1 })).toThrow(new RegExp(`^${def.name}: ${key} = 1 is outside \\[0, 1\\)|^${def.name}: ${key} = 1 is outside \\(0, 1\\)`));
  });
  test('eps = 0 is refused where the optimizer has an ε (0/0 where a gradient has been 0)', () => {
    if (!def.hyper.some((h) => h.key === 'eps')) { expect(() => makeSpec(def, { eps: 0 })).toThrow(/no hyperparameter eps/); return; }
    expect(() => makeSpec(def, { eps: 0 })).toThrow(new RegExp(`^${def.name}: eps = 0 is outside \\(0, Infinity\\]`));
    expect(() => makeSpec(def, { eps: 1e-30 })).not.toThrow();
  });
});

describe('runner config and empty lists', () => {
  test('lr 0, a negative, non-finite or above-float32 lr are refused by the runner, naming lr', () => {
    for (const lr of [0, -1, Infinity, NaN, 1e39]) expect(() => validateConfig({ ...DEFAULT_CONFIG, lr })).toThrow(/^lr must be > 0 and at most float32's max/);
    expect(() => validateConfig({ ...DEFAULT_CONFIG, lr: 1e30 })).not.toThrow();
  });
  test.each(OPTIMIZERS.map((d) => [d.name, d] as const))('%s: an empty parameter list is refused', (_, def) => {
    const m = tiny(false);
    expect(() => assembleTraining({ forward: m.g, loss: m.loss, params: [], optimizer: makeSpec(def) }))
      .toThrow('assembleTraining: no trainable parameters (no float initializers)');
  });
});

// Inputs the native fuzzer (custom-ops/fuzz/, regressions/) found crashing the op library, as clear errors now.
describe('hand-written nodes the fuzzer found', () => {
  const vi = (name: string, elemType: number, dims: number[]) => create(ValueInfoProtoSchema, {
    name, type: { value: { case: 'tensorType', value: { elemType, shape: { dim: dims.map((d) => ({ value: { case: 'dimValue' as const, value: BigInt(d) } })) } } } },
  });
  const model = (op: string, inputs: string[], outputs: string[]): Uint8Array => toBinary(ModelProtoSchema, create(ModelProtoSchema, {
    irVersion: 10n, opsetImport: [{ domain: '', version: 20n }, { domain: 'com.ademamix', version: 1n }],
    graph: {
      name: 'g', node: [create(NodeProtoSchema, { opType: op, domain: 'com.ademamix', input: inputs, output: outputs, name: 'n' })],
      input: [vi('step', 7, []), vi('lr', 1, []), ...['p', 'g', 'm', 'v'].map((x) => vi(x, 1, [2]))],
      output: outputs.filter((o) => o).map((o) => create(ValueInfoProtoSchema, { name: o })),
    },
  }));
  const feeds = (step: bigint) => ({
    step: new Tensor('int64', BigInt64Array.from([step]), []), lr: f32([0.1], []),
    p: f32([1, 2], [2]), g: f32([0.5, -0.5], [2]), m: f32([0, 0], [2]), v: f32([0, 0], [2]),
  });
  const run = (bytes: Uint8Array, step = 1n) => NativeSession.create(bytes, { opsLibrary: opsLibraryPath(), intraOpThreads: 1 }).run(feeds(step));
  const multi = ['step', 'lr', 'p', 'g', 'm', 'v'];
  test('a multi-tensor op with param_out omitted is refused; with a state output omitted it runs', () => {
    expect(() => run(model('AdamWMulti', multi, ['', 'm_out', 'v_out']))).toThrow(/AdamWMulti 'n': output 'param_out\[0\]' is required/);
    const all = run(model('AdamWMulti', multi, ['p_out', 'm_out', 'v_out']));
    const some = run(model('AdamWMulti', multi, ['p_out', '', 'v_out']));
    expect(Array.from(some.p_out.data as Float32Array)).toEqual(Array.from(all.p_out.data as Float32Array));
  });
  test('step = int64 max is refused (it does not round-trip through double)', () => {
    const bytes = model('AdamW', ['p', 'g', 'm', 'v', 'step', 'lr'], ['p_out', 'm_out', 'v_out']);
    expect(() => run(bytes, 9223372036854775807n)).toThrow(/AdamW 'n': 'step' must be below 2\^63/);
    expect(() => run(bytes, 0n)).toThrow(/AdamW 'n': 'step' is 1-based and must be >= 1, got 0/);
    expect(() => run(bytes, 9007199254740993n)).not.toThrow();
  });
});
