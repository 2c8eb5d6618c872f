// The Rosenbrock toy of the AdEMAMix paper (Figure 2): f(x, y) = (1 − x)² + 100·(y − x²)² from (−3, 5), lr 0.003.
// Everything runs through the project's own pieces: the objective is an ONNX graph over a carried [2] parameter, its
// gradient comes from autodiff's gradients(), and the com.ademamix AdEMAMix / AdamW node updates the parameter inside
// a NativeSession (fused kernel from the op library), one session run per step. JS only feeds the step's schedule
// values (lr, α(t), β3(t) from src/optim/schedules, the contract's curves) and reads the point back now and then.
import { Tensor } from 'onnxruntime-common';
import { gradients } from '../autodiff';
import { GraphBuilder } from '../graph/builder';
import { toModelProto } from '../graph/serialize';
import type { Value } from '../graph/value';
import { NativeSession } from '../native';
import { opsLibraryPath } from '../native/paths';
import { encodeModel } from '../onnx/io';
import type { ModelProto } from '../onnx/proto';
import { ademamixStep, adamwStep } from '../optim/nodes';
import { alphaAt, halfLifeBetaAt } from '../optim/schedules';

export const ROSEN_START: [number, number] = [-3, 5];

/** Float64 objective and analytic gradient, for reporting the objective and for tests. */
export function rosenbrock(x: number, y: number): number { return (1 - x) ** 2 + 100 * (y - x * x) ** 2; }
export function rosenbrockGrad(x: number, y: number): [number, number] {
  return [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)];
}

export type RosenOptimizer =
  | { kind: 'adam'; beta1: number; beta2: number }
  | { kind: 'ademamix'; beta1: number; beta2: number; beta3: number; alpha: number };

export interface RosenRun { name: string; opt: RosenOptimizer; lr: number; steps: number }

export interface RosenGraph { model: ModelProto; carry: Record<string, string>; states: string[]; scalars: string[] }

/**
 * The training graph: inputs `param` [2] (carried) and optimizer states, `step` and the schedule scalars; outputs
 * `f` and `grad` at the incoming point, `xy` (that point, so a fetch sees f and its point together) and the carried
 * `*_out` values. No weight decay (the paper's toy has none).
 */
export function rosenbrockGraph(opt: RosenOptimizer): RosenGraph {
  const g = new GraphBuilder();
  const param = g.input('param', 'float32', [2]);
  const x = g.op('Gather', [param, g.ints([0])]); const y = g.op('Gather', [param, g.ints([1])]);
  const a = g.sub(1, x); const b = g.sub(y, g.mul(x, x));
  const f = g.add(g.mul(a, a), g.mul(100, g.mul(b, b))); // shape [1]: a scalar loss for gradients()
  const [grad] = gradients(g, f, [param]);
  const step = g.input('step', 'int64', []);
  const lr = g.input('lr', 'float64', []);
  const carry: Record<string, string> = {};
  const out = (v: Value, name: string): void => { g.output(v, `${name}_out`); carry[`${name}_out`] = name; };
  const st = (n: string): Value => g.input(n, 'float32', [2]);
  let states: string[]; let scalars: string[];
  if (opt.kind === 'adam') {
    const r = adamwStep(g, { param, grad, m: st('m'), v: st('v'), step, lr }, { beta1: opt.beta1, beta2: opt.beta2, eps: 1e-8, weightDecay: 0 });
    out(r.param, 'param'); out(r.m, 'm'); out(r.v, 'v');
    states = ['m', 'v']; scalars = ['lr'];
  } else {
    const r = ademamixStep(g, {
      param, grad, m1: st('m1'), m2: st('m2'), nu: st('nu'), step, lr,
      alpha: g.input('alpha', 'float64', []), beta3: g.input('beta3', 'float64', []),
    }, { beta1: opt.beta1, beta2: opt.beta2, eps: 1e-8, weightDecay: 0 });
    out(r.param, 'param'); out(r.m1!, 'm1'); out(r.m2, 'm2'); out(r.nu, 'nu');
    states = ['m1', 'm2', 'nu']; scalars = ['lr', 'alpha', 'beta3'];
  }
  g.output(f, 'f'); g.output(grad, 'grad'); g.output(g.identity(param), 'xy');
  return { model: toModelProto(g), carry, states, scalars };
}

/**
 * Schedule values at step t: α warmed 0 → α over the run; β3 by the contract's half-life scheduler started from 0
 * (as in the paper's Figure 2 setup, not from β1; the scheduler's 1e-8 keeps ln(0) away).
 */
export function rosenScalars(r: RosenRun, t: number): Record<string, number> {
  if (r.opt.kind === 'adam') return { lr: r.lr };
  return { lr: r.lr, alpha: alphaAt(t, r.opt.alpha, r.steps), beta3: halfLifeBetaAt(t, 0, r.opt.beta3, r.steps) };
}

export interface RosenTrace {
  name: string;
  /** recorded steps (the point before the update of step t, i.e. after t − 1 updates), with x, y and f in float64 */
  steps: number[]; x: number[]; y: number[]; f: number[];
  final: { x: number; y: number; f: number };
  /** first recorded step with f ≤ 1e-7, if any */
  reach1e7: number | null;
  wallS: number;
}

const f64 = (v: number): Tensor => new Tensor('float64', Float64Array.from([v]), []);
const i64 = (v: number): Tensor => new Tensor('int64', BigInt64Array.from([BigInt(v)]), []);

/** Every step early on (where the path turns), then every `every` steps; always the last. */
export const recordAt = (t: number, steps: number, every = 50): boolean => t <= 2000 || t % every === 0 || t === steps + 1;

/** Runs one optimizer for r.steps steps in a native session with the op library; returns the recorded path. */
export function runRosenbrock(r: RosenRun, opts: { threads?: number; every?: number } = {}): RosenTrace {
  const t0 = performance.now();
  const rg = rosenbrockGraph(r.opt);
  const s = NativeSession.create(encodeModel(rg.model), { opsLibrary: opsLibraryPath(), intraOpThreads: opts.threads ?? 1 });
  try {
    s.carry(rg.carry);
    const init: Record<string, Tensor> = { param: new Tensor('float32', Float32Array.from(ROSEN_START), [2]) };
    for (const k of rg.states) init[k] = new Tensor('float32', new Float32Array(2), [2]);
    s.setState(init);
    const tr: RosenTrace = { name: r.name, steps: [], x: [], y: [], f: [], final: { x: NaN, y: NaN, f: NaN }, reach1e7: null, wallS: 0 };
    const rec = (t: number, p: ArrayLike<number>): void => {
      const [x, y] = [p[0], p[1]]; const f = rosenbrock(x, y);
      tr.steps.push(t - 1); tr.x.push(x); tr.y.push(y); tr.f.push(f);
      if (tr.reach1e7 === null && f <= 1e-7) tr.reach1e7 = t - 1;
    };
    for (let t = 1; t <= r.steps; t++) {
      const feeds: Record<string, Tensor> = { step: i64(t) };
      const sc = rosenScalars(r, t);
      for (const k of rg.scalars) feeds[k] = f64(sc[k]);
      const want = recordAt(t, r.steps, opts.every);
      const o = s.run(feeds, want ? ['xy'] : []);
      if (want) rec(t, o.xy.data as Float32Array);
    }
    const p = s.getState(['param']).param.data as Float32Array;
    rec(r.steps + 1, p);
    tr.final = { x: p[0], y: p[1], f: rosenbrock(p[0], p[1]) };
    tr.wallS = (performance.now() - t0) / 1000;
    return tr;
  } finally { s.release(); }
}

/** The runs of Figure 2: Adam (β2 0.9999) with four β1, AdEMAMix (β1 0.99, β2 0.999, α 0.8) with two β3. */
export function figure2Runs(steps = 100_000, lr = 0.003): RosenRun[] {
  const adam = [0.9, 0.99, 0.999, 0.9999].map((b1): RosenRun => ({ name: `Adam β1=${b1}`, opt: { kind: 'adam', beta1: b1, beta2: 0.9999 }, lr, steps }));
  const ade = [0.999, 0.9999].map((b3): RosenRun => ({
    name: `AdEMAMix β3=${b3}`, opt: { kind: 'ademamix', beta1: 0.99, beta2: 0.999, beta3: b3, alpha: 0.8 }, lr, steps,
  }));
  return [...adam, ...ade];
}
