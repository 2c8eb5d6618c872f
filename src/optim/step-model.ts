// A model holding one optimizer node over one tensor: param, grad and states in, updated values out.
// Used by the op tests (1000 steps against the float64 reference) and the optimizer benchmark.
import { GraphBuilder } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { toModelProto } from '../graph/serialize';
import type { Value } from '../graph/value';
import type { ModelProto } from '../onnx/proto';
import { ademamixStep, adamwStep, simplifiedStep } from './nodes';

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
