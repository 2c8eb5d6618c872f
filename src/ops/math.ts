// MatMul and Gemm with their gradient rules.
import type { GraphBuilder } from '../graph/builder';
import type { Dim, Value } from '../graph/value';
import { range, sumToShape } from './grad-util';
import { emitFused, fusedWeightGrad, weightGradMath } from './fused';
import { OPS_DOMAIN } from './optimizers';
import { defineOp, type InferCtx } from './registry';
import { broadcast, sameDim, sameShape } from './shape';

function matmulShape(ctx: InferCtx, a: Dim[] | null, b: Dim[] | null): Dim[] | null {
  if (!a || !b) return null;
  if (a.length === 0 || b.length === 0) ctx.fail('MatMul inputs must have rank >= 1');
  const a2 = a.length === 1 ? [1, a[0]] : a; const b2 = b.length === 1 ? [b[0], 1] : b;
  const k1 = a2[a2.length - 1]; const k2 = b2[b2.length - 2];
  if (!sameDim(k1, k2)) ctx.fail(`inner dimensions differ: ${k1} vs ${k2}`);
  const batch = broadcast(ctx, [a2.slice(0, -2), b2.slice(0, -2)]) ?? [];
  const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

/** Swaps the last two axes (ranks are static). */
const transposeLast = (g: GraphBuilder, v: Value): Value => {
  const r = v.rank!;
  const perm = range(r); [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return g.op('Transpose', [v], { perm });
};

defineOp({
  opType: 'MatMul',
  infer: (ctx) => [{ dtype: ctx.sameDtype([0, 1]), shape: matmulShape(ctx, ctx.input(0).shape, ctx.input(1).shape) }],
  grad: ({ g, node, dOut, needs, fused }) => {
    let [a, b] = node.inputs as Value[];
    let d = dOut[0]!;
    if (a.rank === null || b.rank === null) throw new Error(`${node.label}: MatMul gradient needs inputs of known rank`);
    // 1-D operands: lift to matrices, and the output gradient with them
    const aVec = a.rank === 1; const bVec = b.rank === 1;
    if (aVec) a = g.op('Unsqueeze', [a, g.ints([0])]);
    if (bVec) b = g.op('Unsqueeze', [b, g.ints([1])]);
    // the output lost a's row axis (−2) and/or b's column axis (−1): put them back
    const r = d.rank ?? Math.max(a.rank!, b.rank!) - (aVec ? 1 : 0) - (bVec ? 1 : 0);
    if (aVec && bVec) d = g.op('Unsqueeze', [d, g.ints([r, r + 1])]);
    else if (aVec) d = g.op('Unsqueeze', [d, g.ints([r - 1])]);
    else if (bVec) d = g.op('Unsqueeze', [d, g.ints([r])]);
    let da = needs[0] ? sumToShape(g, g.matmul(d, transposeLast(g, b)), a) : null;
    // a weight shared over a's batch axes (b 2-D, a of rank > 2, as in every linear layer): one GEMM over all rows,
    // dB = flat(a)ᵀ·flat(d) with K = the batch-and-row count, instead of a batched product per batch entry summed
    // afterwards (a [batch, K, N] intermediate and a ReduceSum: ~3x the time on gpt-mini's backward)
    let db = !needs[1] ? null
      : fused && b.rank === 2 && a.rank! > 2 && a.dtype === 'float32' && b.dtype === 'float32' && d.dtype === 'float32'
        ? fusedWeightGrad(g, a, d)[0]
      : b.rank === 2 && a.rank! > 2
        ? g.op('Gemm', [g.op('Flatten', [a], { axis: a.rank! - 1 }), g.op('Flatten', [d], { axis: d.rank! - 1 })], { transA: 1 })
        : sumToShape(g, g.matmul(transposeLast(g, a), d), b);
    if (da && aVec) da = g.op('Squeeze', [da, g.ints([0])]);
    if (db && bVec) db = g.op('Squeeze', [db, g.ints([1])]);
    return [da, db];
  },
});

defineOp({
  opType: 'Gemm',
  attrTypes: { alpha: 'float', beta: 'float', transA: 'int', transB: 'int' },
  infer: (ctx) => {
    const a = ctx.input(0).shape; const b = ctx.input(1).shape;
    const ta = ctx.int('transA', 0); const tb = ctx.int('transB', 0);
    if (a && a.length !== 2) ctx.fail('A must be 2-D');
    if (b && b.length !== 2) ctx.fail('B must be 2-D');
    const m = a ? a[ta ? 1 : 0] : null; const ka = a ? a[ta ? 0 : 1] : null;
    const kb = b ? b[tb ? 1 : 0] : null; const n = b ? b[tb ? 0 : 1] : null;
    if (!sameDim(ka, kb)) ctx.fail(`inner dimensions differ: ${ka} vs ${kb}`);
    return [{ dtype: ctx.sameDtype([0, 1, 2]), shape: [m, n] }];
  },
  grad: ({ g, node, dOut, needs }) => {
    const [a, b, c] = node.inputs as (Value | null)[];
    const alpha = node.attrs.alpha?.kind === 'float' ? node.attrs.alpha.value : 1;
    const beta = node.attrs.beta?.kind === 'float' ? node.attrs.beta.value : 1;
    const ta = Number(node.attrs.transA?.kind === 'int' ? node.attrs.transA.value : 0);
    const tb = Number(node.attrs.transB?.kind === 'int' ? node.attrs.transB.value : 0);
    const d = alpha === 1 ? dOut[0]! : g.mul(dOut[0]!, alpha);
    // Y = A'B' with A' = ta ? Aᵀ : A: dA' = d·B'ᵀ, dB' = A'ᵀ·d; each written as one Gemm with the right transposes
    const da = needs[0] ? (ta ? g.op('Gemm', [b!, d], { transA: tb, transB: 1 }) : g.op('Gemm', [d, b!], { transA: 0, transB: tb ? 0 : 1 })) : null;
    const db = needs[1] ? (tb ? g.op('Gemm', [d, a!], { transA: 1, transB: ta }) : g.op('Gemm', [a!, d], { transA: ta ? 0 : 1, transB: 0 })) : null;
    const dc = c && needs[2] ? sumToShape(g, beta === 1 ? dOut[0]! : g.mul(dOut[0]!, beta), c) : null;
    return [da, db, dc];
  },
});

/**
 * Linear(X [..., K], W [K, N], B [N], R [..., N]?) = X·W + B (+ R) as one com.ademamix node: the op library's kernel
 * adds the bias, and a residual R (the block's x + proj(...)), in its register tiles instead of passes of their own
 * (on gpt-mini's forward the bias Adds were 0.08–0.32 ms each, the residual ones ~0.06). The function body is the
 * MatMul and the Adds, so the graph runs wherever the library is not loaded.
 */
defineOp({
  opType: 'Linear', domain: OPS_DOMAIN,
  infer: (ctx) => {
    for (let i = 0; i < 4; i++) ctx.requireDtype(i, ['float32']);
    const x = ctx.input(0).shape; const w = ctx.input(1).shape; const b = ctx.input(2).shape;
    if (x && x.length === 0) ctx.fail('X must have rank >= 1');
    if (w && w.length !== 2) ctx.fail('W must be 2-D [K, N]');
    if (b && b.length !== 1) ctx.fail('B must be 1-D [N]');
    if (x && w && !sameDim(x[x.length - 1], w[0])) ctx.fail(`inner dimensions differ: ${x[x.length - 1]} vs ${w[0]}`);
    if (w && b && !sameDim(w[1], b[0])) ctx.fail(`B has ${b[0]} entries for W's ${w[1]} columns`);
    const y = x && w ? [...x.slice(0, -1), w[1]] : null;
    const r = ctx.has(3) ? ctx.input(3).shape : null;
    if (y && r && !sameShape(r, y)) ctx.fail(`R must be shaped like Y [${y.join(', ')}]`);
    return [{ dtype: 'float32', shape: y }];
  },
  grad: ({ g, node, dOut, needs, fused }) => {
    const [x, w] = node.inputs as Value[];
    const d = dOut[0]!;
    if (x.rank === null) throw new Error(`${node.label}: Linear gradient needs X of known rank`);
    const dx = needs[0] ? g.matmul(d, transposeLast(g, w)) : null;
    const dr = needs[3] ? d : null;
    if (!needs[1] && !needs[2]) return [dx, null, null, dr];
    const [dw, db] = fused ? fusedWeightGrad(g, x, d) : weightGradMath(g, x, d);
    return [dx, needs[1] ? dw : null, needs[2] ? db : null, dr];
  },
});

/** x·W + b (+ residual, added after): one Linear node (`fused`, float32) or the MatMul and Adds. */
export function linearLayer(g: GraphBuilder, x: Value, w: Value, b: Value, fused = false, residual?: Value): Value {
  const all = [x, w, b, ...(residual ? [residual] : [])];
  if (!fused || all.some((v) => v.dtype !== 'float32')) {
    const y = g.add(g.matmul(x, w), b);
    return residual ? g.add(residual, y) : y;
  }
  return emitFused(g, 'Linear', all, {}, 1, residual ? 'residual' : 'default', (f) => {
    let y = f.add(f.matmul(f.input('X', 'float32', null), f.input('W', 'float32', [null, null])), f.input('B', 'float32', [null]));
    if (residual) y = f.add(f.input('R', 'float32', null), y);
    f.output(y, 'Y');
  }, residual ? 'R + (X·W + B): a linear layer (MatMul, then Add of the bias) and a residual Add.' : 'X·W + B: a linear layer (MatMul, then Add of the bias).')[0];
}
