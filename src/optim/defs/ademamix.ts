// AdEMAMix (Pagliardini, Ablin, Grangier 2024): a fast EMA m1 (bias-corrected) plus α(t)·a slow EMA m2 with rate
// β3(t), over √ν. m1 is dropped at β1 = 0 (then m1 = g). Its nodes, bodies and kernel functor predate this folder:
// src/optim/nodes.ts, src/optim/functions.ts, AdemamixOp in custom-ops/include/ademamix/kernels.h.
import { alphaGraph, halfLifeBetaGraph } from '../../train/schedule-graph';
import { ademamixStep, ademamixStepMulti } from '../nodes';
import { ademamixBody } from '../functions';
import { AdemamixRef } from '../reference';
import { alphaAt, halfLifeBetaAt } from '../schedules';
import { beta, EPS, LR, weightDecay } from './common';
import type { OptimizerDef } from './types';

const n = (x: unknown): number => x as number;

export const ademamix: OptimizerDef = {
  name: 'ademamix', op: 'AdEMAMix', title: 'AdEMAMix (fast + slow EMA, α and β3 warmups)', lr: 1e-3,
  hyper: [
    beta('beta1', 0.9, 'fast EMA rate (0: no m1 state)'), beta('beta2', 0.999, 'second-moment EMA rate'),
    { key: 'beta3', flag: 'beta3', default: 0.9999, help: 'slow EMA rate (after its half-life warmup)', range: { min: 0, max: 1, maxOpen: true } },
    { key: 'alpha', flag: 'alpha', default: 2, help: 'weight α of the slow EMA (after its linear warmup)' },
    { key: 'tAlpha', flag: 't-alpha', default: 0, runLength: true, help: 'α warmup steps (default: the run length)' },
    { key: 'tBeta3', flag: 't-beta', config: 'tBeta', default: 0, runLength: true, help: 'β3 warmup steps (default: the run length)' },
    EPS, weightDecay(0),
  ],
  // m2 under a blanket --states 8bit stays fp32: after 10k steps at β3 = 0.9999 an 8-bit m2 is 44 % off fp32 per block
  // (median; 45 % with stochastic rounding), a bf16 one 12 % (docs/results.md, "Optimizer state precision")
  states: [{ name: 'm1', dropWhenZero: 'beta1' }, { name: 'm2', eightBitAs: 'fp32' }, { name: 'nu', unsigned: true }],
  scalars: [
    LR,
    { name: 'alpha', graph: (g, t, s) => alphaGraph(g, t, n(s.alpha), s.tAlpha as number | undefined), at: (t, s) => alphaAt(t, n(s.alpha), s.tAlpha as number | undefined) },
    { name: 'beta3', graph: (g, t, s) => halfLifeBetaGraph(g, t, n(s.beta1), n(s.beta3), s.tBeta3 as number | undefined),
      at: (t, s) => halfLifeBetaAt(t, n(s.beta1), n(s.beta3), s.tBeta3 as number | undefined) },
  ],
  bytesPerParam: (s) => (s.beta1 === 0 ? 28 : 36),
  body: (a) => ademamixBody(a),
  emit: (g, x, s) => {
    const a = { beta1: n(s.beta1), beta2: n(s.beta2), eps: n(s.eps), weightDecay: x.weightDecay };
    const sc = { step: x.step, lr: x.scalars.lr, alpha: x.scalars.alpha, beta3: x.scalars.beta3 };
    const sd = { stateDtype: x.stateDtype };
    if (x.multi) {
      const r = ademamixStepMulti(g, { ...sc, params: x.params, grads: x.grads, m1: x.states.m1 ?? null, m2: x.states.m2, nu: x.states.nu }, a, x.name, sd);
      return { params: r.params, states: { ...(r.m1 ? { m1: r.m1 } : {}), m2: r.m2, nu: r.nu }, globals: {} };
    }
    const r = ademamixStep(g, { ...sc, param: x.params[0], grad: x.grads[0], m1: x.states.m1?.[0] ?? null, m2: x.states.m2[0], nu: x.states.nu[0] }, a, x.name, sd);
    return { params: [r.param], states: { ...(r.m1 ? { m1: [r.m1] } : {}), m2: [r.m2], nu: [r.nu] }, globals: {} };
  },
  reference: (h, params) => {
    const refs = params.map((p) => new AdemamixRef(p, { beta1: n(h.beta1), beta2: n(h.beta2), eps: n(h.eps), weightDecay: n(h.weightDecay) }));
    return {
      params, state: (name, i) => refs[i][name as 'm1' | 'm2' | 'nu'],
      step: (grads, s) => refs.forEach((r, k) => r.step(grads[k], { lr: s.lr, alpha: s.alpha, beta3: s.beta3 })),
    };
  },
};
