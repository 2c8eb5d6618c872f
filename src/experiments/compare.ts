// `experiment compare`: the same model trained with each optimizer variant over several seeds at an equal step budget,
// optionally after an lr sweep (one seed apart from the comparison seeds; GPT sweep runs a third as long). Writes results.json,
// summary.md and SVG figures into the out dir; every run keeps its own run directory (metrics.jsonl, plots).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { linePlotSvg, type Series } from '../runner/plot';
import { runConfig, taskPlan, type TaskName, type TaskPlan, type Variant } from './plans';
import { runJobs, type Job, type JobResult } from './pool';
import {
  band, evalCurve, forgettingCurve, lrChoice, markdownTable, mean, std, stepsToReach, type Band, type VariantSummary,
} from './summary';

export interface CompareOptions {
  task: TaskName; seeds: number; steps?: number; sweepSteps?: number; sweep: boolean; out: string;
  jobs: number; threads: number; reuse: boolean; variants?: string[]; entry?: string;
  log: (s: string) => void;
}

/** One lr of the sweep: final validation loss averaged over the sweep seeds (null if any run did not finish). */
export interface SweepPoint { lr: number; evalLoss: number | null; perSeed: (number | null)[]; status: string; wallS: number }
export interface CompareReport {
  task: TaskName; date: string; machine: string; steps: number; seeds: number[];
  jobs: number; threads: number;
  base: Record<string, unknown>;
  variants: (Variant & { lrUsed: number })[];
  sweep?: { steps: number; seeds: number[]; points: Record<string, SweepPoint[]>; wallS: number };
  baseline: string;
  summary: VariantSummary[];
  curves: Record<string, Band>;
  forgetting: Record<string, Band>;
  /** forgetting less the validation-loss drift over the same steps */
  forgettingExcess: Record<string, Band>;
  forgettingHorizon: number;
  runs: { key: string; status: string; evalLoss?: number; finalLoss?: number; wallS: number; reused?: boolean }[];
  wallS: { sweep: number; main: number; total: number };
}

const lrName = (lr: number): string => lr.toExponential(1).replace('+', '');
const secs = (t0: number): number => (performance.now() - t0) / 1000;
const finite = (v: number | undefined): number => (v !== undefined && Number.isFinite(v) ? v : Infinity);

/** lr sweep: the grid, then up to two extra points past an edge that wins (a best lr on the edge is not a pick). */
async function sweep(plan: TaskPlan, vs: Variant[], o: CompareOptions): Promise<{ lr: Record<string, number>; points: Record<string, SweepPoint[]>; wallS: number }> {
  const t0 = performance.now();
  const points: Record<string, SweepPoint[]> = Object.fromEntries(vs.map((v) => [v.id, []]));
  const seeds = plan.sweepSeeds;
  let pending = vs.map((v) => ({ v, lrs: [...v.grid] }));
  for (let round = 0; round < 3 && pending.length; round++) {
    const asked = pending.flatMap(({ v, lrs }) => lrs.map((lr) => ({ v, lr })));
    // one job per (lr, sweep seed); the first seed keeps the plain directory name
    const jobs: Job[] = asked.flatMap(({ v, lr }) => seeds.map((seed, k) => ({
      key: `sweep ${v.id} lr=${lrName(lr)}${k ? ` seed ${seed}` : ''}`,
      config: runConfig(plan, v, { lr, seed, steps: plan.sweepSteps, sweep: true }),
      outDir: path.join(o.out, 'sweep', `${v.id}-lr${lrName(lr)}${k ? `-s${seed}` : ''}`),
    })));
    const res = await runJobs(jobs, { jobs: o.jobs, reuse: o.reuse, entry: o.entry, onDone: progress(o, 'sweep') });
    asked.forEach(({ v, lr }, i) => {
      const rs = res.slice(i * seeds.length, (i + 1) * seeds.length);
      const perSeed = rs.map((r) => (Number.isFinite(r.evalLoss) ? r.evalLoss! : null));
      const ok = perSeed.every((x) => x !== null);
      points[v.id].push({
        lr, evalLoss: ok ? mean(perSeed as number[]) : null, perSeed,
        status: rs.find((r) => r.status !== 'done')?.status ?? 'done', wallS: rs.reduce((a, r) => a + r.wallS, 0),
      });
    });
    pending = [];
    for (const v of vs) {
      points[v.id].sort((a, b) => a.lr - b.lr);
      const next = lrChoice(points[v.id]).next;
      if (next !== undefined) pending.push({ v, lrs: [next] });
    }
  }
  const lr: Record<string, number> = {};
  for (const v of vs) {
    const ps = points[v.id].sort((a, b) => a.lr - b.lr);
    const best = ps[lrChoice(ps).best];
    lr[v.id] = best.lr;
    o.log(`[${plan.task}] sweep ${v.id}: ` + ps.map((p) => `${lrName(p.lr)} → ${p.evalLoss?.toFixed(4) ?? p.status}`).join(', ') + `; picked ${lrName(best.lr)}`);
  }
  return { lr, points, wallS: secs(t0) };
}

function progress(o: CompareOptions, phase: string): (r: JobResult, done: number, total: number) => void {
  return (r, done, total) => o.log(`[${o.task}] ${phase} ${done}/${total} ${r.key}: ` +
    (r.status === 'done' ? `val ${r.evalLoss?.toFixed(4)}, train ${r.finalLoss?.toFixed(4)}` : `${r.status}${r.message ? ` (${r.message})` : ''}`) +
    (r.reused ? ' (reused)' : ` (${r.wallS.toFixed(0)} s)`));
}

export async function compareCommand(o: CompareOptions): Promise<CompareReport> {
  const t0 = performance.now();
  const plan = taskPlan(o.task, o.steps, o.sweepSteps);
  plan.base.threads = o.threads;
  const vs = o.variants ? plan.variants.filter((v) => o.variants!.includes(v.id)) : plan.variants;
  if (!vs.length) throw new Error(`no variants selected (have: ${plan.variants.map((v) => v.id).join(', ')})`);
  const baseline = vs.some((v) => v.id === plan.baseline) ? plan.baseline : vs[0].id;
  fs.mkdirSync(o.out, { recursive: true });

  let lrs: Record<string, number> = Object.fromEntries(vs.map((v) => [v.id, v.lr]));
  let sw: CompareReport['sweep'];
  if (o.sweep) {
    const s = await sweep(plan, vs, o);
    lrs = s.lr;
    sw = { steps: plan.sweepSteps, seeds: plan.sweepSeeds, points: s.points, wallS: s.wallS };
  }

  const tMain = performance.now();
  const seeds = Array.from({ length: o.seeds }, (_, k) => k);
  // seed-major order, so an interrupted experiment has complete seeds rather than complete optimizers
  const jobs: Job[] = seeds.flatMap((seed) => vs.map((v) => ({
    key: `${v.id} seed ${seed}`,
    config: runConfig(plan, v, { lr: lrs[v.id], seed, steps: plan.steps }),
    outDir: path.join(o.out, 'runs', `${v.id}-s${seed}`),
  })));
  const res = await runJobs(jobs, { jobs: o.jobs, reuse: o.reuse, entry: o.entry, onDone: progress(o, 'run') });
  const mainS = secs(tMain);
  const failed = res.filter((r) => r.status !== 'done');
  if (failed.length) o.log(`[${o.task}] ${failed.length} run(s) did not finish: ${failed.map((r) => `${r.key} (${r.status})`).join(', ')}`);

  const byVariant = (id: string): JobResult[] => seeds.map((s) => res[jobs.findIndex((j) => j.key === `${id} seed ${s}`)]);
  const K = plan.base.trackBatches; const every = plan.base.trackEvery;
  const horizon = Math.floor(plan.steps / (K + 1) / every) * every;
  const curves: Record<string, Band> = {}; const forgetting: Record<string, Band> = {}; const excess: Record<string, Band> = {};
  const baseRuns = byVariant(baseline);
  const baseFinal = mean(baseRuns.map((r) => finite(r.evalLoss)));
  const summary: VariantSummary[] = vs.map((v) => {
    const rs = byVariant(v.id);
    const cs = rs.map((r) => evalCurve(r.records));
    curves[v.id] = band(cs);
    const fc = rs.map((r) => forgettingCurve(r.records, r.trackedAt, every, horizon));
    forgetting[v.id] = band(fc);
    const xc = rs.map((r, k) => forgettingCurve(r.records, r.trackedAt, every, horizon, cs[k]));
    excess[v.id] = band(xc);
    const finals = rs.map((r) => finite(r.evalLoss));
    return {
      id: v.id, label: v.label, lr: lrs[v.id],
      finalEval: finals, finalEvalMean: mean(finals), finalEvalStd: std(finals),
      finalTrainMean: mean(rs.map((r) => finite(r.finalLoss))),
      stepsToBaseline: stepsToReach({ x: curves[v.id].x, y: curves[v.id].mean }, baseFinal),
      stepsToBaselinePerSeed: cs.map((c, k) => stepsToReach(c, finite(baseRuns[k].evalLoss))),
      forgetDip: mean(fc.map((c) => c.y[1])), forgetAtHorizon: mean(fc.map((c) => c.y[c.y.length - 1])),
      excessDip: mean(xc.map((c) => c.y[1])), excessAtHorizon: mean(xc.map((c) => c.y[c.y.length - 1])),
      wallS: rs.map((r) => r.wallS),
    };
  });

  const report: CompareReport = {
    task: o.task, date: new Date().toISOString(), machine: `${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()} ${os.arch()}`,
    steps: plan.steps, seeds, jobs: o.jobs, threads: o.threads,
    base: plan.base as unknown as Record<string, unknown>,
    variants: vs.map((v) => ({ ...v, lrUsed: lrs[v.id] })),
    sweep: sw, baseline, summary, curves, forgetting, forgettingExcess: excess, forgettingHorizon: horizon,
    runs: res.map((r) => ({ key: r.key, status: r.status, evalLoss: r.evalLoss, finalLoss: r.finalLoss, wallS: r.wallS, reused: r.reused })),
    wallS: { sweep: sw?.wallS ?? 0, main: mainS, total: secs(t0) },
  };
  writeOutputs(o, report, plan);
  return report;
}

function writeOutputs(o: CompareOptions, r: CompareReport, plan: TaskPlan): void {
  const w = (name: string, s: string): void => fs.writeFileSync(path.join(o.out, name), s);
  w('results.json', JSON.stringify(r, null, 1) + '\n');
  const label = (id: string): string => r.variants.find((v) => v.id === id)!.label;
  const short = (id: string): string => r.variants.find((v) => v.id === id)!.short;
  const what = `${plan.base.model} on ${plan.base.data}, ${r.steps} steps, ${r.seeds.length} seeds`;
  const bandSeries = (b: Record<string, Band>, from = -Infinity): Series[] => Object.entries(b).map(([id, c]) => {
    const keep = c.x.map((x, i) => (x >= from ? i : -1)).filter((i) => i >= 0);
    const pick = (a: number[]): number[] => keep.map((i) => a[i]);
    return { name: short(id), x: pick(c.x), y: pick(c.mean), lo: pick(c.lo), hi: pick(c.hi) };
  });
  w(`${r.task}-val-loss.svg`, linePlotSvg(bandSeries(r.curves), { title: `${what}: validation loss (mean, min–max band)`, xLabel: 'step', yLabel: 'validation loss', width: 760 }));
  // the late window zooms on the variants that finish near the best; one that stalls or diverges is clipped
  const from = Math.round(r.steps / 3);
  const late = bandSeries(r.curves, from);
  const finals = late.map((s) => s.y[s.y.length - 1]).filter(Number.isFinite);
  const best = Math.min(...finals);
  const near = late.filter((s) => s.y[s.y.length - 1] <= best * 1.1);
  const lo = Math.min(...near.flatMap((s) => s.lo ?? s.y).filter(Number.isFinite));
  const hi = Math.max(...near.flatMap((s) => s.hi ?? s.y).filter(Number.isFinite));
  w(`${r.task}-val-loss-late.svg`, linePlotSvg(late, {
    title: `${what}: validation loss from step ${from}${near.length < late.length ? ', zoomed' : ''}`,
    xLabel: 'step', yLabel: 'validation loss', width: 760,
    yRange: near.length && Number.isFinite(lo) && Number.isFinite(hi) ? [lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo)] : undefined,
  }));
  w(`${r.task}-forgetting.svg`, linePlotSvg(bandSeries(r.forgetting), {
    title: `${plan.base.model}: forgetting of a batch trained on once (mean over ${plan.base.trackBatches} batches; band: seeds)`,
    xLabel: 'steps since the batch was trained on', yLabel: 'Δ loss vs just before', width: 760,
  }));
  w(`${r.task}-forgetting-excess.svg`, linePlotSvg(bandSeries(r.forgettingExcess), {
    title: `${plan.base.model}: the same less the validation-loss change over those steps`,
    xLabel: 'steps since the batch was trained on', yLabel: 'Δ loss − Δ val loss', width: 760,
  }));
  if (r.sweep) {
    w(`${r.task}-sweep.svg`, linePlotSvg(Object.entries(r.sweep.points).map(([id, ps]) => {
      const ok = ps.filter((p) => p.evalLoss !== null).sort((a, b) => a.lr - b.lr);
      return { name: short(id), x: ok.map((p) => Math.log10(p.lr)), y: ok.map((p) => p.evalLoss!) };
    }), { title: `lr sweep: ${plan.base.model}, ${r.sweep.steps} steps, seed${r.sweep.seeds.length > 1 ? 's' : ''} ${r.sweep.seeds.join(', ')}`, xLabel: 'log10(lr)', yLabel: 'final validation loss', width: 760 }));
  }
  const md = [`# ${r.task}: ${what}`, '', `date ${r.date}; ${r.machine}; ${r.jobs} runs at a time, ${r.threads} ORT thread(s) each`, '',
    markdownTable(r.summary, r.baseline, r.steps), ''];
  if (r.sweep) {
    md.push(`lr sweep (${r.sweep.steps} steps, seed${r.sweep.seeds.length > 1 ? 's' : ''} ${r.sweep.seeds.join(', ')}, final validation loss${r.sweep.seeds.length > 1 ? ' averaged over them' : ''}; ${r.sweep.wallS.toFixed(0)} s):`, '');
    for (const [id, ps] of Object.entries(r.sweep.points)) {
      md.push(`- ${label(id)}: ${[...ps].sort((a, b) => a.lr - b.lr).map((p) => `${p.lr} → ${p.evalLoss?.toFixed(4) ?? p.status}${p.perSeed.length > 1 ? ` (${p.perSeed.map((x) => x?.toFixed(3) ?? '—').join(' / ')})` : ''}`).join(', ')}; picked ${r.variants.find((v) => v.id === id)!.lrUsed}`);
    }
    md.push('');
  }
  const reused = r.runs.filter((x) => x.reused).length;
  const sweepRun = r.sweep ? Object.values(r.sweep.points).flat().reduce((a, p) => a + p.wallS, 0) : 0;
  const mainRun = r.runs.reduce((a, x) => a + x.wallS, 0);
  md.push(`wall: sweep ${r.wallS.sweep.toFixed(0)} s, comparison runs ${r.wallS.main.toFixed(0)} s, total ${r.wallS.total.toFixed(0)} s` +
    (reused ? ` (${reused} of ${r.runs.length} comparison runs reused from an earlier invocation)` : '') +
    `; run time summed over runs (${r.jobs} at a time when they ran): sweep ${sweepRun.toFixed(0)} s, comparison ${mainRun.toFixed(0)} s`, '');
  w('summary.md', md.join('\n'));
}
