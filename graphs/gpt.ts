// A GPT (nanoGPT-style): token + position embedding, pre-LN blocks with causal multi-head attention and a GELU MLP,
// final LN, LM head tied to the token embedding, next-token cross-entropy. Batch and sequence dims are symbolic.
import { GraphBuilder } from '../src/graph/builder';
import type { Value } from '../src/graph/value';
import { Rng } from '../src/util/rng';
import { softmaxCrossEntropy } from '../src/ops/loss';
import { block, layerNorm, Params } from './layers';

export interface GptConfig {
  vocabSize: number; blockSize: number; nLayer: number; nHead: number; nEmbd: number; mlpRatio: number;
}

export const GPT_PRESETS: Record<string, GptConfig> = {
  'gpt-tiny': { vocabSize: 128, blockSize: 64, nLayer: 2, nHead: 2, nEmbd: 64, mlpRatio: 4 },
  'gpt-mini': { vocabSize: 128, blockSize: 128, nLayer: 4, nHead: 4, nEmbd: 128, mlpRatio: 4 },
  // GPT-2 small shape (124M with the GPT-2 vocabulary); the paper's 110M model is this size class.
  'gpt-small': { vocabSize: 50304, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768, mlpRatio: 4 },
};

export interface BuiltModel {
  g: GraphBuilder; loss: Value; logits: Value; inputs: Record<string, Value>;
}

export function gptConfig(preset: string, overrides: Partial<GptConfig> = {}): GptConfig {
  const base = GPT_PRESETS[preset];
  if (!base) throw new Error(`unknown GPT preset '${preset}' (have: ${Object.keys(GPT_PRESETS).join(', ')})`);
  return { ...base, ...overrides };
}

/** `fused`: attention as one com.ademamix SelfAttention node per layer, the blocks' linear layers as Linear nodes and
 * the layer norms as com.ademamix LayerNormalization (the op library's kernels; function bodies of the same standard
 * ops elsewhere), else the standard ops inline. */
export function buildGpt(c: GptConfig, seed = 0, o: { fused?: boolean } = {}): BuiltModel {
  if (c.nEmbd % c.nHead) throw new Error(`GPT: nEmbd ${c.nEmbd} is not divisible by nHead ${c.nHead}`);
  const g = new GraphBuilder();
  const p = new Params(g, new Rng(seed));
  const tokens = g.input('tokens', 'int64', ['batch', 'seq']);
  const targets = g.input('targets', 'int64', ['batch', 'seq']);
  const wte = p.normal('wte.weight', [c.vocabSize, c.nEmbd]);
  const wpe = p.normal('wpe.weight', [c.blockSize, c.nEmbd]);
  // positions [batch, seq] as an exclusive running count of ones along the sequence: shaped like tokens by name, so
  // ONNX Runtime's shape inference keeps [batch, seq, C] down the network (a Range of Shape(tokens)[1] gave an
  // unnamed dim, and every activation after the Add an unknown size: no buffer could then be reused in place)
  const ones = g.add(g.mul(tokens, g.scalar(0, 'int64')), g.scalar(1, 'int64'));
  const pos = g.op('CumSum', [ones, g.scalar(1, 'int64')], { exclusive: 1 });
  let x = g.add(g.op('Gather', [wte, tokens], { axis: 0 }), g.op('Gather', [wpe, pos], { axis: 0 }));
  const projStd = 0.02 / Math.sqrt(2 * c.nLayer); // GPT-2's scaled init of residual projections
  for (let i = 0; i < c.nLayer; i++) {
    x = block(p, x, `h.${i}`, { dim: c.nEmbd, heads: c.nHead, causal: true, projStd, mlpRatio: c.mlpRatio, fused: o.fused });
  }
  x = layerNorm(p, x, 'ln_f', c.nEmbd, 1e-5, o.fused);
  const logits = g.matmul(x, g.op('Transpose', [wte], { perm: [1, 0] })); // tied head
  const flat = g.op('Reshape', [logits, g.ints([-1, c.vocabSize])]);
  const loss = softmaxCrossEntropy(g, flat, g.op('Reshape', [targets, g.ints([-1])]), 'mean', o.fused);
  return { g, loss, logits, inputs: { tokens, targets } };
}
