// `experiment family` (issue 19): the optimizer family of Morwani et al. (AdamW with cosine decay, Schedule-Free
// AdamW, LAProp, AdEMAMix with β1 = 0.9 and β1 = 0, Simplified-AdEMAMix, Lion, MARS) on gpt-mini at a small and a
// large batch (8× apart) at the same token budget. Per optimizer × batch: an lr sweep on seed 0 over a log grid,
// extended past an edge that wins, then more seeds at the chosen lr (the sweep's run at that lr is seed 0).
//
// Resumable: every run's directory is cache/<hash of its full TrainConfig>, and a finished run's result.json there is
// reused by the pool (same config, byte for byte), so an interrupted study continues where it stopped and a rerun
// with a complete cache trains nothing. The outputs (results.jsonl, summary.md, SVGs) are a pure function of the
// per-run results in the JSONL (no dates or wall times of this invocation in them), so a rerun redraws them
// identically.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getOptimizer, activeStates } from '../optim/derive';
import { DEFAULT_CONFIG, type TrainConfig } from '../runner/config';
import { linePlotSvg, type Series } from '../runner/plot';
import { optimizerSpec } from '../runner/trainer';
import { warmupFor } from './plans';
import { runJobs, type Job, type JobResult } from './pool';
import { band, evalCurve, lrChoice, mean, std, stepsToReach, type Band, type Curve } from './summary';

export type BatchId = 'small' | 'large';

export interface FamilyVariant {
  id: string; label: string; /** legend name */ short: string; optimizer: string;
  beta1?: number; beta2?: number; weightDecay: number;
  decay: TrainConfig['decay'];
  /** lr grid of the sweep, per batch (log-spaced; extended past an edge that wins) */
  grid: Record<BatchId, number[]>;
  /** remaining hyperparameters, per batch (beta3, alpha, hyper{…}) */
  extra?: (b: FamilyBatch) => Partial<TrainConfig>;
}

export interface FamilyBatch { id: BatchId; batch: number; steps: number; evalEvery: number; evalBatches: number }

export interface FamilyPlan {
  quick: boolean; model: string; modelOverrides: Record<string, number>; data: string; seq: number;
  /** training tokens per run, the same at both batch sizes */
  tokens: number;
  batches: FamilyBatch[];
  variants: FamilyVariant[];
  /** seeds per optimizer × batch: the sweep runs on seeds[0], the chosen lr is rerun on the others */
  seeds: number[];
  /** how many points the sweep may add past the grid's edges (per optimizer × batch) */
  maxExtend: number;
  threads: number;
  baseline: string;
}

/** Half-decade log grid: lr0 · 10^(k/2), k = 0..n−1, rounded to 2 significant digits. */
export const logGrid = (lr0: number, n = 4): number[] => Array.from({ length: n }, (_, k) => +(lr0 * 10 ** (k / 2)).toPrecision(2));

/** β3 with a half-life of 40% of the run (0.999 at ~1700 steps), 1 − β3 rounded to one significant digit. */
export const beta3For = (steps: number): number => 1 - +(1 - 0.5 ** (1 / (0.4 * steps))).toPrecision(1);

/**
 * The eight variants and their settings, from the papers' guidance (shared/optimizers.md):
 * - AdamW: cosine decay to 10% after a linear warmup, β (0.9, 0.999), weight decay 0.1 (the reference point);
 * - Schedule-Free AdamW: constant lr after the warmup (no decay: that is the method), its own β1 0.9;
 * - LAProp: as AdamW (cosine, β (0.9, 0.999), λ 0.1);
 * - AdEMAMix: α 5 (the short-run setting of docs/results.md), β3 with a half-life of 40% of the run (so 0.999 at
 *   the small batch's step count and a faster one at the large batch's 8× fewer steps), α and β3 warmed up over the
 *   run; the β1 = 0 variant drops m1 (the paper's "AdEMAMix without the fast EMA");
 * - Simplified-AdEMAMix: β1 0.99 warmed from β_min 0.9 over the run, β2 0.999; α shrinks as the batch grows (100 at
 *   the small batch, 30 at the large one; the authors' ≈100 at 32k tokens is already a small batch); lr grid around
 *   lr_AdamW·√((1−β_min)(1−β1)) ≈ lr_AdamW/30 (and lower: its update carries α·g besides the theory-style momentum);
 * - Lion: β (0.9, 0.99), lr grid 10× below AdamW's, weight decay 3× AdamW's (0.3);
 * - MARS: its defaults β (0.95, 0.99), γ 0.025, λ 0.1, cosine.
 */
function variants(quick: boolean): FamilyVariant[] {
  const g = (lr0: number): Record<BatchId, number[]> => (quick ? { small: [+(lr0 * 10).toPrecision(2), +(lr0 * 100).toPrecision(2)], large: [+(lr0 * 10).toPrecision(2), +(lr0 * 100).toPrecision(2)] } : { small: logGrid(lr0), large: logGrid(lr0 * 10 ** 0.5) });
  const adam = { beta1: 0.9, beta2: 0.999, weightDecay: 0.1, decay: 'cosine' as const };
  const ademamix = (b: FamilyBatch): Partial<TrainConfig> => ({ alpha: 5, beta3: beta3For(b.steps) });
  return [
    { id: 'adamw', label: 'AdamW (cosine)', short: 'AdamW', optimizer: 'adamw', ...adam, grid: g(3e-4) },
    { id: 'sf-adamw', label: 'Schedule-Free AdamW', short: 'SF-AdamW', optimizer: 'sf-adamw', ...adam, decay: 'constant', grid: g(3e-4) },
    { id: 'laprop', label: 'LAProp', short: 'LAProp', optimizer: 'laprop', ...adam, grid: g(3e-4) },
    { id: 'ademamix', label: 'AdEMAMix β1=0.9', short: 'AdEMAMix', optimizer: 'ademamix', ...adam, grid: g(3e-4), extra: ademamix },
    { id: 'ademamix-b0', label: 'AdEMAMix β1=0', short: 'AdEMAMix β1=0', optimizer: 'ademamix', ...adam, beta1: 0, grid: g(3e-4), extra: ademamix },
    {
      id: 'simplified', label: 'Simplified-AdEMAMix', short: 'Simplified', optimizer: 'simplified', ...adam, beta1: 0.99, grid: g(3e-6),
      extra: (b) => ({ alpha: b.id === 'small' ? 100 : 30, hyper: { betaMin: 0.9 } }),
    },
    { id: 'lion', label: 'Lion', short: 'Lion', optimizer: 'lion', beta1: 0.9, beta2: 0.99, weightDecay: 0.3, decay: 'cosine', grid: g(3e-5) },
    { id: 'mars', label: 'MARS-AdamW', short: 'MARS', optimizer: 'mars', beta1: 0.95, beta2: 0.99, weightDecay: 0.1, decay: 'cosine', grid: g(3e-4) },
  ];
}

export interface FamilyPlanOptions { quick?: boolean; tokens?: number; seeds?: number; threads?: number; variants?: string[] }

/**
 * The study's plan. Full: gpt-mini, 64-token sequences, batches of 4 and 32 sequences (256 and 2048 tokens), the
 * token budget `tokens` (default 196,608: 768 small-batch steps, 96 large-batch steps), 8 evaluations per run over
 * the same 16,384 validation tokens at both batch sizes, 3 seeds. Quick: a one-layer, 32-wide gpt-tiny, 2-point
 * grids, no extension, 2 seeds, 2048 tokens (tests the machinery, not the claims).
 */
export function familyPlan(o: FamilyPlanOptions = {}): FamilyPlan {
  const quick = o.quick === true;
  const seq = quick ? 16 : 64;
  const [small, large] = quick ? [2, 16] : [4, 32];
  const tokens = o.tokens ?? (quick ? 16 * 16 * 8 : 196_608);
  const evalTokens = quick ? 16 * 16 : 16_384;
  const points = quick ? 2 : 8;
  // the large batch's steps must split into `points` evaluation intervals (the small batch's then do too)
  if (!Number.isInteger(tokens / (large * seq * points))) throw new Error(`--tokens ${tokens}: must be a positive multiple of ${large * seq * points} (${points} evaluations of ${large}×${seq}-token steps)`);
  const mk = (id: BatchId, batch: number): FamilyBatch => {
    const steps = tokens / (batch * seq);
    return { id, batch, steps, evalEvery: steps / points, evalBatches: evalTokens / (batch * seq) };
  };
  let vs = variants(quick);
  if (o.variants) {
    const unknown = o.variants.filter((id) => !vs.some((v) => v.id === id));
    if (unknown.length) throw new Error(`unknown variant ${unknown.join(', ')} (have: ${vs.map((v) => v.id).join(', ')})`);
    vs = vs.filter((v) => o.variants!.includes(v.id));
  }
  return {
    quick, model: quick ? 'gpt-tiny' : 'gpt-mini', modelOverrides: quick ? { nLayer: 1, nEmbd: 32 } : {}, data: 'moby-dick', seq, tokens,
    batches: [mk('small', small), mk('large', large)], variants: vs,
    seeds: Array.from({ length: o.seeds ?? (quick ? 2 : 3) }, (_, k) => k),
    maxExtend: quick ? 0 : 2, threads: o.threads ?? 1, baseline: 'adamw',
  };
}

/** The full configuration of one run (no undefined fields: the config validator takes undefined for a wrong type,
 * and DEFAULT_CONFIG's AdEMAMix α and β3 are left out unless the variant sets them). */
export function familyConfig(plan: FamilyPlan, v: FamilyVariant, b: FamilyBatch, lr: number, seed: number): TrainConfig {
  const { alpha: _alpha, beta3: _beta3, ...base } = DEFAULT_CONFIG;
  const c: TrainConfig = {
    ...base, model: plan.model, modelOverrides: { ...plan.modelOverrides }, data: plan.data, batch: b.batch, seq: plan.seq, steps: b.steps,
    optimizer: v.optimizer, lr, seed, warmup: warmupFor(b.steps), decay: v.decay, minLrRatio: 0.1, weightDecay: v.weightDecay,
    beta1: v.beta1, beta2: v.beta2,
    ...(v.extra?.(b) ?? {}),
    threads: plan.threads, evalEvery: b.evalEvery, evalBatches: b.evalBatches, logEvery: Math.max(1, b.evalEvery / 2),
    checkpointEvery: 0, keepCheckpoints: 1, trackBatches: 0,
  };
  for (const k of Object.keys(c) as (keyof TrainConfig)[]) if (c[k] === undefined) delete c[k];
  return c;
}

/** Key order fixed by sorting, undefined fields dropped: the same config always gives the same text. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  }
  return v;
}
export const configHash = (c: TrainConfig): string => createHash('sha256').update(JSON.stringify(canonical(c))).digest('hex').slice(0, 16);

/** One line of results.jsonl: one run. */
export interface FamilyRow {
  variant: string; batch: BatchId; batchSize: number; lr: number; seed: number; phase: 'sweep' | 'seed';
  hash: string; status: string; steps: number; tokens: number;
  evalLoss: number | null; finalTrainLoss: number | null;
  /** validation loss against training tokens */
  curve: { tokens: number[]; evalLoss: number[] };
  /** median ms per training step over the log windows without an evaluation in them */
  msPerStep: number | null;
  wallS: number;
  stateBytesPerParam: number; trafficBytesPerParam: number;
  config: TrainConfig;
}

/** Median time per training step: log windows that hold no evaluation (an eval record's window includes the eval). */
export function msPerStep(records: JobResult['records'], itemsPerStep: number): number | null {
  const ts = records.slice(1).filter((r) => r.eval_loss === undefined && typeof r.items_per_s === 'number' && r.items_per_s > 0)
    .map((r) => (1000 * itemsPerStep) / r.items_per_s!).sort((a, b) => a - b);
  return ts.length ? ts[Math.floor(ts.length / 2)] : null;
}

/** Optimizer state bytes per parameter (fp32 slots the run carries) and bytes moved per parameter per step. */
export function stateBytes(c: TrainConfig): { state: number; traffic: number } {
  const def = getOptimizer(c.optimizer);
  const spec = optimizerSpec(c);
  return { state: 4 * activeStates(def, spec as unknown as Record<string, unknown>).length, traffic: def.bytesPerParam(spec) };
}

function rowOf(r: JobResult, meta: { v: FamilyVariant; b: FamilyBatch; lr: number; seed: number; phase: FamilyRow['phase']; hash: string }, plan: FamilyPlan): FamilyRow {
  const c = evalCurve(r.records);
  const tokPerStep = meta.b.batch * plan.seq;
  const sb = stateBytes(r.config);
  const fin = (x: number | undefined): number | null => (x !== undefined && Number.isFinite(x) ? x : null);
  return {
    variant: meta.v.id, batch: meta.b.id, batchSize: meta.b.batch, lr: meta.lr, seed: meta.seed, phase: meta.phase,
    hash: meta.hash, status: r.status, steps: meta.b.steps, tokens: plan.tokens,
    evalLoss: r.status === 'done' ? fin(r.evalLoss) : null, finalTrainLoss: fin(r.finalLoss),
    curve: { tokens: c.x.map((s) => s * tokPerStep), evalLoss: c.y },
    msPerStep: msPerStep(r.records, tokPerStep), wallS: +r.wallS.toFixed(2),
    stateBytesPerParam: sb.state, trafficBytesPerParam: sb.traffic, config: r.config,
  };
}

export interface FamilyOptions {
  plan: FamilyPlan; out: string; jobs: number; reuse: boolean; entry?: string;
  /** also copy the outputs (figures, summary, results.jsonl) into this folder (docs/results/family) */
  docs?: string;
  /** a markdown file (docs/results.md) whose `<!-- family:NAME -->` … `<!-- /family:NAME -->` blocks (verdicts,
   * table, runs) are replaced by the generated text */
  fill?: string;
  log: (s: string) => void;
}

export interface FamilyReport {
  rows: FamilyRow[];
  /** runs trained by this invocation (0: everything came from the cache); failed: runs that errored (a diverged
   * sweep point is a result, not a failure) */
  newRuns: number;
  reused: number;
  failed: number;
  chosen: Record<string, Record<BatchId, number>>;
  files: string[];
  wallS: number;
}

const lrName = (lr: number): string => lr.toExponential(1).replace('+', '');

/** Per optimizer × batch: sweep on seeds[0] (rounds: grid, then edge extensions), then the other seeds at the pick. */
export async function familyCommand(o: FamilyOptions): Promise<FamilyReport> {
  const t0 = performance.now();
  const { plan } = o;
  const cacheDir = path.join(o.out, 'cache');
  fs.mkdirSync(cacheDir, { recursive: true });
  type Meta = { v: FamilyVariant; b: FamilyBatch; lr: number; seed: number; phase: FamilyRow['phase']; hash: string };
  interface Pair { v: FamilyVariant; b: FamilyBatch; points: { lr: number; evalLoss: number | null }[]; pending: number[]; extended: number; lr?: number; seedsQueued: boolean }
  const pairs: Pair[] = plan.batches.flatMap((b) => plan.variants.map((v) => ({ v, b, points: [], pending: [...v.grid[b.id]], extended: 0, seedsQueued: false })));
  const rows: FamilyRow[] = [];
  let newRuns = 0; let reused = 0; let round = 0;
  const seed0 = plan.seeds[0];
  while (pairs.some((p) => p.pending.length || (p.lr !== undefined && !p.seedsQueued))) {
    const metas: Meta[] = [];
    const jobs: Job[] = [];
    const add = (m: Omit<Meta, 'hash'>): void => {
      const config = familyConfig(plan, m.v, m.b, m.lr, m.seed);
      const hash = configHash(config);
      metas.push({ ...m, hash });
      jobs.push({ key: `${m.v.id} ${m.b.id} lr=${lrName(m.lr)} seed ${m.seed}`, config, outDir: path.join(cacheDir, hash) });
    };
    // the longer (small-batch) runs first, so the round's tail is short ones
    for (const p of [...pairs].sort((a, b) => b.b.steps - a.b.steps)) {
      for (const lr of p.pending) add({ v: p.v, b: p.b, lr, seed: seed0, phase: 'sweep' });
      if (p.lr !== undefined && !p.seedsQueued) {
        for (const seed of plan.seeds.slice(1)) add({ v: p.v, b: p.b, lr: p.lr, seed, phase: 'seed' });
        p.seedsQueued = true;
      }
      p.pending = [];
    }
    const res = await runJobs(jobs, {
      jobs: o.jobs, reuse: o.reuse, entry: o.entry, reuseStatuses: ['done', 'stopped-nonfinite'],
      onDone: (r, done, total) => {
        if (!r.reused) cleanRunDir(jobs.find((j) => j.key === r.key)!.outDir);
        o.log(`[family] round ${round} ${done}/${total} ${r.key}: ` +
          (r.status === 'done' ? `val ${r.evalLoss?.toFixed(4)}` : `${r.status}${r.message ? ` (${r.message})` : ''}`) +
          (r.reused ? ' (cached)' : ` (${r.wallS.toFixed(0)} s)`));
      },
    });
    res.forEach((r, i) => {
      if (r.reused) reused++; else newRuns++;
      const m = metas[i];
      const row = rowOf(r, m, plan);
      rows.push(row);
      if (m.phase === 'sweep') pairs.find((p) => p.v === m.v && p.b === m.b)!.points.push({ lr: m.lr, evalLoss: row.evalLoss });
    });
    for (const p of pairs) {
      if (p.lr !== undefined || !p.points.length) continue;
      const c = lrChoice(p.points);
      if (c.next !== undefined && p.extended < plan.maxExtend && !p.points.some((x) => x.lr === c.next)) { p.pending = [c.next]; p.extended++; }
      else {
        p.lr = c.bestLr;
        o.log(`[family] sweep ${p.v.id} ${p.b.id}: ${[...p.points].sort((a, b) => a.lr - b.lr).map((x) => `${lrName(x.lr)} → ${x.evalLoss?.toFixed(4) ?? 'failed'}`).join(', ')}; picked ${lrName(p.lr)}${c.edge ? ` (on the ${c.edge} edge)` : ''}`);
      }
    }
    round++;
  }
  const chosen: FamilyReport['chosen'] = {};
  for (const p of pairs) (chosen[p.v.id] ??= {} as Record<BatchId, number>)[p.b.id] = p.lr!;
  const files = writeFamilyOutputs(o.out, plan, rows);
  if (o.docs) {
    fs.mkdirSync(o.docs, { recursive: true });
    for (const f of files) fs.copyFileSync(path.join(o.out, f), path.join(o.docs, f));
  }
  if (o.fill && fs.existsSync(o.fill)) {
    const cs = cells(plan, sortRows(plan, rows));
    const runS = rows.reduce((a, r) => a + r.wallS, 0);
    const text = fillBlocks(fs.readFileSync(o.fill, 'utf8'), {
      verdicts: verdicts(plan, cs).map((x) => `- ${x}`).join('\n'),
      table: familyTable(plan, cs),
      runs: `${rows.length} runs (${rows.filter((r) => r.phase === 'sweep').length} sweep runs, ${rows.filter((r) => r.phase === 'seed').length} seed reruns), ` +
        `run time summed over runs ${Math.round(runS)} s (${(runS / 60 / Math.max(o.jobs, 1)).toFixed(0)} min of wall at ${o.jobs} at a time); ` +
        `median run ${median(rows.map((r) => r.wallS)).toFixed(0)} s (small batch ${median(rows.filter((r) => r.batch === 'small').map((r) => r.wallS)).toFixed(0)} s, ` +
        `large ${median(rows.filter((r) => r.batch === 'large').map((r) => r.wallS)).toFixed(0)} s)`,
    });
    fs.writeFileSync(o.fill, text);
  }
  const failed = rows.filter((r) => r.status === 'error').length;
  return { rows, newRuns, reused, failed, chosen, files, wallS: (performance.now() - t0) / 1000 };
}

const median = (xs: number[]): number => { const a = [...xs].sort((x, y) => x - y); return a.length ? a[Math.floor(a.length / 2)] : NaN; };

/** Replaces the body of each `<!-- family:NAME -->` … `<!-- /family:NAME -->` block with blocks[NAME]; others stay. */
export function fillBlocks(md: string, blocks: Record<string, string>): string {
  return md.replace(/(<!-- family:([\w-]+) -->)[\s\S]*?(<!-- \/family:\2 -->)/g, (all, open: string, name: string, close: string) =>
    (name in blocks ? `${open}\n${blocks[name]}\n${close}` : all));
}

/** The cache needs only result.json (and the run's metrics and plots); checkpoints and weights are dropped. */
function cleanRunDir(dir: string): void {
  fs.rmSync(path.join(dir, 'checkpoints'), { recursive: true, force: true });
  fs.rmSync(path.join(dir, 'params.safetensors'), { force: true });
}

// ---- the summary: a pure function of the rows ---------------------------------------------------------------------

const ORDER_BATCH: BatchId[] = ['small', 'large'];
/** Rows in a fixed order (batch, variant in plan order, phase, lr, seed), independent of completion order. */
export function sortRows(plan: FamilyPlan, rows: FamilyRow[]): FamilyRow[] {
  const vi = (id: string): number => plan.variants.findIndex((v) => v.id === id);
  return [...rows].sort((a, b) => ORDER_BATCH.indexOf(a.batch) - ORDER_BATCH.indexOf(b.batch) || vi(a.variant) - vi(b.variant) ||
    (a.phase === b.phase ? 0 : a.phase === 'sweep' ? -1 : 1) || a.lr - b.lr || a.seed - b.seed);
}

export interface Cell {
  variant: string; label: string; short: string; batch: BatchId; batchSize: number; lr: number;
  finals: (number | null)[]; mean: number; std: number; n: number;
  curve: Band; tokensToBaseline: number | null;
  stateBytesPerParam: number; trafficBytesPerParam: number; msPerStep: number | null;
  sweep: { lr: number; evalLoss: number | null }[]; lrEdge?: 'low' | 'high';
}

/** optimizer × batch: the runs at the chosen lr (the sweep's best on seed 0, plus the other seeds). */
export function cells(plan: FamilyPlan, rows: FamilyRow[]): Cell[] {
  const out: Cell[] = [];
  for (const b of plan.batches) {
    for (const v of plan.variants) {
      const rs = rows.filter((r) => r.variant === v.id && r.batch === b.id);
      const sweep = rs.filter((r) => r.phase === 'sweep').map((r) => ({ lr: r.lr, evalLoss: r.evalLoss })).sort((x, y) => x.lr - y.lr);
      if (!sweep.length) continue;
      const c = lrChoice(sweep);
      const lr = c.bestLr;
      const runs = rs.filter((r) => r.lr === lr && (r.phase === 'seed' || r.seed === plan.seeds[0])).sort((x, y) => x.seed - y.seed);
      const finals = runs.map((r) => r.evalLoss);
      const ok = finals.filter((x): x is number => x !== null);
      const curves: Curve[] = runs.filter((r) => r.status === 'done').map((r) => ({ x: r.curve.tokens, y: r.curve.evalLoss }));
      const times = runs.map((r) => r.msPerStep).filter((x): x is number => x !== null).sort((x, y) => x - y);
      out.push({
        variant: v.id, label: v.label, short: v.short, batch: b.id, batchSize: b.batch, lr, finals,
        mean: ok.length === finals.length && ok.length ? mean(ok) : NaN, std: ok.length ? std(ok) : NaN, n: ok.length,
        curve: band(curves), tokensToBaseline: null,
        stateBytesPerParam: runs[0].stateBytesPerParam, trafficBytesPerParam: runs[0].trafficBytesPerParam,
        msPerStep: times.length ? times[Math.floor(times.length / 2)] : null, sweep,
        lrEdge: c.next !== undefined ? c.edge : undefined,
      });
    }
  }
  for (const c of out) {
    const base = out.find((x) => x.variant === plan.baseline && x.batch === c.batch);
    c.tokensToBaseline = base && Number.isFinite(base.mean) && c.curve.x.length ? stepsToReach({ x: c.curve.x, y: c.curve.mean }, base.mean) : null;
  }
  return out;
}

const f4 = (v: number | null | undefined): string => (v !== null && v !== undefined && Number.isFinite(v) ? v.toFixed(4) : '—');
const fTok = (v: number): string => (v >= 1e6 ? `${+(v / 1e6).toPrecision(3)}M` : v >= 1e3 ? `${+(v / 1e3).toPrecision(3)}k` : String(Math.round(v)));

/** The table: optimizer × batch → final validation loss (mean ± std over seeds), tokens to AdamW's loss, memory, time. */
export function familyTable(plan: FamilyPlan, cs: Cell[]): string {
  const head = `| optimizer | batch (tokens) | lr | final val loss (mean ± std) | per seed | tokens to reach ${plan.baseline}'s final val loss | state bytes / param | bytes moved / param / step | ms / step |`;
  const sep = '|' + head.split('|').slice(1, -1).map(() => '---').join('|') + '|';
  const lines = cs.map((c) => `| ${c.label} | ${c.batch} ${c.batchSize}×${plan.seq} (${c.batchSize * plan.seq}) | ${c.lr}${c.lrEdge ? ` (${c.lrEdge} edge)` : ''} | ` +
    `${f4(c.mean)} ± ${f4(c.std)} | ${c.finals.map(f4).join(', ')} | ` +
    `${c.variant === plan.baseline ? '—' : c.tokensToBaseline === null ? `not reached in ${fTok(plan.tokens)}` : `${fTok(c.tokensToBaseline)} (${Math.round((100 * c.tokensToBaseline) / plan.tokens)}%)`} | ` +
    `${c.stateBytesPerParam} | ${c.trafficBytesPerParam} | ${c.msPerStep === null ? '—' : c.msPerStep.toFixed(1)} |`);
  return [head, sep, ...lines].join('\n');
}

/** Mean ± std with the std of a difference of two means (Welch's standard error). */
const se = (a: Cell, b: Cell): number => Math.sqrt(a.std ** 2 / Math.max(a.n, 1) + b.std ** 2 / Math.max(b.n, 1));
const ms = (c: Cell): string => `${f4(c.mean)} ± ${f4(c.std)}`;

/**
 * The verdict on each of the paper's claims, from the numbers. "Within noise": the difference of the means is at
 * most 2 standard errors of that difference (Welch, over the seeds); a claim about "best" holds when the claimed
 * optimizer has the lowest mean, and "holds within noise" when another is lower by no more than 2 standard errors.
 */
export function verdicts(plan: FamilyPlan, cs: Cell[]): string[] {
  const at = (v: string, b: BatchId): Cell | undefined => cs.find((c) => c.variant === v && c.batch === b);
  const ranked = (b: BatchId): Cell[] => cs.filter((c) => c.batch === b && Number.isFinite(c.mean)).sort((x, y) => x.mean - y.mean);
  const out: string[] = [];
  // 1. AdEMAMix best at small batch
  const rs = ranked('small'); const ade = at('ademamix', 'small');
  if (rs.length && ade && Number.isFinite(ade.mean)) {
    const best = rs[0];
    const d = ade.mean - best.mean;
    const v = best.variant === 'ademamix' ? 'holds' : d <= 2 * se(ade, best) ? 'holds within noise' : 'does not hold';
    const b0 = at('ademamix-b0', 'small');
    out.push(`**AdEMAMix is best at small batch: ${v}** — best ${best.label} ${ms(best)}` +
      (best.variant === 'ademamix' ? (rs[1] ? `, runner-up ${rs[1].label} ${ms(rs[1])} (Δ ${(rs[1].mean - best.mean).toFixed(4)}, 2 s.e. ${(2 * se(rs[1], best)).toFixed(4)})` : '')
        : ` vs AdEMAMix β1=0.9 ${ms(ade)} (Δ ${d.toFixed(4)}, 2 s.e. ${(2 * se(ade, best)).toFixed(4)}; rank ${rs.indexOf(ade) + 1} of ${rs.length})`) +
      (b0 && Number.isFinite(b0.mean) ? `; AdEMAMix β1=0 ${ms(b0)} (rank ${rs.indexOf(b0) + 1})` : '') + '.');
  }
  // 2. Simplified matches AdEMAMix at both batch sizes with two states
  const parts: string[] = []; let all = true; let any = false;
  for (const b of ORDER_BATCH) {
    const s = at('simplified', b); const a = at('ademamix', b);
    if (!s || !a || !Number.isFinite(s.mean) || !Number.isFinite(a.mean)) { all = false; continue; }
    any = true;
    const d = s.mean - a.mean; const ok = Math.abs(d) <= 2 * se(s, a) || d < 0;
    if (!ok) all = false;
    parts.push(`${b}: Simplified ${ms(s)} vs AdEMAMix ${ms(a)} (Δ ${d >= 0 ? '+' : ''}${d.toFixed(4)}, 2 s.e. ${(2 * se(s, a)).toFixed(4)}${d < 0 && Math.abs(d) > 2 * se(s, a) ? ', better' : ok ? ', matches' : ', worse'})`);
  }
  if (any) {
    const s = cs.find((c) => c.variant === 'simplified'); const a = cs.find((c) => c.variant === 'ademamix'); const w = cs.find((c) => c.variant === plan.baseline);
    out.push(`**Simplified-AdEMAMix matches AdEMAMix at both batch sizes: ${all ? 'holds' : 'does not hold'}** — ${parts.join('; ')}` +
      (s && a ? `; state ${s.stateBytesPerParam} bytes/param vs AdEMAMix ${a.stateBytesPerParam}${w ? ` and AdamW ${w.stateBytesPerParam}` : ''}` : '') + '.');
  }
  // 3. differences shrink at large batch
  const spread = (b: BatchId): { lo: Cell; hi: Cell } | undefined => { const r = ranked(b); return r.length > 1 ? { lo: r[0], hi: r[r.length - 1] } : undefined; };
  const sS = spread('small'); const sL = spread('large');
  if (sS && sL) {
    const dS = sS.hi.mean - sS.lo.mean; const dL = sL.hi.mean - sL.lo.mean;
    const gap = (b: BatchId): string => { const w = at(plan.baseline, b); const r = ranked(b)[0]; return w && r ? `${(w.mean - r.mean).toFixed(4)} (${r.short})` : '—'; };
    out.push(`**At large batch the differences shrink: ${dL < dS ? 'holds' : 'does not hold'}** — spread of the mean final losses (worst − best) ` +
      `${dS.toFixed(4)} at small batch (${sS.lo.short} … ${sS.hi.short}) vs ${dL.toFixed(4)} at large batch (${sL.lo.short} … ${sL.hi.short}); ` +
      `AdamW − best: ${gap('small')} at small, ${gap('large')} at large.`);
  }
  // 4. the β1 = 0 comparison
  const b0: string[] = [];
  for (const b of ORDER_BATCH) {
    const z = at('ademamix-b0', b); const a = at('ademamix', b);
    if (!z || !a || !Number.isFinite(z.mean) || !Number.isFinite(a.mean)) continue;
    const d = z.mean - a.mean;
    b0.push(`${b}: β1=0 ${ms(z)} vs β1=0.9 ${ms(a)} (Δ ${d >= 0 ? '+' : ''}${d.toFixed(4)}, ${Math.abs(d) <= 2 * se(z, a) ? 'within noise' : d < 0 ? 'β1=0 better' : 'β1=0 worse'})`);
  }
  if (b0.length) out.push(`**AdEMAMix without the fast EMA (β1 = 0)** — ${b0.join('; ')}; state ${at('ademamix-b0', 'small')?.stateBytesPerParam ?? '—'} vs ${at('ademamix', 'small')?.stateBytesPerParam ?? '—'} bytes/param.`);
  return out;
}

/** Writes results.jsonl, summary.md and the figures into `out`; returns the file names (all deterministic in the rows). */
export function writeFamilyOutputs(out: string, plan: FamilyPlan, rowsIn: FamilyRow[]): string[] {
  const rows = sortRows(plan, rowsIn);
  const files: string[] = [];
  const w = (name: string, s: string): void => { fs.writeFileSync(path.join(out, name), s); files.push(name); };
  w('results.jsonl', rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const cs = cells(plan, rows);
  const what = (b: FamilyBatch): string => `${plan.model}${Object.keys(plan.modelOverrides).length ? ` (${Object.entries(plan.modelOverrides).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}, batch ${b.batch}×${plan.seq} tokens, ${b.steps} steps (${fTok(plan.tokens)} tokens)`;
  const series = (c: Cell, name = c.short, dashed = false): Series => ({ name: `${name} ${lrName(c.lr)}`, x: c.curve.x, y: c.curve.mean, lo: c.curve.lo, hi: c.curve.hi, dashed });
  const zoom = (ss: Series[]): [number, number] | undefined => {
    // the second half of the budget, y range from the curves that end within 10% of the best (the paper's zoom)
    const from = plan.tokens / 2;
    const ends = ss.map((s) => s.y[s.y.length - 1]).filter(Number.isFinite);
    if (!ends.length) return undefined;
    const best = Math.min(...ends);
    const near = ss.filter((s) => s.y[s.y.length - 1] <= best * 1.1);
    const ys = near.flatMap((s) => s.x.flatMap((x, i) => (x >= from ? [s.lo?.[i] ?? s.y[i], s.hi?.[i] ?? s.y[i]] : []))).filter(Number.isFinite);
    if (!ys.length) return undefined;
    const lo = Math.min(...ys); const hi = Math.max(...ys);
    return hi > lo ? [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)] : undefined;
  };
  for (const b of plan.batches) {
    const ss = cs.filter((c) => c.batch === b.id && c.curve.x.length).map((c) => series(c));
    const opts = { xLabel: 'training tokens', yLabel: 'validation loss', width: 760 };
    w(`family-${b.id}-val-loss.svg`, linePlotSvg(ss, { ...opts, title: `${what(b)}: validation loss at each optimizer's best lr (mean of ${plan.seeds.length} seeds, min–max band)` }));
    const yr = zoom(ss);
    w(`family-${b.id}-val-loss-zoom.svg`, linePlotSvg(ss.map((s) => {
      const keep = s.x.map((x, i) => (x >= plan.tokens / 2 ? i : -1)).filter((i) => i >= 0);
      const pick = (a?: number[]): number[] | undefined => a && keep.map((i) => a[i]);
      return { ...s, x: pick(s.x)!, y: pick(s.y)!, lo: pick(s.lo), hi: pick(s.hi) };
    }), { ...opts, yRange: yr, title: `${what(b)}: the second half${yr ? ', zoomed on the curves within 10% of the best' : ''}` }));
    w(`family-${b.id}-sweep.svg`, linePlotSvg(cs.filter((c) => c.batch === b.id).map((c) => {
      const ok = c.sweep.filter((p) => p.evalLoss !== null);
      return { name: c.short, x: ok.map((p) => Math.log10(p.lr)), y: ok.map((p) => p.evalLoss!) };
    }), { title: `lr sweep, ${what(b)}, seed ${plan.seeds[0]}`, xLabel: 'log10(lr)', yLabel: 'final validation loss', width: 760 }));
  }
  const b0 = cs.filter((c) => (c.variant === 'ademamix' || c.variant === 'ademamix-b0' || c.variant === plan.baseline) && c.curve.x.length)
    .map((c) => series(c, `${c.short} ${c.batch}`, c.batch === 'large'));
  w('family-beta1-zero.svg', linePlotSvg(b0, {
    title: `AdEMAMix with β1 = 0.9 and β1 = 0 (and AdamW) at both batch sizes (dashed: large batch)`, xLabel: 'training tokens', yLabel: 'validation loss', width: 760,
  }));
  const failed = rows.filter((r) => r.status !== 'done');
  const md = [
    `# Optimizer family: ${plan.model} on ${plan.data}${plan.quick ? ' (--quick: tests the machinery, not the claims)' : ''}`, '',
    `${plan.tokens.toLocaleString('en-US')} training tokens per run at both batch sizes (${plan.batches.map((b) => `${b.id}: ${b.batch}×${plan.seq} tokens, ${b.steps} steps, evaluated every ${b.evalEvery} steps on ${b.evalBatches * b.batch * plan.seq} validation tokens`).join('; ')}); ` +
    `lr swept on seed ${plan.seeds[0]}, then seeds ${plan.seeds.slice(1).join(', ')} at the chosen lr; ${rows.length} runs${failed.length ? `, ${failed.length} of them did not finish (${failed.map((r) => `${r.variant} ${r.batch} lr ${r.lr} seed ${r.seed}: ${r.status}`).join('; ')})` : ''}; ` +
    `${plan.threads} ORT thread(s) per run. Run time summed over runs: ${Math.round(rows.reduce((a, r) => a + r.wallS, 0))} s.`, '',
    '## Verdicts', '', ...verdicts(plan, cs).map((s) => `- ${s}`), '',
    '## Table', '', familyTable(plan, cs), '',
    '## lr sweeps (seed ' + plan.seeds[0] + ', final validation loss)', '',
    ...cs.map((c) => `- ${c.label}, ${c.batch}: ${c.sweep.map((p) => `${p.lr} → ${f4(p.evalLoss)}`).join(', ')}; picked ${c.lr}${c.lrEdge ? ` (best on the ${c.lrEdge} edge of the grid${plan.maxExtend ? ` after ${plan.maxExtend} extensions` : ''})` : ''}`), '',
  ];
  w('summary.md', md.join('\n'));
  return files;
}
