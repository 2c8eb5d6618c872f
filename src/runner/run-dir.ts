// The run directory: config.json, metrics.jsonl (one JSON record per logged step), loss.svg / schedules.svg /
// forgetting.svg redrawn while training, and report.html showing them (it reloads itself while the run is live).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../onnx/io';
import { linePlotSvg, type Series } from './plot';

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
    text(path.join(this.dir, 'schedules.svg'), linePlotSvg(sched, { title: 'schedules', xLabel: 'step' }));
    const parts = ['loss.svg', 'schedules.svg'];
    const tr = rs.filter((r) => r.tracked);
    if (tr.length && this.trackedAt.length) {
      const series = this.trackedAt.map((at, k) => ({
        name: `batch ${k} (step ${at})`, x: tr.map((r) => r.step - at), y: tr.map((r) => r.tracked![k]),
      }));
      text(path.join(this.dir, 'forgetting.svg'), linePlotSvg(series, {
        title: 'forgetting: loss on tracked batches vs steps since each was trained on', xLabel: 'steps since seen', yLabel: 'loss',
      }));
      parts.push('forgetting.svg');
    }
    const last = rs[rs.length - 1];
    const lastEval = [...rs].reverse().find((r) => r.eval_loss !== undefined);
    const html = `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>` +
      (live ? '<meta http-equiv="refresh" content="10">' : '') +
      '<style>body{font-family:sans-serif;margin:2em}img{max-width:100%;display:block;margin:1em 0}td{padding:2px 12px}</style></head><body>' +
      `<h1>${title}</h1><p>${live ? 'running…' : 'finished'}; step ${last?.step ?? 0}` +
      (last?.loss !== undefined ? `, train loss ${last.loss.toFixed(4)}` : '') +
      (lastEval ? `, validation loss ${lastEval.eval_loss!.toFixed(4)} (step ${lastEval.step})` : '') + '</p>' +
      parts.map((p) => `<img src="${p}?v=${rs.length}" alt="${p}">`).join('') +
      '<p>Data: <a href="metrics.jsonl">metrics.jsonl</a>, <a href="config.json">config.json</a></p></body></html>\n';
    text(path.join(this.dir, 'report.html'), html);
  }
}

function ema(ys: number[], beta: number): number[] {
  let m = NaN;
  return ys.map((y) => (m = Number.isNaN(m) ? y : beta * m + (1 - beta) * y));
}
