// The gpt-mini state-precision runs (docs/results.md, "Optimizer state precision"): reads the run directories
// <dir>/<optimizer>-<precision>/metrics.jsonl, prints the final validation losses against fp32 and writes the
// validation-loss curves as SVG. Needs the built dist/.
// usage: node scripts/state-precision-report.mjs <runs dir> <out dir>
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { linePlotSvg } = createRequire(import.meta.url)(path.join(root, 'dist/index.js'));
const [runs, out] = process.argv.slice(2);
const opts = ['ademamix', 'adamw']; const precs = ['fp32', 'bf16', '8bit', '8bit-m2fp32'];
const read = (d) => fs.readFileSync(path.join(runs, d, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const rows = [];
fs.mkdirSync(out, { recursive: true });
for (const o of opts) {
  const series = [];
  let base;
  for (const p of precs) {
    const d = `${o}-${p}`;
    if (!fs.existsSync(path.join(runs, d, 'metrics.jsonl'))) continue;
    const ev = read(d).filter((r) => r.eval_loss !== undefined);
    const fin = ev[ev.length - 1];
    if (p === 'fp32') base = fin.eval_loss;
    rows.push({ optimizer: o, states: p, step: fin.step, eval_loss: fin.eval_loss, vs_fp32: base ? fin.eval_loss / base - 1 : null });
    series.push({ name: `${o} ${p}`, x: ev.map((r) => r.step), y: ev.map((r) => r.eval_loss), dashed: p.startsWith('8bit') });
  }
  fs.writeFileSync(path.join(out, `state-precision-${o}.svg`), linePlotSvg(series, {
    title: `gpt-mini, ${o}: validation loss by optimizer-state precision`, xLabel: 'step', yLabel: 'validation loss (nats/char)',
  }));
  // the second half, where the precisions would part
  const late = series.map((x) => { const k = x.x.findIndex((st) => st >= 1000); return { ...x, x: x.x.slice(k), y: x.y.slice(k) }; });
  fs.writeFileSync(path.join(out, `state-precision-${o}-late.svg`), linePlotSvg(late, {
    title: `gpt-mini, ${o}: validation loss, steps 1000-2000`, xLabel: 'step', yLabel: 'validation loss (nats/char)',
  }));
}
console.log(JSON.stringify(rows, null, 1));
