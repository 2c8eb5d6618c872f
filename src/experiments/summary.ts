// Pure summaries of finished runs: curves averaged over seeds, "steps to reach a target loss", forgetting curves and
// the markdown table. No I/O here, so the test can feed synthetic curves.
import type { MetricRecord } from '../runner/run-dir';

export interface Curve { x: number[]; y: number[] }
/** Mean over seeds with the min–max spread (with 3 seeds a ± std band would pretend to more than we know). */
export interface Band { x: number[]; mean: number[]; lo: number[]; hi: number[] }

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
export function std(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}

/** Validation-loss curve of one run. */
export function evalCurve(records: MetricRecord[]): Curve {
  const rs = records.filter((r) => typeof r.eval_loss === 'number');
  return { x: rs.map((r) => r.step), y: rs.map((r) => r.eval_loss!) };
}

/** Linear interpolation of a curve at x (clamped to its ends). */
export function interp(c: Curve, x: number): number {
  const n = c.x.length;
  if (n === 0) return NaN;
  if (x <= c.x[0]) return c.y[0];
  if (x >= c.x[n - 1]) return c.y[n - 1];
  let i = 1;
  while (c.x[i] < x) i++;
  const u = (x - c.x[i - 1]) / (c.x[i] - c.x[i - 1]);
  return c.y[i - 1] + u * (c.y[i] - c.y[i - 1]);
}

/** Mean and min–max over curves, on the first curve's x (others interpolated onto it). */
export function band(curves: Curve[]): Band {
  if (!curves.length) return { x: [], mean: [], lo: [], hi: [] };
  const x = curves[0].x;
  const cols = x.map((xv) => curves.map((c) => interp(c, xv)));
  return { x, mean: cols.map(mean), lo: cols.map((c) => Math.min(...c)), hi: cols.map((c) => Math.max(...c)) };
}

/**
 * First step at which the curve is at or below `target`, linearly interpolated between the recorded points that
 * bracket the crossing (a curve sampled every 50 steps would otherwise quantize the answer to 50). null: never.
 */
export function stepsToReach(c: Curve, target: number): number | null {
  for (let i = 0; i < c.x.length; i++) {
    if (!(c.y[i] <= target)) continue;
    if (i === 0) return c.x[0];
    const u = (c.y[i - 1] - target) / (c.y[i - 1] - c.y[i]);
    return c.x[i - 1] + u * (c.x[i] - c.x[i - 1]);
  }
  return null;
}

/**
 * Forgetting of one run: for each tracked batch k (trained on once, at step at[k]), the change of its loss relative
 * to just before that step, Δ_k(d) = loss_k(at[k] + d) − loss_k(at[k] − 1), averaged over the batches on a common
 * grid d ∈ {−1, 0, every, 2·every, …, horizon}. Δ(0) is the dip from that one update; how fast Δ climbs back towards
 * (and past) 0 is the forgetting. The general improvement of the model pulls Δ down over time for every optimizer;
 * with `general` (the validation-loss curve) that improvement is subtracted: Δ_k(d) − (val(at[k] + d) − val(at[k] − 1)),
 * what the batch keeps of having been trained on beyond what any held-out batch gained meanwhile.
 */
export function forgettingCurve(records: MetricRecord[], at: number[], every: number, horizon: number, general?: Curve): Curve {
  const rs = records.filter((r) => r.tracked);
  const grid = [-1, 0];
  for (let d = every; d <= horizon; d += every) grid.push(d);
  const perBatch = at.map((a, k) => {
    const before = rs.find((r) => r.step === a - 1)?.tracked?.[k];
    const drift = (step: number): number => (general ? interp(general, step) - interp(general, a - 1) : 0);
    const pts = rs.filter((r) => r.step >= a - 1).map((r) => ({ d: r.step - a, v: r.tracked![k] - (before ?? NaN) - drift(r.step) }));
    return { x: pts.map((p) => p.d), y: pts.map((p) => p.v) };
  }).filter((c) => c.x.length && Number.isFinite(c.y[0]));
  const last = (c: Curve): number => c.x[c.x.length - 1];
  return {
    x: grid,
    y: grid.map((d) => {
      const vs = perBatch.filter((c) => last(c) >= d).map((c) => interp(c, d));
      return vs.length ? mean(vs) : NaN;
    }),
  };
}

/** One point of an lr sweep: its final validation loss (null or non-finite: the run did not finish or diverged). */
export interface LrPoint { lr: number; evalLoss: number | null }

const finiteOr = (v: number | null | undefined): number => (v !== null && v !== undefined && Number.isFinite(v) ? v : Infinity);

/**
 * The lr sweep's choice over the points so far: the best (lowest final validation loss, the first of equals; points
 * that did not finish never win) and, when the best sits on an edge of the grid, the next lr past that edge (one
 * grid step further on the log scale: lr_edge² / lr_neighbour), or undefined when the best is inside the grid, fewer
 * than two points exist or nothing finished. The caller bounds how many times it extends.
 */
export function lrChoice(points: LrPoint[]): { best: number; bestLr: number; next?: number; edge?: 'low' | 'high' } {
  const ps = [...points].sort((a, b) => a.lr - b.lr);
  const best = ps.reduce((b, p, i) => (finiteOr(p.evalLoss) < finiteOr(ps[b].evalLoss) ? i : b), 0);
  const r = { best, bestLr: ps[best].lr };
  if (ps.length < 2 || !Number.isFinite(finiteOr(ps[best].evalLoss))) return r;
  if (best === 0) return { ...r, edge: 'low', next: +((ps[0].lr * ps[0].lr) / ps[1].lr).toPrecision(3) };
  if (best === ps.length - 1) return { ...r, edge: 'high', next: +((ps[best].lr * ps[best].lr) / ps[best - 1].lr).toPrecision(3) };
  return r;
}

export interface VariantSummary {
  id: string; label: string; lr: number;
  /** final validation loss per seed, and over seeds */
  finalEval: number[]; finalEvalMean: number; finalEvalStd: number;
  finalTrainMean: number;
  /** steps for this variant's mean curve to reach the baseline's final mean validation loss (null: not reached) */
  stepsToBaseline: number | null;
  /** the same per seed, against the baseline run of the same seed */
  stepsToBaselinePerSeed: (number | null)[];
  /** forgetting: mean Δ at d = 0 (dip) and at the horizon, over seeds; `excess…`: the same less the val-loss drift */
  forgetDip: number; forgetAtHorizon: number; excessDip: number; excessAtHorizon: number;
  wallS: number[];
}

const f4 = (v: number): string => (Number.isFinite(v) ? v.toFixed(4) : '—');
const fSteps = (v: number | null, total: number): string => (v === null ? `not reached in ${total}` : `${Math.round(v)} (${Math.round((100 * v) / total)}%)`);

/** The results table in markdown (one row per optimizer variant). */
export function markdownTable(rows: VariantSummary[], baseline: string, steps: number): string {
  const head = `| optimizer | lr | final val loss (mean ± std) | per seed | final train loss | steps to reach ${baseline}'s final val loss: mean curve | per seed | forgetting dip Δ(0) | Δ at horizon | Δ − val drift: at 0 | at horizon | wall s per run |`;
  const sep = '|' + head.split('|').slice(1, -1).map(() => '---').join('|') + '|';
  const lines = rows.map((r) => `| ${r.label} | ${r.lr} | ${f4(r.finalEvalMean)} ± ${f4(r.finalEvalStd)} | ${r.finalEval.map(f4).join(', ')} | ${f4(r.finalTrainMean)} | ` +
    `${r.id === baseline ? '—' : fSteps(r.stepsToBaseline, steps)} | ${r.id === baseline ? '—' : r.stepsToBaselinePerSeed.map((s) => (s === null ? '—' : Math.round(s))).join(', ')} | ` +
    `${f4(r.forgetDip)} | ${f4(r.forgetAtHorizon)} | ${f4(r.excessDip)} | ${f4(r.excessAtHorizon)} | ${Math.round(mean(r.wallS))} |`);
  return [head, sep, ...lines].join('\n');
}
