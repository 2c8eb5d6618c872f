// Lion (Chen et al. 2023; optax.lion): c = β1·m + (1−β1)·g;  θ ← θ − lr·(sign(c) + λ·θ);  m ← β2·m + (1−β2)·g.
// sign(0) = 0. One state. Kernel functor: LionOp (custom-ops/include/ademamix/kernels.h).
import { applyBody, beta, emaBody, f32, LR, weightDecay, zerosLike } from './common';
import type { OptimizerDef } from './types';

export const lion: OptimizerDef = {
  name: 'lion', op: 'Lion', title: 'Lion (sign of an interpolated momentum)', lr: 1e-4,
  hyper: [beta('beta1', 0.9, 'interpolation of momentum and gradient for the sign'), beta('beta2', 0.99, 'momentum EMA rate'), weightDecay(0)],
  states: [{ name: 'm' }],
  scalars: [LR],
  bytesPerParam: () => 16,
  kernel: { functor: 'LionOp' },
  body: ({ g, param, grad, states, scalars, attr }) => {
    const c = emaBody(g, states.m, grad, attr('beta1'));
    const m = emaBody(g, states.m, grad, attr('beta2'));
    return { param: applyBody(g, param, g.op('Sign', [c]), f32(g, scalars.lr), attr('weight_decay')), states: { m } };
  },
  reference: (h, params) => {
    const m = zerosLike(params);
    const b1 = h.beta1 as number; const b2 = h.beta2 as number; const wd = h.weightDecay as number;
    return {
      params, state: (_n, i) => m[i],
      step(grads, s) {
        params.forEach((p, k) => {
          for (let i = 0; i < p.length; i++) {
            const g = grads[k][i];
            const c = b1 * m[k][i] + (1 - b1) * g;
            p[i] -= s.lr * (Math.sign(c) + wd * p[i]);
            m[k][i] = b2 * m[k][i] + (1 - b2) * g;
          }
        });
      },
    };
  },
};
