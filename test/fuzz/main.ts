// `node scripts/fuzz.mjs [--target NAME …] [--seconds N] [--update-corpus] [--replay]`: the loaders' fuzz pass.
// First every kept input (test/fuzz/regressions/<target>/, then test/fuzz/corpus/<target>/) is replayed and judged;
// then each target is fuzzed for --seconds. Findings are written to build/fuzz-findings/ and end the run with exit 1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fuzz, judge, readCorpus, type Finding } from './engine';
import { makeFixture, makeTargets } from './targets';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', multiple: true }, seconds: { type: 'string', default: '10' },
      'update-corpus': { type: 'boolean', default: false }, replay: { type: 'boolean', default: false },
      seed: { type: 'string', default: '1' }, input: { type: 'string', multiple: true }, root: { type: 'string', default: process.cwd() },
    },
  });
  const root = values.root!;
  const fx = await makeFixture();
  const all = makeTargets(fx);
  const names = values.target ?? all.map((t) => t.name);
  const unknown = names.filter((n) => !all.some((t) => t.name === n));
  if (unknown.length) { process.stderr.write(`fuzz: unknown target ${unknown.join(', ')} (have ${all.map((t) => t.name).join(', ')})\n`); return 2; }
  const findingsDir = path.join(root, 'build', 'fuzz-findings');
  const findings: Finding[] = [];
  const summary: Record<string, unknown>[] = [];
  const log = (s: string): void => { process.stderr.write(`${s}\n`); };
  try {
    for (const t of all.filter((x) => names.includes(x.name))) {
      const corpusDir = path.join(root, 'test', 'fuzz', 'corpus', t.name);
      // kept inputs first: each regression is a past finding that must now give a clear error
      const kept = [...readCorpus(path.join(root, 'test', 'fuzz', 'regressions', t.name)), ...readCorpus(corpusDir)];
      for (const input of kept) {
        const f = judge(t, input);
        if (f) { findings.push({ target: t.name, input, ...f }); log(`  FINDING ${t.name} (replay, ${f.kind}): ${f.message}`); }
      }
      if (values.input) { // judge the given files (a finding to reproduce)
        for (const f of values.input) log(`${f}: ${judge(t, new Uint8Array(fs.readFileSync(f)))?.message ?? 'fine'}`);
        continue;
      }
      if (values.replay) { summary.push({ target: t.name, replayed: kept.length }); continue; }
      const s = fuzz(t, 'fuzz-main.js', {
        seconds: Number(values.seconds), corpusDir, update: values['update-corpus'], findingsDir, seed: Number(values.seed), log,
      });
      findings.push(...s.findings);
      summary.push({ target: t.name, replayed: kept.length, execs: s.execs, execsPerSecond: Math.round(s.execs / s.seconds), corpus: s.corpus, features: s.features, findings: s.findings.length });
    }
  } finally {
    fs.rmSync(fx.dir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify({ targets: summary, findings: findings.map((f) => ({ target: f.target, kind: f.kind, message: f.message, file: f.file })) })}\n`);
  return findings.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e) => { process.stderr.write(`fuzz: ${(e as Error).stack}\n`); process.exitCode = 3; });
