// The loaders' fuzzing (test/fuzz/): every kept input — the regressions (inputs that once gave a TypeError, a
// RangeError from a length field, a multi-line message or an out-of-memory abort) and the corpus the fuzzer grew —
// gives one clear error naming the file; the same files through the real `ademamix` command end with exit code 1 and
// one line; and the engine finds a planted bug that only coverage guidance reaches (so a quiet pass means something).
// The timed fuzz pass itself runs in .ci/run (`node scripts/fuzz.mjs --seconds 4`).
import { spawnSync } from 'node:child_process';
import { buildSync } from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { judge, readCorpus, type FuzzTarget } from './fuzz/engine';
import { makeFixture, makeTargets, type Fixture } from './fuzz/targets';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const kept = (kind: 'regressions' | 'corpus', target: string): Uint8Array[] => readCorpus(path.join(ROOT, 'test', 'fuzz', kind, target));

let fx: Fixture;
let targets: FuzzTarget[];
beforeAll(async () => { fx = await makeFixture(); targets = makeTargets(fx); });
afterAll(() => { if (fx) fs.rmSync(fx.dir, { recursive: true, force: true }); });

describe('kept fuzz inputs', () => {
  test('every target has a corpus, and the regressions cover the loaders that had findings', () => {
    for (const t of targets) expect([t.name, kept('corpus', t.name).length > 0]).toEqual([t.name, true]);
    for (const t of ['safetensors', 'checkpoint', 'onnx', 'png', 'image-arrays', 'config', 'manifest']) {
      expect([t, kept('regressions', t).length > 0]).toEqual([t, true]);
    }
  });

  test.each(['safetensors', 'checkpoint', 'resume', 'addon', 'onnx', 'png', 'image-arrays', 'text', 'config', 'manifest'])('%s: each gives a clear error or runs', (name) => {
    const t = targets.find((x) => x.name === name)!;
    const bad: string[] = [];
    for (const input of [...kept('regressions', name), ...kept('corpus', name)]) {
      const f = judge(t, input);
      if (f) bad.push(`${f.kind}: ${f.message}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('bad files through the command line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-fuzz-cli-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const first = (kind: string, target: string): string => {
    const f = path.join(ROOT, 'test', 'fuzz', kind, target);
    return path.join(f, fs.readdirSync(f).sort()[0]);
  };
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ADEMAMIX_DEBUG: '' } });
  const oneLine = (r: ReturnType<typeof run>, file: string): void => {
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(file);
    expect(r.stderr).not.toMatch(/\n\s+at |TypeError|Cannot read/);
  };

  test('train --resume with a corrupt checkpoint, sample with a damaged one', () => {
    const ck = path.join(dir, 'step-0000009.safetensors');
    fs.copyFileSync(first('regressions', 'checkpoint'), ck);
    oneLine(run(['train', '--resume', ck, '--steps', '2']), ck);
    fs.mkdirSync(path.join(dir, 'run', 'checkpoints'), { recursive: true });
    const ck2 = path.join(dir, 'run', 'checkpoints', 'step-0000004.safetensors');
    fs.copyFileSync(first('regressions', 'safetensors'), ck2);
    oneLine(run(['sample', '--run', path.join(dir, 'run'), '--tokens', '4']), ck2);
  });

  test('export --onnx with a damaged model, train --config with a broken file', () => {
    const m = path.join(dir, 'model.onnx');
    fs.copyFileSync(first('regressions', 'onnx'), m);
    oneLine(run(['export', '--onnx', m, '--loss', 'ce:labels@logits', '--out', path.join(dir, 'out')]), m);
    const c = path.join(dir, 'config.json');
    fs.copyFileSync(first('regressions', 'config'), c);
    const r = run(['train', '--config', c]);
    expect(r.status).toBe(2); // a usage error: the file is an argument
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(c);
  });

  test('train on an image folder with a corrupt PNG', () => {
    const imgs = path.join(dir, 'imgs');
    for (const cls of ['a', 'b']) fs.mkdirSync(path.join(imgs, cls), { recursive: true });
    const bad = path.join(imgs, 'a', 'x.png');
    fs.copyFileSync(first('regressions', 'png'), bad);
    fs.copyFileSync(first('regressions', 'png'), path.join(imgs, 'b', 'y.png'));
    oneLine(run(['train', '--model', 'vit-tiny', '--data', imgs, '--steps', '1', '--out', path.join(dir, 'vit')]), bad);
  });
});

test('the engine finds a bug only coverage guidance reaches', () => {
  // in a process of its own (test/fuzz/planted.ts says why), bundled as scripts/fuzz.mjs bundles the loaders' fuzzer
  const outfile = path.join(ROOT, 'build', 'fuzz-js', 'fuzz-planted.js');
  buildSync({ entryPoints: [path.join(ROOT, 'test', 'fuzz', 'planted.ts')], outfile, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning' });
  const r = spawnSync(process.execPath, [outfile], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  const s = JSON.parse(r.stdout) as { findings: string[]; corpus: number; execs: number; seconds: number };
  expect(s.findings).toEqual(['TypeError: planted']);
  expect(s.corpus).toBeGreaterThanOrEqual(3); // each deeper comparison became a corpus entry
  console.log(`planted bug found after ${s.execs} inputs (${s.seconds.toFixed(1)} s), corpus ${s.corpus}`);
});
