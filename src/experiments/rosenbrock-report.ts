// `experiment rosenbrock`: the Figure 2 runs, their results JSON and figures (paths in the x–y plane, objective vs
// step on a log scale).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linePlotSvg } from '../runner/plot';
import { figure2Runs, ROSEN_START, rosenbrock, runRosenbrock, type RosenTrace } from './rosenbrock';
import { planePlotSvg } from './trajectory-plot';

/** Floor for the log-scale plot: AdEMAMix can land exactly on (1, 1) in float32, where f is 0. */
const F_FLOOR = 1e-14;

export interface RosenbrockReport {
  date: string; steps: number; lr: number; start: [number, number];
  runs: { name: string; final: RosenTrace['final']; reach1e7: number | null; fAt: Record<string, number>; wallS: number }[];
  wallS: number;
}

const fAt = (tr: RosenTrace, s: number): number => { const i = tr.steps.findIndex((v) => v >= s); return i < 0 ? NaN : tr.f[i]; };

export function rosenbrockCommand(o: { out: string; steps: number; lr: number; log: (s: string) => void }): RosenbrockReport {
  fs.mkdirSync(o.out, { recursive: true });
  const t0 = performance.now();
  const traces: RosenTrace[] = [];
  for (const r of figure2Runs(o.steps, o.lr)) {
    const tr = runRosenbrock(r);
    traces.push(tr);
    o.log(`${r.name.padEnd(20)} f(final) ${tr.final.f.toExponential(2)} at (${tr.final.x.toFixed(5)}, ${tr.final.y.toFixed(5)}); ` +
      `f ≤ 1e-7 from step ${tr.reach1e7 ?? 'never'}; ${tr.wallS.toFixed(1)} s`);
  }
  const checkpoints = [1000, 5000, 10_000, 25_000, 50_000, o.steps].filter((s, i, a) => s <= o.steps && a.indexOf(s) === i);
  const report: RosenbrockReport = {
    date: new Date().toISOString(), steps: o.steps, lr: o.lr, start: ROSEN_START,
    runs: traces.map((tr) => ({ name: tr.name, final: tr.final, reach1e7: tr.reach1e7, fAt: Object.fromEntries(checkpoints.map((s) => [String(s), fAt(tr, s)])), wallS: tr.wallS })),
    wallS: (performance.now() - t0) / 1000,
  };
  fs.writeFileSync(path.join(o.out, 'rosenbrock.json'), JSON.stringify(report, null, 2) + '\n');
  // Adam in blues (darker = larger β1) and green, AdEMAMix in orange and red; order follows figure2Runs
  const colors = ['#9ecae1', '#4292c6', '#08519c', '#2ca02c', '#ff7f0e', '#d62728'];
  const paths = traces.map((tr, k) => ({ name: tr.name, x: tr.x, y: tr.y, color: colors[k % colors.length] }));
  const marks = [{ x: ROSEN_START[0], y: ROSEN_START[1], label: 'start' }, { x: 1, y: 1, label: 'optimum' }];
  const xs = traces.flatMap((t) => t.x); const ys = traces.flatMap((t) => t.y);
  const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
  const xr: [number, number] = [clamp(Math.floor(Math.min(...xs) - 0.5), -6, 0), clamp(Math.ceil(Math.max(...xs) + 0.5), 2, 6)];
  const yr: [number, number] = [clamp(Math.floor(Math.min(...ys) - 0.5), -4, 0), clamp(Math.ceil(Math.max(...ys) + 0.5), 6, 16)];
  fs.writeFileSync(path.join(o.out, 'rosenbrock-paths.svg'), planePlotSvg(paths, {
    f: rosenbrock, xRange: xr, yRange: yr, marks, title: `Rosenbrock from (−3, 5), lr ${o.lr}, ${o.steps} steps: paths`,
  }));
  fs.writeFileSync(path.join(o.out, 'rosenbrock-paths-zoom.svg'), planePlotSvg(paths, {
    f: rosenbrock, xRange: [-1.5, 1.5], yRange: [-0.5, 2.5], marks: marks.slice(1), width: 560, title: 'paths near the valley floor',
  }));
  fs.writeFileSync(path.join(o.out, 'rosenbrock-objective.svg'), linePlotSvg(traces.map((tr, k) => ({
    name: tr.name, x: tr.steps, y: tr.f.map((f) => Math.max(f, F_FLOOR)), color: colors[k % colors.length],
  })), { title: `Rosenbrock objective (log scale, floored at ${F_FLOOR})`, xLabel: 'step', yLabel: 'f(x, y)', logY: true, width: 760 }));
  return report;
}
