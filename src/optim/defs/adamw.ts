// AdamW (torch.optim.AdamW semantics). Nodes, bodies and kernel functor predate this folder (src/optim/nodes.ts,
// functions.ts, AdamWOp in custom-ops/include/ademamix/kernels.h).
import { adamwStep, adamwStepMulti } from '../nodes';
import { adamwBody } from '../functions';
import { AdamWRef } from '../reference';
import { beta, EPS, LR, weightDecay } from './common';
import type { OptimizerDef } from './types';

const n = (x: unknown): number => x as number;

export const adamw: OptimizerDef = {
  name: 'adamw', op: 'AdamW', title: 'AdamW (torch.optim.AdamW)', lr: 1e-3,
  hyper: [beta('beta1', 0.9, 'first-moment EMA rate'), beta('beta2', 0.999, 'second-moment EMA rate'), EPS, weightDecay(0.01)],
  states: [{ name: 'm' }, { name: 'v', unsigned: true }],
  scalars: [LR],
  bytesPerParam: () => 28,
  body: (a) => adamwBody(a),
  emit: (g, x, s) => {
    const a = { beta1: n(s.beta1), beta2: n(s.beta2), eps: n(s.eps), weightDecay: x.weightDecay };
    const sd = { stateDtype: x.stateDtype };
    if (x.multi) {
      const r = adamwStepMulti(g, { params: x.params, grads: x.grads, m: x.states.m, v: x.states.v, step: x.step, lr: x.scalars.lr }, a, x.name, sd);
      return { params: r.params, states: { m: r.m, v: r.v }, globals: {} };
    }
    const r = adamwStep(g, { param: x.params[0], grad: x.grads[0], m: x.states.m[0], v: x.states.v[0], step: x.step, lr: x.scalars.lr }, a, x.name, sd);
    return { params: [r.param], states: { m: [r.m], v: [r.v] }, globals: {} };
  },
  reference: (h, params) => {
    const refs = params.map((p) => new AdamWRef(p, { beta1: n(h.beta1), beta2: n(h.beta2), eps: n(h.eps), weightDecay: n(h.weightDecay) }));
    return { params, state: (name, i) => refs[i][name as 'm' | 'v'], step: (grads, s) => refs.forEach((r, k) => r.step(grads[k], s.lr)) };
  },
};
