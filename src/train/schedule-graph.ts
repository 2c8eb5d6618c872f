// The schedules of src/optim/schedules.ts, computed inside the training graph from the int64 `step`, in double
// (1 − β3(t) is ~1e-4, which float32 would blur). Constants that depend only on the spec are folded here.
import type { GraphBuilder } from '../graph/builder';
import type { Value } from '../graph/value';
import { halfLife, type LrSchedule } from '../optim/schedules';

const d = (g: GraphBuilder, x: number): Value => g.scalar(x, 'float64');

export function lrGraph(g: GraphBuilder, t: Value, s: LrSchedule): Value {
  const warm = s.warmup ?? 0;
  const decay = s.decay ?? 'constant';
  let after: Value;
  if (decay === 'constant' || !s.totalSteps) after = d(g, s.lr);
  else {
    const minLr = s.minLr ?? 0;
    const span = Math.max(s.totalSteps - warm, 1);
    const p = g.op('Min', [g.op('Max', [g.div(g.sub(t, d(g, warm)), d(g, span)), d(g, 0)]), d(g, 1)]);
    const f = decay === 'cosine' ? g.mul(g.add(g.op('Cos', [g.mul(p, d(g, Math.PI))]), d(g, 1)), d(g, 0.5)) : g.sub(d(g, 1), p);
    after = g.add(d(g, minLr), g.mul(d(g, s.lr - minLr), f));
  }
  if (warm <= 0) return after;
  return g.op('Where', [g.op('LessOrEqual', [t, d(g, warm)]), g.mul(t, d(g, s.lr / warm)), after]);
}

/** α·min(t/T, 1) */
export function alphaGraph(g: GraphBuilder, t: Value, alpha: number, T?: number): Value {
  if (!T || T <= 0) return d(g, alpha);
  return g.mul(g.op('Min', [g.div(t, d(g, T)), d(g, 1)]), d(g, alpha));
}

/** Half-life interpolation from betaStart to betaEnd over T steps; betaEnd from t = T on. */
export function halfLifeBetaGraph(g: GraphBuilder, t: Value, betaStart: number, betaEnd: number, T?: number): Value {
  if (!T || T <= 0) return d(g, betaEnd);
  const fs = halfLife(betaStart); const fe = halfLife(betaEnd);
  const r = g.div(t, d(g, T));
  const h = g.add(d(g, fs), g.mul(r, d(g, fe - fs)));
  const beta = g.pow(d(g, 0.5), g.div(d(g, 1), g.add(h, d(g, 1))));
  return g.op('Where', [g.op('Less', [t, d(g, T)]), beta, d(g, betaEnd)]);
}
