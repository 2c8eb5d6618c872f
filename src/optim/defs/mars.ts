// MARS-AdamW, approximate form (Yuan et al. 2024): the previous step's gradient stands in for the variance-reduction
// term. c = g + γ·(β1/(1−β1))·(g − g_prev) (c = g on step 1); c ← c/‖c‖₂ when ‖c‖₂ > 1 (per tensor);
// m ← β1·m + (1−β1)·c;  ν ← β2·ν + (1−β2)·c²;  g_prev ← g;  θ ← θ − lr·((m/(1−β1^t))/(√(ν/(1−β2^t)) + ε) + λ·θ).
// Three states; the per-tensor norm makes the kernel two passes. Kernel functor: MarsOp.
import { applyBody, beta, emaBody, EPS, f32, LR, oneMinusPow, weightDecay, zerosLike } from './common';
import type { OptimizerDef } from './types';

export const mars: OptimizerDef = {
  name: 'mars', op: 'MARS', title: 'MARS-AdamW, approximate (previous gradient as the correction)', lr: 3e-3,
  hyper: [
    beta('beta1', 0.95, 'momentum EMA rate'), beta('beta2', 0.99, 'second-moment EMA rate'), EPS,
    { key: 'gamma', flag: 'gamma', attr: 'gamma', default: 0.025, help: 'scale γ of the gradient-correction term', range: { min: 0, max: Infinity } },
    weightDecay(0),
  ],
  states: [{ name: 'g_prev' }, { name: 'm' }, { name: 'nu', unsigned: true }],
  scalars: [LR],
  bytesPerParam: () => 44,
  kernel: { functor: 'MarsOp', normPass: true },
  body: ({ g, param, grad, states, step, scalars, attr }) => {
    const b1 = attr('beta1'); const b2 = attr('beta2');
    // k = γ·β1/(1−β1) in double, 0 on step 1 (no previous gradient yet)
    const b1d = g.cast(b1, 'float64');
    const k = g.op('Where', [g.op('Equal', [step, g.scalar(1, 'int64')]), g.scalar(0, 'float64'),
      g.div(g.mul(g.cast(attr('gamma'), 'float64'), b1d), g.sub(g.scalar(1, 'float64'), b1d))]);
    const c0 = g.add(grad, g.mul(f32(g, k), g.sub(grad, states.g_prev)));
    const norm = g.sqrt(g.op('ReduceSum', [g.mul(c0, c0)], { keepdims: 0 }));
    const c = g.div(c0, g.op('Max', [norm, g.scalar(1)]));
    const m = emaBody(g, states.m, c, b1);
    const nu = emaBody(g, states.nu, g.mul(c, c), b2);
    const u = g.div(g.div(m, oneMinusPow(g, b1, step)), g.add(g.sqrt(g.div(nu, oneMinusPow(g, b2, step))), attr('eps')));
    return { param: applyBody(g, param, u, f32(g, scalars.lr), attr('weight_decay')), states: { g_prev: g.identity(grad), m, nu } };
  },
  reference: (h, params) => {
    const gp = zerosLike(params); const m = zerosLike(params); const nu = zerosLike(params);
    const b1 = h.beta1 as number; const b2 = h.beta2 as number; const eps = h.eps as number;
    const wd = h.weightDecay as number; const gamma = h.gamma as number;
    let t = 0;
    return {
      params, state: (n, i) => (n === 'g_prev' ? gp : n === 'm' ? m : nu)[i],
      step(grads, s) {
        t++;
        const bc1 = 1 - Math.pow(b1, t); const bc2 = 1 - Math.pow(b2, t);
        params.forEach((p, k) => {
          const c = Float64Array.from(grads[k], (g, i) => (t === 1 ? g : g + gamma * (b1 / (1 - b1)) * (g - gp[k][i])));
          const norm = Math.sqrt(c.reduce((a, x) => a + x * x, 0));
          if (norm > 1) for (let i = 0; i < c.length; i++) c[i] /= norm;
          for (let i = 0; i < p.length; i++) {
            m[k][i] = b1 * m[k][i] + (1 - b1) * c[i];
            nu[k][i] = b2 * nu[k][i] + (1 - b2) * c[i] * c[i];
            gp[k][i] = grads[k][i];
            p[i] -= s.lr * ((m[k][i] / bc1) / (Math.sqrt(nu[k][i] / bc2) + eps) + wd * p[i]);
          }
        });
      },
    };
  },
};
