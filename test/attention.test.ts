// Self-attention over a packed QKV (src/ops/attention.ts): the com.ademamix SelfAttention / SelfAttentionGrad kernels,
// their function bodies (the same graph with the op library not loaded) and the standard-op form, each against a
// float64 forward and backward written here from the formulas; then errors that name the node.
import { Tensor } from 'onnxruntime-common';
import { gradients } from '../src/autodiff';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { NativeSession } from '../src/native';
import { hasOpsLibrary } from '../src/native/paths';
import { selfAttention } from '../src/ops/attention';
import { encodeModel } from '../src/onnx/io';
import { randn } from './support/rng';

interface Case { B: number; T: number; H: number; D: number; causal: boolean }

/** float64 y = merge_h(softmax(QKᵀ/√D + mask)V) and dQKV of Σ y ⊙ r. */
function reference(c: Case, qkv: number[], r: number[]): { y: number[]; d: number[] } {
  const { B, T, H, D } = c; const C = H * D;
  const y = new Array<number>(B * T * C).fill(0); const d = new Array<number>(B * T * 3 * C).fill(0);
  const at = (b: number, t: number, part: number, h: number, k: number): number => ((b * T + t) * 3 + part) * C + h * D + k;
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const P: number[][] = [];
      for (let i = 0; i < T; i++) {
        const n = c.causal ? i + 1 : T;
        const s = Array.from({ length: n }, (_, j) => { let a = 0; for (let k = 0; k < D; k++) a += qkv[at(b, i, 0, h, k)] * qkv[at(b, j, 1, h, k)]; return a * scale; });
        const m = Math.max(...s); const e = s.map((v) => Math.exp(v - m)); const z = e.reduce((a, v) => a + v, 0);
        P.push(e.map((v) => v / z));
        for (let k = 0; k < D; k++) { let a = 0; for (let j = 0; j < n; j++) a += P[i][j] * qkv[at(b, j, 2, h, k)]; y[(b * T + i) * C + h * D + k] = a; }
      }
      for (let i = 0; i < T; i++) {
        const dy = (k: number): number => r[(b * T + i) * C + h * D + k];
        const dp = P[i].map((_, j) => { let a = 0; for (let k = 0; k < D; k++) a += dy(k) * qkv[at(b, j, 2, h, k)]; return a; });
        const dot = P[i].reduce((a, p, j) => a + p * dp[j], 0);
        P[i].forEach((p, j) => {
          const ds = p * (dp[j] - dot) * scale;
          for (let k = 0; k < D; k++) {
            d[at(b, i, 0, h, k)] += ds * qkv[at(b, j, 1, h, k)];
            d[at(b, j, 1, h, k)] += ds * qkv[at(b, i, 0, h, k)];
            d[at(b, j, 2, h, k)] += p * dy(k);
          }
        });
      }
    }
  }
  return { y, d };
}

function run(c: Case, mode: 'kernel' | 'body' | 'standard', qkv: number[], r: number[]): { y: Float32Array; d: Float32Array; ops: string[] } {
  const C = c.H * c.D; const g = new GraphBuilder();
  const x = g.input('qkv', 'float32', ['batch', 'seq', 3 * C]);
  const y = selfAttention(g, x, { heads: c.H, causal: c.causal, fused: mode !== 'standard' });
  const rv = g.input('r', 'float32', ['batch', 'seq', C]);
  const [d] = gradients(g, g.op('ReduceSum', [g.mul(y, rv)], { keepdims: 0 }), [x], { fused: mode !== 'standard' });
  g.output(y, 'y'); g.output(d, 'd');
  const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 2, opsLibrary: mode === 'body' ? false : undefined });
  try {
    const out = s.run({ qkv: new Tensor('float32', Float32Array.from(qkv), [c.B, c.T, 3 * C]), r: new Tensor('float32', Float32Array.from(r), [c.B, c.T, C]) });
    return { y: out.y.data as Float32Array, d: out.d.data as Float32Array, ops: g.nodes.map((n) => n.opType) };
  } finally { s.release(); }
}

/** max |got − ref| over max(max |ref|, 1e-3). */
function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0; let den = 1e-3;
  for (let i = 0; i < ref.length; i++) { num = Math.max(num, Math.abs(got[i] - ref[i])); den = Math.max(den, Math.abs(ref[i])); }
  return num / den;
}

// heads × D: D = 8 and 20 take the kernel's packed path for [T, D] products (D not a multiple of 16), 32 and 16 the
// in-place one; T = 37 and 50 leave partial register tiles on both sides; the scale 2 makes the softmax peaked.
// B ≥ 4: the ops hand each thread whole batches (all heads of one, warmed first), below that single heads.
const CASES: Case[] = [
  { B: 2, T: 37, H: 3, D: 8, causal: true }, { B: 2, T: 20, H: 2, D: 32, causal: false },
  { B: 1, T: 50, H: 2, D: 16, causal: true }, { B: 3, T: 13, H: 1, D: 20, causal: false },
  { B: 5, T: 19, H: 3, D: 8, causal: true },
];

describe('self-attention (SelfAttention / SelfAttentionGrad)', () => {
  test('the op library is built (the kernels are what these tests check)', () => {
    expect(hasOpsLibrary()).toBe(true);
  });

  // Measured 2026-12-02 (error over the largest |value|, worst of the cases): kernel y 5.5e-7, dQKV 7.6e-7; function
  // body y 4.2e-7, dQKV 5.1e-7; standard ops y 4.2e-7, dQKV 3.8e-7 (float32 throughout, so none is exact)
  const TOL = 5e-6;
  test.each(CASES.map((c) => [`${c.causal ? 'causal' : 'full'} B${c.B} T${c.T} ${c.H}×${c.D}`, c] as const))('%s: kernel, function body and standard ops against float64', (_n, c) => {
    const C = c.H * c.D;
    const qkv = randn(c.B * c.T * 3 * C, 7, 2); const r = randn(c.B * c.T * C, 8);
    const ref = reference(c, qkv, r);
    const kernel = run(c, 'kernel', qkv, r); const body = run(c, 'body', qkv, r); const standard = run(c, 'standard', qkv, r);
    expect(kernel.ops).toEqual(expect.arrayContaining(['SelfAttention', 'SelfAttentionGrad']));
    expect(standard.ops).not.toContain('SelfAttention');
    for (const got of [kernel, body, standard]) {
      expect(relErr(got.y, ref.y)).toBeLessThan(TOL);
      expect(relErr(got.d, ref.d)).toBeLessThan(TOL);
    }
  });

  test('a heads count that does not divide the dim is one error naming the node', () => {
    const g = new GraphBuilder();
    const x = g.input('qkv', 'float32', ['b', 't', 'c']);
    g.output(g.opN('SelfAttention', [x], { heads: 5, causal: 1 }, { domain: 'com.ademamix', outputs: 2, name: 'attn_bad' })[0], 'y');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 1 });
    try {
      expect(() => s.run({ qkv: new Tensor('float32', new Float32Array(72), [1, 1, 72]) }))
        .toThrow(/SelfAttention 'attn_bad'.*attribute heads 5 must be positive and divide the dim 24/);
    } finally { s.release(); }
  });

  test('a static QKV that is not 3 × a multiple of heads fails when the node is made', () => {
    const g = new GraphBuilder();
    expect(() => selfAttention(g, g.input('qkv', 'float32', [1, 4, 30]), { heads: 4, causal: true, fused: true })).toThrow(/must be \[batch, seq, 3 × dim\] with dim divisible by heads 4/);
  });
});
