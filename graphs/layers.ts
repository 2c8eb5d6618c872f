// Building blocks shared by the GPT and ViT graphs: parameters with seeded init, linear, layer norm, attention, MLP.
import type { GraphBuilder } from '../src/graph/builder';
import type { Value } from '../src/graph/value';
import { tensorData } from '../src/graph/tensor-data';
import type { Rng } from '../src/util/rng';

export class Params {
  constructor(readonly g: GraphBuilder, readonly rng: Rng) {}
  normal(name: string, dims: number[], std = 0.02): Value {
    const t = tensorData('float32', dims);
    for (let i = 0; i < t.data.length; i++) (t.data as Float32Array)[i] = this.rng.normal() * std;
    return this.g.initializer(name, t);
  }
  fill(name: string, dims: number[], value: number): Value {
    const t = tensorData('float32', dims);
    (t.data as Float32Array).fill(value);
    return this.g.initializer(name, t);
  }
}

export function linear(p: Params, x: Value, name: string, nIn: number, nOut: number, std = 0.02, bias = true): Value {
  const w = p.normal(`${name}.weight`, [nIn, nOut], std);
  const y = p.g.matmul(x, w);
  return bias ? p.g.add(y, p.fill(`${name}.bias`, [nOut], 0)) : y;
}

export function layerNorm(p: Params, x: Value, name: string, dim: number, eps = 1e-5): Value {
  const scale = p.fill(`${name}.weight`, [dim], 1);
  const bias = p.fill(`${name}.bias`, [dim], 0);
  // Mean and InvStdDev are requested so the backward pass can reuse them.
  return p.g.opN('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: eps }, { outputs: 3 })[0];
}

export interface AttentionConfig { dim: number; heads: number; causal: boolean; projStd: number }

/** Multi-head self-attention on x [B, T, C]: [B,T,C] → [B,T,C]. */
export function attention(p: Params, x: Value, name: string, c: AttentionConfig): Value {
  const g = p.g;
  const hd = c.dim / c.heads;
  const qkv = linear(p, x, `${name}.qkv`, c.dim, 3 * c.dim);
  const [q, k, v] = g.opN('Split', [qkv, g.ints([c.dim, c.dim, c.dim])], { axis: -1 }, { outputs: 3 });
  const heads = (t: Value): Value => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, c.heads, hd])])], { perm: [0, 2, 1, 3] });
  const qh = heads(q); const vh = heads(v);
  const kt = g.op('Transpose', [g.op('Reshape', [k, g.ints([0, 0, c.heads, hd])])], { perm: [0, 2, 3, 1] });
  let att = g.mul(g.matmul(qh, kt), 1 / Math.sqrt(hd)); // [B,H,T,T]
  if (c.causal) {
    // an additive mask: 0 where j <= i, -1e9 where j > i (built from the runtime sequence length: no baked T). The
    // softmax is exactly 0 at the masked entries either way, so it matches Where(keep, att, -1e9) in value and
    // gradient, but a broadcast Add is cheaper than Where and its gradient is the identity (Where's needs another
    // Where): ~2.5 ms of gpt-mini's 16×128 step
    const tt = g.op('Slice', [g.op('Shape', [att]), g.ints([2]), g.ints([4])]);
    const ones = g.op('ConstantOfShape', [tt], { value: tensorData('float32', [1], [1]) });
    const bias = g.mul(g.sub(g.op('Trilu', [ones], { upper: 0 }), g.scalar(1)), g.scalar(1e9));
    att = g.add(att, bias);
  }
  att = g.op('Softmax', [att], { axis: -1 });
  const y = g.op('Reshape', [g.op('Transpose', [g.matmul(att, vh)], { perm: [0, 2, 1, 3] }), g.ints([0, 0, c.dim])]);
  return linear(p, y, `${name}.proj`, c.dim, c.dim, c.projStd);
}

export function mlp(p: Params, x: Value, name: string, dim: number, hidden: number, projStd: number): Value {
  const h = p.g.op('Gelu', [linear(p, x, `${name}.fc`, dim, hidden)]);
  return linear(p, h, `${name}.proj`, hidden, dim, projStd);
}

/** Pre-LN transformer block: x + attn(ln1(x)); x + mlp(ln2(x)). */
export function block(p: Params, x: Value, name: string, c: AttentionConfig & { mlpRatio: number }): Value {
  const g = p.g;
  x = g.add(x, attention(p, layerNorm(p, x, `${name}.ln_1`, c.dim), `${name}.attn`, c));
  return g.add(x, mlp(p, layerNorm(p, x, `${name}.ln_2`, c.dim), `${name}.mlp`, c.dim, c.mlpRatio * c.dim, c.projStd));
}
