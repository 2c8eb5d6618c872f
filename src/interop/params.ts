// Which initializers of an imported graph train. Exported graphs hold more than parameters: exporter constants
// (dynamo's folded `val_*`, TorchScript's `onnx::…`/`/…_output_0`), and registered buffers (causal masks, rotary
// tables, BatchNorm statistics). By default a float32 initializer trains when its name is no exporter constant or
// known buffer name and the loss depends on it through differentiable ops (a mask that only feeds a comparison does
// not). An explicit list (names, or the param map graphs/export_torch.py writes from `model.named_parameters()`)
// sets it exactly; a freeze pattern removes matches from either.
import * as fs from 'node:fs';
import { isFloat } from '../graph/dtype';
import type { GraphBuilder } from '../graph/builder';
import type { Value } from '../graph/value';
import { getOp } from '../ops/registry';
import type { ImportedGraph } from './import';

/** One PyTorch tensor's place in the ONNX graph: its initializer, every state_dict key naming it (tied), layout. */
export interface TorchTensorEntry {
  onnx: string;
  torch: string[];
  /** The initializer holds the 2-D tensor transposed (constant-folded `weight.T`). */
  transpose?: boolean;
}

/** The map graphs/export_torch.py writes beside the model (`<model>.params.json`). */
export interface TorchParamMap {
  format: 'ademamix.torch-params/1';
  params: TorchTensorEntry[];
  buffers: TorchTensorEntry[];
  /** state_dict keys with no initializer in the graph (folded away by the exporter). */
  missing?: string[];
}

export const TORCH_MAP_FORMAT = 'ademamix.torch-params/1';

/** Names exporters give to the constants they create. */
export const EXPORTER_CONSTANT = /^(val_\d+|onnx::.*|\/.*|.*_output_\d+|_?(tensor_)?constant_?\d*|const_.*|c_lifted_tensor_\d+|lifted_tensor_\d+)$/i;
/** Names of common registered buffers that do flow into the loss (rotary tables, norms' running statistics). */
export const BUFFER_NAME = /(^|[._])(inv_freq|cos_cached|sin_cached|freqs_cis|rope_\w+|rotary_\w+|running_mean|running_var|num_batches_tracked|position_ids|\w*_mask|mask)$/i;

export interface ParamsSpec {
  /** Exact names, or a file (see readParamsFile). */
  names?: string[];
  /** Regular expression: matching parameters are frozen (stay initializers). */
  freeze?: RegExp;
}

export interface ParamChoice {
  params: Value[];
  /** Float initializers that do not train, with the reason. */
  frozen: { name: string; reason: string }[];
}

/**
 * Reads `--params`: a JSON file (a list of names, or a TorchParamMap), a text file (one name a line, # comments),
 * or a comma-separated list of names.
 */
export function readParamsOption(spec: string): { names: string[]; map: TorchParamMap | null } {
  if (!fs.existsSync(spec)) {
    const names = spec.split(',').map((s) => s.trim()).filter(Boolean);
    if (!names.length) throw new Error(`--params: '${spec}' is neither a file nor a list of names`);
    return { names, map: null };
  }
  const text = fs.readFileSync(spec, 'utf8');
  if (/^\s*[[{]/.test(text)) {
    let j: unknown;
    try { j = JSON.parse(text); } catch (e) { throw new Error(`${spec}: not valid JSON (${(e as Error).message})`); }
    if (Array.isArray(j) && j.every((x) => typeof x === 'string')) return { names: j as string[], map: null };
    const m = j as Partial<TorchParamMap>;
    if (m && m.format === TORCH_MAP_FORMAT && Array.isArray(m.params)) {
      return { names: m.params.map((p) => p.onnx), map: { ...m, buffers: m.buffers ?? [] } as TorchParamMap };
    }
    throw new Error(`${spec}: expected a JSON list of names or a ${TORCH_MAP_FORMAT} map (from graphs/export_torch.py)`);
  }
  const names = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
  if (!names.length) throw new Error(`${spec}: lists no parameter names`);
  return { names, map: null };
}

/** The values the loss depends on through differentiable ops (float values, ops not marked nonDifferentiable). */
export function differentiableAncestors(g: GraphBuilder, loss: Value): Set<Value> {
  const live = new Set<Value>([loss]);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.outputs.some((o) => live.has(o))) continue;
    if (getOp(n.opType, n.domain)?.nonDifferentiable) continue;
    for (const v of n.inputs) if (v && (v.dtype === null || isFloat(v.dtype))) live.add(v);
  }
  return live;
}

export function chooseParams(imp: ImportedGraph, loss: Value, spec: ParamsSpec = {}): ParamChoice {
  const frozen: { name: string; reason: string }[] = [];
  const params: Value[] = [];
  if (spec.names) {
    const missing = spec.names.filter((n) => !imp.initializers.has(n));
    if (missing.length) {
      const have = [...imp.initializers.keys()];
      throw new Error(`--params names ${missing.length} tensor(s) that are not float initializers of the graph: ${missing.join(', ')}` +
        ` (the graph has: ${have.slice(0, 40).join(', ')}${have.length > 40 ? ', …' : ''})`);
    }
    const wanted = new Set(spec.names);
    for (const [name, v] of imp.initializers) {
      if (!wanted.has(name)) { frozen.push({ name, reason: 'not listed in --params' }); continue; }
      if (v.dtype !== 'float32') throw new Error(`--params: '${name}' is ${v.dtype}; only float32 parameters train`);
      params.push(v);
    }
  } else {
    const live = differentiableAncestors(imp.g, loss);
    for (const [name, v] of imp.initializers) {
      const why = v.dtype !== 'float32' ? `${v.dtype}, not float32`
        : EXPORTER_CONSTANT.test(name) ? 'named like an exporter constant'
          : BUFFER_NAME.test(name) ? 'named like a buffer'
            : !live.has(v) ? 'the loss does not depend on it through differentiable ops (a mask or shape source)'
              : null;
      if (why) frozen.push({ name, reason: why }); else params.push(v);
    }
  }
  if (spec.freeze) {
    for (let i = params.length - 1; i >= 0; i--) {
      if (spec.freeze.test(params[i].name!)) { frozen.push({ name: params[i].name!, reason: `matches --freeze ${spec.freeze.source}` }); params.splice(i, 1); }
    }
  }
  return { params, frozen };
}

/** A one-screen summary of the choice, printed by the CLI. */
export function describeChoice(c: ParamChoice): string {
  const numel = (v: Value): number => (v.shape ?? []).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
  const total = c.params.reduce((a, v) => a + numel(v), 0);
  const lines = [`training ${c.params.length} parameter tensors (${total.toLocaleString('en-US')} values):`];
  for (const v of c.params) lines.push(`  ${v.name} [${(v.shape ?? []).join(',')}]`);
  if (c.frozen.length) {
    lines.push(`not trained (${c.frozen.length}):`);
    for (const f of c.frozen) lines.push(`  ${f.name}: ${f.reason}`);
  }
  return lines.join('\n');
}
