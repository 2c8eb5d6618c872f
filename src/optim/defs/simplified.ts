// Simplified-AdEMAMix (Morwani, Vyas, Zhang, Kakade): theory-style momentum m ← β1(t)·m + g plus α·g, over √ν;
// β1 warms up by half-life from β_min. The optional S1 (bias_correction1) is an optimizer-wide scalar state. Nodes,
// bodies and kernel functor predate this folder (src/optim/nodes.ts, functions.ts, SimplifiedOp in kernels.h).
import { halfLifeBetaGraph } from '../../train/schedule-graph';
import { simplifiedStep, simplifiedStepMulti } from '../nodes';
import { simplifiedBody } from '../functions';
import { SimplifiedAdemamixRef } from '../reference';
import { halfLifeBetaAt } from '../schedules';
import { beta, EPS, LR, weightDecay } from './common';
import type { OptimizerDef } from './types';

const n = (x: unknown): number => x as number;

export const simplified: OptimizerDef = {
  name: 'simplified', op: 'SimplifiedAdEMAMix', title: 'Simplified-AdEMAMix (theory-style momentum + α·g)', lr: 1e-4,
  hyper: [
    { ...beta('beta1', 0.99, 'momentum rate (after its half-life warmup from beta-min)'), attr: undefined },
    { key: 'betaMin', flag: 'beta-min', default: 0.9, help: 'momentum rate the β1 warmup starts from', range: { min: 0, max: 1, maxOpen: true } },
    { key: 'tBeta1', flag: 't-beta', config: 'tBeta', default: 0, runLength: true, help: 'β1 warmup steps (default: the run length)' },
    beta('beta2', 0.95, 'second-moment EMA rate'),
    { key: 'alpha', flag: 'alpha', default: 0, help: 'weight α of the gradient term' },
    EPS, weightDecay(0),
    { key: 'biasCorrection1', attr: 'bias_correction1', type: 'bool', default: false, help: 'divide by the running mass S1' },
    { key: 'biasCorrection2', attr: 'bias_correction2', type: 'bool', default: true, help: 'bias-correct ν' },
  ],
  states: [{ name: 'm' }, { name: 'nu', unsigned: true }],
  globals: [{ name: 's1', when: 'biasCorrection1', init: 0 }],
  scalars: [
    LR,
    { name: 'alpha', metric: false, graph: (g, _t, s) => g.scalar(n(s.alpha), 'float64'), at: (_t, s) => n(s.alpha) },
    { name: 'beta1', graph: (g, t, s) => halfLifeBetaGraph(g, t, n(s.betaMin), n(s.beta1), s.tBeta1 as number | undefined),
      at: (t, s) => halfLifeBetaAt(t, n(s.betaMin), n(s.beta1), s.tBeta1 as number | undefined) },
  ],
  bytesPerParam: () => 28,
  body: (a) => simplifiedBody(a),
  emit: (g, x, s) => {
    const a = { beta2: n(s.beta2), eps: n(s.eps), weightDecay: x.weightDecay, biasCorrection1: s.biasCorrection1 === true, biasCorrection2: s.biasCorrection2 !== false };
    const sc = { step: x.step, lr: x.scalars.lr, alpha: x.scalars.alpha, beta1: x.scalars.beta1, s1: x.globals.s1 ?? null };
    const sd = { stateDtype: x.stateDtype };
    const r = x.multi
      ? simplifiedStepMulti(g, { ...sc, params: x.params, grads: x.grads, m: x.states.m, nu: x.states.nu }, a, x.name, sd)
      : (({ param, m, nu, s1 }) => ({ params: [param], m: [m], nu: [nu], s1 }))(
        simplifiedStep(g, { ...sc, param: x.params[0], grad: x.grads[0], m: x.states.m[0], nu: x.states.nu[0] }, a, x.name, sd));
    return { params: r.params, states: { m: r.m, nu: r.nu }, globals: r.s1 ? { s1: r.s1 } : ({} as Record<string, never>) };
  },
  reference: (h, params) => {
    const c = { beta2: n(h.beta2), eps: n(h.eps), weightDecay: n(h.weightDecay), biasCorrection1: h.biasCorrection1 === true, biasCorrection2: h.biasCorrection2 !== false };
    const refs = params.map((p) => new SimplifiedAdemamixRef(p, c));
    return {
      params, state: (name, i) => refs[i][name as 'm' | 'nu'],
      step: (grads, s) => refs.forEach((r, k) => r.step(grads[k], { lr: s.lr, alpha: s.alpha, beta1: s.beta1 })),
    };
  },
};
