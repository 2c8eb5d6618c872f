// LAProp (Ziyin et al. 2020): ν ← β2·ν + (1−β2)·g²;  m ← β1·m + (1−β1)·g/(√(ν/(1−β2^t)) + ε);
// θ ← θ − lr·(m/(1−β1^t) + λ·θ). Two states. Kernel functor: LapropOp.
import { applyBody, beta, emaBody, EPS, f32, LR, oneMinusPow, weightDecay, zerosLike } from './common';
import type { OptimizerDef } from './types';

export const laprop: OptimizerDef = {
  name: 'laprop', op: 'LAProp', title: 'LAProp (momentum of the normalized gradient)', lr: 1e-3,
  hyper: [beta('beta1', 0.9, 'momentum EMA rate'), beta('beta2', 0.999, 'second-moment EMA rate'), EPS, weightDecay(0)],
  states: [{ name: 'm' }, { name: 'nu', unsigned: true }],
  scalars: [LR],
  bytesPerParam: () => 28,
  kernel: { functor: 'LapropOp' },
  body: ({ g, param, grad, states, step, scalars, attr }) => {
    const b1 = attr('beta1'); const b2 = attr('beta2');
    const nu = emaBody(g, states.nu, g.mul(grad, grad), b2);
    const n = g.div(grad, g.add(g.sqrt(g.div(nu, oneMinusPow(g, b2, step))), attr('eps')));
    const m = emaBody(g, states.m, n, b1);
    const u = g.div(m, oneMinusPow(g, b1, step));
    return { param: applyBody(g, param, u, f32(g, scalars.lr), attr('weight_decay')), states: { m, nu } };
  },
  reference: (h, params) => {
    const m = zerosLike(params); const nu = zerosLike(params);
    const b1 = h.beta1 as number; const b2 = h.beta2 as number; const eps = h.eps as number; const wd = h.weightDecay as number;
    let t = 0;
    return {
      params, state: (n, i) => (n === 'm' ? m : nu)[i],
      step(grads, s) {
        t++;
        const bc1 = 1 - Math.pow(b1, t); const bc2 = 1 - Math.pow(b2, t);
        params.forEach((p, k) => {
          for (let i = 0; i < p.length; i++) {
            const g = grads[k][i];
            nu[k][i] = b2 * nu[k][i] + (1 - b2) * g * g;
            m[k][i] = b1 * m[k][i] + (1 - b1) * g / (Math.sqrt(nu[k][i] / bc2) + eps);
            p[i] -= s.lr * (m[k][i] / bc1 + wd * p[i]);
          }
        });
      },
    };
  },
};
