// The fused backward ops (GeluGrad, SoftmaxGrad, LayerNormalizationGrad, WeightGrad of com.ademamix): each op's
// gradients from the op library's kernel, from its function body (the same graph with the library not loaded) and
// from the standard-op backward pass, against float64 references written here from the formulas; then a whole GPT's
// parameter gradients, fused against standard.
import { Tensor } from 'onnxruntime-common';
import { buildGpt } from '../graphs/gpt';
import { buildVit } from '../graphs/vit';
import { gradients } from '../src/autodiff';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import type { Value } from '../src/graph/value';
import { NativeSession } from '../src/native';
import { hasOpsLibrary } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';
import { linearLayer } from '../src/ops/math';
import { sumSquares } from '../src/ops/fused';
import { gelu as geluOp } from '../src/ops/elementwise';
import { softmaxCrossEntropy } from '../src/ops/loss';
import { layerNormalization } from '../src/ops/nn';
import { assembleTraining } from '../src/train/assemble';
import { makeSpec, getOptimizer } from '../src/optim/derive';
import { randn } from './support/rng';

const numel = (d: number[]): number => d.reduce((a, b) => a * b, 1);

// erf in float64: its Maclaurin series below 3, the continued fraction of erfc above (both to ~1e-15 here)
function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    let term = a; let sum = a;
    for (let n = 1; n < 80; n++) { term *= -a * a / n; sum += term / (2 * n + 1); }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0; // erfc(a) = e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …))))
  for (let k = 60; k >= 1; k--) f = (k / 2) / (a + f);
  return Math.sign(x) * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
}

interface Case {
  name: string;
  inputs: { name: string; dims: number[]; scale?: number }[];
  /** The forward value; the loss is Σ y ⊙ r for a fixed random r shaped like y. */
  build: (g: GraphBuilder, xs: Value[]) => Value;
  /** The float64 reference of every input's gradient from the inputs and r. */
  reference: (xs: number[][], r: number[]) => number[][];
  /** The fused op the fused graph must hold. */
  op: string;
}

const gelu = (tanh: boolean): Case => ({
  name: `Gelu(approximate=${tanh ? 'tanh' : 'none'})`, op: 'GeluGrad',
  inputs: [{ name: 'x', dims: [4, 33, 70], scale: 3 }],
  build: (g, [x]) => g.op('Gelu', [x], tanh ? { approximate: 'tanh' } : {}),
  reference: ([x], r) => [x.map((v, i) => {
    if (!tanh) return r[i] * (0.5 * (1 + erf(v / Math.SQRT2)) + v * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI));
    const s = Math.sqrt(2 / Math.PI); const t = Math.tanh(s * (v + 0.044715 * v ** 3));
    return r[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * s * (1 + 3 * 0.044715 * v * v));
  })],
});

const softmax: Case = {
  name: 'Softmax over the last axis', op: 'SoftmaxGrad',
  inputs: [{ name: 'x', dims: [3, 5, 37], scale: 2 }],
  build: (g, [x]) => g.op('Softmax', [x], { axis: -1 }),
  reference: ([x], r) => {
    const C = 37; const out = new Array<number>(x.length);
    for (let o = 0; o < x.length; o += C) {
      const row = x.slice(o, o + C); const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m)); const z = e.reduce((a, b) => a + b, 0); const y = e.map((v) => v / z);
      const s = y.reduce((a, v, j) => a + v * r[o + j], 0);
      for (let j = 0; j < C; j++) out[o + j] = y[j] * (r[o + j] - s);
    }
    return [out];
  },
};

// LayerNormalization over the dims from `axis`; scale and bias shaped like them
// (residual: y = x + LN(x), a pre-LN block's skip: x's other gradient, r, goes into the fused node as dR)
const layerNorm = (dims: number[], axis: number, residual = false): Case => {
  const norm = dims.slice(axis); const C = numel(norm); const R = numel(dims.slice(0, axis));
  return {
    name: `LayerNormalization ${JSON.stringify(dims)} axis ${axis}${residual ? ', x + LN(x)' : ''}`, op: 'LayerNormalizationGrad',
    inputs: [{ name: 'x', dims, scale: 2 }, { name: 'scale', dims: norm }, { name: 'bias', dims: norm }],
    build: (g, [x, s, b]) => {
      const y = g.op('LayerNormalization', [x, s, b], { axis, epsilon: 1e-5 });
      return residual ? g.add(x, y) : y;
    },
    reference: ([x, s], r) => {
      const dx = new Array<number>(x.length).fill(0); const ds = new Array<number>(C).fill(0); const db = new Array<number>(C).fill(0);
      for (let i = 0; i < R; i++) {
        const row = x.slice(i * C, (i + 1) * C);
        const mu = row.reduce((a, b) => a + b, 0) / C;
        const inv = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mu) ** 2, 0) / C + 1e-5);
        const xh = row.map((v) => (v - mu) * inv);
        const g = xh.map((_, j) => r[i * C + j] * s[j]);
        const m1 = g.reduce((a, b) => a + b, 0) / C; const m2 = g.reduce((a, v, j) => a + v * xh[j], 0) / C;
        for (let j = 0; j < C; j++) {
          dx[i * C + j] = inv * (g[j] - m1 - xh[j] * m2) + (residual ? r[i * C + j] : 0);
          ds[j] += r[i * C + j] * xh[j]; db[j] += r[i * C + j];
        }
      }
      return [dx, ds, db];
    },
  };
};

// y = x·W + b with x [B, T, M], W [M, N]: the bias (Add) and weight (MatMul) rules share one WeightGrad node
const linear = (B: number, T: number, M: number, N: number): Case => ({
  name: `linear [${B},${T},${M}]·[${M},${N}] + b`, op: 'WeightGrad',
  inputs: [{ name: 'x', dims: [B, T, M] }, { name: 'w', dims: [M, N] }, { name: 'b', dims: [N] }],
  build: (g, [x, w, b]) => g.add(g.matmul(x, w), b),
  reference: ([x, w], r) => {
    const K = B * T; const dx = new Array<number>(K * M).fill(0); const dw = new Array<number>(M * N).fill(0); const db = new Array<number>(N).fill(0);
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        const d = r[k * N + n]; db[n] += d;
        for (let m = 0; m < M; m++) { dw[m * N + n] += x[k * M + m] * d; dx[k * M + m] += d * w[m * N + n]; }
      }
    }
    return [dx, dw, db];
  },
});

const CASES: Case[] = [gelu(false), gelu(true), softmax, layerNorm([6, 7, 50], 2), layerNorm([4, 6, 5, 9], 2),
  layerNorm([6, 7, 50], 2, true), linear(3, 17, 40, 48), linear(2, 9, 13, 21), linear(2, 150, 50, 20)];

/** The case's backward graph (fused or standard) and its float32 data. */
function build(c: Case, fused: boolean) {
  const g = new GraphBuilder();
  const xs = c.inputs.map((i) => g.input(i.name, 'float32', i.dims));
  const y = c.build(g, xs);
  const r = g.input('r', 'float32', y.shape);
  const loss = g.op('ReduceSum', [g.mul(y, r)], { keepdims: 0 });
  gradients(g, loss, xs, { fused }).forEach((d, i) => g.output(d, `d_${c.inputs[i].name}`));
  const model = toModelProto(g);
  const data = c.inputs.map((i, k) => randn(numel(i.dims), 100 + k, i.scale ?? 1));
  const rData = randn(numel(y.shape as number[]), 99);
  return { model, data, rData, rDims: y.shape as number[], ops: g.nodes.map((n) => n.opType) };
}

function run(c: Case, fused: boolean, opsLibrary?: false, threads = 2): Float32Array[] {
  const b = build(c, fused);
  const s = NativeSession.create(encodeModel(b.model), { intraOpThreads: threads, opsLibrary });
  try {
    const feeds: Record<string, Tensor> = { r: new Tensor('float32', Float32Array.from(b.rData), b.rDims) };
    c.inputs.forEach((inp, k) => { feeds[inp.name] = new Tensor('float32', Float32Array.from(b.data[k]), inp.dims); });
    const out = s.run(feeds);
    return c.inputs.map((inp) => out[`d_${inp.name}`].data as Float32Array);
  } finally { s.release(); }
}

/** max |got − ref| over max(max |ref|, 1e-3): the error relative to the gradient's scale. */
function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0; let den = 1e-3;
  for (let i = 0; i < ref.length; i++) { num = Math.max(num, Math.abs(got[i] - ref[i])); den = Math.max(den, Math.abs(ref[i])); }
  return num / den;
}

describe('fused backward ops', () => {
  test('the op library is built (the kernels are what these tests check)', () => {
    expect(hasOpsLibrary()).toBe(true);
  });

  // Measured 2026-12-02 (error over the gradient's scale, worst input of each case): kernel vs float64 Gelu 1.5e-7,
  // Gelu tanh 9.9e-7 (the standard ops: 1.3e-6), Softmax 2.2e-7, LayerNormalization 1.9e-7, WeightGrad 2.5e-7; the
  // function body and the standard graph are the same ORT kernels on the same inputs: equal to the bit.
  const TOL = 5e-6;
  test.each(CASES.map((c) => [c.name, c] as const))('%s: kernel, function body and standard ops against float64', (_n, c) => {
    const b = build(c, true);
    expect(b.ops).toContain(c.op);
    expect(build(c, false).ops).not.toContain(c.op);
    const ref = c.reference(b.data, b.rData);
    const kernel = run(c, true); const body = run(c, true, false); const standard = run(c, false);
    ref.forEach((r, i) => {
      expect(relErr(kernel[i], r)).toBeLessThan(TOL);
      expect(relErr(standard[i], r)).toBeLessThan(TOL);
      expect(relErr(body[i], standard[i])).toBe(0);
    });
  });

  // WeightGrad splits its output between the pool's threads (by column panels, or by row tiles when M > N): the
  // split must not change a bit
  test.each([['panels', linear(3, 17, 40, 48)], ['tiles', linear(2, 150, 50, 20)]] as const)('WeightGrad split by %s: the same bits on 1, 2 and 3 threads', (_n, c) => {
    const one = run(c, true, undefined, 1);
    for (const t of [2, 3]) run(c, true, undefined, t).forEach((v, i) => expect(Buffer.from(v.buffer).equals(Buffer.from(one[i].buffer))).toBe(true));
  });

  // every parameter gradient of a model's fused training graph (fused attention and Linear nodes too) against the
  // standard graph's, on one batch
  const modelGrads = (m: ReturnType<typeof buildGpt>, fused: boolean, feeds: Record<string, Tensor>): Record<string, Float32Array> => {
    const art = assembleTraining({ forward: m.g, loss: m.loss, optimizer: makeSpec(getOptimizer('adamw'), { lr: 0 }), emitGradients: true, fusedBackward: fused });
    const s = NativeSession.create(encodeModel(art.train), { intraOpThreads: 2 });
    try {
      s.carry(art.carry);
      const init: Record<string, Tensor> = {};
      for (const [k, v] of art.initialState) init[k] = new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims);
      s.setState(init);
      const out = s.run(feeds, art.params.map((p) => `${p}.grad`));
      return Object.fromEntries(art.params.map((p) => [p, out[`${p}.grad`].data as Float32Array]));
    } finally { s.release(); }
  };
  test('a GPT: every parameter gradient of the fused training graph (fused attention too) matches the standard one', () => {
    const tok = (k: number): Tensor => new Tensor('int64', BigInt64Array.from({ length: 72 }, (_, i) => BigInt((i * 7 + k * 3) % 37)), [3, 24]);
    const grads = (fused: boolean): Record<string, Float32Array> => {
      const m = buildGpt({ vocabSize: 37, blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 32, mlpRatio: 4 }, 0, { fused });
      expect(m.g.nodes.filter((n) => n.opType === 'Linear').length).toBe(fused ? 8 : 0);  // qkv, proj, fc, proj per layer
      return modelGrads(m, fused, { tokens: tok(0), targets: tok(1) });
    };
    const f = grads(true); const st = grads(false);
    const names = Object.keys(st);
    expect(names.length).toBeGreaterThan(10);
    // measured: worst 1.9e-6 of a parameter's largest gradient (different summation orders in float32)
    for (const p of names) expect([p, relErr(f[p], st[p]) < 2e-5]).toEqual([p, true]);
  });
  test('a ViT (full attention over 5 tokens): every parameter gradient fused matches the standard one', () => {
    const feeds = {
      images: new Tensor('float32', Float32Array.from(randn(6 * 64, 31)), [6, 1, 8, 8]),
      labels: new Tensor('int64', BigInt64Array.from({ length: 6 }, (_, i) => BigInt(i % 2)), [6]),
    };
    const grads = (fused: boolean): Record<string, Float32Array> =>
      modelGrads(buildVit({ imageSize: 8, patchSize: 4, channels: 1, numClasses: 2, dim: 64, depth: 2, heads: 2, mlpRatio: 2 }, 0, { fused }), fused, feeds);
    const f = grads(true); const st = grads(false);
    const names = Object.keys(st);
    expect(names.length).toBeGreaterThan(10);
    // measured 2026-12-03: worst 2.2e-6 of a parameter's largest gradient
    for (const p of names) expect([p, relErr(f[p], st[p]) < 2e-5]).toEqual([p, true]);
  });

  test('bad shapes reach the kernel as one error naming the node and the tensor', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['rows', 8]); const d = g.input('dy', 'float32', ['rows2', 4]);
    g.output(g.opN('WeightGrad', [x, d], {}, { domain: 'com.ademamix', outputs: 2, name: 'wg_bad' })[0], 'dw');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 1 });
    try {
      expect(() => s.run({ x: new Tensor('float32', new Float32Array(24), [3, 8]), dy: new Tensor('float32', new Float32Array(8), [2, 4]) }))
        .toThrow(/WeightGrad 'wg_bad'.*X \[rows, M\] and dY \[rows, N\] with the same rows, got \[3,8\] and \[2,4\]/);
    } finally { s.release(); }
  });
});

// Linear (com.ademamix, forward): X·W + B in one node, the bias added in the kernel's register tiles; its gradients
// are the MatMul's (dX) and WeightGrad (dW, dB). Against float64, the kernel and the function body (MatMul, Add).
describe('Linear', () => {
  // y = x·W + b (+ res, with `residual`), loss Σ y ⊙ r
  const run = (xDims: number[], N: number, o: { opsLibrary?: false; threads?: number; residual?: boolean } = {}) => {
    const K = xDims[xDims.length - 1]; const yDims = [...xDims.slice(0, -1), N];
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', xDims); const w = g.input('w', 'float32', [K, N]); const b = g.input('b', 'float32', [N]);
    const res = o.residual ? g.input('res', 'float32', yDims) : undefined;
    const y = linearLayer(g, x, w, b, true, res);
    const r = g.input('r', 'float32', y.shape);
    const loss = g.op('ReduceSum', [g.mul(y, r)], { keepdims: 0 });
    g.output(y, 'y');
    const wrt = res ? [x, w, b, res] : [x, w, b]; const names = ['dx', 'dw', 'db', 'dres'].slice(0, wrt.length);
    gradients(g, loss, wrt, { fused: true }).forEach((d, i) => g.output(d, names[i]));
    const data = { x: randn(numel(xDims), 11), w: randn(K * N, 12), b: randn(N, 13), r: randn(numel(yDims), 14), res: o.residual ? randn(numel(yDims), 15) : null };
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: o.threads ?? 2, opsLibrary: o.opsLibrary });
    try {
      const t = (v: number[], d: number[]): Tensor => new Tensor('float32', Float32Array.from(v), d);
      const feeds: Record<string, Tensor> = { x: t(data.x, xDims), w: t(data.w, [K, N]), b: t(data.b, [N]), r: t(data.r, yDims) };
      if (data.res) feeds.res = t(data.res, yDims);
      const out = s.run(feeds);
      return { ops: g.nodes.map((n) => n.opType), data, out: Object.fromEntries(['y', ...names].map((k) => [k, out[k].data as Float32Array])) };
    } finally { s.release(); }
  };
  const reference = (xDims: number[], N: number, d: { x: number[]; w: number[]; b: number[]; r: number[]; res: number[] | null }) => {
    const K = xDims[xDims.length - 1]; const M = numel(xDims) / K;
    const y = new Array<number>(M * N).fill(0); const dx = new Array<number>(M * K).fill(0);
    const dw = new Array<number>(K * N).fill(0); const db = new Array<number>(N).fill(0);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = d.b[n] + (d.res ? d.res[m * N + n] : 0); const rv = d.r[m * N + n]; db[n] += rv;
        for (let k = 0; k < K; k++) { acc += d.x[m * K + k] * d.w[k * N + n]; dx[m * K + k] += rv * d.w[k * N + n]; dw[k * N + n] += d.x[m * K + k] * rv; }
        y[m * N + n] = acc;
      }
    }
    return { y, dx, dw, db, dres: d.r };
  };
  // X shapes: partial row tiles and column panels, K past one k block (256), N past one 512-column group of W, rank 2
  // and rank 1; a residual on three
  const SHAPES: [number[], number, boolean][] = [[[3, 17, 40], 48, false], [[2, 9, 13], 21, true], [[2, 30, 300], 20, false],
    [[7, 13], 33, true], [[5], 9, false], [[2, 5, 7], 600, true]];
  // measured 2026-12-03 (error over the output's scale, worst of y, dx, dw, db): kernel 3.4e-7, function body 4.5e-7
  test.each(SHAPES)('X %j, N %i, residual %s: the kernel and the function body against float64', (xDims, N, residual) => {
    const k = run(xDims, N, { residual }); const body = run(xDims, N, { opsLibrary: false, residual });
    expect(k.ops).toContain('Linear');
    const ref = reference(xDims, N, k.data);
    for (const key of ['y', 'dx', 'dw', 'db', ...(residual ? ['dres'] as const : [])] as const) {
      expect([key, relErr(k.out[key], ref[key]) < 3e-6]).toEqual([key, true]);
      expect([key, relErr(body.out[key], ref[key]) < 4e-6]).toEqual([key, true]);
    }
  });
  test('the rows split between the pool\'s threads: the same bits on 1, 2 and 3 threads', () => {
    const one = run([2, 150, 40], 70, { threads: 1 }).out.y;
    for (const t of [2, 3]) expect(Buffer.from(run([2, 150, 40], 70, { threads: t }).out.y.buffer).equals(Buffer.from(one.buffer))).toBe(true);
  });
  test('bad shapes reach the kernel as one error naming the node and the tensors', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['rows', 'k']); const w = g.input('w', 'float32', ['k2', 'n']); const b = g.input('b', 'float32', ['n2']);
    const r = g.input('r', 'float32', ['rows2', 'n3']);
    g.output(g.opN('Linear', [x, w, b, r], {}, { domain: 'com.ademamix', outputs: 1, name: 'lin_bad' })[0], 'y');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 1 });
    const t = (d: number[]): Tensor => new Tensor('float32', new Float32Array(numel(d)), d);
    try {
      expect(() => s.run({ x: t([3, 8]), w: t([7, 4]), b: t([4]), r: t([3, 4]) })).toThrow(/Linear 'lin_bad'.*X \[\.\.\., K\] and W \[K, N\], got \[3,8\] and \[7,4\]/);
      expect(() => s.run({ x: t([3, 8]), w: t([8, 4]), b: t([5]), r: t([3, 4]) })).toThrow(/Linear 'lin_bad'.*B \[N\] for W \[8,4\], got \[5\]/);
      expect(() => s.run({ x: t([3, 8]), w: t([8, 4]), b: t([4]), r: t([3, 5]) })).toThrow(/Linear 'lin_bad'.*input 'R' has shape \[3,5\] but 'Y' has \[3,4\]/);
      expect(s.run({ x: t([3, 8]), w: t([8, 4]), b: t([4]), r: t([3, 4]) }).y.dims).toEqual([3, 4]);
    } finally { s.release(); }
  });
});

// Gelu in com.ademamix (forward): Y from the op library's kernel and from its function body (ORT's standard Gelu)
// against float64, both forms, and dX through it (GeluGrad)
describe('Gelu (com.ademamix)', () => {
  const dims = [3, 37, 41];
  const run = (form: 'none' | 'tanh', opsLibrary?: false) => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', dims);
    const y = geluOp(g, x, form, true);
    const r = g.input('r', 'float32', dims);
    g.output(y, 'y');
    g.output(gradients(g, g.op('ReduceSum', [g.mul(y, r)], { keepdims: 0 }), [x], { fused: true })[0], 'dx');
    // |x| up to ~12 (scale 3): both tails, where Φ is 0 or 1 to float precision
    const data = { x: randn(numel(dims), 41, 3), r: randn(numel(dims), 42) };
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 2, opsLibrary });
    try {
      const t = (v: number[]): Tensor => new Tensor('float32', Float32Array.from(v), dims);
      const out = s.run({ x: t(data.x), r: t(data.r) });
      return { ops: g.nodes.map((n) => `${n.domain}:${n.opType}`), data, y: out.y.data as Float32Array, dx: out.dx.data as Float32Array };
    } finally { s.release(); }
  };
  // measured 2026-12-03 (error over the output's scale), erf / tanh: y kernel 4.6e-8 / 4.3e-8, function body (ORT's
  // Gelu) 5.1e-8 / 6.9e-8; dx kernel 1.2e-7 / 1.3e-6, body 8.7e-8 / 2.0e-6
  test.each(['none', 'tanh'] as const)('approximate %s: the kernel and the function body against float64', (form) => {
    const k = run(form); const body = run(form, false);
    expect(k.ops).toContain('com.ademamix:Gelu');
    const s = Math.sqrt(2 / Math.PI);
    const yRef = k.data.x.map((v) => (form === 'none' ? 0.5 * v * (1 + erf(v / Math.SQRT2)) : 0.5 * v * (1 + Math.tanh(s * (v + 0.044715 * v ** 3)))));
    const dRef = gelu(form === 'tanh').reference([k.data.x], k.data.r)[0];
    for (const out of [k, body]) {
      expect(relErr(out.y, yRef)).toBeLessThan(5e-7);
      expect(relErr(out.dx, dRef)).toBeLessThan(1e-5);
    }
  });
  test('a bad approximate is one error naming the node', () => {
    const g = new GraphBuilder();
    g.output(g.op('Gelu', [g.input('x', 'float32', [4])], { approximate: 'fast' }, { domain: 'com.ademamix', name: 'gelu_bad' }), 'y');
    expect(() => NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 1 }).release())
      .toThrow(/Gelu 'gelu_bad': attribute approximate must be 'none' or 'tanh', got 'fast'/);
  });
});

// SoftmaxCrossEntropyLoss in com.ademamix (2-D float32 scores): the loss, log_prob and the fused score gradient
// (SoftmaxCrossEntropyLossGrad) from the op library's kernels and from their function bodies against float64
describe('SoftmaxCrossEntropyLoss (com.ademamix)', () => {
  const N = 37; const C = 23;
  const build = (red: 'mean' | 'sum' | 'none', ignore?: number) => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [N, C]); const t = g.input('t', 'int64', [N]); const r = g.input('r', 'float32', [N]);
    const loss = softmaxCrossEntropy(g, x, t, red, true, ignore);
    // dLoss ≠ 1: 1.7 for mean and sum, r per row for none
    const obj = red === 'none' ? g.op('ReduceSum', [g.mul(loss, r)], { keepdims: 0 }) : g.mul(loss, g.scalar(1.7, 'float32'));
    g.output(loss, 'loss'); g.output(loss.producer!.outputs[1], 'lp');
    g.output(gradients(g, obj, [x], { fused: true })[0], 'dx');
    return g;
  };
  const data = (ignore?: number) => ({
    x: randn(N * C, 51, 3), r: randn(N, 52),
    t: Array.from({ length: N }, (_, i) => (ignore !== undefined && i % 5 === 2 ? ignore : (i * 7 + 3) % C)),
  });
  const run = (g: GraphBuilder, d: ReturnType<typeof data>, opsLibrary?: false) => {
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 2, opsLibrary });
    try {
      const out = s.run({ x: new Tensor('float32', Float32Array.from(d.x), [N, C]), t: new Tensor('int64', BigInt64Array.from(d.t.map(BigInt)), [N]), r: new Tensor('float32', Float32Array.from(d.r), [N]) });
      return { loss: out.loss.data as Float32Array, lp: out.lp.data as Float32Array, dx: out.dx.data as Float32Array };
    } finally { s.release(); }
  };
  const reference = (red: string, d: ReturnType<typeof data>, ignore?: number) => {
    const lp: number[] = []; const rowLoss: number[] = []; const p: number[] = [];
    for (let i = 0; i < N; i++) {
      const row = d.x.slice(i * C, (i + 1) * C); const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      row.forEach((v) => { lp.push(v - lse); p.push(Math.exp(v - lse)); });
      rowLoss.push(d.t[i] === ignore ? 0 : -(row[d.t[i]] - lse));
    }
    const kept = d.t.filter((v) => v !== ignore).length; const sum = rowLoss.reduce((a, v) => a + v, 0);
    const loss = red === 'none' ? rowLoss : [red === 'mean' ? sum / kept : sum];
    const dx = p.map((v, k) => {
      const i = Math.floor(k / C); if (d.t[i] === ignore) return 0;
      const w = red === 'none' ? d.r[i] : red === 'mean' ? 1.7 / kept : 1.7;
      return (v - (k % C === d.t[i] ? 1 : 0)) * w;
    });
    return { loss, lp, dx };
  };
  // measured 2026-12-03 (error over the output's scale), worst of the five cases: kernels loss 4.5e-8, log_prob 6.2e-8,
  // dx 2.7e-7; function bodies (ORT's SoftmaxCrossEntropyLoss, the standard-op gradient) 5.9e-8, 7.5e-8, 1.8e-7
  test.each([['mean', undefined], ['sum', undefined], ['none', undefined], ['mean', -100], ['none', 4]] as const)('reduction %s, ignore_index %s: the kernels and the function bodies against float64', (red, ignore) => {
    const g = build(red, ignore); const d = data(ignore);
    const ops = g.nodes.map((n) => `${n.domain}:${n.opType}`);
    expect(ops).toContain('com.ademamix:SoftmaxCrossEntropyLoss');
    expect(ops).toContain('com.ademamix:SoftmaxCrossEntropyLossGrad');
    const ref = reference(red, d, ignore);
    for (const out of [run(g, d), run(g, d, false)]) {
      expect(relErr(out.loss, ref.loss)).toBeLessThan(5e-7);
      expect(relErr(out.lp, ref.lp)).toBeLessThan(5e-7);
      expect(relErr(out.dx, ref.dx)).toBeLessThan(2e-6);
    }
  });
  test('a target that is not a class is one error naming the node, the row and the range', () => {
    const d = data(); d.t[5] = C;
    expect(() => run(build('mean'), d)).toThrow(/SoftmaxCrossEntropyLoss '[^']+'.*target 23 at row 5 is not a class in \[0, 23\)/);
    const e = data(-100); e.t[7] = -1;
    expect(() => run(build('mean', -100), e)).toThrow(/target -1 at row 7 is not a class in \[0, 23\) nor ignore_index -100/);
  });
});

// LayerNormalization in com.ademamix (forward): Y, Mean and InvStdDev from the op library's kernel and from its function
// body (the standard op) against float64, and the gradients through it
describe('LayerNormalization (com.ademamix)', () => {
  const run = (dims: number[], axis: number, opsLibrary?: false) => {
    const norm = dims.slice(axis < 0 ? axis + dims.length : axis); const C = numel(norm);
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', dims); const sc = g.input('s', 'float32', norm); const b = g.input('b', 'float32', norm);
    const [y, mean, inv] = layerNormalization(g, x, sc, b, axis, 1e-5, true);
    const r = g.input('r', 'float32', dims);
    const loss = g.op('ReduceSum', [g.mul(y, r)], { keepdims: 0 });
    g.output(y, 'y'); g.output(mean, 'mean'); g.output(inv, 'inv');
    gradients(g, loss, [x, sc, b], { fused: true }).forEach((d, i) => g.output(d, ['dx', 'ds', 'db'][i]));
    const data = { x: randn(numel(dims), 21, 2).map((v, i) => (i < C ? v + 3 : v)), s: randn(C, 22), b: randn(C, 23), r: randn(numel(dims), 24) };
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 2, opsLibrary });
    try {
      const t = (v: number[], d: number[]): Tensor => new Tensor('float32', Float32Array.from(v), d);
      const out = s.run({ x: t(data.x, dims), s: t(data.s, norm), b: t(data.b, norm), r: t(data.r, dims) });
      return { ops: g.nodes.map((n) => `${n.domain}:${n.opType}`), data, C, out: Object.fromEntries(['y', 'mean', 'inv', 'dx', 'ds', 'db'].map((k) => [k, out[k].data as Float32Array])) };
    } finally { s.release(); }
  };
  // measured 2026-12-03 (error over the output's scale, worst of y, mean, inv, dx, ds, db): kernel 3.1e-7, function body
  // (ORT's kernel) 2.6e-7
  test.each([[[4, 9, 33], -1], [[3, 5, 16], 2], [[2, 3, 4, 5], 2], [[7, 130], 1]] as const)('X %j, axis %i: the kernel and the function body against float64', (dims, axis) => {
    const k = run([...dims], axis); const body = run([...dims], axis, false);
    expect(k.ops).toContain('com.ademamix:LayerNormalization');
    const { x, s: sc, b, r } = k.data; const C = k.C; const R = x.length / C;
    const ref: Record<string, number[]> = { y: [], mean: [], inv: [], dx: [], ds: new Array<number>(C).fill(0), db: new Array<number>(C).fill(0) };
    for (let i = 0; i < R; i++) {
      const row = x.slice(i * C, (i + 1) * C);
      const mu = row.reduce((a, v) => a + v, 0) / C;
      const inv = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mu) ** 2, 0) / C + 1e-5);
      ref.mean.push(mu); ref.inv.push(inv);
      const xh = row.map((v) => (v - mu) * inv); const gr = xh.map((_, j) => r[i * C + j] * sc[j]);
      const m1 = gr.reduce((a, v) => a + v, 0) / C; const m2 = gr.reduce((a, v, j) => a + v * xh[j], 0) / C;
      for (let j = 0; j < C; j++) {
        ref.y.push(xh[j] * sc[j] + b[j]); ref.dx.push(inv * (gr[j] - m1 - xh[j] * m2));
        ref.ds[j] += r[i * C + j] * xh[j]; ref.db[j] += r[i * C + j];
      }
    }
    for (const key of ['y', 'mean', 'inv', 'dx', 'ds', 'db']) {
      expect([key, relErr(k.out[key], ref[key]) < 3e-6]).toEqual([key, true]);
      expect([key, relErr(body.out[key], ref[key]) < 3e-6]).toEqual([key, true]);
    }
  });
  test('bad shapes reach the kernel as one error naming the node and the tensor', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['rows', 'c']); const sc = g.input('s', 'float32', ['c2']); const b = g.input('b', 'float32', ['c3']);
    g.output(g.opN('LayerNormalization', [x, sc, b], { axis: -1 }, { domain: 'com.ademamix', outputs: 3, name: 'ln_bad' })[0], 'y');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 1 });
    const t = (d: number[]): Tensor => new Tensor('float32', new Float32Array(numel(d)), d);
    try {
      expect(() => s.run({ x: t([3, 8]), s: t([7]), b: t([8]) })).toThrow(/LayerNormalization 'ln_bad'.*input 'Scale' has shape \[7\] but the normalized dims of 'X' \[3,8\] from axis -1 hold 8 elements/);
      expect(() => s.run({ x: t([3, 8]), s: t([8]), b: t([9]) })).toThrow(/LayerNormalization 'ln_bad'.*input 'B' has shape \[9\]/);
    } finally { s.release(); }
  });
});

// SumSquares (com.ademamix): the squared gradient norm of a training graph in one node, against float64 and its
// function body (the standard ReduceSumSquare and Sum)
describe('SumSquares', () => {
  // tensors with every kind of tail: a scalar, an empty one, lanes cut short, one past a 16384-element chunk
  const DIMS = [[], [0, 3], [1], [5, 3], [17], [2, 20000]];
  const run = (o: { opsLibrary?: false; threads?: number } = {}) => {
    const g = new GraphBuilder();
    const xs = DIMS.map((d, i) => g.input(`x${i}`, 'float32', d));
    g.output(sumSquares(g, xs, true), 'y');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: o.threads ?? 2, opsLibrary: o.opsLibrary });
    try {
      const data = DIMS.map((d, i) => Float32Array.from(randn(numel(d), 30 + i)));
      const out = s.run(Object.fromEntries(data.map((v, i) => [`x${i}`, new Tensor('float32', v, DIMS[i])])));
      return { ops: g.nodes.map((n) => n.opType), data, y: out.y.data as Float32Array, dims: out.y.dims };
    } finally { s.release(); }
  };
  // measured 2026-12-03 (relative error): kernel 1.0e-7 (16-lane float sums per chunk, chunks added in double, then
  // rounded to float), function body 2.9e-7 (ORT's float ReduceSumSquare and Sum)
  test('the kernel and the function body against float64', () => {
    const k = run(); const body = run({ opsLibrary: false });
    expect(k.ops).toEqual(['SumSquares']);
    expect(k.dims).toEqual([]);
    let ref = 0;
    for (const v of k.data) for (const x of v) ref += x * x;
    expect(Math.abs(k.y[0] - ref) / ref).toBeLessThan(1e-6);
    expect(Math.abs(body.y[0] - ref) / ref).toBeLessThan(3e-6);
  });
  test('the chunks split between the pool\'s threads: the same bits on 1, 2 and 3 threads', () => {
    const one = run({ threads: 1 }).y[0];
    for (const t of [2, 3]) expect(run({ threads: t }).y[0]).toBe(one);
  });
  test('a fused training graph sums its gradients in one node; the standard one per gradient', () => {
    const m = (fused: boolean) => buildGpt({ vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16, mlpRatio: 4 }, 0, { fused });
    const ops = (fused: boolean): string[] => { const x = m(fused); return assembleTraining({ forward: x.g, loss: x.loss, optimizer: makeSpec(getOptimizer('adamw'), {}), fusedBackward: fused }).train.graph!.node.map((n) => n.opType); };
    const fused = ops(true); const standard = ops(false);
    expect(fused.filter((o) => o === 'SumSquares').length).toBe(1);
    expect(fused).not.toContain('ReduceSumSquare');
    expect(standard).not.toContain('SumSquares');
    expect(standard.filter((o) => o === 'ReduceSumSquare').length).toBeGreaterThan(10);
  });
});

// LayerNormalizationGrad may write dX over dY (ORT's in-place reuse where dY is an intermediate used once and dX no
// graph output): y = 3·LN(x), dX through a Neg (in place: checked with a debug print, 2026-12-03) against the same
// node with dX a graph output (a fresh buffer), to the bit
test('LayerNormalizationGrad written over its dY gives the same bits as into a fresh buffer', () => {
  const run = (inPlace: boolean): Float32Array[] => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [6, 7, 50]); const s = g.input('s', 'float32', [50]); const b = g.input('b', 'float32', [50]);
    const r = g.input('r', 'float32', [6, 7, 50]);
    const y = g.mul(g.op('LayerNormalization', [x, s, b], { axis: 2, epsilon: 1e-5 }), g.scalar(3));
    const loss = g.op('ReduceSum', [g.mul(y, r)], { keepdims: 0 });
    const [dx, ds, db] = gradients(g, loss, [x, s, b], { fused: true });
    expect(dx.producer?.opType).toBe('LayerNormalizationGrad');
    g.output(inPlace ? g.op('Neg', [dx]) : dx, 'dx'); g.output(ds, 'ds'); g.output(db, 'db');
    const sess = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 2 });
    try {
      const t = (d: number[], seed: number): Tensor => new Tensor('float32', Float32Array.from(randn(numel(d), seed)), d);
      const out = sess.run({ x: t([6, 7, 50], 1), s: t([50], 2), b: t([50], 3), r: t([6, 7, 50], 4) });
      return ['dx', 'ds', 'db'].map((k) => out[k].data as Float32Array);
    } finally { sess.release(); }
  };
  const a = run(true); const b = run(false);
  expect(Buffer.from(a[0].buffer).equals(Buffer.from(b[0].map((v) => -v).buffer))).toBe(true);
  for (const i of [1, 2]) expect(Buffer.from(a[i].buffer).equals(Buffer.from(b[i].buffer))).toBe(true);
});

// a pre-LN block's input feeds its LayerNormalization and the residual skip: the skip's gradient goes into the
// LayerNormalizationGrad node as dR (added where dX is written) instead of an Add after it; the gradients themselves
// are checked against the standard graph's above (a GPT, fused against standard)
test('a fused GPT\'s LayerNormalizationGrad nodes take the residual path\'s gradient (no Add of activations after them)', () => {
  const m = buildGpt({ vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, mlpRatio: 4 }, 0, { fused: true });
  const art = assembleTraining({ forward: m.g, loss: m.loss, optimizer: makeSpec(getOptimizer('adamw'), {}), fusedBackward: true });
  const nodes = art.train.graph!.node;
  const ln = nodes.filter((n) => n.opType === 'LayerNormalizationGrad');
  // ln_1 and ln_2 of both blocks take dR; ln_f's input has no other consumer
  expect(ln.map((n) => n.input.length).sort()).toEqual([5, 6, 6, 6, 6]);
  const dxOf = new Set(ln.map((n) => n.output[0]));
  expect(nodes.filter((n) => n.opType === 'Add' && n.input.some((i) => dxOf.has(i)))).toEqual([]);
});

// keep the float64 erf honest: erf(0.5), erf(2), erf(3.5), erf(−5) from tables
test('the test\'s float64 erf', () => {
  expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
  expect(erf(2)).toBeCloseTo(0.9953222650189527, 14);
  expect(erf(3.5)).toBeCloseTo(0.9999992569016276, 14);
  expect(1 + erf(-5)).toBeCloseTo(1.5374597944280349e-12, 16); // 1 − erfc(5) in double: ~1e-16 absolute
});
