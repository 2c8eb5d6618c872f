// Optimizer specs for training-graph assembly. Defaults follow each method's reference implementation
// (see shared contract: AdEMAMix lr 1e-3, β (0.9, 0.999, 0.9999), α 2; Simplified lr 1e-4, β1 0.99, β2 0.95, α 0;
// AdamW torch defaults). Schedules: lr (warmup + decay), α linear warmup over tAlpha, β3 (or Simplified's β1)
// half-life warmup over tBeta3 (tBeta1); all computed in-graph from `step`.
import type { LrSchedule } from '../optim/schedules';

export interface AdemamixSpec {
  kind: 'ademamix';
  lr: LrSchedule; beta1: number; beta2: number; beta3: number; alpha: number;
  tAlpha?: number; tBeta3?: number; eps: number; weightDecay: number;
}
export interface SimplifiedSpec {
  kind: 'simplified';
  lr: LrSchedule; beta1: number; betaMin: number; tBeta1?: number; beta2: number; alpha: number;
  eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean;
}
export interface AdamWSpec {
  kind: 'adamw';
  lr: LrSchedule; beta1: number; beta2: number; eps: number; weightDecay: number;
}
export type OptimizerSpec = AdemamixSpec | SimplifiedSpec | AdamWSpec;

type Opts<T> = Partial<Omit<T, 'kind' | 'lr'>> & { lr?: number | LrSchedule };
const lrOf = (lr: number | LrSchedule | undefined, dflt: number): LrSchedule =>
  lr === undefined ? { lr: dflt } : typeof lr === 'number' ? { lr } : lr;

function checkRange(name: string, v: number, lo: number, hi: number, spec: string): void {
  if (!(v >= lo && v < hi)) throw new RangeError(`${spec}: ${name} = ${v} is outside [${lo}, ${hi})`);
}

export function ademamix(o: Opts<AdemamixSpec> = {}): AdemamixSpec {
  const s: AdemamixSpec = {
    kind: 'ademamix', beta1: 0.9, beta2: 0.999, beta3: 0.9999, alpha: 2, eps: 1e-8, weightDecay: 0, ...o, lr: lrOf(o.lr, 1e-3),
  };
  checkRange('beta1', s.beta1, 0, 1, 'ademamix'); checkRange('beta2', s.beta2, 0, 1, 'ademamix');
  checkRange('beta3', s.beta3, 0, 1, 'ademamix');
  return s;
}

export function simplifiedAdemamix(o: Opts<SimplifiedSpec> = {}): SimplifiedSpec {
  const s: SimplifiedSpec = {
    kind: 'simplified', beta1: 0.99, betaMin: 0.9, beta2: 0.95, alpha: 0, eps: 1e-8, weightDecay: 0,
    biasCorrection1: false, biasCorrection2: true, ...o, lr: lrOf(o.lr, 1e-4),
  };
  checkRange('beta1', s.beta1, 0, 1, 'simplifiedAdemamix'); checkRange('beta2', s.beta2, 0, 1, 'simplifiedAdemamix');
  return s;
}

export function adamw(o: Opts<AdamWSpec> = {}): AdamWSpec {
  const s: AdamWSpec = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...o, lr: lrOf(o.lr, 1e-3) };
  checkRange('beta1', s.beta1, 0, 1, 'adamw'); checkRange('beta2', s.beta2, 0, 1, 'adamw');
  return s;
}

/** State tensors each parameter carries (besides the global step, and Simplified's s1 with bias_correction1). */
export function stateSlots(s: OptimizerSpec): string[] {
  switch (s.kind) {
    case 'ademamix': return s.beta1 === 0 ? ['m2', 'nu'] : ['m1', 'm2', 'nu'];
    case 'simplified': return ['m', 'nu'];
    case 'adamw': return ['m', 'v'];
  }
}
