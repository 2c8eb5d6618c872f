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
import type { TorchExportInfo } from './torch-export';

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
  /** What a torch.onnx export's metadata says of its tensors (src/interop/torch-export.ts). */
  torch?: TorchExportInfo | null;
  /** Train what can be trained when some parameter cannot (otherwise that is an error). */
  allowUntrained?: boolean;
}

export interface ParamChoice {
  params: Value[];
  /** Float initializers that do not train, with the reason. */
  frozen: { name: string; reason: string }[];
  /** torch parameters that do not train although the model has them (only with allowUntrained). */
  untrained: { name: string; reason: string }[];
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


/** The error for parameters that would silently not train. */
export class UntrainedError extends Error {
  constructor(source: string, readonly untrained: { name: string; reason: string }[]) {
    super(`${source}: ${untrained.length} parameter${untrained.length > 1 ? 's' : ''} of the model would not train:\n` +
      untrained.map((u) => `  ${u.name}: ${u.reason}`).join('\n') +
      '\nPass the model\'s state_dict (--torch-state sd.safetensors, from safetensors.torch.save_model(model, "sd.safetensors")) to recover ' +
      'folded parameters, re-export so the graph holds them (docs/interop.md), or pass --allow-untrained to train the others.');
    this.name = 'UntrainedError';
  }
}

const FOLDED = 'a constant the exporter computed';
const NO_GRADIENT = 'the loss does not depend on it through differentiable ops';

/**
 * Which float initializers train. A dynamo export's own record of its parameters decides when present; otherwise
 * names and the graph do (see the file comment). A parameter that would get no gradient is an error naming it,
 * unless `allowUntrained`.
 */
export function chooseParams(imp: ImportedGraph, loss: Value, spec: ParamsSpec = {}, source = 'model'): ParamChoice {
  const frozen: { name: string; reason: string }[] = [];
  const params: Value[] = [];
  const untrained: { name: string; reason: string }[] = [];
  const live = differentiableAncestors(imp.g, loss);
  const torchParams = spec.torch?.exporter === 'dynamo' ? new Set(spec.torch.params.map((p) => p.onnx)) : null;
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
      if (!live.has(v)) untrained.push({ name, reason: `listed in --params, but ${NO_GRADIENT}` });
      else params.push(v);
    }
  } else {
    for (const [name, v] of imp.initializers) {
      const known = spec.torch?.constants.get(name);
      const why = v.dtype !== 'float32' ? `${v.dtype}, not float32`
        : known ? (known.startsWith('a buffer') ? 'a buffer' : known)
          : torchParams ? (torchParams.has(name) ? null : FOLDED)
            : EXPORTER_CONSTANT.test(name) ? FOLDED
              : BUFFER_NAME.test(name) ? 'a buffer (by its name)'
                : null;
      if (why === FOLDED && spec.torch?.exporter === 'torchscript' && live.has(v)) {
        // TorchScript records no parameter list: a folded constant on the loss's path may hold a folded parameter
        untrained.push({ name, reason: `a constant the exporter folded (${(v.shape ?? []).join('×')}) on the loss's path: if it was computed from a parameter (position embeddings sliced to the example's length, say), that parameter is not in this file; re-export with do_constant_folding=False, or pass --allow-untrained if it is a true constant` });
        continue;
      }
      if (why) { frozen.push({ name, reason: why }); continue; }
      // no differentiable path to the loss: a mask or shape source (a buffer), or unused; torch gives it no gradient
      // either. (A path through an op that lacks a gradient rule is a path: autodiff then stops naming that op.)
      if (!live.has(v)) frozen.push({ name, reason: torchParams ? `a parameter ${NO_GRADIENT} (torch gives it no gradient either)` : `a buffer: ${NO_GRADIENT} (a mask or shape source)` });
      else params.push(v);
    }
    for (const m of spec.torch?.missing ?? []) untrained.push(m);
  }
  if (spec.freeze) {
    for (let i = params.length - 1; i >= 0; i--) {
      if (spec.freeze.test(params[i].name!)) { frozen.push({ name: params[i].name!, reason: `matches --freeze ${spec.freeze.source}` }); params.splice(i, 1); }
    }
    for (let i = untrained.length - 1; i >= 0; i--) {
      if (spec.freeze.test(untrained[i].name)) { frozen.push({ name: untrained[i].name, reason: `matches --freeze ${spec.freeze.source}` }); untrained.splice(i, 1); }
    }
  }
  if (untrained.length && !spec.allowUntrained) throw new UntrainedError(source, untrained);
  return { params, frozen, untrained };
}

const numel = (v: Value): number => (v.shape ?? []).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
const someNames = (xs: string[], k = 6): string => xs.slice(0, k).join(', ') + (xs.length > k ? `, … ${xs.length - k} more` : '');

/** The split, in a few lines: what trains, and what does not, grouped by why (printed by the CLI). */
export function describeChoice(c: ParamChoice, verbose = false): string {
  const total = c.params.reduce((a, v) => a + numel(v), 0);
  const lines = [`trains ${plural(c.params.length, 'tensor')} (${total.toLocaleString('en-US')} params)`];
  if (verbose) for (const v of c.params) lines.push(`  ${v.name} [${(v.shape ?? []).join(',')}]`);
  const groups = new Map<string, string[]>();
  for (const f of c.frozen) { if (!groups.has(f.reason)) groups.set(f.reason, []); groups.get(f.reason)!.push(f.name); }
  if (groups.size) {
    const kind = (why: string): string => (why.startsWith('a buffer') ? 'buffer' : why.startsWith('a constant') ? 'exporter constant'
      : /--freeze|--params/.test(why) ? 'frozen' : 'other');
    const counts = new Map<string, number>();
    for (const f of c.frozen) counts.set(kind(f.reason), (counts.get(kind(f.reason)) ?? 0) + 1);
    lines.push(`not trained: ${[...counts].map(([k, n]) => (k === 'frozen' || k === 'other' ? `${n} ${k}` : plural(n, k))).join(', ')}`);
    for (const [why, names] of groups) lines.push(`  ${why}: ${verbose ? names.join(', ') : someNames(names)}`);
  }
  if (c.untrained.length) {
    lines.push(`warning: ${plural(c.untrained.length, 'parameter')} of the model do not train (--allow-untrained):`);
    for (const u of c.untrained) lines.push(`  ${u.name}: ${u.reason}`);
  }
  return lines.join('\n');
}
