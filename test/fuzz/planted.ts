// The engine's self-check (test/fuzz.test.ts): a bug three comparisons deep, fuzzed in a process of its own, so V8's
// coverage, which the engine takes over every script the process holds, covers this one bundle and not the hundreds
// of modules a whole jest run has loaded by then (in one jest process each take grew slow enough to miss the budget).
// Prints the run's outcome as one JSON line.
import { fuzz, type FuzzTarget } from './engine';

// Even with the dictionary's letters a blind mutator needs about (1/300)^3 luck per input; coverage guidance keeps
// each input that passes one more comparison, so it takes about a thousand inputs.
function planted(d: Uint8Array): void {
  if (d[0] === 0x46) {
    if (d[1] === 0x55) {
      if (d[2] === 0x5a) throw new TypeError('planted');
    }
  }
}

const t: FuzzTarget = { name: 'planted', seeds: () => [new Uint8Array(8)], dictionary: ['F', 'U', 'Z'], run: planted, accepts: () => false };
const s = fuzz(t, 'fuzz-planted', { seconds: 60, seed: 3, stopAtFinding: true });
process.stdout.write(`${JSON.stringify({ findings: s.findings.map((f) => f.message), corpus: s.corpus, execs: s.execs, seconds: s.seconds })}\n`);
