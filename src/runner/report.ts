// report.html: one self-contained page (no network, opens from file://): the run's config, final and best metrics,
// every plot inline, timing, and what the trained model does (a text sample, or accuracy with a confusion matrix),
// when the CLI has added that after training (report-extra.json).
import type { MetricRecord } from './run-dir';

export interface ReportExtra {
  /** ORT-profiled steps of the run's configuration after training (src/bench/train-step.ts measureStep). */
  timing?: { stepMs: number; optimizerShare: number; steps: number; threads: number };
  sample?: { prompt: string; text: string; tokensPerSecond: number; step: number };
  accuracy?: { accuracy: number; count: number; classes: string[]; confusion: number[][]; step: number };
}

export interface ReportInput {
  title: string;
  live: boolean;
  config: Record<string, unknown>;
  records: MetricRecord[];
  /** Inline SVG plots, in order. */
  plots: { name: string; svg: string }[];
  extra?: ReportExtra;
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]!));
const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(+v.toPrecision(5)));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
}

export function reportHtml(r: ReportInput): string {
  const rs = r.records;
  const last = rs[rs.length - 1];
  const rows: [string, string, string][] = [];
  const metric = (key: keyof MetricRecord, label: string, best: 'min' | 'max' | null): void => {
    const f = rs.filter((x) => typeof x[key] === 'number');
    if (!f.length) return;
    const fin = f[f.length - 1];
    let b = '';
    if (best) {
      const bx = f.reduce((a, x) => ((best === 'min' ? (x[key] as number) < (a[key] as number) : (x[key] as number) > (a[key] as number)) ? x : a));
      b = `${fmt(bx[key] as number)} (step ${bx.step})`;
    }
    rows.push([label, `${fmt(fin[key] as number)} (step ${fin.step})`, b]);
  };
  metric('loss', 'train loss', 'min');
  metric('eval_loss', 'validation loss', 'min');
  metric('grad_norm', 'gradient norm', null);
  metric('lr', 'learning rate', null);
  metric('alpha', 'α', null);
  metric('beta3', 'β3', null);
  metric('beta1', 'β1', null);
  if (last?.skipped) rows.push(['skipped updates (non-finite)', String(last.skipped), '']);

  const c = r.config;
  const rate = rs.filter((x) => typeof x.items_per_s === 'number').map((x) => x.items_per_s!);
  const perStep = typeof c.batch === 'number' ? (String(c.model).startsWith('vit') ? c.batch : c.batch * Number(c.seq ?? 1)) : NaN;
  const unit = String(c.model).startsWith('vit') ? 'images' : 'tokens';
  const timing = rate.length
    ? `<p>${unit}/s: median ${fmt(median(rate))} (min ${fmt(Math.min(...rate))}, max ${fmt(Math.max(...rate))}) over ${rate.length} logged intervals; ` +
      `step time ≈ ${fmt((1000 * perStep) / median(rate))} ms at ${perStep} ${unit} a step.</p>` : '<p>no timing logged yet</p>';
  const t = r.extra?.timing;
  const share = t ? `<p>After training, ${t.steps} steps of this configuration under ORT's profiler: median step ${fmt(t.stepMs)} ms; ` +
    `the optimizer's nodes take <b>${(100 * t.optimizerShare).toFixed(2)} %</b> of the kernel time.</p>`
    : '<p>The optimizer\'s share of a step: <code>ademamix bench train-step</code> (docs/benchmarks.md).</p>';

  let model = '';
  const e = r.extra;
  if (e?.sample) {
    model = `<h2>A sample from the model (step ${e.sample.step})</h2><pre class="sample"><b>${esc(e.sample.prompt)}</b>${esc(e.sample.text)}</pre>` +
      `<p>${fmt(e.sample.tokensPerSecond)} tokens/s; more with <code>ademamix sample --run &lt;this folder&gt;</code></p>`;
  } else if (e?.accuracy) {
    const a = e.accuracy;
    const head = a.classes.map((k) => `<th>${esc(k)}</th>`).join('');
    const body = a.confusion.map((row, i) => {
      const n = row.reduce((x, y) => x + y, 0) || 1;
      return `<tr><th>${esc(a.classes[i])}</th>${row.map((v, j) => `<td style="background:rgba(${i === j ? '40,140,60' : '200,60,40'},${(v / n).toFixed(3)})">${v}</td>`).join('')}</tr>`;
    }).join('');
    model = `<h2>Accuracy on the held-out images (step ${a.step})</h2><p>${(100 * a.accuracy).toFixed(2)} % of ${a.count}</p>` +
      `<table class="confusion"><caption>confusion matrix: true class (rows) × predicted (columns)</caption><tr><th></th>${head}</tr>${body}</table>`;
  }

  const cfgRows = Object.entries(c).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(typeof v === 'object' ? JSON.stringify(v) : String(v))}</td></tr>`).join('');
  return '<!doctype html><html><head><meta charset="utf-8">' +
    `<title>${esc(r.title)}</title>` + (r.live ? '<meta http-equiv="refresh" content="10">' : '') +
    '<style>body{font-family:sans-serif;margin:2em;max-width:1100px}svg{max-width:100%;height:auto;display:block;margin:1em 0}' +
    'table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}' +
    '.confusion td{text-align:right;min-width:2.5em}pre.sample{white-space:pre-wrap;background:#f6f6f6;padding:1em}</style></head><body>' +
    `<h1>${esc(r.title)}</h1><p>${r.live ? 'running…' : 'finished'}; step ${last?.step ?? 0} of ${esc(String(c.steps ?? '?'))}</p>` +
    `<h2>Metrics</h2><table><tr><th></th><th>final</th><th>best</th></tr>${rows.map((x) => `<tr><td>${x[0]}</td><td>${x[1]}</td><td>${x[2]}</td></tr>`).join('')}</table>` +
    `<h2>Plots</h2>${r.plots.map((p) => `<figure id="${esc(p.name)}">${p.svg.replace(/^<\?xml[^>]*>\s*/, '')}</figure>`).join('')}` +
    `<h2>Timing</h2>${timing}${share}${model}` +
    `<h2>Configuration</h2><table>${cfgRows}</table>` +
    '<p>Data beside this page: metrics.jsonl, config.json, checkpoints/.</p></body></html>\n';
}
