// report.html as a user opens it: one self-contained page, rendered by a real Chromium (Debian's, driven by
// playwright-core) from file:// with the network off, every plot and figure present, no console errors, not blank.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { decodePng } from '../src/data/images';

const CLI = path.resolve(__dirname, '../dist/cli.js');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const CHROMIUM = '/usr/bin/chromium';
let dir: string; let browser: Browser;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'report-test-'));
  const runs: [string, string[]][] = [
    ['gpt', ['--override', 'nLayer=1,nEmbd=32,nHead=2', '--seq', '16', '--batch', '8', '--steps', '120', '--eval-every', '40', '--track-batches', '2']],
    ['vit', ['--model', 'vit-tiny', '--data', 'mnist', '--steps', '60', '--eval-every', '30']],
  ];
  for (const [name, args] of runs) {
    const r = cli(['train', ...args, '--threads', '2', '--quiet', '--out', path.join(dir, name)]);
    if (r.status !== 0) throw new Error(`train ${name}: ${r.stderr}`);
  }
  // the test fails, not skips, without a browser
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 240_000);
afterAll(async () => { await browser?.close(); fs.rmSync(dir, { recursive: true, force: true }); });

async function open(run: string): Promise<{ errors: string[]; requests: string[]; shot: Buffer; text: string; figures: number[]; confusion: number[][] }> {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 1400 }, offline: true });
  const page = await ctx.newPage();
  const errors: string[] = []; const requests: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => { if (!r.url().endsWith('report.html')) requests.push(r.url()); });
  await page.goto(`file://${path.join(dir, run, 'report.html')}`);
  // the first screenful (1100×1400): the full page (≈ 3300 px tall) is past decodePng's 2048-pixel side limit
  const shot = await page.screenshot();
  const text = await page.innerText('body');
  // polyline points drawn in each inline figure
  const figures = await page.$$eval('figure', (fs) => fs.map((f) => f.querySelectorAll('polyline, path').length));
  const confusion = await page.$$eval('table.confusion tr', (rows) => rows.slice(1).map((r) => Array.from(r.querySelectorAll('td'), (td) => Number((td as { textContent: string | null }).textContent))));
  await ctx.close();
  return { errors, requests, shot, text, figures, confusion };
}

/** Fraction of pixels that are not (near) white, and how many distinct colours: a blank page has ~0 and 1. */
function ink(png: Buffer): { inked: number; colours: number } {
  const im = decodePng(png, 'screenshot');
  const n = im.width * im.height; let inked = 0; const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = im.data[i]; const g = im.data[n + i]; const b = im.data[2 * n + i];
    if (r + g + b < 2.85) inked++;
    seen.add(Math.round(r * 31) * 1024 + Math.round(g * 31) * 32 + Math.round(b * 31));
  }
  return { inked: inked / n, colours: seen.size };
}

test('a GPT run\'s report: metrics, loss/schedules/grad-norm/forgetting inline, timing, a sample, the config', async () => {
  const r = await open('gpt');
  expect(r.errors).toEqual([]);
  expect(r.requests).toEqual([]); // self-contained: nothing else is loaded
  expect(r.figures.length).toBe(4);
  for (const n of r.figures) expect(n).toBeGreaterThan(0);
  expect(r.text).toMatch(/validation loss\t\d\.\d+ \(step 120\)\t\d\.\d+ \(step \d+\)/);
  expect(r.text).toMatch(/tokens\/s: median [\d.e+]+ .* step time ≈ [\d.]+ ms at 128 tokens a step/);
  expect(r.text).toMatch(/A sample from the model \(step 120\)/);
  const share = /8 steps of this configuration under ORT's profiler: median step [\d.]+ ms; the optimizer's nodes take (\d+\.\d\d) % of the kernel time/.exec(r.text);
  expect(share).not.toBeNull();
  console.log(`report: optimizer share ${share![1]} %`);
  expect(Number(share![1])).toBeGreaterThan(0); // the fused optimizer nodes were found in the profile
  // a share of the time, so at most all of it; how small it is is a speed figure (measured 2026-12-02: 8.53 % and
  // 3.20 % in two runs) and belongs in the benchmarks, not here (the old bound asserted < 50 %)
  expect(Number(share![1])).toBeLessThanOrEqual(100);
  expect(r.text).toMatch(/optimizer\tademamix/);
  const { inked, colours } = ink(r.shot);
  // not blank (a blank page: 0 and 1): measured 2026-12-02 on the first screenful: 0.027 of the pixels, 236 colours
  expect(inked).toBeGreaterThan(0.008);
  expect(colours).toBeGreaterThan(20);
});

test('a ViT run\'s report: held-out accuracy and a confusion matrix over every test image', async () => {
  const r = await open('vit');
  expect(r.errors).toEqual([]);
  expect(r.figures.length).toBe(3);
  const m = /Accuracy on the held-out images \(step 60\)\s+([\d.]+) % of (\d+)/.exec(r.text);
  expect(m).not.toBeNull();
  expect(r.confusion.length).toBe(10);
  const total = r.confusion.flat().reduce((a, b) => a + b, 0);
  expect(total).toBe(Number(m![2]));
  const diag = r.confusion.reduce((a, row, i) => a + row[i], 0);
  // the page prints the accuracy with toFixed(2): at most half a unit of the last digit off (measured 2026-12-02: 0.0027)
  expect(Math.abs((100 * diag) / total - Number(m![1]))).toBeLessThanOrEqual(0.005 + 1e-9);
  expect(ink(r.shot).inked).toBeGreaterThan(0.008); // measured 2026-12-02: 0.024
});
