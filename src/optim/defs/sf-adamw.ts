// Schedule-Free AdamW (Defazio et al. 2024; optax.contrib.schedule_free_adamw semantics). The carried parameter is
// y (where the gradient is taken); states z (initialized to the parameter) and ν; x = (y − (1−β1)·z)/β1 is derived.
//   ν ← β2·ν + (1−β2)·g²;  u = g/(√(ν/(1−β2^t)) + ε) + λ·y;  x ← (y − (1−β1)·z)/β1 (old z);  z ← z − lr·u
//   c = lr_max(t)² / Σ_{s≤t} lr_max(s)²;  x ← (1−c)·x + c·z;  y ← β1·x + (1−β1)·z
// Evaluation, checkpoints used for evaluation and exported weights read x. Kernel functor: SfAdamwOp.
import type { GraphBuilder } from '../../graph/builder';
import type { Value } from '../../graph/value';
import { lrAt } from '../schedules';
import { beta, EPS, f32, LR, oneMinusPow, weightDecay, zerosLike } from './common';
import type { OptimizerDef, OptimizerSpec } from './types';

/** c_t from its definition: running max of lr, and the sum of its squares. */
function weightAt(t: number, s: OptimizerSpec): number {
  let max = 0; let sum = 0;
  for (let k = 1; k <= t; k++) { max = Math.max(max, lrAt(k, s.lr)); sum += max * max; }
  return (max * max) / sum;
}

/** c_t in-graph, closed form: the lr rises linearly over the warmup W and never exceeds its peak after, so
 * lr_max(t) = L·min(t/W, 1) and Σ lr_max² = L²·(k(k+1)(2k+1)/(6W²) + max(t − W, 0)) with k = min(t, W). */
function weightGraph(g: GraphBuilder, t: Value, s: OptimizerSpec): Value {
  const d = (x: number): Value => g.scalar(x, 'float64');
  const W = s.lr.warmup ?? 0;
  if (W <= 0) return g.div(d(1), t);
  const k = g.op('Min', [t, d(W)]);
  const r = g.div(k, d(W));
  const sq = g.div(g.mul(g.mul(k, g.add(k, d(1))), g.add(g.mul(k, d(2)), d(1))), d(6 * W * W));
  const sum = g.add(sq, g.op('Max', [g.sub(t, d(W)), d(0)]));
  return g.div(g.mul(r, r), sum);
}

/** x = (y − (1−β1)·z)/β1 in float32: the same three roundings in the graph and on the host. */
const xConsts = (s: OptimizerSpec): [number, number] => [Math.fround(1 - (s.beta1 as number)), Math.fround(s.beta1 as number)];

export const sfAdamw: OptimizerDef = {
  name: 'sf-adamw', op: 'ScheduleFreeAdamW', title: 'Schedule-Free AdamW (lr warmup, no decay; evaluates x)', lr: 2.5e-3,
  hyper: [
    { ...beta('beta1', 0.9, 'interpolation of x and z for the gradient point y'), range: { min: 0, max: 1, minOpen: true, maxOpen: true } },
    beta('beta2', 0.999, 'second-moment EMA rate'), EPS, weightDecay(0),
  ],
  noLrDecay: true,
  states: [{ name: 'z', init: 'param' }, { name: 'nu', unsigned: true }],
  scalars: [LR, { name: 'sf_c', graph: (g, t, s) => weightGraph(g, t, s), at: weightAt }],
  bytesPerParam: () => 28,
  kernel: { functor: 'SfAdamwOp' },
  body: ({ g, param: y, grad, states, step, scalars, attr }) => {
    const b1 = attr('beta1'); const b2 = attr('beta2');
    const omb1 = g.sub(1, b1);
    const nu = g.add(g.mul(b2, states.nu), g.mul(g.sub(1, b2), g.mul(grad, grad)));
    const u = g.add(g.div(grad, g.add(g.sqrt(g.div(nu, oneMinusPow(g, b2, step))), attr('eps'))), g.mul(attr('weight_decay'), y));
    const x = g.div(g.sub(y, g.mul(omb1, states.z)), b1);
    const z = g.sub(states.z, g.mul(f32(g, scalars.lr), u));
    const c = f32(g, scalars.sf_c);
    const x2 = g.add(g.mul(g.sub(1, c), x), g.mul(c, z));
    return { param: g.add(g.mul(b1, x2), g.mul(omb1, z)), states: { z, nu } };
  },
  evalParam: {
    states: ['z'],
    graph: (g, y, st, s) => { const [a, b] = xConsts(s); return g.div(g.sub(y, g.mul(g.scalar(a), st.z)), g.scalar(b)); },
    host: (y, st, s) => {
      const [a, b] = xConsts(s); const z = st.z;
      return Float32Array.from(y, (v, i) => Math.fround(Math.fround(v - Math.fround(a * z[i])) / b));
    },
  },
  reference: (h, params) => {
    const z = params.map((p) => Float64Array.from(p)); const nu = zerosLike(params);
    const b1 = h.beta1 as number; const b2 = h.beta2 as number; const eps = h.eps as number; const wd = h.weightDecay as number;
    let t = 0;
    return {
      params, state: (n, i) => (n === 'z' ? z : nu)[i],
      evalParams: () => params.map((y, k) => Float64Array.from(y, (v, i) => (v - (1 - b1) * z[k][i]) / b1)),
      step(grads, s) {
        t++;
        const bc2 = 1 - Math.pow(b2, t);
        params.forEach((y, k) => {
          for (let i = 0; i < y.length; i++) {
            const g = grads[k][i];
            nu[k][i] = b2 * nu[k][i] + (1 - b2) * g * g;
            const u = g / (Math.sqrt(nu[k][i] / bc2) + eps) + wd * y[i];
            let x = (y[i] - (1 - b1) * z[k][i]) / b1;
            z[k][i] -= s.lr * u;
            x = (1 - s.sf_c) * x + s.sf_c * z[k][i];
            y[i] = b1 * x + (1 - b1) * z[k][i];
          }
        });
      },
    };
  },
};
