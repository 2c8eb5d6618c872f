// Optimizer specs for training-graph assembly, from the definitions in src/optim/defs/ (defaults, ranges). The
// typed factories below are for the three original optimizers' callers; `optimizer(name, {...})` builds any of them.
// Defaults follow each method's reference implementation (shared contract).
import { getOptimizer, makeSpec } from '../optim/derive';
import type { OptimizerSpec } from '../optim/defs/types';
import type { LrSchedule } from '../optim/schedules';

export type { OptimizerSpec } from '../optim/defs/types';

export type AdemamixSpec = {
  kind: 'ademamix';
  lr: LrSchedule; beta1: number; beta2: number; beta3: number; alpha: number;
  tAlpha?: number; tBeta3?: number; eps: number; weightDecay: number;
};
export type SimplifiedSpec = {
  kind: 'simplified';
  lr: LrSchedule; beta1: number; betaMin: number; tBeta1?: number; beta2: number; alpha: number;
  eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean;
};
export type AdamWSpec = {
  kind: 'adamw';
  lr: LrSchedule; beta1: number; beta2: number; eps: number; weightDecay: number;
};

type Opts<T> = Partial<Omit<T, 'kind' | 'lr'>> & { lr?: number | LrSchedule };

/** Any optimizer's spec by name, with its defaults and range checks. */
export function optimizer(name: string, o: Record<string, unknown> & { lr?: number | LrSchedule } = {}): OptimizerSpec {
  return makeSpec(getOptimizer(name), o);
}
export const ademamix = (o: Opts<AdemamixSpec> = {}): AdemamixSpec => optimizer('ademamix', o) as unknown as AdemamixSpec;
export const simplifiedAdemamix = (o: Opts<SimplifiedSpec> = {}): SimplifiedSpec => optimizer('simplified', o) as unknown as SimplifiedSpec;
export const adamw = (o: Opts<AdamWSpec> = {}): AdamWSpec => optimizer('adamw', o) as unknown as AdamWSpec;
