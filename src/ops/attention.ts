// Multi-head self-attention over a packed QKV [B, T, 3C] (q, k, v side by side, as one linear layer makes them):
// Y [B, T, C] = merge_h(softmax(scale·Q_h K_hᵀ + mask)·V_h). Written once here in standard ops (`attentionMath`);
// the model graphs use it inline (the portable form), or as one com.ademamix SelfAttention node whose function body
// is that same math, plus the log-sum-exp of each row of scores (LSE [B, H, T]) that its backward reuses. The op
// library's CPU kernels (custom-ops/src/nn_ops.cc) read each head's columns in place (no head transposes), compute
// only the unmasked half of a causal product, and recompute the probabilities in the backward from LSE (as flash
// attention does) instead of keeping [B, H, T, T] alive. On gpt-mini 16×128 the standard form's attention was about
// a quarter of the step (ten batched products, transposes, mask, softmax and their gradients).
import type { GraphBuilder } from '../graph/builder';
import { attr, type Value } from '../graph/value';
import { tensorData } from '../graph/tensor-data';
import { emitFused } from './fused';
import { intAttr } from './grad-util';
import { OPS_DOMAIN } from './optimizers';
import { defineOp, type InferCtx, type OutType } from './registry';

export interface AttentionSpec { heads: number; causal: boolean }

interface Parts { qh: Value; kh: Value; vh: Value; scores: Value; C: number; D: number; scale: number }

/** q, k, v as [B, H, T, D] and the scaled (and, when causal, masked) scores [B, H, T, T]. */
function parts(g: GraphBuilder, qkv: Value, s: AttentionSpec): Parts {
  const C3 = qkv.shape?.[2];
  if (typeof C3 !== 'number' || C3 % 3 || (C3 / 3) % s.heads) {
    throw new Error(`self-attention: ${qkv.describe()} must be [batch, seq, 3 × dim] with dim divisible by heads ${s.heads}`);
  }
  const C = C3 / 3; const D = C / s.heads; const scale = 1 / Math.sqrt(D);
  const [q, k, v] = g.opN('Split', [qkv, g.ints([C, C, C])], { axis: -1 }, { outputs: 3 });
  const heads = (t: Value): Value => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, s.heads, D])])], { perm: [0, 2, 1, 3] });
  const qh = heads(q); const kh = heads(k); const vh = heads(v);
  let scores = g.mul(g.matmul(qh, g.op('Transpose', [kh], { perm: [0, 1, 3, 2] })), scale);
  if (s.causal) {
    // an additive mask: 0 where j <= i, -1e9 where j > i (from the runtime sequence length: no baked T). The softmax
    // is exactly 0 at the masked entries either way, so it matches Where(keep, att, -1e9) in value and gradient, but
    // a broadcast Add is cheaper than Where and its gradient is the identity
    const tt = g.op('Slice', [g.op('Shape', [scores]), g.ints([2]), g.ints([4])]);
    const ones = g.op('ConstantOfShape', [tt], { value: tensorData('float32', [1], [1]) });
    scores = g.add(scores, g.mul(g.sub(g.op('Trilu', [ones], { upper: 0 }), g.scalar(1)), g.scalar(1e9)));
  }
  return { qh, kh, vh, scores, C, D, scale };
}

const merge = (g: GraphBuilder, t: Value, C: number): Value => g.op('Reshape', [g.op('Transpose', [t], { perm: [0, 2, 1, 3] }), g.ints([0, 0, C])]);
const swapLast = (g: GraphBuilder, t: Value): Value => g.op('Transpose', [t], { perm: [0, 1, 3, 2] });

/** Y [B, T, C] and LSE [B, H, T] (LSE only when asked: the model's inline form has no use for it). */
export function attentionMath(g: GraphBuilder, qkv: Value, s: AttentionSpec, withLse = false): { y: Value; lse: Value | null } {
  const p = parts(g, qkv, s);
  const y = merge(g, g.matmul(g.op('Softmax', [p.scores], { axis: -1 }), p.vh), p.C);
  return { y, lse: withLse ? g.op('ReduceLogSumExp', [p.scores, g.ints([-1])], { keepdims: 0 }) : null };
}

/**
 * dQKV from dY, QKV, Y and LSE: P = e^(scores − LSE), dV = PᵀdY, dS = P ⊙ (dY·Vᵀ − Σ_d dY ⊙ Y), dQ = scale·dS·K,
 * dK = scale·dSᵀ·Q (Σ_d dY ⊙ Y = Σ_j dP ⊙ P, the softmax backward's row sum, from [T, D] instead of [T, T]).
 */
export function attentionGradMath(g: GraphBuilder, dy: Value, qkv: Value, y: Value, lse: Value, s: AttentionSpec): Value {
  const p = parts(g, qkv, s);
  const heads = (t: Value): Value => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, s.heads, p.D])])], { perm: [0, 2, 1, 3] });
  const dyh = heads(dy); const yh = heads(y);
  const prob = g.exp(g.sub(p.scores, g.op('Unsqueeze', [lse, g.ints([-1])])));
  const dv = g.matmul(swapLast(g, prob), dyh);
  const delta = g.op('ReduceSum', [g.mul(dyh, yh), g.ints([-1])], { keepdims: 1 });
  const ds = g.mul(g.mul(prob, g.sub(g.matmul(dyh, swapLast(g, p.vh)), delta)), p.scale);
  const dq = g.matmul(ds, p.kh); const dk = g.matmul(swapLast(g, ds), p.qh);
  return g.op('Concat', [merge(g, dq, p.C), merge(g, dk, p.C), merge(g, dv, p.C)], { axis: -1 });
}

function specOf(ctx: InferCtx): AttentionSpec & { C: number | null } {
  const heads = ctx.int('heads', 0); const causal = ctx.int('causal', 0);
  if (heads <= 0) ctx.fail(`attribute heads must be a positive int, got ${heads}`);
  if (causal !== 0 && causal !== 1) ctx.fail(`attribute causal must be 0 or 1, got ${causal}`);
  const qkv = ctx.input(0 + (ctx.node.opType === 'SelfAttentionGrad' ? 1 : 0));
  if (qkv.rank !== null && qkv.rank !== 3) ctx.fail(`QKV must be [batch, seq, 3 × dim], got ${qkv.describe()}`);
  const c3 = qkv.shape?.[2];
  if (typeof c3 === 'number' && (c3 % 3 || (c3 / 3) % heads)) ctx.fail(`QKV's last dim ${c3} is not 3 × a multiple of heads ${heads}`);
  return { heads, causal: causal === 1, C: typeof c3 === 'number' ? c3 / 3 : null };
}
const ATTRS = { heads: 'int', causal: 'int', scale: 'float' } as const;

defineOp({
  opType: 'SelfAttention', domain: OPS_DOMAIN, attrTypes: ATTRS,
  infer: (ctx): OutType[] => {
    ctx.requireDtype(0, ['float32']);
    const s = specOf(ctx); const x = ctx.input(0).shape;
    return [{ dtype: 'float32', shape: x ? [x[0], x[1], s.C] : null }, { dtype: 'float32', shape: x ? [x[0], s.heads, x[1]] : null }];
  },
  grad: ({ g, node, dOut, fused }) => {
    const s = { heads: intAttr(node, 'heads', 0), causal: intAttr(node, 'causal', 0) === 1 };
    const [qkv] = node.inputs as Value[]; const [y, lse] = node.outputs;
    if (dOut[1]) throw new Error(`${node.label}: no gradient flows through its LSE output (it is the backward's saved statistic)`);
    const dy = dOut[0];
    if (!dy) return [null];
    return [fused ? emit(g, 'SelfAttentionGrad', [dy, qkv, y, lse], qkv, s, 1)[0] : attentionGradMath(g, dy, qkv, y, lse, s)];
  },
});
defineOp({
  opType: 'SelfAttentionGrad', domain: OPS_DOMAIN, attrTypes: ATTRS, nonDifferentiable: true,
  infer: (ctx): OutType[] => {
    for (let i = 0; i < 4; i++) ctx.requireDtype(i, ['float32']);
    specOf(ctx);
    return [{ dtype: 'float32', shape: ctx.input(1).shape }];
  },
});

/** The node, with its function body added once per (op, heads, causal, dim) overload. */
function emit(g: GraphBuilder, op: 'SelfAttention' | 'SelfAttentionGrad', inputs: Value[], qkv: Value, s: AttentionSpec, outputs: number): Value[] {
  const C = Number(qkv.shape?.[2]) / 3; const scale = 1 / Math.sqrt(C / s.heads);
  const attrs = { heads: attr.i(s.heads), causal: attr.i(s.causal ? 1 : 0), scale: attr.f(scale) };
  const forward = op === 'SelfAttention';
  return emitFused(g, op, inputs, attrs, outputs, `h${s.heads}${s.causal ? 'c' : 'f'}${C}`, (b) => {
    const bqkv = (): Value => b.input('QKV', 'float32', [null, null, 3 * C]);
    if (forward) {
      const { y, lse } = attentionMath(b, bqkv(), s, true);
      b.output(y, 'Y'); b.output(lse!, 'LSE');
    } else {
      const dy = b.input('dY', 'float32', [null, null, C]); const x = bqkv();
      const y = b.input('Y', 'float32', [null, null, C]); const lse = b.input('LSE', 'float32', [null, s.heads, null]);
      b.output(attentionGradMath(b, dy, x, y, lse, s), 'dQKV');
    }
  }, forward
    ? `Multi-head self-attention (${s.heads} heads, ${s.causal ? 'causal' : 'full'}) over a packed QKV, and each row's log-sum-exp of scores.`
    : 'The QKV gradient of SelfAttention from dY, QKV, Y and LSE.');
}

/** Y [B, T, C] from a packed QKV [B, T, 3C]: the standard ops inline, or (fused) one SelfAttention node. */
export function selfAttention(g: GraphBuilder, qkv: Value, s: AttentionSpec & { fused?: boolean }): Value {
  return s.fused ? emit(g, 'SelfAttention', [qkv], qkv, s, 2)[0] : attentionMath(g, qkv, s).y;
}
