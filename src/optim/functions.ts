// Model-local function bodies of standard ONNX ops for the com.ademamix optimizer ops, so a runtime without the
// op library still runs the graph (ORT inlines the body when no kernel is registered for the op).
// Scalars (bias corrections, 1−β3) are computed in double and cast to float once, like the fused kernels.
import { DEFAULT_OPSET, GraphBuilder } from '../graph/builder';
import { toOnnxType } from '../graph/dtype';
import { ATTR_TYPES, toFunctionProto } from '../graph/serialize';
import { attr, type Attr, type Value } from '../graph/value';
import { OPTIMIZERS } from './defs';
import {
  AttributeProtoSchema, create, FunctionProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema,
  type AttributeProto, type FunctionProto, type NodeProto,
} from '../onnx/proto';
import { multiScalars, OPS_DOMAIN, perTensorInputs, perTensorOutputs } from './defs/layout';
import type { BodyArgs, BodyResult, OptimizerDef } from './defs/types';

/** The value of the calling node's float attribute `name`, as a float32 scalar. */
const fattr = (g: GraphBuilder, name: string): Value => g.op('Constant', [], { value_float: attr.ref(name, 'float') });
const iattr = (g: GraphBuilder, name: string): Value => g.op('Constant', [], { value_int: attr.ref(name, 'int') });

function formals(g: GraphBuilder, names: string[]): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const n of names) {
    const dtype = n === 'step' ? 'int64' : ['lr', 'alpha', 'beta3', 'beta1'].includes(n) ? null : 'float32';
    out[n] = g.input(n, dtype, null);
  }
  return out;
}

/** 1 − b^t in double, as float32 (b: a float32 scalar, t: the int64 step). */
function oneMinusPow(g: GraphBuilder, b: Value, step: Value): Value {
  const bd = g.cast(b, 'float64');
  return g.cast(g.sub(g.scalar(1, 'float64'), g.pow(bd, g.cast(step, 'float64'))), 'float32');
}

/** θ − lr·(u + λ·θ) */
function applyUpdate(g: GraphBuilder, param: Value, u: Value, lr: Value, wd: Value): Value {
  return g.sub(param, g.mul(lr, g.add(u, g.mul(wd, param))));
}

/** ν ← β2·ν + (1−β2)·g² */
function secondMoment(g: GraphBuilder, nu: Value, grad: Value, b2: Value): Value {
  return g.add(g.mul(b2, nu), g.mul(g.sub(1, b2), g.mul(grad, grad)));
}

// The float32 math of each original op, as a definition body (defs/types.ts BodyArgs): the per-tensor function
// below wraps it in the op's formal inputs, and the coded-state body (derive.ts) in dequantize/quantize.

/** AdEMAMix: states m2, nu and (unless beta1 = 0) m1. */
export function ademamixBody({ g, param, grad, states, step, scalars, attr: at }: BodyArgs): BodyResult {
  const hasM1 = states.m1 !== undefined;
  const b1 = at('beta1'); const b2 = at('beta2'); const eps = at('eps'); const wd = at('weight_decay');
  const lr = g.cast(scalars.lr, 'float32'); const alpha = g.cast(scalars.alpha, 'float32');
  const b3d = g.cast(scalars.beta3, 'float64');
  const b3 = g.cast(b3d, 'float32');
  const oneMinusB3 = g.cast(g.sub(g.scalar(1, 'float64'), b3d), 'float32'); // ~1e-4: float32 β3 would lose it
  const m1 = hasM1 ? g.add(g.mul(b1, states.m1), g.mul(g.sub(1, b1), grad)) : g.identity(grad);
  const m2 = g.add(g.mul(b3, states.m2), g.mul(oneMinusB3, grad));
  const nu = secondMoment(g, states.nu, grad, b2);
  const bc2 = oneMinusPow(g, b2, step);
  const fast = hasM1 ? g.div(m1, oneMinusPow(g, b1, step)) : m1;
  const u = g.div(g.add(fast, g.mul(alpha, m2)), g.add(g.sqrt(g.div(nu, bc2)), eps));
  return { param: applyUpdate(g, param, u, lr, wd), states: { ...(hasM1 ? { m1 } : {}), m2, nu } };
}

/** Simplified-AdEMAMix without its scalar state S1 (bias_correction1 off); the per-tensor function adds S1. */
export function simplifiedBody(a: BodyArgs): BodyResult {
  const r = simplifiedCore(a, null);
  return { param: r.param, states: { m: r.m, nu: r.nu } };
}

function simplifiedCore({ g, param, grad, states, step, scalars, attr: at }: BodyArgs, s1In: Value | null): { param: Value; m: Value; nu: Value; s1: Value } {
  const b2 = at('beta2'); const eps = at('eps'); const wd = at('weight_decay');
  const lr = g.cast(scalars.lr, 'float32'); const alpha = g.cast(scalars.alpha, 'float32');
  const b1 = g.cast(scalars.beta1, 'float32');
  const m = g.add(g.mul(b1, states.m), grad);
  const nu = secondMoment(g, states.nu, grad, b2);
  // denominator = √ν·S2^(−c/2) + ε·S2^((1−c)/2) with c = bias_correction2 ∈ {0, 1}: both variants, no branch.
  const s2 = g.cast(oneMinusPow(g, b2, step), 'float64');
  const c = g.cast(iattr(g, 'bias_correction2'), 'float64');
  const kNu = g.cast(g.pow(s2, g.mul(c, -0.5)), 'float32');
  const kEps = g.cast(g.pow(s2, g.mul(g.sub(1, c), 0.5)), 'float32');
  let u = g.div(g.add(m, g.mul(alpha, grad)), g.add(g.mul(g.sqrt(nu), kNu), g.mul(eps, kEps)));
  let s1: Value;
  if (s1In) {
    s1 = g.add(g.mul(b1, g.cast(s1In, 'float32')), 1);
    // u / S1^c1: S1 is only applied with bias_correction1
    const c1 = g.cast(iattr(g, 'bias_correction1'), 'float32');
    u = g.div(u, g.pow(s1, c1));
  } else {
    s1 = g.scalar(0);
  }
  return { param: applyUpdate(g, param, u, lr, wd), m, nu, s1 };
}

export function adamwBody({ g, param, grad, states, step, scalars, attr: at }: BodyArgs): BodyResult {
  const b1 = at('beta1'); const b2 = at('beta2'); const eps = at('eps'); const wd = at('weight_decay');
  const lr = g.cast(scalars.lr, 'float32');
  const m = g.add(g.mul(b1, states.m), g.mul(g.sub(1, b1), grad));
  const v = secondMoment(g, states.v, grad, b2);
  const decayed = g.mul(param, g.sub(1, g.mul(lr, wd)));
  const u = g.div(g.div(m, oneMinusPow(g, b1, step)), g.add(g.sqrt(g.div(v, oneMinusPow(g, b2, step))), eps));
  return { param: g.sub(decayed, g.mul(lr, u)), states: { m, v } };
}

/** The body's arguments from an original op's formal inputs (attributes by reference, once each). */
function bodyArgs(g: GraphBuilder, x: Record<string, Value>, states: string[], scalars: string[]): BodyArgs {
  const cache = new Map<string, Value>();
  return {
    g, param: x.param, grad: x.grad, step: x.step,
    states: Object.fromEntries(states.filter((k) => x[k]).map((k) => [k, x[k]])),
    scalars: Object.fromEntries(scalars.map((k) => [k, x[k]])),
    attr: (name) => { if (!cache.has(name)) cache.set(name, fattr(g, name)); return cache.get(name)!; },
  };
}

export function ademamixFunction(hasM1: boolean): FunctionProto {
  const g = new GraphBuilder();
  const x = formals(g, perTensorInputs(defOf('AdEMAMix')));
  const r = ademamixBody(bodyArgs(g, x, hasM1 ? ['m1', 'm2', 'nu'] : ['m2', 'nu'], ['lr', 'alpha', 'beta3']));
  g.output(r.param, 'param_out');
  g.output(r.states.m1 ?? g.identity(x.grad), 'm1_out');
  g.output(r.states.m2, 'm2_out');
  g.output(r.states.nu, 'nu_out');
  return toFunctionProto(g, {
    domain: OPS_DOMAIN, name: 'AdEMAMix',
    docString: `AdEMAMix step as standard ops (${hasM1 ? 'with m1' : 'beta1 = 0: m1 = grad'}). Outputs: ${perTensorOutputs(defOf('AdEMAMix')).join(', ')}.`,
    attributes: ATTRS('AdEMAMix'),
  });
}

export function simplifiedFunction(hasS1: boolean): FunctionProto {
  const g = new GraphBuilder();
  const x = formals(g, perTensorInputs(defOf('SimplifiedAdEMAMix')));
  const r = simplifiedCore(bodyArgs(g, x, ['m', 'nu'], ['lr', 'alpha', 'beta1']), hasS1 ? x.s1 : null);
  g.output(r.param, 'param_out');
  g.output(r.m, 'm_out');
  g.output(r.nu, 'nu_out');
  g.output(r.s1, 's1_out');
  return toFunctionProto(g, {
    domain: OPS_DOMAIN, name: 'SimplifiedAdEMAMix',
    docString: `Simplified-AdEMAMix step as standard ops (${hasS1 ? 'with' : 'without'} the s1 state). Outputs: ${perTensorOutputs(defOf('SimplifiedAdEMAMix')).join(', ')}.`,
    attributes: ATTRS('SimplifiedAdEMAMix'),
  });
}

export function adamwFunction(): FunctionProto {
  const g = new GraphBuilder();
  const x = formals(g, perTensorInputs(defOf('AdamW')));
  const r = adamwBody(bodyArgs(g, x, ['m', 'v'], ['lr']));
  g.output(r.param, 'param_out');
  g.output(r.states.m, 'm_out');
  g.output(r.states.v, 'v_out');
  return toFunctionProto(g, {
    domain: OPS_DOMAIN, name: 'AdamW',
    docString: `AdamW step (torch.optim.AdamW semantics) as standard ops. Outputs: ${perTensorOutputs(defOf('AdamW')).join(', ')}.`,
    attributes: ATTRS('AdamW'),
  });
}

// ---- bf16 states and multi-tensor lists ----------------------------------------------------------------------------
// These bodies hold no math of their own: they call the per-tensor float32 op (whose body above is the math), so a
// runtime without the library inlines them down to exactly the standard-op updates of the per-tensor form.

export type OptimizerBase = 'AdEMAMix' | 'SimplifiedAdEMAMix' | 'AdamW';

/** The per-tensor op's variant, as in its function body: AdEMAMix with/without m1, Simplified with/without s1. */
export interface BodyVariant { hasM1?: boolean; hasS1?: boolean }

/** The op's attributes with their defaults, from its definition (src/optim/defs/). Looked up on use: the
 * definitions import the node builders, which import this module. */
function defOf(base: OptimizerBase): OptimizerDef {
  const def = OPTIMIZERS.find((d) => d.op === base);
  if (!def) throw new Error(`no optimizer definition has the op ${base}`);
  return def;
}
function ATTRS(base: OptimizerBase): Record<string, Attr> {
  const def = defOf(base);
  return Object.fromEntries(def.hyper.filter((h) => h.attr)
    .map((h) => [h.attr!, h.type === 'bool' ? attr.i(h.default ? 1 : 0) : attr.f(h.default as number)]));
}

const attrDefaults = (base: OptimizerBase): AttributeProto[] => Object.entries(ATTRS(base)).map(([name, a]) =>
  create(AttributeProtoSchema, a.kind === 'int'
    ? { name, type: ATTR_TYPES.int, i: BigInt(a.value) }
    : { name, type: ATTR_TYPES.float, f: (a as { value: number }).value }));

/** The calling node's attributes, forwarded by reference. */
const forwarded = (base: OptimizerBase): AttributeProto[] => Object.entries(ATTRS(base)).map(([name, a]) =>
  create(AttributeProtoSchema, { name, type: ATTR_TYPES[a.kind as 'float' | 'int'], refAttrName: name }));

const node = (opType: string, input: string[], output: string[], domain = '', attribute: AttributeProto[] = []): NodeProto =>
  create(NodeProtoSchema, { opType, domain, input, output, attribute, name: `${opType}_${output.find((o) => o) ?? 'out'}` });

const castTo = (x: string, out: string, dtype: 'float32' | 'bfloat16'): NodeProto => create(NodeProtoSchema, {
  opType: 'Cast', input: [x], output: [out], name: `Cast_${out}`,
  attribute: [create(AttributeProtoSchema, { name: 'to', type: ATTR_TYPES.int, i: BigInt(toOnnxType(dtype)) })],
});

function wrapper(name: string, overload: string, base: OptimizerBase, input: string[], output: string[], nodes: NodeProto[],
  doc: string): FunctionProto {
  return create(FunctionProtoSchema, {
    name, domain: OPS_DOMAIN, overload, docString: doc, input, output, node: nodes,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(DEFAULT_OPSET) }),
      create(OperatorSetIdProtoSchema, { domain: OPS_DOMAIN, version: 1n })],
    attributeProto: attrDefaults(base),
  });
}

/** Per-tensor inputs/outputs and state slots of each base op, in its formal order (from its definition). */
function perTensor(base: OptimizerBase): { inputs: string[]; outputs: string[]; states: string[] } {
  const d = defOf(base);
  return { inputs: perTensorInputs(d), outputs: perTensorOutputs(d), states: d.states.map((s) => s.name) };
}

/** Whether a per-tensor input slot is left empty by the variant: the definition's droppable state when its
 * hyperparameter is 0 (hasM1 false), or its scalar state when off (hasS1 false). */
function dropped(base: OptimizerBase, slot: string, v: BodyVariant): boolean {
  const d = defOf(base);
  if (d.states.some((s) => s.name === slot && s.dropWhenZero)) return !v.hasM1;
  if ((d.globals ?? []).some((gl) => gl.name === slot)) return !v.hasS1;
  return false;
}

/**
 * `<base>Bf16`: widen the bf16 states to float32, run the float32 per-tensor op, round its new states to bf16 (Cast to
 * bfloat16 rounds to nearest even, like the kernels' stores).
 */
export function bf16Function(base: OptimizerBase, v: BodyVariant): FunctionProto {
  const { inputs, outputs, states } = perTensor(base);
  const nodes: NodeProto[] = [];
  const callIn = inputs.map((x) => {
    if (dropped(base, x, v)) return '';
    if (!states.includes(x)) return x;
    nodes.push(castTo(x, `${x}_f32`, 'float32'));
    return `${x}_f32`;
  });
  const callOut = outputs.map((o) => (states.includes(o.replace(/_out$/, '')) ? `${o}_f32` : o));
  nodes.push(node(base, callIn, callOut, OPS_DOMAIN, forwarded(base)));
  outputs.forEach((o, k) => { if (callOut[k] !== o) nodes.push(castTo(callOut[k], o, 'bfloat16')); });
  return wrapper(`${base}Bf16`, '', base, inputs, outputs, nodes,
    `${base} step with bfloat16 states: float32 math through ${base}, states rounded to nearest even on store.`);
}

/** The overload naming a multi-tensor body: the per-tensor variant and the list length (functions have fixed arity). */
export function multiOverload(base: OptimizerBase, n: number, v: BodyVariant): string {
  const variant = base === 'AdEMAMix' ? (v.hasM1 ? 'm1' : 'no-m1') : base === 'SimplifiedAdEMAMix' ? (v.hasS1 ? 's1' : 'no-s1') : '';
  return variant ? `${variant}.n${n}` : `n${n}`;
}

/**
 * `<base>Multi[Bf16]` over n tensors: one call of the per-tensor op per tensor. Formal inputs: the scalars, then
 * param_0..n-1, grad_0.., and each state's list; outputs (Simplified: s1_out first) param_out_0.., each state's list.
 * Simplified's s1_out is taken from tensor 0's call (every call computes the same S1).
 */
export function multiFunction(base: OptimizerBase, n: number, v: BodyVariant, bf16: boolean): FunctionProto {
  const scal = multiScalars(defOf(base));
  const states = defOf(base).states.filter((s) => !s.dropWhenZero || v.hasM1).map((s) => s.name);
  const list = (gname: string): string[] => Array.from({ length: n }, (_, i) => `${gname}_${i}`);
  const input = [...scal, ...list('param'), ...list('grad'), ...states.flatMap(list)];
  const globalOuts = (defOf(base).globals ?? []).map((gl) => `${gl.name}_out`);
  const droppedOuts = defOf(base).states.filter((st) => st.dropWhenZero && !v.hasM1).map((st) => `${st.name}_out`);
  const output = [...globalOuts, ...list('param_out'), ...states.flatMap((st) => list(`${st}_out`))];
  const { inputs: perIn, outputs: perOut } = perTensor(base);
  const nodes: NodeProto[] = [];
  for (let i = 0; i < n; i++) {
    const callIn = perIn.map((x) => (dropped(base, x, v) ? '' : scal.includes(x) ? x : `${x}_${i}`));
    const callOut = perOut.map((o) => {
      if (globalOuts.includes(o)) return i === 0 ? o : ''; // every call computes the same scalar state
      if (droppedOuts.includes(o)) return '';
      return `${o.replace(/_out$/, '')}_out_${i}`;
    });
    nodes.push(node(bf16 ? `${base}Bf16` : base, callIn, callOut, OPS_DOMAIN, forwarded(base)));
  }
  const name = `${base}Multi${bf16 ? 'Bf16' : ''}`;
  return wrapper(name, multiOverload(base, n, v), base, input, output, nodes,
    `${base} over ${n} tensors${bf16 ? ' with bfloat16 states' : ''}: the per-tensor op applied to each.`);
}
