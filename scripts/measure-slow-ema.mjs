// The m2 measurement behind the --states 8bit default (docs/results.md): per-block relative error of AdEMAMix's slow
// EMA after N steps at β3 = 0.9999, per storage choice, against fp32. Needs the built dist/ and op library.
// usage: node scripts/measure-slow-ema.mjs [steps] [elements]
import { createRequire } from 'node:module';
import * as path from 'node:path';
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { measureSlowEma } = createRequire(import.meta.url)(path.join(root, 'dist/index.js'));
const steps = Number(process.argv[2] ?? 10000); const n = Number(process.argv[3] ?? 32768);
const cases = [
  { states: 'm2=8bit', sr: false }, { states: 'm2=8bit', sr: true },
  { states: 'm2=bf16', sr: false }, { states: 'm2=bf16', sr: true },
  { states: '8bit', sr: false }, { states: '8bit', sr: true },
];
const r = measureSlowEma({ n, steps, beta3: 0.9999, seed: 3, threads: 1, mean: 0.05, noise: 1 }, cases);
console.log(JSON.stringify({ date: new Date().toISOString(), steps, n, beta3: 0.9999, mean: 0.05, noise: 1, results: r }, null, 1));
