// The run directory: config.json, metrics.jsonl (one JSON record per logged step), loss.svg / schedules.svg /
// grad-norm.svg / forgetting.svg redrawn while training, and report.html: one self-contained page with every plot
// inline (src/runner/report.ts; it reloads itself while the run is live).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../onnx/io';
import { linePlotSvg, type Series } from './plot';
import { reportHtml, type ReportExtra } from './report';

export interface MetricRecord {
  step: number;
  loss?: number; lr?: number; alpha?: number; beta3?: number; beta1?: number; grad_norm?: number;
  items_per_s?: number; eval_loss?: number; skipped?: number;
  /** loss on each tracked batch (forgetting tracking) */
  tracked?: number[];
}

const text = (file: string, s: string): void => writeFileAtomic(file, new TextEncoder().encode(s));

export class RunDir {
  readonly records: MetricRecord[] = [];
  /** step at which each tracked batch was trained on */
  trackedAt: number[] = [];

  constructor(readonly dir: string) { fs.mkdirSync(dir, { recursive: true }); }

  get checkpoints(): string { return path.join(this.dir, 'checkpoints'); }
  get metricsFile(): string { return path.join(this.dir, 'metrics.jsonl'); }

  writeJson(name: string, v: unknown): void { text(path.join(this.dir, name), JSON.stringify(v, null, 2) + '\n'); }

  /** Loads earlier records (on resume), dropping any logged after `beforeStep` (they will be run again). */
  loadRecords(beforeStep: number): void {
    if (!fs.existsSync(this.metricsFile)) return;
    const keep = fs.readFileSync(this.metricsFile, 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as MetricRecord).filter((r) => r.step < beforeStep);
    this.records.push(...keep);
    text(this.metricsFile, keep.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  append(r: MetricRecord): void {
    this.records.push(r);
    fs.appendFileSync(this.metricsFile, JSON.stringify(r) + '\n');
  }

  /** Redraws the plots and the report from the records so far. */
  render(title: string, live: boolean): void {
    const rs = this.records;
    const pick = (k: keyof MetricRecord): Series['x'][] => {
      const f = rs.filter((r) => typeof r[k] === 'number');
      return [f.map((r) => r.step), f.map((r) => r[k] as number)];
    };
    const [tx, ty] = pick('loss'); const [ex, ey] = pick('eval_loss');
    const loss = linePlotSvg([
      { name: 'train (EMA)', x: tx, y: ema(ty, 0.9) },
      { name: 'validation', x: ex, y: ey, dashed: true },
    ], { title: `${title}: loss`, xLabel: 'step', yLabel: 'cross-entropy' });
    text(path.join(this.dir, 'loss.svg'), loss);
    const sched: Series[] = [];
    const [lx, ly] = pick('lr');
    const lrMax = Math.max(...ly, 1e-30);
    sched.push({ name: `lr / ${lrMax.toExponential(1)}`, x: lx, y: ly.map((v) => v / lrMax) });
    const [ax, ay] = pick('alpha');
    if (ax.length) { const aMax = Math.max(...ay, 1e-30); sched.push({ name: `α / ${+aMax.toPrecision(3)}`, x: ax, y: ay.map((v) => v / aMax) }); }
    for (const k of ['beta3', 'beta1'] as const) {
      const [bx, by] = pick(k);
      if (bx.length) sched.push({ name: k === 'beta3' ? 'β3' : 'β1', x: bx, y: by });
    }
    const schedules = linePlotSvg(sched, { title: 'schedules', xLabel: 'step' });
    text(path.join(this.dir, 'schedules.svg'), schedules);
    const plots = [{ name: 'loss', svg: loss }, { name: 'schedules', svg: schedules }];
    const [gx, gy] = pick('grad_norm');
    if (gx.length) {
      const gn = linePlotSvg([{ name: 'global gradient norm', x: gx, y: gy }], { title: 'gradient norm', xLabel: 'step', yLabel: '‖g‖₂' });
      text(path.join(this.dir, 'grad-norm.svg'), gn);
      plots.push({ name: 'grad-norm', svg: gn });
    }
    const tr = rs.filter((r) => r.tracked);
    if (tr.length && this.trackedAt.length) {
      const series = this.trackedAt.map((at, k) => ({
        name: `batch ${k} (step ${at})`, x: tr.map((r) => r.step - at), y: tr.map((r) => r.tracked![k]),
      }));
      const fg = linePlotSvg(series, {
        title: 'forgetting: loss on tracked batches vs steps since each was trained on', xLabel: 'steps since seen', yLabel: 'loss',
      });
      text(path.join(this.dir, 'forgetting.svg'), fg);
      plots.push({ name: 'forgetting', svg: fg });
    }
    this.writeReport(title, live, plots);
  }

  private writeReport(title: string, live: boolean, plots: { name: string; svg: string }[]): void {
    const read = (name: string): unknown => {
      try { return JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')); } catch { return undefined; }
    };
    const html = reportHtml({
      title, live, records: this.records, plots,
      config: (read('config.json') ?? {}) as Record<string, unknown>, extra: read('report-extra.json') as ReportExtra | undefined,
    });
    text(path.join(this.dir, 'report.html'), html);
  }

  /** After a run: adds what the trained model does to the report, with the plots and metrics already on disk. */
  addToReport(title: string, extra: ReportExtra): void {
    this.writeJson('report-extra.json', extra);
    if (!this.records.length) this.loadRecords(Infinity);
    const plots = PLOTS.filter((n) => fs.existsSync(path.join(this.dir, `${n}.svg`)))
      .map((name) => ({ name, svg: fs.readFileSync(path.join(this.dir, `${name}.svg`), 'utf8') }));
    this.writeReport(title, false, plots);
  }
}

const PLOTS = ['loss', 'schedules', 'grad-norm', 'forgetting'];

function ema(ys: number[], beta: number): number[] {
  let m = NaN;
  return ys.map((y) => (m = Number.isNaN(m) ? y : beta * m + (1 - beta) * y));
}
