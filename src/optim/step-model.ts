// A model holding one optimizer node over one tensor: param, grad and states in, updated values out.
// Used by the op tests (1000 steps against the float64 reference) and the optimizer benchmark; any definition.
import { GraphBuilder } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { toModelProto } from '../graph/serialize';
import type { Value } from '../graph/value';
import type { ModelProto } from '../onnx/proto';
import { activeStates, emitStep, getOptimizer, makeSpec, OPTIMIZERS, type OptimizerSpec } from './derive';
import { absmaxLength, dtypeOfFormat, type StateFormat } from './precision';

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

/** One per-tensor node of one of the original ops (named by op), over one tensor: inputs param, grad, the states
 * (and Simplified's s1), step and the scalars. A view of `definedStepModel` with unsuffixed names. */
export function optimizerStepModel(spec: StepOp, dims: number[], scalarType: DType = 'float64'): StepModel {
  const def = OPTIMIZERS.find((d) => d.op === spec.op);
  if (!def) throw new RangeError(`optimizerStepModel: no optimizer has the op ${spec.op}`);
  const { op: _op, ...hyper } = spec;
  const sm = definedStepModel(def.name, makeSpec(def, hyper), [dims], spec.weightDecay, { multi: false, scalarType, plain: true });
  return { model: sm.model, carry: sm.carry, states: [...sm.states, ...sm.globals], scalars: sm.scalars };
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
  opts: {
    multi?: boolean; scalarType?: DType; /** one tensor, names without the `_0` */ plain?: boolean;
    /** state storage per slot (precision.ts); 8-bit slots add inputs `<state>_absmax_i` (float32, ceil(n/256)) */
    formats?: Record<string, StateFormat>; stochasticRounding?: boolean; seed?: number;
  } = {}): ListStepModel {
  const def = getOptimizer(name);
  const sfx = (i: number): string => (opts.plain ? '' : `_${i}`);
  const g = new GraphBuilder();
  const states = activeStates(def, spec);
  const params = dimsList.map((d, i) => g.input(`param${sfx(i)}`, 'float32', d));
  const grads = dimsList.map((d, i) => g.input(`grad${sfx(i)}`, 'float32', d));
  const fmt = (k: string): StateFormat => opts.formats?.[k] ?? 'fp32';
  const st = Object.fromEntries(states.map((k) => [k, dimsList.map((d, i) => g.input(`${k}${sfx(i)}`, dtypeOfFormat(fmt(k)), d))]));
  const q = states.filter((k) => fmt(k) === '8bit');
  const am = Object.fromEntries(q.map((k) => [k, dimsList.map((d, i) => g.input(`${k}_absmax${sfx(i)}`, 'float32', [absmaxLength(d.reduce((a, b) => a * b, 1))]))]));
  const step = g.input('step', 'int64', []);
  const scalars = Object.fromEntries(def.scalars.map((s) => [s.name, g.input(s.name, opts.scalarType ?? 'float64', [])]));
  const globals: Record<string, Value> = {};
  for (const gl of def.globals ?? []) if (spec[gl.when] === true) globals[gl.name] = g.input(gl.name, 'float32', []);
  const carry: Record<string, string> = {};
  const out = (v: Value, input: string): void => { g.output(v, `${input}_out`); carry[`${input}_out`] = input; };
  const multi = opts.multi ?? true;
  const groups = multi ? [dimsList.map((_, i) => i)] : dimsList.map((_, i) => [i]);
  for (const idx of groups) {
    const r = emitStep(g, def, {
      params: idx.map((i) => params[i]), grads: idx.map((i) => grads[i]), states: Object.fromEntries(states.map((k) => [k, idx.map((i) => st[k][i])])),
      globals, step, scalars, weightDecay, multi, name: `${def.name}/${idx[0]}`, stateDtype: 'float32',
      formats: opts.formats, stochasticRounding: opts.stochasticRounding, seed: opts.seed,
      absmax: Object.fromEntries(q.map((k) => [k, idx.map((i) => am[k][i])])),
    }, spec);
    idx.forEach((i, j) => {
      out(r.params[j], `param${sfx(i)}`);
      for (const k of states) out(r.states[k][j], `${k}${sfx(i)}`);
      for (const k of q) out(r.absmax![k][j], `${k}_absmax${sfx(i)}`);
    });
    if (idx[0] === 0) for (const [k, v] of Object.entries(r.globals)) out(v, k);
  }
  return {
    model: toModelProto(g), carry, scalars: def.scalars.map((s) => s.name), states, globals: Object.keys(globals),
    carried: [...dimsList.map((_, i) => `param${sfx(i)}`), ...states.flatMap((k) => dimsList.map((_, i) => `${k}${sfx(i)}`)),
      ...q.flatMap((k) => dimsList.map((_, i) => `${k}_absmax${sfx(i)}`))],
  };
}
