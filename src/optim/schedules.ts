// Schedules as functions of the 1-based step (optax-style), in float64. The training graph computes the same
// curves in-graph from `step`; these are the reference and the source of fed scalars.

/** α(t) = α·min(t/T, 1); constant α when T is 0 or absent. */
export function alphaAt(t: number, alpha: number, T?: number): number {
  return T && T > 0 ? alpha * Math.min(t / T, 1) : alpha;
}

/** Half-life (in steps) of an EMA with rate β; the 1e-8 keeps β = 0 finite. */
export const halfLife = (beta: number): number => Math.log(0.5) / Math.log(beta + 1e-8) - 1;

/**
 * The AdEMAMix β3 scheduler (also Simplified-AdEMAMix's β1 warmup): interpolates the half-life linearly from
 * β_start to β_end over T steps, so the EMA's memory grows smoothly. β_end from t = T on (and when T is 0/absent).
 */
export function halfLifeBetaAt(t: number, betaStart: number, betaEnd: number, T?: number): number {
  if (!T || T <= 0 || t >= T) return betaEnd;
  const r = t / T;
  const h = (1 - r) * halfLife(betaStart) + r * halfLife(betaEnd);
  return Math.pow(0.5, 1 / (h + 1));
}

export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup steps (from 0 to lr). */
  warmup?: number;
  /** Decay after warmup, reaching minLr at totalSteps. */
  decay?: 'constant' | 'cosine' | 'linear';
  totalSteps?: number;
  minLr?: number;
}

export function lrAt(t: number, s: LrSchedule): number {
  const warm = s.warmup ?? 0;
  if (warm > 0 && t <= warm) return (s.lr * t) / warm;
  const decay = s.decay ?? 'constant';
  if (decay === 'constant' || !s.totalSteps) return s.lr;
  const minLr = s.minLr ?? 0;
  const p = Math.min(Math.max((t - warm) / Math.max(s.totalSteps - warm, 1), 0), 1);
  const f = decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
  return minLr + (s.lr - minLr) * f;
}
