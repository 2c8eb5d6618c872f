// Emitting optimizer nodes: a com.ademamix node (run by the fused kernel when the op library is loaded) plus its
// model-local function body (run by any ONNX Runtime without the library).
import type { GraphBuilder } from '../graph/builder';
import type { Value } from '../graph/value';
import { OpError } from '../ops/registry';
import { OPS_DOMAIN } from './defs/layout';
import './derive'; // registers the ops' inference rules (from the definitions)
import {
  ademamixFunction, adamwFunction, bf16Function, multiFunction, simplifiedFunction,
  type BodyVariant, type OptimizerBase,
} from './functions';
import type { FunctionProto } from '../onnx/proto';

/** One function body per op name per model: the variant (e.g. with or without m1) must agree across nodes. */
function ensureFunction(g: GraphBuilder, name: string, variant: string, make: () => FunctionProto): void {
  const key = `${OPS_DOMAIN}::${name}::`;
  const have = g.functions.get(key);
  if (have) {
    const v = have.metadataProps.find((p) => p.key === 'variant')?.value;
    if (v !== variant) {
      throw new OpError(`${name}: this model already holds the '${v}' function body; one model cannot mix it with '${variant}' ` +
        `(e.g. beta1 = 0 and beta1 != 0 AdEMAMix nodes)`);
    }
    return;
  }
  const f = make();
  f.metadataProps.push({ $typeName: 'onnx.StringStringEntryProto', key: 'variant', value: variant });
  g.addFunction(f);
}

export interface AdemamixAttrs { beta1: number; beta2: number; eps: number; weightDecay: number }

/** Storage type of the optimizer states: float32, or bfloat16 (math in float32, stores rounded to nearest even). */
export type StateDtype = 'float32' | 'bfloat16';
export interface StepOptions {
  /** bfloat16: the `<Op>Bf16` form; its states (inputs and outputs) are bfloat16 tensors. Default float32. */
  stateDtype?: StateDtype;
}

/** The per-tensor float32 body (the math), and the bf16 wrapper over it when asked for. */
function ensureBodies(g: GraphBuilder, base: OptimizerBase, v: BodyVariant, bf16: boolean): void {
  const variant = base === 'AdEMAMix' ? (v.hasM1 ? 'm1' : 'no-m1') : base === 'SimplifiedAdEMAMix' ? (v.hasS1 ? 's1' : 'no-s1') : 'default';
  const make = base === 'AdEMAMix' ? () => ademamixFunction(!!v.hasM1)
    : base === 'SimplifiedAdEMAMix' ? () => simplifiedFunction(!!v.hasS1) : adamwFunction;
  ensureFunction(g, base, variant, make);
  if (bf16) ensureFunction(g, `${base}Bf16`, variant, () => bf16Function(base, v));
}

export function ademamixStep(
  g: GraphBuilder,
  x: { param: Value; grad: Value; m1: Value | null; m2: Value; nu: Value; step: Value; lr: Value; alpha: Value; beta3: Value },
  a: AdemamixAttrs, name?: string, opts: StepOptions = {},
): { param: Value; m1: Value | null; m2: Value; nu: Value } {
  const hasM1 = a.beta1 !== 0;
  if (hasM1 && !x.m1) throw new OpError(`AdEMAMix${name ? ` '${name}'` : ''}: beta1 = ${a.beta1} needs the m1 state`);
  const bf16 = opts.stateDtype === 'bfloat16';
  ensureBodies(g, 'AdEMAMix', { hasM1 }, bf16);
  const [param, m1, m2, nu] = g.opN(bf16 ? 'AdEMAMixBf16' : 'AdEMAMix',
    [x.param, x.grad, hasM1 ? x.m1 : null, x.m2, x.nu, x.step, x.lr, x.alpha, x.beta3],
    { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay },
    { domain: OPS_DOMAIN, outputs: 4, omit: hasM1 ? [] : [1], name });
  return { param, m1: hasM1 ? m1 : null, m2, nu };
}

export interface SimplifiedAttrs { beta2: number; eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean }

export function simplifiedStep(
  g: GraphBuilder,
  x: { param: Value; grad: Value; m: Value; nu: Value; step: Value; lr: Value; alpha: Value; beta1: Value; s1?: Value | null },
  a: SimplifiedAttrs, name?: string, opts: StepOptions = {},
): { param: Value; m: Value; nu: Value; s1: Value | null } {
  const hasS1 = a.biasCorrection1;
  if (hasS1 && !x.s1) throw new OpError(`SimplifiedAdEMAMix${name ? ` '${name}'` : ''}: bias_correction1 needs the s1 state`);
  const bf16 = opts.stateDtype === 'bfloat16';
  ensureBodies(g, 'SimplifiedAdEMAMix', { hasS1 }, bf16);
  const [param, m, nu, s1] = g.opN(bf16 ? 'SimplifiedAdEMAMixBf16' : 'SimplifiedAdEMAMix',
    [x.param, x.grad, x.m, x.nu, x.step, x.lr, x.alpha, x.beta1, hasS1 ? x.s1! : null],
    { beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay, bias_correction1: hasS1 ? 1 : 0, bias_correction2: a.biasCorrection2 ? 1 : 0 },
    { domain: OPS_DOMAIN, outputs: 4, omit: hasS1 ? [] : [3], name });
  return { param, m, nu, s1: hasS1 ? s1 : null };
}

export function adamwStep(
  g: GraphBuilder,
  x: { param: Value; grad: Value; m: Value; v: Value; step: Value; lr: Value },
  a: AdemamixAttrs, name?: string, opts: StepOptions = {},
): { param: Value; m: Value; v: Value } {
  const bf16 = opts.stateDtype === 'bfloat16';
  ensureBodies(g, 'AdamW', {}, bf16);
  const [param, m, v] = g.opN(bf16 ? 'AdamWBf16' : 'AdamW', [x.param, x.grad, x.m, x.v, x.step, x.lr],
    { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay },
    { domain: OPS_DOMAIN, outputs: 3, name });
  return { param, m, v };
}

// ---- multi-tensor form ---------------------------------------------------------------------------------------------
// One node updates a whole group of tensors that share the attributes (e.g. every parameter with weight decay): the
// fused kernel does one pass over all of them (CPU: split across ORT's pool; CUDA: one launch over the list) instead
// of one node per tensor. Its function body calls the per-tensor op once per tensor. ONNX functions have a fixed
// arity, so each list length gets its own body, told apart by the FunctionProto `overload` field (IR 10; ORT 1.30
// resolves node.overload to the matching model-local function): each node carries the overload of its body. The
// bf16 forms also declare their outputs' element types: the variadic output list mixes float32 params and bfloat16
// states, which ORT cannot infer from the op library's schema.

/** Adds the body for this list length (once) and returns its overload, for the node to name. */
function ensureMultiBody(g: GraphBuilder, base: OptimizerBase, n: number, v: BodyVariant, bf16: boolean): string {
  ensureBodies(g, base, v, bf16);
  const f = multiFunction(base, n, v, bf16);
  if (!g.functions.has(`${f.domain}::${f.name}::${f.overload}`)) g.addFunction(f);
  return f.overload;
}

function sameLength(op: string, name: string | undefined, lists: Record<string, Value[] | null | undefined>): number {
  const entries = Object.entries(lists).filter((e): e is [string, Value[]] => !!e[1]);
  const n = entries[0][1].length;
  if (n === 0) throw new OpError(`${op}${name ? ` '${name}'` : ''}: the tensor lists are empty`);
  const bad = entries.find(([, l]) => l.length !== n);
  if (bad) {
    throw new OpError(`${op}${name ? ` '${name}'` : ''}: every tensor list needs one entry per parameter: ` +
      entries.map(([k, l]) => `${k} has ${l.length}`).join(', '));
  }
  return n;
}

const chunks = (xs: Value[], n: number): Value[][] => Array.from({ length: xs.length / n }, (_, k) => xs.slice(k * n, (k + 1) * n));

export function ademamixStepMulti(
  g: GraphBuilder,
  x: { params: Value[]; grads: Value[]; m1: Value[] | null; m2: Value[]; nu: Value[]; step: Value; lr: Value; alpha: Value; beta3: Value },
  a: AdemamixAttrs, name?: string, opts: StepOptions = {},
): { params: Value[]; m1: Value[] | null; m2: Value[]; nu: Value[] } {
  const hasM1 = a.beta1 !== 0;
  if (hasM1 && !x.m1) throw new OpError(`AdEMAMixMulti${name ? ` '${name}'` : ''}: beta1 = ${a.beta1} needs the m1 states`);
  const n = sameLength('AdEMAMixMulti', name, { params: x.params, grads: x.grads, m1: hasM1 ? x.m1 : null, m2: x.m2, nu: x.nu });
  const bf16 = opts.stateDtype === 'bfloat16';
  const overload = ensureMultiBody(g, 'AdEMAMix', n, { hasM1 }, bf16);
  const states = hasM1 ? [x.m1!, x.m2, x.nu] : [x.m2, x.nu];
  const outs = g.opN(bf16 ? 'AdEMAMixMultiBf16' : 'AdEMAMixMulti',
    [x.step, x.lr, x.alpha, x.beta3, ...x.params, ...x.grads, ...states.flat()],
    { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay },
    { domain: OPS_DOMAIN, outputs: n * (1 + states.length), name, overload, declareOutputTypes: bf16 });
  const [params, ...st] = chunks(outs, n);
  return hasM1 ? { params, m1: st[0], m2: st[1], nu: st[2] } : { params, m1: null, m2: st[0], nu: st[1] };
}

export function simplifiedStepMulti(
  g: GraphBuilder,
  x: { params: Value[]; grads: Value[]; m: Value[]; nu: Value[]; step: Value; lr: Value; alpha: Value; beta1: Value; s1?: Value | null },
  a: SimplifiedAttrs, name?: string, opts: StepOptions = {},
): { params: Value[]; m: Value[]; nu: Value[]; s1: Value | null } {
  const hasS1 = a.biasCorrection1;
  if (hasS1 && !x.s1) throw new OpError(`SimplifiedAdEMAMixMulti${name ? ` '${name}'` : ''}: bias_correction1 needs the s1 state`);
  const n = sameLength('SimplifiedAdEMAMixMulti', name, { params: x.params, grads: x.grads, m: x.m, nu: x.nu });
  const bf16 = opts.stateDtype === 'bfloat16';
  const overload = ensureMultiBody(g, 'SimplifiedAdEMAMix', n, { hasS1 }, bf16);
  const [s1, ...outs] = g.opN(bf16 ? 'SimplifiedAdEMAMixMultiBf16' : 'SimplifiedAdEMAMixMulti',
    [x.step, x.lr, x.alpha, x.beta1, hasS1 ? x.s1! : null, ...x.params, ...x.grads, ...x.m, ...x.nu],
    { beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay, bias_correction1: hasS1 ? 1 : 0, bias_correction2: a.biasCorrection2 ? 1 : 0 },
    { domain: OPS_DOMAIN, outputs: 1 + 3 * n, omit: hasS1 ? [] : [0], name, overload, declareOutputTypes: bf16 });
  const [params, m, nu] = chunks(outs, n);
  return { params, m, nu, s1: hasS1 ? s1 : null };
}

export function adamwStepMulti(
  g: GraphBuilder,
  x: { params: Value[]; grads: Value[]; m: Value[]; v: Value[]; step: Value; lr: Value },
  a: AdemamixAttrs, name?: string, opts: StepOptions = {},
): { params: Value[]; m: Value[]; v: Value[] } {
  const n = sameLength('AdamWMulti', name, { params: x.params, grads: x.grads, m: x.m, v: x.v });
  const bf16 = opts.stateDtype === 'bfloat16';
  const overload = ensureMultiBody(g, 'AdamW', n, {}, bf16);
  const outs = g.opN(bf16 ? 'AdamWMultiBf16' : 'AdamWMulti', [x.step, x.lr, ...x.params, ...x.grads, ...x.m, ...x.v],
    { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay },
    { domain: OPS_DOMAIN, outputs: 3 * n, name, overload, declareOutputTypes: bf16 });
  const [params, m, v] = chunks(outs, n);
  return { params, m, v };
}
