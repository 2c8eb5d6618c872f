// What follows from an optimizer definition (src/optim/defs/): specs with defaults and range checks, the op
// attributes, the active state slots, and for generic definitions the fused multi-tensor com.ademamix node, its
// inference rule and its standard-op function body (one overload per list length).
import { GraphBuilder } from '../graph/builder';
import { toFunctionProto } from '../graph/serialize';
import { attr, fmtShape, type Attr, type AttrType, type Value } from '../graph/value';
import { defineOp, OpError, type InferCtx, type OutType } from '../ops/registry';
import { sameDim } from '../ops/shape';
import { check, like } from '../ops/optimizers';
import type { DType } from '../graph/dtype';
import { attrOf, multiScalars, OPS_DOMAIN, perTensorInputs } from './defs/layout';
import { OPTIMIZERS } from './defs';
import type { EmitArgs, EmitResult, HyperDef, OptimizerDef, OptimizerSpec } from './defs/types';

export type { OptimizerDef, OptimizerSpec } from './defs/types';
export { OPTIMIZERS };

export const OPTIMIZER_NAMES = OPTIMIZERS.map((d) => d.name);

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
          const same = v.shape === null || p.shape === null || (v.shape.length === p.shape.length && v.shape.every((d, k) => sameDim(d, p.shape![k])));
          if (!same) ctx.fail(`input '${groups[gi]}[${i}]' has shape ${fmtShape(v.shape)} but 'param[${i}]' has ${fmtShape(p.shape)}`);
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
  const cache = new Map<string, Value>();
  const attrValue = (name: string): Value => {
    if (!cache.has(name)) {
      const h = def.hyper.find((x) => x.attr === name);
      if (!h) throw new Error(`${def.name}: the body reads attribute '${name}', which no hyperparameter declares`);
      cache.set(name, h.type === 'bool' ? g.cast(g.op('Constant', [], { value_int: attr.ref(name, 'int') }), 'float32')
        : g.op('Constant', [], { value_float: attr.ref(name, 'float') }));
    }
    return cache.get(name)!;
  };
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

/** Emits one optimizer step for a group: the definition's own emission, or the generic fused node. */
export function emitStep(g: GraphBuilder, def: OptimizerDef, x: EmitArgs, spec: OptimizerSpec): EmitResult {
  return def.emit ? def.emit(g, x, spec) : fusedStep(g, def, x, spec);
}
