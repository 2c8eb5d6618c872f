// Pieces the definitions share: the lr scalar, hyperparameters every optimizer has, and standard-op helpers for
// function bodies (scalars in double, cast to float once, like the kernels).
import type { GraphBuilder } from '../../graph/builder';
import type { Value } from '../../graph/value';
import { lrAt } from '../schedules';
import type { HyperDef, ScalarDef } from './types';

/** The learning rate for this step: the run's lr schedule (computed by the assembly, passed in as `lr`). */
export const LR: ScalarDef = { name: 'lr', graph: (_g, _t, _s, lr) => lr, at: (t, s) => lrAt(t, s.lr) };

export const beta = (key: 'beta1' | 'beta2', dflt: number, help: string): HyperDef =>
  ({ key, flag: key, attr: key, default: dflt, help, range: { min: 0, max: 1, maxOpen: true } });
export const EPS: HyperDef = { key: 'eps', flag: 'eps', attr: 'eps', default: 1e-8, help: 'denominator epsilon', range: { min: 0, max: Infinity, minOpen: true } }; // ε = 0: 0/0 where a gradient has been 0
export const weightDecay = (dflt: number): HyperDef => ({
  key: 'weightDecay', flag: 'weight-decay', attr: 'weight_decay', default: dflt, range: { min: 0, max: Infinity },
  help: 'decoupled weight decay λ (times lr), on the decay mask',
});

/** 1 − b^t in double, as float32 (b: a float32 scalar, t: the int64 step). */
export function oneMinusPow(g: GraphBuilder, b: Value, step: Value): Value {
  return g.cast(g.sub(g.scalar(1, 'float64'), g.pow(g.cast(b, 'float64'), g.cast(step, 'float64'))), 'float32');
}
/** β·s + (1−β)·x */
export const emaBody = (g: GraphBuilder, s: Value, x: Value, b: Value): Value => g.add(g.mul(b, s), g.mul(g.sub(1, b), x));
/** θ − lr·(u + λ·θ) */
export const applyBody = (g: GraphBuilder, p: Value, u: Value, lr: Value, wd: Value): Value => g.sub(p, g.mul(lr, g.add(u, g.mul(wd, p))));
export const f32 = (g: GraphBuilder, v: Value): Value => g.cast(v, 'float32');

/** Float64 state arrays, one per tensor. */
export const zerosLike = (ps: Float64Array[]): Float64Array[] => ps.map((p) => new Float64Array(p.length));
