// A ViT: Conv patch embedding, cls token, learned position embedding, pre-LN encoder, LN, classification head on
// the cls token, cross-entropy. The batch dim is symbolic.
import { GraphBuilder } from '../src/graph/builder';
import { Rng } from '../src/util/rng';
import { softmaxCrossEntropy } from '../src/ops/loss';
import type { BuiltModel } from './gpt';
import { block, layerNorm, linear, Params } from './layers';

export interface VitConfig {
  imageSize: number; patchSize: number; channels: number; numClasses: number;
  dim: number; depth: number; heads: number; mlpRatio: number;
}

export const VIT_PRESETS: Record<string, VitConfig> = {
  'vit-tiny': { imageSize: 28, patchSize: 7, channels: 1, numClasses: 10, dim: 64, depth: 2, heads: 2, mlpRatio: 2 },
  'vit-mini': { imageSize: 28, patchSize: 4, channels: 1, numClasses: 10, dim: 128, depth: 4, heads: 4, mlpRatio: 2 },
  // ViT-S/16 at 224×224 (22M parameters)
  'vit-s': { imageSize: 224, patchSize: 16, channels: 3, numClasses: 1000, dim: 384, depth: 12, heads: 6, mlpRatio: 4 },
};

export function vitConfig(preset: string, overrides: Partial<VitConfig> = {}): VitConfig {
  const base = VIT_PRESETS[preset];
  if (!base) throw new Error(`unknown ViT preset '${preset}' (have: ${Object.keys(VIT_PRESETS).join(', ')})`);
  return { ...base, ...overrides };
}

/** `fused`: as buildGpt's. */
export function buildVit(c: VitConfig, seed = 0, o: { fused?: boolean } = {}): BuiltModel {
  if (c.imageSize % c.patchSize) throw new Error(`ViT: image size ${c.imageSize} is not a multiple of patch size ${c.patchSize}`);
  if (c.dim % c.heads) throw new Error(`ViT: dim ${c.dim} is not divisible by heads ${c.heads}`);
  const g = new GraphBuilder();
  const p = new Params(g, new Rng(seed));
  const n = (c.imageSize / c.patchSize) ** 2;
  const images = g.input('images', 'float32', ['batch', c.channels, c.imageSize, c.imageSize]);
  const labels = g.input('labels', 'int64', ['batch']);
  const fanIn = c.channels * c.patchSize * c.patchSize;
  const convW = p.normal('patch_embed.weight', [c.dim, c.channels, c.patchSize, c.patchSize], 1 / Math.sqrt(fanIn));
  const convB = p.fill('patch_embed.bias', [c.dim], 0);
  const patches = g.op('Conv', [images, convW, convB], { kernel_shape: [c.patchSize, c.patchSize], strides: [c.patchSize, c.patchSize] });
  let x = g.op('Transpose', [g.op('Reshape', [patches, g.ints([0, 0, -1])])], { perm: [0, 2, 1] }); // [B, N, D]
  const cls = p.normal('cls_token', [1, 1, c.dim]);
  const batch = g.op('Slice', [g.op('Shape', [images]), g.ints([0]), g.ints([1])]);
  const clsB = g.op('Expand', [cls, g.op('Concat', [batch, g.ints([1, c.dim])], { axis: 0 })]);
  x = g.add(g.op('Concat', [clsB, x], { axis: 1 }), p.normal('pos_embed', [1, n + 1, c.dim]));
  for (let i = 0; i < c.depth; i++) {
    x = block(p, x, `blocks.${i}`, { dim: c.dim, heads: c.heads, causal: false, projStd: 0.02, mlpRatio: c.mlpRatio, fused: o.fused });
  }
  x = layerNorm(p, x, 'norm', c.dim, 1e-5, o.fused);
  const clsOut = g.op('Gather', [x, g.scalar(0, 'int64')], { axis: 1 }); // [B, D]
  const logits = linear(p, clsOut, 'head', c.dim, c.numClasses);
  const loss = softmaxCrossEntropy(g, logits, labels, 'mean', o.fused);
  return { g, loss, logits, inputs: { images, labels } };
}
