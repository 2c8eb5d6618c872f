/// <reference lib="dom" />
// The training page: loads the served graphs and state, trains step by step in onnxruntime-web (WASM; multi-threaded
// when the page is cross-origin isolated), plots the loss and the in-graph schedules live, samples text from the
// current weights and saves a checkpoint the runner resumes from.
// URL options: ?threads=N (WASM threads; default min(4, cores) when isolated, else 1), ?stop=N (pause after step N),
// ?autostart=1, ?sample=N (characters per sample, default 240).
// `window.ademamix` exposes the state for tests and the console.
import { drawChart, shortNumber, type Series } from './plot';
import { BrowserTrainer, ort, type StepRecord } from './trainer';

interface PageState {
  ready: boolean; running: boolean; step: number; records: StepRecord[]; evals: [number, number][];
  sample: string; samples: number; error?: string; threads: number; isolated: boolean; trainer?: BrowserTrainer;
  /** onnxruntime-web as the page loaded it (for the console and tests) */
  ort: typeof ort;
}

declare global { interface Window { ademamix: PageState } }

const q = new URLSearchParams(location.search);
const isolated = globalThis.crossOriginIsolated === true;
const threads = Math.max(1, Number(q.get('threads') ?? (isolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1)));
const stopAt = q.get('stop') === null ? Infinity : Number(q.get('stop'));
const sampleLength = Number(q.get('sample') ?? 240);
const S: PageState = { ready: false, running: false, step: 0, records: [], evals: [], sample: '', samples: 0, threads, isolated, ort };
window.ademamix = S;

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text = ''): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
};

function layout(): Record<string, HTMLElement> {
  const app = document.getElementById('app')!;
  app.textContent = '';
  const header = el('header');
  header.append(el('h1', {}, 'AdEMAMix in the browser'), el('span', { id: 'status', class: 'status' }, 'loading…'));
  const controls = el('section', { class: 'controls' });
  const train = el('button', { id: 'train', disabled: '' }, 'Train');
  const sample = el('button', { id: 'sample-button', disabled: '' }, 'Sample');
  const save = el('button', { id: 'save', disabled: '' }, 'Save checkpoint');
  const temp = el('input', { id: 'temperature', type: 'number', value: '0.8', min: '0', max: '2', step: '0.1' });
  const prompt = el('input', { id: 'prompt', type: 'text', value: 'Call me ', size: '16' });
  const tl = el('label', {}, 'temperature '); tl.append(temp);
  const pl = el('label', {}, 'prompt '); pl.append(prompt);
  controls.append(train, sample, save, tl, pl);
  const stats = el('section', { class: 'stats', id: 'stats' });
  const plots = el('section', { class: 'plots' });
  const loss = el('canvas', { id: 'loss-plot', class: 'plot' });
  const sched = el('canvas', { id: 'schedule-plot', class: 'plot' });
  plots.append(loss, sched);
  const sampleBox = el('section', { class: 'sample' });
  sampleBox.append(el('h2', {}, 'Sample from the current weights'), el('pre', { id: 'sample' }, '…'));
  const footer = el('footer', { id: 'about' });
  app.append(header, controls, stats, plots, sampleBox, footer);
  return { train, sample, save, temp, prompt, stats, loss, sched, footer, status: header.querySelector('#status')!, samplePre: sampleBox.querySelector('pre')! };
}

const E = layout();
const setStatus = (s: string, cls = ''): void => { E.status.textContent = s; E.status.className = `status ${cls}`; };

function fail(e: unknown): void {
  S.error = (e as Error).message ?? String(e);
  S.running = false;
  setStatus(S.error, 'error');
  E.train.textContent = 'Train';
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');

function renderStats(t: BrowserTrainer): void {
  const last = S.records[S.records.length - 1];
  const recent = S.records.slice(-10);
  const ms = recent.reduce((a, r) => a + r.ms, 0);
  const tps = ms > 0 ? recent.reduce((a, r) => a + r.tokens, 0) / (ms / 1000) : NaN;
  const cells: [string, string][] = [
    ['step', `${fmtInt(t.step)} / ${fmtInt(t.manifest.config.steps)}`],
    ['loss', last ? last.loss.toFixed(4) : '–'],
    ['val loss', S.evals.length ? S.evals[S.evals.length - 1][1].toFixed(4) : '–'],
    ['tokens/s', Number.isFinite(tps) ? fmtInt(tps) : '–'],
    ['ms/step', recent.length ? (ms / recent.length).toFixed(1) : '–'],
    ['WASM threads', `${S.threads}${S.isolated ? '' : ' (not isolated)'}`],
  ];
  for (const k of Object.keys(last?.metrics ?? {})) if (k !== 'skipped' && k !== 'grad_norm') cells.push([k === 'alpha' ? 'α' : k.replace('beta', 'β'), shortNumber(last!.metrics[k])]);
  if (last?.metrics.grad_norm !== undefined) cells.push(['grad norm', last.metrics.grad_norm.toFixed(3)]);
  E.stats.textContent = '';
  for (const [k, v] of cells) {
    const d = el('div', { class: 'stat', 'data-key': k });
    d.append(el('span', { class: 'k' }, k), el('span', { class: 'v' }, v));
    E.stats.append(d);
  }
}

const COLORS: Record<string, string> = { lr: '#1f77b4', alpha: '#d62728', beta3: '#2ca02c', beta1: '#2ca02c' };

function renderPlots(t: BrowserTrainer): void {
  const m = t.manifest;
  const x0 = m.step; const x1 = Math.max(x0 + 10, t.step);
  const loss = S.records.map((r) => [r.step, r.loss] as [number, number]);
  // exponential moving average, bias-corrected (so it does not start from 0 or lag the first steps)
  // (its memory grows with the run: ~n/20 steps, between 2 and 50)
  const beta = Math.min(0.98, Math.max(0.5, 1 - 20 / Math.max(loss.length, 1)));
  const ema: [number, number][] = []; let e = 0; let w = 0;
  for (const [x, y] of loss) { e = beta * e + (1 - beta) * y; w = beta * w + (1 - beta); ema.push([x, e / w]); }
  const series: Series[] = [{ label: 'train loss', color: '#9ecae1', points: loss, width: 1.5 }, { label: 'smoothed', color: '#08519c', points: ema }];
  const past = m.history.filter((r) => r.loss !== undefined).map((r) => [r.step, r.loss!] as [number, number]);
  const pastEval = m.history.filter((r) => r.eval_loss !== undefined).map((r) => [r.step, r.eval_loss!] as [number, number]);
  if (past.length) series.unshift({ label: 'earlier (runner)', color: '#9a9a9a', points: past, width: 1.5 });
  const evals = [...pastEval, ...S.evals];
  if (evals.length) series.push({ label: 'val loss', color: '#e6550d', points: evals, style: 'dots' });
  const from = past.length || pastEval.length ? 0 : x0;
  drawChart(E.loss as HTMLCanvasElement, series, { title: `loss (nats/token) · ${m.config.model} · ${m.config.optimizer}`, xLabel: 'step', x: [from, x1] });
  // schedules, each scaled to its peak over the run so they share an axis; the dashed lines are the planned curves
  const sched: Series[] = [];
  for (const [k, pts] of Object.entries(m.planned)) {
    const peak = Math.max(...pts.map((p) => Math.abs(p[1]))) || 1;
    const name = k === 'alpha' ? 'α' : k.replace('beta', 'β');
    sched.push({ label: `${name} (planned)`, color: COLORS[k] ?? '#555', points: pts.map(([s, v]) => [s, v / peak]), style: 'planned', noLegend: true });
    const earlier = m.history.filter((r) => typeof (r as unknown as Record<string, unknown>)[k] === 'number')
      .map((r) => [r.step, (r as unknown as Record<string, number>)[k] / peak] as [number, number]);
    sched.push({ label: `${name} / ${shortNumber(peak)}`, color: COLORS[k] ?? '#555', points: [...earlier, ...S.records.map((r) => [r.step, r.metrics[k] / peak] as [number, number])], width: 3 });
  }
  drawChart(E.sched as HTMLCanvasElement, sched, { title: 'schedules: train.onnx outputs (solid), planned (dashed), over peak', xLabel: 'step', x: [0, m.config.steps], yInclude: [0, 1] });
}

let renderQueued = false;
function render(t: BrowserTrainer): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderStats(t); renderPlots(t); });
}

async function doSample(t: BrowserTrainer): Promise<void> {
  const temp = Number((E.temp as HTMLInputElement).value);
  const text = await t.sample((E.prompt as HTMLInputElement).value, sampleLength, Number.isFinite(temp) ? temp : 0.8, t.step);
  S.sample = text; S.samples++;
  E.samplePre.textContent = text;
  E.samplePre.dataset.step = String(t.step);
}

const yieldToPage = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

async function trainLoop(t: BrowserTrainer): Promise<void> {
  const c = t.manifest.config;
  S.running = true; E.train.textContent = 'Pause'; setStatus('training');
  try {
    while (S.running && t.step < Math.min(c.steps, stopAt)) {
      const r = await t.trainStep();
      S.records.push(r); S.step = t.step;
      if (c.evalEvery > 0 && (t.step % c.evalEvery === 0 || t.step === c.steps)) S.evals.push([t.step, await t.evaluate()]);
      if (c.evalEvery > 0 && t.step % c.evalEvery === 0) await doSample(t);
      render(t);
      await yieldToPage();
    }
    const done = t.step >= c.steps;
    S.running = false; E.train.textContent = 'Train';
    if ((done || t.step >= stopAt) && S.evals[S.evals.length - 1]?.[0] !== t.step) {
      S.evals.push([t.step, await t.evaluate()]);
      render(t);
    }
    await doSample(t);
    setStatus(done ? `finished ${fmtInt(t.step)} steps` : `paused at step ${fmtInt(t.step)}`);
  } catch (e) { fail(e); }
}

function save(t: BrowserTrainer): void {
  const bytes = t.checkpoint();
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const a = el('a', { href: url, download: t.checkpointName });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  setStatus(`saved ${t.checkpointName} (resume: npx ademamix train --resume ${t.checkpointName})`);
}

async function main(): Promise<void> {
  const t = await BrowserTrainer.load(new URL('/api/', location.href).href, threads);
  S.trainer = t; S.step = t.step;
  const m = t.manifest;
  const o = m.config;
  const hyper = Object.entries(m.optimizer).filter(([k, v]) => k !== 'kind' && k !== 'lr' && (typeof v === 'number' || typeof v === 'boolean'))
    .map(([k, v]) => `${k} ${String(v)}`).join(', ');
  E.footer.textContent = `${m.describe}. ${o.optimizer}: lr ${o.lr} (${o.decay}, warmup ${o.warmup}), ${hyper}; ` +
    `batch ${o.batch} × ${o.seq}, ${o.steps} steps. State: ${m.source}` +
    `${m.step ? ` (step ${m.step})` : ''}. onnxruntime-web WASM, ${threads} thread${threads > 1 ? 's' : ''}.`;
  E.train.addEventListener('click', () => {
    if (S.running) { S.running = false; return; }
    void trainLoop(t);
  });
  E.sample.addEventListener('click', () => { doSample(t).catch(fail); });
  E.save.addEventListener('click', () => { try { save(t); } catch (e) { fail(e); } });
  for (const b of [E.train, E.sample, E.save]) b.removeAttribute('disabled');
  window.addEventListener('resize', () => render(t));
  render(t);
  S.ready = true;
  setStatus(`ready at step ${fmtInt(t.step)}`);
  if (q.get('autostart') === '1') void trainLoop(t);
}

main().catch(fail);
