// Driving the training page in a real headless Chromium (Debian's `chromium` package) through playwright-core, for
// the browser test and `ademamix web --bench`. playwright-core is a dev dependency: loaded only here, on demand.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { StepRecord } from './page/trainer';

/** Headless, no sandbox (root in CI), no GPU, and nothing that reaches the network on its own. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-dev-shm-usage', '--disable-default-apps', '--disable-extensions', '--no-default-browser-check'];

/** $CHROMIUM_PATH, else Debian's /usr/bin/chromium; an error naming the install command when neither exists. */
export function chromiumPath(): string {
  const p = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!fs.existsSync(p)) throw new Error(`Chromium not found at ${p}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  return p;
}

export interface Chromium { context: BrowserContext; close(): Promise<void> }

/** A headless Chromium with a fresh, throw-away profile. */
export async function launchChromium(): Promise<Chromium> {
  const executablePath = chromiumPath();
  let pw: typeof import('playwright-core');
  try { pw = require('playwright-core'); } catch {
    throw new Error('playwright-core is not installed (it is a dev dependency: run `npm install` in the package)');
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-chromium-'));
  try {
    const context = await pw.chromium.launchPersistentContext(profile, {
      executablePath, headless: true, args: CHROMIUM_ARGS, acceptDownloads: true, viewport: { width: 1280, height: 900 },
    });
    return { context, close: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); } };
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}

/** What the page reports after training (window.ademamix). */
export interface PageRun {
  records: StepRecord[]; evals: [number, number][]; sample: string; step: number; threads: number; isolated: boolean; error?: string;
}

export interface PageProblems { console: string[] }

/** Opens the page and records console errors and warnings, uncaught exceptions, failed requests and HTTP errors. */
export async function openPage(ctx: BrowserContext, url: string): Promise<{ page: Page; problems: PageProblems }> {
  const page = await ctx.newPage();
  const problems: PageProblems = { console: [] };
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.console.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.console.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => problems.console.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on('response', (r) => { if (r.status() >= 400) problems.console.push(`HTTP ${r.status()}: ${r.url()}`); });
  await page.goto(url);
  await page.waitForFunction(() => window.ademamix?.ready === true || window.ademamix?.error !== undefined, undefined, { timeout: 60_000 });
  const err = await page.evaluate(() => window.ademamix.error);
  if (err) throw new Error(`the page failed to load: ${err}`);
  return { page, problems };
}

/** Clicks Train and waits until the page has paused (at ?stop=N) and shown its sample. */
export async function trainInPage(page: Page, timeoutMs = 120_000): Promise<PageRun> {
  const before = await page.evaluate(() => window.ademamix.samples);
  await page.click('#train');
  await page.waitForFunction((n) => (!window.ademamix.running && window.ademamix.samples > n) || window.ademamix.error !== undefined, before,
    { timeout: timeoutMs, polling: 100 });
  const run = await page.evaluate(() => {
    const s = window.ademamix;
    return { records: s.records, evals: s.evals, sample: s.sample, step: s.step, threads: s.threads, isolated: s.isolated, error: s.error };
  });
  if (run.error) throw new Error(`training in the page failed: ${run.error}`);
  return run;
}
