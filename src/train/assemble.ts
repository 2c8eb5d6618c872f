// Training-graph assembly: forward graph + loss + trainable initializers + optimizer spec →
//   train.onnx  inputs: batch, params, optimizer states, step → outputs: loss, metrics, `<name>.next` for every
//               carried value (params, states, step), optionally `<param>.grad`
//   eval.onnx   inputs: batch, params → loss
//   initial state (params, zero states, step = 1) for safetensors
// Carried pairs (`x.next` → `x`) are listed in the model metadata, so a runner keeps them native between steps.
import { gradients } from '../autodiff';
import type { GraphBuilder } from '../graph/builder';
import { isFloat } from '../graph/dtype';
import { toModelProto } from '../graph/serialize';
import { fromTensorProto, tensorData, type TensorData } from '../graph/tensor-data';
import type { Value } from '../graph/value';
import type { ModelProto, TensorProto } from '../onnx/proto';
import { hasOpsLibrary } from '../native/paths';
import {
  ademamixStep, ademamixStepMulti, adamwStep, adamwStepMulti, simplifiedStep, simplifiedStepMulti,
  type StateDtype,
} from '../optim/nodes';
import type { OptimizerSpec } from './optimizers';
import { stateSlots } from './optimizers';
import { alphaGraph, halfLifeBetaGraph, lrGraph } from './schedule-graph';

export interface TrainingSpec {
  /** The forward graph; trainable parameters are its initializers. It is consumed (parameters become inputs). */
  forward: GraphBuilder;
  /** Float scalar loss of the forward graph. */
  loss: Value;
  /** Trainable initializers (default: every float initializer). */
  params?: Value[];
  optimizer: OptimizerSpec;
  /** Clip the global gradient norm to this value. */
  gradClip?: number;
  /** Which parameters get weight decay (default: rank ≥ 2 and not a position embedding). */
  weightDecayMask?: (name: string, v: Value) => boolean;
  /** Also output each parameter's gradient as `<param>.grad`. */
  emitGradients?: boolean;
  /**
   * Guard the update: when the loss or the gradient norm is NaN/Inf, every carried value (params, states, step) keeps
   * its old value and the `skipped` output is 1. Costs one extra select pass over the state, so it is opt-in.
   */
  skipNonFinite?: boolean;
  /**
   * One multi-tensor optimizer node per group of parameters sharing the weight decay (one fused pass over the group)
   * instead of one node per parameter; same results. Default: true when the op library is built (without it both
   * forms run as the same standard-op function bodies).
   */
  multiTensor?: boolean;
  /** Storage type of the optimizer states (m1/m2/ν, m/ν, m/v): bfloat16 halves their memory; math stays float32. */
  stateDtype?: StateDtype;
  metadata?: Record<string, string>;
}

export interface TrainingArtifacts {
  train: ModelProto;
  eval: ModelProto;
  /** Initial values of every carried input: params, optimizer states, step. */
  initialState: Map<string, TensorData>;
  /** carried output → input */
  carry: Record<string, string>;
  batchInputs: string[];
  params: string[];
  /** Scalar outputs besides the loss: lr, alpha, beta3 (or beta1), grad_norm. */
  metrics: string[];
}

export const NEXT = '.next';
export const CARRY_METADATA_KEY = 'ademamix.carry';

export function defaultWeightDecayMask(name: string, v: Value): boolean {
  return (v.rank ?? 0) >= 2 && !/(^|[._])(wpe|pos|position)/i.test(name);
}

export function assembleTraining(spec: TrainingSpec): TrainingArtifacts {
  const g = spec.forward;
  const { loss, optimizer: opt } = spec;
  if (loss.dtype !== null && !isFloat(loss.dtype)) throw new Error(`assembleTraining: loss ${loss.describe()} is not a float`);
  const params = spec.params ?? [...g.initializers.keys()].filter((v) => isFloat(v.dtype));
  if (!params.length) throw new Error('assembleTraining: no trainable parameters (no float initializers)');
  const initialState = new Map<string, TensorData>();
  for (const p of params) {
    const t = g.initializers.get(p);
    if (!t) throw new Error(`assembleTraining: parameter ${p.label} is not an initializer of the forward graph`);
    if (p.dtype !== 'float32') throw new Error(`assembleTraining: parameter ${p.label} is ${p.dtype}; only float32 parameters train`);
    initialState.set(p.name!, 'data' in t ? t : fromTensorProto(t as TensorProto));
    g.initializers.delete(p);
    g.inputs.push(p);
  }
  const batchInputs = g.inputs.filter((v) => !params.includes(v)).map((v) => v.name!);

  // eval.onnx: forward + loss only (serialization drops everything the loss does not need)
  const saved = g.outputs.splice(0);
  g.output(loss, 'loss');
  const evalModel = toModelProto(g, { metadata: { ...spec.metadata, 'ademamix.role': 'eval' } });
  g.outputs.splice(0);
  g.outputs.push(...saved.filter((o) => o.name !== 'loss'));
  if (!g.outputs.some((o) => o.name === 'loss')) g.outputs.unshift({ name: 'loss', value: loss });

  let grads = gradients(g, loss, params);
  const metrics: string[] = [];
  const carry: Record<string, string> = {};
  let ok: Value | null = null; // set when updates are guarded against non-finite values
  const carried = (out: Value, inputName: string): void => {
    const old = g.inputs.find((v) => v.name === inputName);
    g.output(ok && old ? g.op('Where', [ok, out, old]) : out, inputName + NEXT);
    carry[inputName + NEXT] = inputName;
  };

  // global gradient norm (reported always; used for clipping when asked)
  const sq = grads.map((gr) => g.op('ReduceSum', [g.mul(gr, gr)], { keepdims: 0 }));
  const norm = g.sqrt(sq.reduce((a, b) => g.add(a, b)));
  g.output(norm, 'grad_norm'); metrics.push('grad_norm');
  if (spec.skipNonFinite) {
    const finite = (x: Value): Value => g.op('Not', [g.op('Or', [g.op('IsNaN', [x]), g.op('IsInf', [x])])]);
    ok = g.op('And', [finite(norm), finite(g.cast(loss, 'float32'))]);
    g.output(g.cast(g.op('Not', [ok]), 'int64'), 'skipped'); metrics.push('skipped');
  }
  if (spec.gradClip !== undefined) {
    const scale = g.op('Min', [g.div(spec.gradClip, g.add(norm, 1e-6)), g.scalar(1)]);
    grads = grads.map((gr) => g.mul(gr, scale));
  }
  if (spec.emitGradients) params.forEach((p, i) => g.output(g.identity(grads[i]), `${p.name}.grad`));

  const step = g.input('step', 'int64', []);
  initialState.set('step', tensorData('int64', [], [1]));
  carried(g.add(step, g.scalar(1, 'int64')), 'step');
  const t = g.cast(step, 'float64');
  const lr = lrGraph(g, t, opt.lr);
  g.output(lr, 'lr'); metrics.push('lr');

  const slots = stateSlots(opt);
  const sd = { stateDtype: spec.stateDtype ?? 'float32' } as const;
  const stateInput = (p: Value, slot: string): Value => {
    const name = `${p.name}.${slot}`;
    initialState.set(name, tensorData(sd.stateDtype, initialState.get(p.name!)!.dims));
    return g.input(name, sd.stateDtype, p.shape);
  };
  const mask = spec.weightDecayMask ?? defaultWeightDecayMask;
  const wdOf = (p: Value): number => (mask(p.name!, p) ? opt.weightDecay : 0);
  // multi-tensor: parameter indices grouped by weight decay, in order of first appearance
  const multi = spec.multiTensor ?? hasOpsLibrary();
  const groups = [...params.reduce((m, p, i) => m.set(wdOf(p), [...(m.get(wdOf(p)) ?? []), i]), new Map<number, number[]>())];
  const pick = <T>(xs: T[], idx: number[]): T[] => idx.map((i) => xs[i]);

  if (opt.kind === 'ademamix') {
    const alpha = alphaGraph(g, t, opt.alpha, opt.tAlpha);
    const beta3 = halfLifeBetaGraph(g, t, opt.beta1, opt.beta3, opt.tBeta3);
    g.output(alpha, 'alpha'); g.output(beta3, 'beta3'); metrics.push('alpha', 'beta3');
    if (multi) {
      for (const [wd, idx] of groups) {
        const ps = pick(params, idx);
        const st = Object.fromEntries(slots.map((k) => [k, ps.map((p) => stateInput(p, k))]));
        const r = ademamixStepMulti(g, { params: ps, grads: pick(grads, idx), m1: st.m1 ?? null, m2: st.m2, nu: st.nu, step, lr, alpha, beta3 },
          { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: wd }, `ademamix/wd=${wd}`, sd);
        ps.forEach((p, j) => {
          carried(r.params[j], p.name!);
          if (r.m1) carried(r.m1[j], `${p.name}.m1`);
          carried(r.m2[j], `${p.name}.m2`); carried(r.nu[j], `${p.name}.nu`);
        });
      }
    } else params.forEach((p, i) => {
      const s = Object.fromEntries(slots.map((k) => [k, stateInput(p, k)]));
      const r = ademamixStep(g, { param: p, grad: grads[i], m1: s.m1 ?? null, m2: s.m2, nu: s.nu, step, lr, alpha, beta3 },
        { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: wdOf(p) }, `ademamix/${p.name}`, sd);
      carried(r.param, p.name!);
      if (r.m1) carried(r.m1, `${p.name}.m1`);
      carried(r.m2, `${p.name}.m2`); carried(r.nu, `${p.name}.nu`);
    });
  } else if (opt.kind === 'simplified') {
    const alpha = g.scalar(opt.alpha, 'float64');
    const beta1 = halfLifeBetaGraph(g, t, opt.betaMin, opt.beta1, opt.tBeta1);
    g.output(beta1, 'beta1'); metrics.push('beta1');
    let s1: Value | null = null;
    if (opt.biasCorrection1) {
      s1 = g.input('optimizer.s1', 'float32', []);
      initialState.set('optimizer.s1', tensorData('float32', [], [0]));
    }
    if (multi) {
      groups.forEach(([wd, idx], k) => {
        const ps = pick(params, idx);
        const r = simplifiedStepMulti(g, {
          params: ps, grads: pick(grads, idx), m: ps.map((p) => stateInput(p, 'm')), nu: ps.map((p) => stateInput(p, 'nu')),
          step, lr, alpha, beta1, s1,
        }, { beta2: opt.beta2, eps: opt.eps, weightDecay: wd, biasCorrection1: opt.biasCorrection1, biasCorrection2: opt.biasCorrection2 },
        `simplified/wd=${wd}`, sd);
        ps.forEach((p, j) => { carried(r.params[j], p.name!); carried(r.m[j], `${p.name}.m`); carried(r.nu[j], `${p.name}.nu`); });
        if (k === 0 && r.s1) carried(r.s1, 'optimizer.s1'); // every node computes the same S1; carry one
      });
    } else params.forEach((p, i) => {
      const m = stateInput(p, 'm'); const nu = stateInput(p, 'nu');
      const r = simplifiedStep(g, { param: p, grad: grads[i], m, nu, step, lr, alpha, beta1, s1 }, {
        beta2: opt.beta2, eps: opt.eps, weightDecay: wdOf(p), biasCorrection1: opt.biasCorrection1, biasCorrection2: opt.biasCorrection2,
      }, `simplified/${p.name}`, sd);
      carried(r.param, p.name!); carried(r.m, `${p.name}.m`); carried(r.nu, `${p.name}.nu`);
      if (i === 0 && r.s1) carried(r.s1, 'optimizer.s1'); // every node computes the same S1; carry one
    });
  } else if (multi) {
    for (const [wd, idx] of groups) {
      const ps = pick(params, idx);
      const r = adamwStepMulti(g, {
        params: ps, grads: pick(grads, idx), m: ps.map((p) => stateInput(p, 'm')), v: ps.map((p) => stateInput(p, 'v')), step, lr,
      }, { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: wd }, `adamw/wd=${wd}`, sd);
      ps.forEach((p, j) => { carried(r.params[j], p.name!); carried(r.m[j], `${p.name}.m`); carried(r.v[j], `${p.name}.v`); });
    }
  } else {
    params.forEach((p, i) => {
      const m = stateInput(p, 'm'); const v = stateInput(p, 'v');
      const r = adamwStep(g, { param: p, grad: grads[i], m, v, step, lr },
        { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: wdOf(p) }, `adamw/${p.name}`, sd);
      carried(r.param, p.name!); carried(r.m, `${p.name}.m`); carried(r.v, `${p.name}.v`);
    });
  }

  const train = toModelProto(g, {
    metadata: { ...spec.metadata, 'ademamix.role': 'train', [CARRY_METADATA_KEY]: JSON.stringify(carry), 'ademamix.optimizer': JSON.stringify(opt) },
  });
  return { train, eval: evalModel, initialState, carry, batchInputs, params: params.map((p) => p.name!), metrics };
}
