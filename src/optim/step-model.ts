// A model holding one optimizer node over one tensor: param, grad and states in, updated values out.
// Used by the op tests (1000 steps against the float64 reference) and the optimizer benchmark.
import { GraphBuilder } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { toModelProto } from '../graph/serialize';
import type { Value } from '../graph/value';
import type { ModelProto } from '../onnx/proto';
import { ademamixStep, adamwStep, simplifiedStep } from './nodes';
import { activeStates, emitStep, getOptimizer, type OptimizerSpec } from './derive';

export type StepOp =
  | { op: 'AdEMAMix'; beta1: number; beta2: number; eps: number; weightDecay: number }
  | { op: 'SimplifiedAdEMAMix'; beta2: number; eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean }
  | { op: 'AdamW'; beta1: number; beta2: number; eps: number; weightDecay: number };

export interface StepModel {
  model: ModelProto;
  /** carried output → input */
  carry: Record<string, string>;
  /** tensor states (besides param), and scalar inputs fed each step */
  states: string[];
  scalars: string[];
}

export function optimizerStepModel(spec: StepOp, dims: number[], scalarType: DType = 'float64'): StepModel {
  const g = new GraphBuilder();
  const tin = (name: string): Value => g.input(name, 'float32', dims);
  const sin = (name: string): Value => g.input(name, scalarType, []);
  const carry: Record<string, string> = {};
  const out = (v: Value, name: string): void => { g.output(v, `${name}_out`); carry[`${name}_out`] = name; };
  const param = tin('param'); const grad = tin('grad');
  const step = g.input('step', 'int64', []);
  let states: string[]; let scalars: string[];
  if (spec.op === 'AdEMAMix') {
    const m1 = spec.beta1 !== 0 ? tin('m1') : null; const m2 = tin('m2'); const nu = tin('nu');
    const r = ademamixStep(g, { param, grad, m1, m2, nu, step, lr: sin('lr'), alpha: sin('alpha'), beta3: sin('beta3') }, spec);
    out(r.param, 'param'); if (r.m1) out(r.m1, 'm1'); out(r.m2, 'm2'); out(r.nu, 'nu');
    states = m1 ? ['m1', 'm2', 'nu'] : ['m2', 'nu']; scalars = ['lr', 'alpha', 'beta3'];
  } else if (spec.op === 'SimplifiedAdEMAMix') {
    const m = tin('m'); const nu = tin('nu');
    const s1 = spec.biasCorrection1 ? g.input('s1', 'float32', []) : null;
    const r = simplifiedStep(g, { param, grad, m, nu, step, lr: sin('lr'), alpha: sin('alpha'), beta1: sin('beta1'), s1 }, spec);
    out(r.param, 'param'); out(r.m, 'm'); out(r.nu, 'nu'); if (r.s1) out(r.s1, 's1');
    states = s1 ? ['m', 'nu', 's1'] : ['m', 'nu']; scalars = ['lr', 'alpha', 'beta1'];
  } else {
    const m = tin('m'); const v = tin('v');
    const r = adamwStep(g, { param, grad, m, v, step, lr: sin('lr') }, spec);
    out(r.param, 'param'); out(r.m, 'm'); out(r.v, 'v');
    states = ['m', 'v']; scalars = ['lr'];
  }
  return { model: toModelProto(g), carry, states, scalars };
}

// ---- any defined optimizer (src/optim/defs/) ------------------------------------------------------------------------

export interface ListStepModel {
  model: ModelProto;
  /** carried output → input */
  carry: Record<string, string>;
  /** tensor inputs besides the grads: param_i and `<state>_i` */
  carried: string[];
  /** per-step scalar inputs after `step` */
  scalars: string[];
  states: string[];
  globals: string[];
}

/**
 * One optimizer node over a list of tensors (`multi`), or one node per tensor: inputs param_i, grad_i, `<state>_i`,
 * step and the definition's scalars (fed, as `scalarType`); outputs `<input>_out`, carried back.
 */
export function definedStepModel(name: string, spec: OptimizerSpec, dimsList: number[][], weightDecay: number,
  opts: { multi?: boolean; scalarType?: DType } = {}): ListStepModel {
  const def = getOptimizer(name);
  const g = new GraphBuilder();
  const states = activeStates(def, spec);
  const params = dimsList.map((d, i) => g.input(`param_${i}`, 'float32', d));
  const grads = dimsList.map((d, i) => g.input(`grad_${i}`, 'float32', d));
  const st = Object.fromEntries(states.map((k) => [k, dimsList.map((d, i) => g.input(`${k}_${i}`, 'float32', d))]));
  const step = g.input('step', 'int64', []);
  const scalars = Object.fromEntries(def.scalars.map((s) => [s.name, g.input(s.name, opts.scalarType ?? 'float64', [])]));
  const globals: Record<string, Value> = {};
  for (const gl of def.globals ?? []) if (gl.when(spec)) globals[gl.name] = g.input(gl.name, 'float32', []);
  const carry: Record<string, string> = {};
  const out = (v: Value, input: string): void => { g.output(v, `${input}_out`); carry[`${input}_out`] = input; };
  const multi = opts.multi ?? true;
  const groups = multi ? [dimsList.map((_, i) => i)] : dimsList.map((_, i) => [i]);
  for (const idx of groups) {
    const r = emitStep(g, def, {
      params: idx.map((i) => params[i]), grads: idx.map((i) => grads[i]), states: Object.fromEntries(states.map((k) => [k, idx.map((i) => st[k][i])])),
      globals, step, scalars, weightDecay, multi, name: `${def.name}/${idx[0]}`, stateDtype: 'float32',
    }, spec);
    idx.forEach((i, j) => { out(r.params[j], `param_${i}`); for (const k of states) out(r.states[k][j], `${k}_${i}`); });
    if (idx[0] === 0) for (const [k, v] of Object.entries(r.globals)) out(v, k);
  }
  return {
    model: toModelProto(g), carry, scalars: def.scalars.map((s) => s.name), states, globals: Object.keys(globals),
    carried: [...dimsList.map((_, i) => `param_${i}`), ...states.flatMap((k) => dimsList.map((_, i) => `${k}_${i}`))],
  };
}
