// What follows from an optimizer definition (src/optim/defs/): specs with defaults and range checks, the op
// attributes, the active state slots, and for generic definitions the fused multi-tensor com.ademamix node, its
// inference rule and its standard-op function body (one overload per list length).
import { GraphBuilder } from '../graph/builder';
import { toFunctionProto } from '../graph/serialize';
import { attr, fmtShape, type Attr, type AttrType, type Value } from '../graph/value';
import { defineOp, OpError, type InferCtx, type OutType } from '../ops/registry';
import { sameShape } from '../ops/shape';
import { check, like } from '../ops/optimizers';
import type { DType } from '../graph/dtype';
import { attrOf, multiScalars, OPS_DOMAIN, perTensorInputs } from './defs/layout';
import { tensorData } from '../graph/tensor-data';
import { dtypeOfFormat, FORMAT_CODE, QUANT_BLOCK, quantMap, type StateFormat } from './precision';
import { OPTIMIZERS } from './defs';
import type { EmitArgs, EmitResult, HyperDef, OptimizerDef, OptimizerSpec } from './defs/types';

export type { OptimizerDef, OptimizerSpec } from './defs/types';
export { OPTIMIZERS };

export const OPTIMIZER_NAMES = OPTIMIZERS.map((d) => d.name);
/** The op types of every definition's fp32 and bf16 forms, per tensor and multi-tensor (not the coded ones). */
export const OPTIMIZER_OP_TYPES: ReadonlySet<string> = new Set(OPTIMIZERS.flatMap((d) => [d.op, `${d.op}Multi`, `${d.op}Bf16`, `${d.op}MultiBf16`]));

export function getOptimizer(name: string): OptimizerDef {
  const d = OPTIMIZERS.find((x) => x.name === name);
  if (!d) throw new RangeError(`unknown optimizer '${name}' (have: ${OPTIMIZER_NAMES.join(', ')})`);
  return d;
}

const rangeOf = (h: HyperDef): HyperDef['range'] => h.range ?? (h.key.startsWith('beta') ? { min: 0, max: 1, maxOpen: true } : undefined);
export const fmtRange = (r: NonNullable<HyperDef['range']>): string => `${r.minOpen ? '(' : '['}${r.min}, ${r.max}${r.maxOpen ? ')' : ']'}`;

export function checkHyper(def: OptimizerDef, h: HyperDef, v: unknown): void {
  if (h.type === 'bool') {
    if (typeof v !== 'boolean') throw new RangeError(`${def.name}: ${h.key} must be true or false, got ${String(v)}`);
    return;
  }
  if (typeof v !== 'number' || Number.isNaN(v)) throw new RangeError(`${def.name}: ${h.key} must be a number, got ${String(v)}`);
  const r = rangeOf(h);
  if (!r) return;
  const ok = (r.minOpen ? v > r.min : v >= r.min) && (r.maxOpen ? v < r.max : v <= r.max);
  if (!ok) throw new RangeError(`${def.name}: ${h.key} = ${v} is outside ${fmtRange(r)}`);
}

/** A spec with every hyperparameter set (defaults filled in; schedule lengths left unset mean no warmup). */
export function makeSpec(def: OptimizerDef, o: Record<string, unknown> & { lr?: unknown } = {}): OptimizerSpec {
  const lr = o.lr === undefined ? { lr: def.lr } : typeof o.lr === 'number' ? { lr: o.lr } : o.lr;
  const s: Record<string, unknown> = { kind: def.name };
  for (const h of def.hyper) {
    const v = o[h.key] ?? (h.runLength ? undefined : h.default);
    if (v === undefined) continue;
    checkHyper(def, h, v);
    s[h.key] = v;
  }
  const known = new Set(['kind', 'lr', ...def.hyper.map((h) => h.key)]);
  const extra = Object.keys(o).filter((k) => !known.has(k) && o[k] !== undefined);
  if (extra.length) throw new RangeError(`${def.name}: no hyperparameter ${extra.join(', ')} (has ${def.hyper.map((h) => h.key).join(', ')})`);
  s.lr = lr;
  return s as OptimizerSpec;
}

/** Hyperparameter values for the reference and the op attributes; `weightDecay` is the group's. */
export function hyperOf(def: OptimizerDef, spec: OptimizerSpec, weightDecay: number): Record<string, number | boolean> {
  const h: Record<string, number | boolean> = {};
  for (const d of def.hyper) h[d.key] = (spec[d.key] as number | boolean | undefined) ?? d.default;
  h.weightDecay = weightDecay;
  return h;
}

/** The op's attributes (float; bools as int 0/1). */
export function attrsOf(def: OptimizerDef, h: Record<string, number | boolean>): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const d of def.hyper) if (d.attr) out[d.attr] = d.type === 'bool' ? attr.i(h[d.key] ? 1 : 0) : attr.f(h[d.key] as number);
  return out;
}

/** Per-tensor state slots this spec carries (a slot is dropped when its hyperparameter is 0). */
export function activeStates(def: OptimizerDef, spec: OptimizerSpec | Record<string, unknown>): string[] {
  return def.states.filter((s) => !s.dropWhenZero || (spec[s.dropWhenZero] ?? def.hyper.find((h) => h.key === s.dropWhenZero)?.default) !== 0)
    .map((s) => s.name);
}

/** A function body's reader of the calling node's attributes (float32 scalars; bools cast), one Constant each. */
function bodyAttrs(g: GraphBuilder, def: OptimizerDef): (name: string) => Value {
  const cache = new Map<string, Value>();
  return (name) => {
    if (!cache.has(name)) {
      const h = def.hyper.find((x) => x.attr === name);
      if (!h) throw new Error(`${def.name}: the body reads attribute '${name}', which no hyperparameter declares`);
      cache.set(name, h.type === 'bool' ? g.cast(g.op('Constant', [], { value_int: attr.ref(name, 'int') }), 'float32')
        : g.op('Constant', [], { value_float: attr.ref(name, 'float') }));
    }
    return cache.get(name)!;
  };
}

// ---- generic definitions: one fused multi-tensor op ---------------------------------------------------------------
// Inputs: step, the per-step scalars, then N params, N grads and N of each state; outputs N params_out, then N of
// each state's out. A per-tensor update is a list of one. The kernel (custom-ops) and the function body below are
// the two implementations; the body is the definition's `body` applied to each tensor.

const attrTypes = (def: OptimizerDef): Record<string, AttrType> =>
  Object.fromEntries(def.hyper.filter((h) => h.attr).map((h) => [h.attr!, h.type === 'bool' ? 'int' : 'float']));

function defineFused(def: OptimizerDef): void {
  const K = def.states.length;
  const S = 1 + def.scalars.length;
  defineOp({
    opType: def.op, domain: OPS_DOMAIN, attrTypes: attrTypes(def),
    infer: (ctx: InferCtx) => {
      const tensors = ctx.inputs.length - S;
      const per = 2 + K;
      if (tensors <= 0 || tensors % per !== 0) {
        ctx.fail(`expects step, ${def.scalars.map((s) => s.name).join(', ')}, then N tensors of each of (params, grads, ` +
          `${def.states.map((s) => s.name).join(', ')}): a multiple of ${per} tensor inputs, got ${Math.max(tensors, 0)}`);
      }
      for (let k = 0; k < S; k++) {
        const v = ctx.inputs[k];
        const name = k === 0 ? 'step' : def.scalars[k - 1].name;
        if (!v) ctx.fail(`input '${name}' is required`);
        if (v.shape && v.shape.length > 0 && !(v.shape.length === 1 && v.shape[0] === 1)) ctx.fail(`input '${name}' must be a scalar, got shape ${fmtShape(v.shape)}`);
        if (k === 0 && v.dtype !== null && v.dtype !== 'int64') ctx.fail(`input 'step' must be int64, got ${v.dtype}`);
        if (k > 0 && v.dtype !== null && v.dtype !== 'float32' && v.dtype !== 'float64') ctx.fail(`input '${name}' must be float or double, got ${v.dtype}`);
      }
      const n = tensors / per;
      const groups = ['param', 'grad', ...def.states.map((s) => s.name)];
      const outs: OutType[] = [];
      for (let gi = 0; gi < groups.length; gi++) {
        for (let i = 0; i < n; i++) {
          const p = ctx.input(S + i);
          const v = ctx.inputs[S + gi * n + i];
          if (!v) ctx.fail(`input '${groups[gi]}[${i}]' is required`);
          if (v.dtype !== null && v.dtype !== 'float32') ctx.fail(`input '${groups[gi]}[${i}]' must be float32, got ${v.dtype}`);
          if (!sameShape(v.shape, p.shape)) ctx.fail(`input '${groups[gi]}[${i}]' has shape ${fmtShape(v.shape)} but 'param[${i}]' has ${fmtShape(p.shape)}`);
          if (gi !== 1) outs.push({ dtype: 'float32', shape: p.shape });
        }
      }
      return outs;
    },
  });
}
// ---- the original ops (definitions with `emit`): per-tensor, Bf16, Multi and MultiBf16 forms ----------------------

function defineOriginal(def: OptimizerDef): void {
  const K = def.states.length; const S = def.scalars.length;
  const names = perTensorInputs(def);
  const drops = def.states.map((st, k) => ({ k, name: st.name, a: st.dropWhenZero ? attrOf(def, st.dropWhenZero) : null }));
  const globals = (def.globals ?? []).map((gl) => ({ name: gl.name, a: attrOf(def, gl.when) }));
  const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
  for (const bf of [false, true]) {
    const sd: DType = bf ? 'bfloat16' : 'float32';
    const suffix = bf ? 'Bf16' : '';
    const likeDtype = (ctx: InferCtx, i: number): OutType => ({ ...like(ctx, i), dtype: sd });
    defineOp({
      opType: `${def.op}${suffix}`, domain: OPS_DOMAIN, attrTypes: attrTypes(def),
      infer: (ctx: InferCtx) => {
        check(ctx, names, range(1, 1 + K), 2 + K, range(3 + K, S), bf ? range(2, K) : [], sd);
        for (const d of drops) {
          if (d.a && !ctx.has(2 + d.k) && ctx.float(d.a.name, d.a.dflt) !== 0) ctx.fail(`input '${d.name}' may only be absent when ${d.a.name} = 0`);
        }
        globals.forEach((gl, j) => {
          if (ctx.int(gl.a.name, gl.a.dflt) && !ctx.has(3 + K + S + j)) ctx.fail(`${gl.a.name} needs the scalar state input '${gl.name}'`);
        });
        return [like(ctx, 0), ...range(2, K).map((i) => likeDtype(ctx, i)), ...globals.map(() => ({ dtype: 'float32' as const, shape: [] }))];
      },
    });
    defineOp({
      opType: `${def.op}Multi${suffix}`, domain: OPS_DOMAIN, attrTypes: attrTypes(def),
      infer: (ctx: InferCtx) => {
        const scal = multiScalars(def);
        const states = drops.filter((d) => !d.a || ctx.float(d.a.name, d.a.dflt) !== 0).map((d) => d.name);
        const per = 2 + states.length;
        const tensors = ctx.inputs.length - scal.length;
        if (tensors <= 0 || tensors % per !== 0) {
          ctx.fail(`expects ${scal.join(', ')}, then N tensors of each of (params, grads, ${states.join(', ')}): a multiple of ` +
            `${per} tensor inputs, got ${Math.max(tensors, 0)}`);
        }
        const n = tensors / per;
        globals.forEach((gl, j) => {
          if (ctx.int(gl.a.name, gl.a.dflt) && !ctx.has(1 + S + j)) ctx.fail(`${gl.a.name} needs the scalar state input '${gl.name}'`);
        });
        const groups = ['param', 'grad', ...states];
        const listNames = [...scal, ...groups.flatMap((gname) => Array.from({ length: n }, (_, i) => `${gname}[${i}]`))];
        const outs: OutType[] = globals.map(() => ({ dtype: 'float32' as const, shape: [] }));
        const paramOuts: OutType[] = []; const stateOuts: OutType[] = [];
        for (let i = 0; i < n; i++) {
          const at = (k: number): number => scal.length + k * n + i;
          const stateIdx = states.map((_, k) => at(2 + k));
          check(ctx, listNames, [at(1), ...stateIdx], 0, range(1, S), stateIdx, sd, at(0));
          paramOuts.push({ dtype: 'float32', shape: ctx.input(at(0)).shape });
        }
        for (let k = 0; k < states.length; k++) {
          for (let i = 0; i < n; i++) stateOuts.push({ dtype: sd, shape: ctx.input(scal.length + i).shape });
        }
        return [...outs, ...paramOuts, ...stateOuts];
      },
    });
  }
}

for (const d of OPTIMIZERS) {
  if (d.emit) defineOriginal(d);
  else defineFused(d);
}

/** The function body over n tensors (overload `n<N>`). */
export function fusedFunction(def: OptimizerDef, n: number) {
  if (!def.body) throw new Error(`${def.name}: no function body`);
  const g = new GraphBuilder();
  const step = g.input('step', 'int64', null);
  const scalars = Object.fromEntries(def.scalars.map((s) => [s.name, g.input(s.name, null, null)]));
  const list = (name: string): Value[] => Array.from({ length: n }, (_, i) => g.input(`${name}_${i}`, 'float32', null));
  const params = list('param'); const grads = list('grad');
  const states = Object.fromEntries(def.states.map((s) => [s.name, list(s.name)]));
  const attrValue = bodyAttrs(g, def);
  const outs: { param: Value; states: Record<string, Value> }[] = [];
  for (let i = 0; i < n; i++) {
    outs.push(def.body({
      g, param: params[i], grad: grads[i], step, scalars, attr: attrValue,
      states: Object.fromEntries(def.states.map((s) => [s.name, states[s.name][i]])),
    }));
  }
  outs.forEach((o, i) => g.output(g.identity(o.param), `param_out_${i}`));
  for (const s of def.states) outs.forEach((o, i) => g.output(g.identity(o.states[s.name]), `${s.name}_out_${i}`));
  const attributes: Record<string, Attr> = {};
  for (const h of def.hyper) if (h.attr) attributes[h.attr] = h.type === 'bool' ? attr.i(h.default ? 1 : 0) : attr.f(h.default as number);
  const f = toFunctionProto(g, {
    domain: OPS_DOMAIN, name: def.op, attributes,
    docString: `${def.title}, over ${n} tensors, as standard ops. Outputs: param_out_*, ${def.states.map((s) => `${s.name}_out_*`).join(', ')}.`,
  });
  f.overload = `n${n}`;
  return f;
}

/** One fused node over a group of tensors (or one tensor), with its body. */
export function fusedStep(g: GraphBuilder, def: OptimizerDef, x: EmitArgs, spec: OptimizerSpec): EmitResult {
  if (x.stateDtype !== 'float32') throw new OpError(`${def.op} '${x.name}': only float32 states are implemented for ${def.name}`);
  const n = x.params.length;
  if (n === 0) throw new OpError(`${def.op} '${x.name}': the tensor lists are empty`);
  for (const s of def.states) {
    const l = x.states[s.name];
    if (!l || l.length !== n) throw new OpError(`${def.op} '${x.name}': state '${s.name}' needs ${n} tensors, got ${l?.length ?? 0}`);
  }
  const f = fusedFunction(def, n);
  if (!g.functions.has(`${f.domain}::${f.name}::${f.overload}`)) g.addFunction(f);
  const scal = def.scalars.map((s) => {
    const v = x.scalars[s.name];
    if (!v) throw new OpError(`${def.op} '${x.name}': scalar input '${s.name}' is missing`);
    return v;
  });
  const attrs = attrsOf(def, hyperOf(def, spec, x.weightDecay));
  const outs = g.opN(def.op, [x.step, ...scal, ...x.params, ...x.grads, ...def.states.flatMap((s) => x.states[s.name])], attrs,
    { domain: OPS_DOMAIN, outputs: n * (1 + def.states.length), name: x.name, overload: f.overload });
  const states: Record<string, Value[]> = {};
  def.states.forEach((s, k) => { states[s.name] = outs.slice((k + 1) * n, (k + 2) * n); });
  return { params: outs.slice(0, n), states, globals: {} };
}

/**
 * Emits one optimizer step for a group: with every slot fp32, the definition's own emission or the generic fused
 * node; the original ops' all-bf16 round-to-nearest form keeps its `<Op>Bf16` ops; any other per-slot precision
 * (8-bit, bf16 of a generic optimizer, mixed, stochastic rounding) is the definition's coded op.
 */
export function emitStep(g: GraphBuilder, def: OptimizerDef, x: EmitArgs, spec: OptimizerSpec): EmitResult {
  const active = Object.keys(x.states);
  const fmts = active.map((k) => x.formats?.[k] ?? 'fp32');
  if (fmts.every((f) => f === 'fp32')) return def.emit ? def.emit(g, x, spec) : fusedStep(g, def, x, spec);
  if (def.emit && !x.stochasticRounding && fmts.every((f) => f === 'bf16')) return def.emit(g, { ...x, stateDtype: 'bfloat16' }, spec);
  return codedStep(g, def, x, spec);
}

// ---- coded states: any definition, a storage format per slot (src/optim/precision.ts) -----------------------------
// `<Op>Coded` (multi-tensor): inputs step, the scalars, then N params, N grads, N of each active state slot (float32,
// bfloat16 or uint8 by its format), then N absmax (float32, ceil(n/256)) of each 8-bit slot; outputs N params_out,
// N of each state's out, N of each 8-bit slot's absmax out. Attributes: the optimizer's, `formats` (one code per
// slot of the definition, dropped slots included: 0 fp32, 1 bf16, 2 8-bit), `stochastic_rounding`, `seed`. The
// kernel (custom-ops codec.h) and the function body below both dequantize, run the fp32 update, requantize.

export const codedOp = (def: OptimizerDef): string => `${def.op}Coded`;

const CODED_ATTRS: Record<string, AttrType> = { formats: 'ints', stochastic_rounding: 'int', seed: 'int' };

/** Active slots of a coded node from its attributes (a slot dropped by its attribute being 0 is absent). */
function codedSlots(def: OptimizerDef, ctx: InferCtx): { name: string; format: StateFormat }[] {
  const codes = ctx.ints('formats') ?? def.states.map(() => 0);
  if (codes.length !== def.states.length) ctx.fail(`attribute 'formats' needs ${def.states.length} codes (${def.states.map((s) => s.name).join(', ')}), got ${codes.length}`);
  const byCode = (c: number): StateFormat => {
    const f = (Object.keys(FORMAT_CODE) as StateFormat[]).find((k) => FORMAT_CODE[k] === c);
    if (!f) ctx.fail(`attribute 'formats': unknown code ${c} (0 fp32, 1 bf16, 2 8-bit)`);
    return f;
  };
  return def.states.map((st, k) => ({ st, k })).filter(({ st }) => {
    if (!st.dropWhenZero) return true;
    const a = attrOf(def, st.dropWhenZero);
    return ctx.float(a.name, a.dflt) !== 0;
  }).map(({ st, k }) => ({ name: st.name, format: byCode(codes[k]) }));
}

function defineCoded(def: OptimizerDef): void {
  const S = 1 + def.scalars.length;
  defineOp({
    opType: codedOp(def), domain: OPS_DOMAIN, attrTypes: { ...attrTypes(def), ...CODED_ATTRS },
    infer: (ctx: InferCtx) => {
      const slots = codedSlots(def, ctx);
      const q = slots.filter((s) => s.format === '8bit');
      const per = 2 + slots.length + q.length;
      const tensors = ctx.inputs.length - S;
      if (tensors <= 0 || tensors % per !== 0) {
        ctx.fail(`expects step, ${def.scalars.map((s) => s.name).join(', ')}, then N tensors of each of (params, grads, ` +
          `${[...slots.map((s) => s.name), ...q.map((s) => `${s.name} absmax`)].join(', ')}): a multiple of ${per} tensor inputs, got ${Math.max(tensors, 0)}`);
      }
      const n = tensors / per;
      const at = (group: number, i: number): Value => ctx.input(S + group * n + i);
      const outs: OutType[] = [];
      for (let i = 0; i < n; i++) outs.push({ dtype: 'float32', shape: at(0, i).shape });
      const want = (v: Value, dtype: DType, label: string): void => {
        if (v.dtype !== null && v.dtype !== dtype) ctx.fail(`input '${label}' must be ${dtype}, got ${v.dtype}`);
      };
      for (let i = 0; i < n; i++) { want(at(0, i), 'float32', `param[${i}]`); want(at(1, i), 'float32', `grad[${i}]`); }
      slots.forEach((s, k) => {
        for (let i = 0; i < n; i++) {
          const v = at(2 + k, i); const p = at(0, i);
          want(v, dtypeOfFormat(s.format), `${s.name}[${i}]`);
          if (!sameShape(v.shape, p.shape)) ctx.fail(`input '${s.name}[${i}]' has shape ${fmtShape(v.shape)} but 'param[${i}]' has ${fmtShape(p.shape)}`);
          outs.push({ dtype: dtypeOfFormat(s.format), shape: p.shape });
        }
      });
      q.forEach((s, k) => {
        for (let i = 0; i < n; i++) {
          const v = at(2 + slots.length + k, i);
          want(v, 'float32', `${s.name}.absmax[${i}]`);
          outs.push({ dtype: 'float32', shape: v.shape });
        }
      });
      return outs;
    },
  });
}

for (const d of OPTIMIZERS) defineCoded(d);

/** Dequantizes an 8-bit state (codes shaped like the param, absmax per block of 256) to float32, in standard ops. */
function dequantBody(g: GraphBuilder, codes: Value, absmax: Value, signed: boolean): Value {
  const map = g.constant(tensorData('float32', [256], quantMap(signed).values));
  const flat = g.op('Reshape', [g.cast(codes, 'int64'), g.ints([-1])]);
  const n = g.op('Size', [codes]);
  const block = g.div(g.op('Range', [g.scalar(0, 'int64'), n, g.scalar(1, 'int64')]), g.scalar(QUANT_BLOCK, 'int64'));
  const v = g.mul(g.op('Gather', [map, flat], { axis: 0 }), g.op('Gather', [absmax, block], { axis: 0 }));
  return g.op('Reshape', [v, g.op('Shape', [codes])]);
}

/** float32 → (uint8 codes shaped like x, float32 absmax per block): max |x| per block of 256, x / absmax, then the
 * map's code by 8 steps of binary search over its thresholds (no 256×N comparison). */
function quantBody(g: GraphBuilder, x: Value, signed: boolean): { codes: Value; absmax: Value } {
  const m = quantMap(signed);
  const thr = g.constant(tensorData('float32', [256], m.thresholds));
  const flat = g.op('Reshape', [x, g.ints([-1])]);
  const n = g.op('Size', [x]);
  const B = g.scalar(QUANT_BLOCK, 'int64');
  const nb = g.div(g.add(n, g.scalar(QUANT_BLOCK - 1, 'int64')), B);
  const pad = g.op('Unsqueeze', [g.sub(g.mul(nb, B), n), g.ints([0])]);
  const padded = g.op('Pad', [flat, g.op('Concat', [g.ints([0]), pad], { axis: 0 })]);
  const absmax = g.op('ReduceMax', [g.op('Abs', [g.op('Reshape', [padded, g.ints([-1, QUANT_BLOCK])])]), g.ints([1])], { keepdims: 0 });
  const a = g.op('Gather', [absmax, g.div(g.op('Range', [g.scalar(0, 'int64'), n, g.scalar(1, 'int64')]), B)], { axis: 0 });
  const zero = g.op('Equal', [a, g.scalar(0)]);
  const norm = g.op('Where', [zero, g.scalar(0), g.div(flat, g.op('Where', [zero, g.scalar(1), a]))]);
  let c = g.op('ConstantOfShape', [g.op('Shape', [norm])], { value: attr.t(tensorData('int64', [1], [0])) });
  for (let b = 128; b >= 1; b >>= 1) {
    const t = g.op('Gather', [thr, g.add(c, g.scalar(b, 'int64'))], { axis: 0 });
    c = g.add(c, g.mul(g.cast(g.op('GreaterOrEqual', [norm, t]), 'int64'), g.scalar(b, 'int64')));
  }
  return { codes: g.op('Reshape', [g.cast(c, 'uint8'), g.op('Shape', [x])]), absmax };
}

/** The coded function body over n tensors for these active slots and formats (overload names both). */
export function codedFunction(def: OptimizerDef, slots: { name: string; format: StateFormat }[], n: number) {
  if (!def.body) throw new Error(`${def.name}: no function body`);
  const g = new GraphBuilder();
  const step = g.input('step', 'int64', null);
  const scalars = Object.fromEntries(def.scalars.map((s) => [s.name, g.input(s.name, null, null)]));
  const list = (name: string, dtype: DType): Value[] => Array.from({ length: n }, (_, i) => g.input(`${name}_${i}`, dtype, null));
  const params = list('param', 'float32'); const grads = list('grad', 'float32');
  const states = Object.fromEntries(slots.map((s) => [s.name, list(s.name, dtypeOfFormat(s.format))]));
  const q = slots.filter((s) => s.format === '8bit');
  const absmax = Object.fromEntries(q.map((s) => [s.name, list(`${s.name}_absmax`, 'float32')]));
  const signed = (slot: string): boolean => !def.states.find((s) => s.name === slot)?.unsigned;
  const attrValue = bodyAttrs(g, def);
  const load = (s: { name: string; format: StateFormat }, i: number): Value =>
    s.format === 'fp32' ? states[s.name][i] : s.format === 'bf16' ? g.cast(states[s.name][i], 'float32')
      : dequantBody(g, states[s.name][i], absmax[s.name][i], signed(s.name));
  const outs: { param: Value; states: Record<string, Value>; absmax: Record<string, Value> }[] = [];
  for (let i = 0; i < n; i++) {
    const r = def.body({ g, param: params[i], grad: grads[i], step, scalars, attr: attrValue, states: Object.fromEntries(slots.map((s) => [s.name, load(s, i)])) });
    const st: Record<string, Value> = {}; const am: Record<string, Value> = {};
    for (const s of slots) {
      const v = r.states[s.name];
      if (s.format === 'fp32') st[s.name] = v;
      else if (s.format === 'bf16') st[s.name] = g.cast(v, 'bfloat16'); // Cast rounds to nearest even, as the kernel
      else { const e = quantBody(g, v, signed(s.name)); st[s.name] = e.codes; am[s.name] = e.absmax; }
    }
    outs.push({ param: r.param, states: st, absmax: am });
  }
  outs.forEach((o, i) => g.output(g.identity(o.param), `param_out_${i}`));
  for (const s of slots) outs.forEach((o, i) => g.output(g.identity(o.states[s.name]), `${s.name}_out_${i}`));
  for (const s of q) outs.forEach((o, i) => g.output(g.identity(o.absmax[s.name]), `${s.name}_absmax_out_${i}`));
  const attributes: Record<string, Attr> = {};
  for (const h of def.hyper) if (h.attr) attributes[h.attr] = h.type === 'bool' ? attr.i(h.default ? 1 : 0) : attr.f(h.default as number);
  attributes.formats = attr.is(def.states.map(() => 0));
  attributes.stochastic_rounding = attr.i(0);
  attributes.seed = attr.i(0);
  const f = toFunctionProto(g, {
    domain: OPS_DOMAIN, name: codedOp(def), attributes,
    docString: `${def.title}, over ${n} tensors, states ${slots.map((s) => `${s.name} ${s.format}`).join(', ')}: dequantize, ` +
      'the float32 update, requantize (8-bit: blocks of 256 with a float32 absmax, bitsandbytes\' dynamic map; stores round to nearest here).',
  });
  f.overload = `${slots.map((s) => `${s.name}_${FORMAT_CODE[s.format]}`).join('.')}.n${n}`;
  return f;
}

/** One coded node over a group of tensors. */
export function codedStep(g: GraphBuilder, def: OptimizerDef, x: EmitArgs, spec: OptimizerSpec): EmitResult {
  const label = `${codedOp(def)} '${x.name}'`;
  if (Object.keys(x.globals).length) throw new OpError(`${label}: ${def.name} with its scalar state (${Object.keys(x.globals).join(', ')}) keeps float32 states only`);
  const n = x.params.length;
  if (n === 0) throw new OpError(`${label}: the tensor lists are empty`);
  const slots = def.states.filter((s) => x.states[s.name]).map((s) => ({ name: s.name, format: x.formats?.[s.name] ?? 'fp32' }));
  for (const s of slots) if (x.states[s.name].length !== n) throw new OpError(`${label}: state '${s.name}' needs ${n} tensors, got ${x.states[s.name].length}`);
  const q = slots.filter((s) => s.format === '8bit');
  for (const s of q) {
    const l = x.absmax?.[s.name];
    if (!l || l.length !== n) throw new OpError(`${label}: 8-bit state '${s.name}' needs ${n} absmax tensors, got ${l?.length ?? 0}`);
  }
  const f = codedFunction(def, slots, n);
  if (!g.functions.has(`${f.domain}::${f.name}::${f.overload}`)) g.addFunction(f);
  const scal = def.scalars.map((s) => {
    const v = x.scalars[s.name];
    if (!v) throw new OpError(`${label}: scalar input '${s.name}' is missing`);
    return v;
  });
  const attrs: Record<string, Attr> = {
    ...attrsOf(def, hyperOf(def, spec, x.weightDecay)),
    formats: attr.is(def.states.map((s) => FORMAT_CODE[x.formats?.[s.name] ?? 'fp32'])),
    stochastic_rounding: attr.i(x.stochasticRounding ? 1 : 0), seed: attr.i((x.seed ?? 0) >>> 0),
  };
  const ins = [x.step, ...scal, ...x.params, ...x.grads, ...slots.flatMap((s) => x.states[s.name]), ...q.flatMap((s) => x.absmax![s.name])];
  const outs = g.opN(codedOp(def), ins, attrs, {
    domain: OPS_DOMAIN, outputs: n * (1 + slots.length + q.length), name: x.name, overload: f.overload, declareOutputTypes: true,
  });
  const states: Record<string, Value[]> = {}; const absmax: Record<string, Value[]> = {};
  slots.forEach((s, k) => { states[s.name] = outs.slice((k + 1) * n, (k + 2) * n); });
  q.forEach((s, k) => { absmax[s.name] = outs.slice((1 + slots.length + k) * n, (2 + slots.length + k) * n); });
  return { params: outs.slice(0, n), states, globals: {}, absmax };
}
