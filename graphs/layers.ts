// Building blocks shared by the GPT and ViT graphs: parameters with seeded init, linear, layer norm, attention, MLP.
import type { GraphBuilder } from '../src/graph/builder';
import type { Value } from '../src/graph/value';
import { tensorData } from '../src/graph/tensor-data';
import { selfAttention } from '../src/ops/attention';
import { gelu } from '../src/ops/elementwise';
import { linearLayer } from '../src/ops/math';
import { layerNormalization } from '../src/ops/nn';
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

/**
 * x·W (+ b) (+ residual, added after); `fused`: with the bias, one com.ademamix Linear node (the op library's kernel,
 * which adds the residual too).
 */
export function linear(p: Params, x: Value, name: string, nIn: number, nOut: number, std = 0.02, bias = true, fused = false, residual?: Value): Value {
  const w = p.normal(`${name}.weight`, [nIn, nOut], std);
  if (bias) return linearLayer(p.g, x, w, p.fill(`${name}.bias`, [nOut], 0), fused, residual);
  const y = p.g.matmul(x, w);
  return residual ? p.g.add(residual, y) : y;
}

/** `fused`: one com.ademamix LayerNormalization node (the op library's kernel). */
export function layerNorm(p: Params, x: Value, name: string, dim: number, eps = 1e-5, fused = false): Value {
  const scale = p.fill(`${name}.weight`, [dim], 1);
  const bias = p.fill(`${name}.bias`, [dim], 0);
  // Mean and InvStdDev are requested so the backward pass can reuse them.
  return layerNormalization(p.g, x, scale, bias, -1, eps, fused)[0];
}

export interface AttentionConfig { dim: number; heads: number; causal: boolean; projStd: number; fused?: boolean }

/**
 * Multi-head self-attention on x [B, T, C]: [B,T,C] → [B,T,C] (fused: one com.ademamix SelfAttention node), plus
 * `residual` when given (the block's skip connection, added by the output projection).
 */
export function attention(p: Params, x: Value, name: string, c: AttentionConfig, residual?: Value): Value {
  const qkv = linear(p, x, `${name}.qkv`, c.dim, 3 * c.dim, 0.02, true, c.fused);
  const y = selfAttention(p.g, qkv, { heads: c.heads, causal: c.causal, fused: c.fused });
  return linear(p, y, `${name}.proj`, c.dim, c.dim, c.projStd, true, c.fused, residual);
}

export function mlp(p: Params, x: Value, name: string, dim: number, hidden: number, projStd: number, fused = false, residual?: Value): Value {
  const h = gelu(p.g, linear(p, x, `${name}.fc`, dim, hidden, 0.02, true, fused), 'none', fused);
  return linear(p, h, `${name}.proj`, hidden, dim, projStd, true, fused, residual);
}

/** Pre-LN transformer block: x + attn(ln1(x)); x + mlp(ln2(x)) (each residual Add by the output projection). */
export function block(p: Params, x: Value, name: string, c: AttentionConfig & { mlpRatio: number }): Value {
  x = attention(p, layerNorm(p, x, `${name}.ln_1`, c.dim, 1e-5, c.fused), `${name}.attn`, c, x);
  return mlp(p, layerNorm(p, x, `${name}.ln_2`, c.dim, 1e-5, c.fused), `${name}.mlp`, c.dim, c.mlpRatio * c.dim, c.projStd, c.fused, x);
}
