// `experiment family` (issue 19): the lr choice with its edge extension on made-up losses, the plan's equal token
// budget, and --quick end to end through the pool's worker processes: every variant × both batches give results, the
// figures and the table exist, and a second invocation trains nothing and writes byte-identical outputs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  beta3For, cells, configHash, familyCommand, familyConfig, familyPlan, fillBlocks, logGrid, stateBytes, verdicts, type FamilyReport,
} from '../src/experiments/family';
import { lrChoice } from '../src/experiments/summary';

const CLI = path.resolve(__dirname, '../dist/cli.js');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'family-test-'));

describe('lr choice', () => {
  const pts = (lrs: number[], ls: (number | null)[]): { lr: number; evalLoss: number | null }[] => lrs.map((lr, i) => ({ lr, evalLoss: ls[i] }));
  const grid = [1e-4, 3e-4, 1e-3, 3e-3];

  test('a best inside the grid is the pick, no extension', () => {
    const c = lrChoice(pts(grid, [2.0, 1.8, 1.9, 2.5]));
    expect(c).toEqual({ best: 1, bestLr: 3e-4 });
  });

  test('a best on the high edge extends one grid step up (geometric), on the low edge one step down', () => {
    const hi = lrChoice(pts(grid, [2.4, 2.2, 2.0, 1.9]));
    expect(hi.edge).toBe('high'); expect(hi.bestLr).toBe(3e-3); expect(hi.next).toBe(0.009);
    const lo = lrChoice(pts(grid, [1.7, 1.8, 2.0, 2.4]));
    expect(lo.edge).toBe('low'); expect(lo.next).toBe(3.33e-5); // 1e-4² / 3e-4, 3 significant digits
  });

  test('unsorted input; diverged points (null, NaN, ∞) never win; all diverged: no extension', () => {
    const c = lrChoice(pts([3e-3, 1e-4, 1e-3, 3e-4], [null, 2.0, NaN, 1.9]));
    expect(c.bestLr).toBe(3e-4); expect(c.next).toBeUndefined(); // 3e-4 is inside: 1e-3 and 3e-3 diverged
    expect(lrChoice(pts(grid, [null, null, Infinity, null])).next).toBeUndefined();
    // a diverged high edge next to the best: the best is inside, not an edge
    expect(lrChoice(pts(grid, [2.4, 2.2, 2.0, null])).next).toBeUndefined();
  });

  test('after an extension the choice moves on: a new point that loses stops the extension', () => {
    const ext = pts([...grid, 0.009], [2.4, 2.2, 2.0, 1.9, 2.1]);
    expect(lrChoice(ext)).toEqual({ best: 3, bestLr: 3e-3 });
  });
});

test('fillBlocks replaces the generated blocks of docs/results.md and leaves the rest (and unknown blocks) alone', () => {
  const md = 'a\n<!-- family:table -->\nold\n<!-- /family:table -->\nb <!-- family:runs -->x<!-- /family:runs --> <!-- family:other -->y<!-- /family:other -->\n';
  const once = fillBlocks(md, { table: '| t |', runs: '96 runs' });
  expect(once).toBe('a\n<!-- family:table -->\n| t |\n<!-- /family:table -->\nb <!-- family:runs -->\n96 runs\n<!-- /family:runs --> <!-- family:other -->y<!-- /family:other -->\n');
  expect(fillBlocks(once, { table: '| t |', runs: '96 runs' })).toBe(once); // idempotent: a rerun rewrites the same text
});

describe('plan', () => {
  test('both batch sizes see the same tokens: the small batch (8× smaller) takes 8× the steps, the same eval tokens', () => {
    for (const quick of [false, true]) {
      const p = familyPlan({ quick });
      const [s, l] = p.batches;
      expect(l.batch / s.batch).toBeGreaterThanOrEqual(8);
      expect(s.steps * s.batch * p.seq).toBe(p.tokens);
      expect(l.steps * l.batch * p.seq).toBe(p.tokens);
      expect(s.steps / l.steps).toBe(l.batch / s.batch);
      expect(s.evalBatches * s.batch).toBe(l.evalBatches * l.batch);
      expect(s.steps / s.evalEvery).toBe(l.steps / l.evalEvery);
    }
    expect(() => familyPlan({ tokens: 1000 })).toThrow(/multiple of/);
  });

  test('the full plan: 8 variants, ≥4-point log grids, 3 seeds, the papers\' settings', () => {
    const p = familyPlan();
    expect(p.model).toBe('gpt-mini');
    expect(p.variants.map((v) => v.id)).toEqual(['adamw', 'sf-adamw', 'laprop', 'ademamix', 'ademamix-b0', 'simplified', 'lion', 'mars']);
    for (const v of p.variants) for (const b of p.batches) expect(v.grid[b.id].length).toBeGreaterThanOrEqual(4);
    expect(p.seeds).toHaveLength(3);
    expect(logGrid(3e-4)).toEqual([3e-4, 9.5e-4, 3e-3, 9.5e-3]);
    const [small, large] = p.batches;
    const cfg = (id: string, b = small, lr = 1e-3): ReturnType<typeof familyConfig> => familyConfig(p, p.variants.find((v) => v.id === id)!, b, lr, 0);
    expect(cfg('adamw')).toMatchObject({ decay: 'cosine', minLrRatio: 0.1, weightDecay: 0.1 });
    expect(cfg('sf-adamw').decay).toBe('constant');
    expect(cfg('ademamix-b0').beta1).toBe(0);
    expect(cfg('lion').weightDecay / cfg('adamw').weightDecay).toBeCloseTo(3, 10);
    expect(Math.max(...p.variants.find((v) => v.id === 'lion')!.grid.small)).toBeLessThan(Math.max(...p.variants.find((v) => v.id === 'adamw')!.grid.small) / 3);
    expect(cfg('simplified', large).alpha!).toBeLessThan(cfg('simplified', small).alpha!); // α shrinks as the batch grows
    expect(cfg('simplified').hyper).toEqual({ betaMin: 0.9 });
    expect(cfg('ademamix').beta3).toBe(beta3For(small.steps));
    // state bytes: AdEMAMix 3 slots, β1 = 0 and Simplified two (AdamW's), Lion one, MARS three
    expect(stateBytes(cfg('ademamix')).state).toBe(12);
    expect(stateBytes(cfg('ademamix-b0')).state).toBe(8);
    expect(stateBytes(cfg('simplified')).state).toBe(8);
    expect(stateBytes(cfg('adamw')).state).toBe(8);
    expect(stateBytes(cfg('lion')).state).toBe(4);
    expect(stateBytes(cfg('mars')).state).toBe(12);
    // the cache key: the full config (the lr, the seed, the threads) and nothing else
    expect(configHash(cfg('adamw'))).toBe(configHash(cfg('adamw')));
    expect(configHash(cfg('adamw'))).not.toBe(configHash(cfg('adamw', small, 2e-3)));
    expect(configHash(cfg('adamw'))).not.toBe(configHash({ ...cfg('adamw'), threads: 2 }));
    expect(configHash({ ...cfg('adamw'), beta3: undefined })).toBe(configHash(cfg('adamw')));
    // no undefined fields (the validator rejects them for typed settings), no AdEMAMix defaults on other optimizers
    for (const v of p.variants) for (const b of p.batches) {
      const c = familyConfig(p, v, b, 1e-3, 0);
      expect(Object.values(c).every((x) => x !== undefined)).toBe(true);
      if (v.optimizer === 'adamw') { expect('alpha' in c).toBe(false); expect('beta3' in c).toBe(false); }
    }
  });
});

describe('experiment family --quick (end to end, worker processes)', () => {
  const out = tmp();
  const plan = familyPlan({ quick: true });
  let first: FamilyReport;
  const read = (): Record<string, string> => Object.fromEntries(first.files.map((f) => [f, fs.readFileSync(path.join(out, f), 'utf8')]));
  let before: Record<string, string>;

  test('every variant × both batches: a sweep, seeds at the pick, a table row, figures', async () => {
    const log: string[] = [];
    first = await familyCommand({ plan, out, jobs: 2, reuse: true, entry: CLI, docs: path.join(out, 'docs'), log: (s) => log.push(s) });
    expect(first.failed).toBe(0);
    const nGrid = plan.variants.reduce((a, v) => a + v.grid.small.length + v.grid.large.length, 0);
    expect(first.newRuns).toBe(nGrid + plan.variants.length * 2 * (plan.seeds.length - 1));
    expect(first.reused).toBe(0);
    for (const b of plan.batches) {
      for (const v of plan.variants) {
        const rs = first.rows.filter((r) => r.variant === v.id && r.batch === b.id);
        expect(rs.filter((r) => r.phase === 'sweep').map((r) => r.lr).sort()).toEqual([...v.grid[b.id]].sort());
        const lr = first.chosen[v.id][b.id];
        expect(v.grid[b.id]).toContain(lr);
        expect(rs.filter((r) => r.lr === lr).map((r) => r.seed).sort()).toEqual(plan.seeds);
        for (const r of rs) {
          expect(r.tokens).toBe(plan.tokens);
          expect(r.steps * r.batchSize * plan.seq).toBe(plan.tokens);
          if (r.status === 'done') { expect(r.curve.tokens[r.curve.tokens.length - 1]).toBe(plan.tokens); expect(r.evalLoss).not.toBeNull(); }
        }
      }
    }
    const cs = cells(plan, first.rows);
    expect(cs).toHaveLength(plan.variants.length * 2);
    for (const c of cs) expect(c.n).toBeGreaterThan(0);
    expect(first.files).toEqual(expect.arrayContaining(['results.jsonl', 'summary.md', 'family-small-val-loss.svg', 'family-large-val-loss.svg', 'family-beta1-zero.svg', 'family-small-sweep.svg']));
    for (const f of first.files) {
      expect(fs.existsSync(path.join(out, 'docs', f))).toBe(true);
      if (f.endsWith('.svg')) expect(fs.readFileSync(path.join(out, f), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    }
    const jsonl = fs.readFileSync(path.join(out, 'results.jsonl'), 'utf8').trim().split('\n');
    expect(jsonl).toHaveLength(first.rows.length);
    const md = fs.readFileSync(path.join(out, 'summary.md'), 'utf8');
    for (const v of plan.variants) for (const b of plan.batches) expect(md).toMatch(new RegExp(`\\| ${v.label.replace(/[().=]/g, '\\$&')} \\| ${b.id} ${b.batch}×`));
    expect(md).toMatch(/AdEMAMix is best at small batch: (holds|holds within noise|does not hold)/);
    expect(md).toMatch(/Simplified-AdEMAMix matches AdEMAMix at both batch sizes: (holds|does not hold)/);
    expect(md).toMatch(/At large batch the differences shrink: (holds|does not hold)/);
    expect(verdicts(plan, cs)).toHaveLength(4);
    before = read();
  }, 240_000); // ~25 s on a quiet 2-core machine

  test('the cache: a second invocation trains nothing and writes the same outputs; a lost entry is retrained alone', async () => {
    const again = await familyCommand({ plan, out, jobs: 2, reuse: true, entry: CLI, log: () => undefined });
    expect(again.newRuns).toBe(0);
    expect(again.reused).toBe(first.rows.length);
    expect(read()).toEqual(before);
    // an interrupted study: one run's entry gone → only that run is trained again (in this process: --jobs 1), to
    // the same losses; only its measured times (ms per step, wall) differ, so the figures are the same
    fs.rmSync(path.join(out, 'cache', first.rows[3].hash), { recursive: true });
    const resumed = await familyCommand({ plan, out, jobs: 1, reuse: true, log: () => undefined });
    expect(resumed.newRuns).toBe(1);
    const now = read();
    const untimed = (jsonl: string): unknown[] => jsonl.trim().split('\n').map((l) => ({ ...JSON.parse(l), msPerStep: 0, wallS: 0 }));
    expect(untimed(now['results.jsonl'])).toEqual(untimed(before['results.jsonl']));
    for (const f of first.files.filter((x) => x.endsWith('.svg'))) expect(now[f]).toBe(before[f]);
  }, 120_000);

  test('the sweep loop extends a winning edge (one more run per extension, then the seeds at the pick)', async () => {
    // a 2-point grid always wins at an edge, so with one extension allowed each batch gets a third lr past it
    const p = { ...familyPlan({ quick: true, variants: ['adamw'], seeds: 2 }), maxExtend: 1 };
    const r = await familyCommand({ plan: p, out: tmp(), jobs: 2, reuse: true, entry: CLI, log: () => undefined });
    expect(r.failed).toBe(0);
    for (const b of p.batches) {
      const sw = r.rows.filter((x) => x.batch === b.id && x.phase === 'sweep').map((x) => ({ lr: x.lr, evalLoss: x.evalLoss }));
      expect(sw).toHaveLength(3);
      const grid = p.variants[0].grid[b.id];
      const first = lrChoice(sw.filter((x) => grid.includes(x.lr)));
      expect(sw.map((x) => x.lr)).toContain(first.next);
      expect(r.chosen.adamw[b.id]).toBe(lrChoice(sw).bestLr);
      expect(r.rows.filter((x) => x.batch === b.id && x.phase === 'seed').map((x) => [x.lr, x.seed])).toEqual([[r.chosen.adamw[b.id], 1]]);
    }
  }, 120_000);

  test('CLI: usage errors in one line, --help lists family', () => {
    const run = (...a: string[]): { code: number; err: string; out: string } => {
      try { return { code: 0, out: execFileSync('node', [CLI, ...a], { encoding: 'utf8', stdio: 'pipe' }), err: '' }; } catch (e) {
        const x = e as { status: number; stderr: string; stdout: string };
        return { code: x.status, err: x.stderr, out: x.stdout };
      }
    };
    expect(run('experiment', '--help').out).toMatch(/experiment family \[--quick\]/);
    for (const [args, msg] of [
      [['--jobs', '0'], /--jobs must be a positive integer/], [['--tokens', '1000'], /multiple of/],
      [['--variants', 'adamw,sgd'], /unknown variant sgd/], [['--variants', 'lion'], /must include adamw/], [['--bogus'], /unknown option --bogus/],
    ] as [string[], RegExp][]) {
      const r = run('experiment', 'family', '--quick', '--out', path.join(out, 'x'), ...args);
      expect(r.code).not.toBe(0);
      expect(r.err.trim().split('\n')[0]).toMatch(msg);
    }
  });
});
