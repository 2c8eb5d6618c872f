// A coverage-guided mutational fuzzer for the TypeScript loaders, in the style of libFuzzer: inputs that reach new
// code (V8's precise block coverage, taken after every input through node:inspector) join the corpus and are mutated
// further. jazzer.js would be the ecosystem's tool, but its only release with Linux binaries (4.0) needs glibc 2.38
// and GLIBCXX_3.4.32, newer than Debian bookworm's, and the older ones download their binaries from GitHub at install.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';

export interface FuzzTarget {
  name: string;
  /** Valid inputs to start from (also kept in the corpus folder). */
  seeds(): Uint8Array[];
  /** Tokens the mutator splices in (JSON keys, magic values). */
  dictionary?: string[];
  /** Longest input tried (default 64 KiB). */
  maxLen?: number;
  /** Runs one input; throws on a bad one. */
  run(data: Uint8Array): void;
  /** Whether the error a bad input raised is the clear, one-line error the tool promises (names the file). */
  accepts(e: unknown): boolean;
}

export interface Finding { target: string; kind: 'error' | 'slow' | 'memory'; message: string; input: Uint8Array; file?: string }

export interface FuzzOptions {
  seconds: number;
  /** Corpus folder of this target (read; written when `update`). */
  corpusDir?: string;
  update?: boolean;
  /** Where failing inputs are written. */
  findingsDir?: string;
  seed?: number;
  maxLen?: number;
  /** Per-input limits: a slower input or a larger allocation is a finding. */
  slowMs?: number;
  maxAllocBytes?: number;
  log?: (line: string) => void;
  /** End the pass at the first finding (tests). */
  stopAtFinding?: boolean;
}

export interface FuzzStats { execs: number; corpus: number; features: number; findings: Finding[]; seconds: number }

/** The V8 coverage of one script (the bundle under test), as feature keys: block ranges hit, with bucketed counts. */
class Coverage {
  private readonly session = new inspector.Session();
  constructor(private readonly urlPart: string) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }
  private post(method: string, params?: object): unknown {
    let out: unknown; let err: Error | null = null;
    // in-thread sessions answer synchronously
    this.session.post(method, params ?? {}, (e, r) => { err = e; out = r; });
    if (err) throw err;
    return out;
  }
  /** Zeroes the counters; nothing of this call after the reset depends on the input (take's own loop would). */
  reset(): void { this.post('Profiler.takePreciseCoverage'); }
  take(): string[] {
    const r = this.post('Profiler.takePreciseCoverage') as inspector.Profiler.TakePreciseCoverageReturnType;
    const keys: string[] = [];
    const bucket = (c: number): number => (c === 0 ? 0 : c === 1 ? 1 : c === 2 ? 2 : c <= 3 ? 3 : c <= 7 ? 4 : c <= 15 ? 5 : c <= 127 ? 6 : 7);
    for (const s of r.result) {
      if (!s.url.includes(this.urlPart)) continue;
      for (const f of s.functions) {
        if (!f.ranges.length || f.ranges[0].count === 0) continue;
        // V8 lists a nested block only where its count differs from its parent's: a block that starts running shows
        // as a count-0 range that disappears. So each function's whole range list (bucketed) is one feature, and
        // each range it ran another.
        keys.push(`f${f.ranges[0].startOffset}:${f.ranges.map((rg) => `${rg.startOffset}-${rg.endOffset}:${bucket(rg.count)}`).join(',')}`);
        for (const rg of f.ranges) if (rg.count) keys.push(`${rg.startOffset}:${rg.endOffset}:${bucket(rg.count)}`);
      }
    }
    return keys;
  }
  close(): void { this.post('Profiler.stopPreciseCoverage'); this.session.disconnect(); }
}

/** xorshift32: mutations are reproducible from --seed. */
class Rand {
  constructor(private s: number) { if (!this.s) this.s = 1; }
  u32(): number { let x = this.s; x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; this.s = x; return x; }
  below(n: number): number { return n <= 0 ? 0 : this.u32() % n; }
  pick<T>(a: readonly T[]): T { return a[this.below(a.length)]; }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x30, 0x39, 0x2d, 0x22, 0x5b, 0x5d, 0x7b, 0x7d];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x100, 65535, 4096, 1 << 24];
const NUMBERS = ['0', '-1', '1', '-0', '1e308', '1e999', 'NaN', '2147483648', '4294967296', '9007199254740993', '0.5', '65536', '256', 'null', 'true', '""', '[]', '{}'];

function mutate(r: Rand, input: Uint8Array, corpus: readonly Uint8Array[], dict: readonly Uint8Array[], maxLen: number): Uint8Array {
  let b: Uint8Array = Uint8Array.from(input);
  const rounds = 1 + r.below(4);
  for (let k = 0; k < rounds; k++) {
    const n = b.length;
    switch (r.below(11)) {
      case 0: if (n) b[r.below(n)] ^= 1 << r.below(8); break;
      case 1: if (n) b[r.below(n)] = r.below(256); break;
      case 2: if (n) b[r.below(n)] = r.pick(INTERESTING_8); break;
      case 3: if (n >= 4) { // a 32- or 64-bit little-endian length field
        const at = r.below(n - 3); const v = r.pick(INTERESTING_32);
        new DataView(b.buffer).setUint32(at, v, true);
        break;
      } break;
      case 4: { // insert random bytes
        const at = r.below(n + 1); const len = 1 + r.below(8);
        const ins = Uint8Array.from({ length: len }, () => r.below(256));
        b = concat(b.subarray(0, at), ins, b.subarray(at));
        break;
      }
      case 5: if (n > 1) { // delete a range
        const at = r.below(n); const len = 1 + r.below(Math.min(64, n - at));
        b = concat(b.subarray(0, at), b.subarray(at + len));
      } break;
      case 6: if (n > 1) { // duplicate a range
        const at = r.below(n); const len = 1 + r.below(Math.min(64, n - at));
        b = concat(b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len));
      } break;
      case 7: if (corpus.length) { // splice with another input
        const o = r.pick(corpus); const cut = r.below(n + 1); const from = r.below(o.length + 1);
        b = concat(b.subarray(0, cut), o.subarray(from));
      } break;
      case 8: if (dict.length) { // a dictionary token, inserted or overwriting
        const t = r.pick(dict); const at = r.below(n + 1);
        b = r.below(2) ? concat(b.subarray(0, at), t, b.subarray(at)) : concat(b.subarray(0, at), t, b.subarray(Math.min(n, at + t.length)));
      } break;
      case 9: { // replace a decimal number with an interesting one (JSON headers and configs)
        const s = Buffer.from(b).toString('latin1'); const nums = [...s.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
        if (!nums.length) break;
        const m = r.pick(nums);
        b = concat(b.subarray(0, m.index!), Buffer.from(r.pick(NUMBERS), 'latin1'), b.subarray(m.index! + m[0].length));
        break;
      }
      default: if (n) b = b.subarray(0, r.below(n)); // truncate
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

const sha1 = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');

export function readCorpus(dir: string | undefined): Uint8Array[] {
  if (!dir || !fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
}

/** One input through the target, judged: undefined when it is fine (ran, or raised an accepted error). */
export function judge(t: FuzzTarget, data: Uint8Array, o: Pick<FuzzOptions, 'slowMs' | 'maxAllocBytes'> = {}): Omit<Finding, 'target' | 'input'> | undefined {
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let bad: string | undefined;
  try { t.run(data); } catch (e) {
    if (!t.accepts(e)) bad = `${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`;
  }
  const ms = performance.now() - t0;
  const grew = process.memoryUsage().arrayBuffers - before;
  if (bad) return { kind: 'error', message: bad };
  if (ms > (o.slowMs ?? 2000)) return { kind: 'slow', message: `took ${ms.toFixed(0)} ms on a ${data.length}-byte input` };
  if (grew > (o.maxAllocBytes ?? 256 << 20)) return { kind: 'memory', message: `allocated ${(grew / 2 ** 20).toFixed(0)} MiB for a ${data.length}-byte input` };
  return undefined;
}

export function fuzz(t: FuzzTarget, bundleUrlPart: string, o: FuzzOptions): FuzzStats {
  const log = o.log ?? (() => {});
  const r = new Rand(o.seed ?? 0x9e3779b9);
  const maxLen = o.maxLen ?? t.maxLen ?? 64 << 10;
  const dict = (t.dictionary ?? []).map((s) => new Uint8Array(Buffer.from(s, 'latin1')));
  const cov = new Coverage(bundleUrlPart);
  const features = new Set<string>();
  const corpus: Uint8Array[] = [];
  const seen = new Set<string>();
  const findings: Finding[] = [];
  let execs = 0;
  const t0 = performance.now();
  const report = (data: Uint8Array, f: Omit<Finding, 'target' | 'input'>): void => {
    const key = `${f.kind}:${f.message.replace(/\d+/g, 'N').slice(0, 120)}`;
    if (seen.has(key)) return; // one input per distinct failure
    seen.add(key);
    const finding: Finding = { target: t.name, input: data, ...f };
    if (o.findingsDir) {
      fs.mkdirSync(o.findingsDir, { recursive: true });
      finding.file = path.join(o.findingsDir, `${t.name}-${f.kind}-${sha1(data).slice(0, 12)}`);
      fs.writeFileSync(finding.file, data);
    }
    findings.push(finding);
    log(`  FINDING ${t.name} (${f.kind}): ${f.message}${finding.file ? ` [${finding.file}]` : ''}`);
  };
  const last = o.findingsDir ? path.join(o.findingsDir, `last-input-${t.name}`) : undefined;
  if (last) fs.mkdirSync(o.findingsDir!, { recursive: true });
  const runOne = (data: Uint8Array, keepIfNew: boolean): void => {
    if (last) fs.writeFileSync(last, data); // what a native crash (the process gone) leaves to reproduce it
    cov.reset(); // drops whatever ran between inputs (the mutator, the last take's own loop)
    const f = judge(t, data, o);
    const keys = cov.take();
    execs++;
    if (f) { report(data, f); return; }
    let fresh = false;
    for (const k of keys) if (!features.has(k)) { features.add(k); fresh = true; }
    if (fresh && keepIfNew) {
      corpus.push(data);
      if (o.update && o.corpusDir) {
        fs.mkdirSync(o.corpusDir, { recursive: true });
        fs.writeFileSync(path.join(o.corpusDir, sha1(data)), data);
      }
    }
  };
  const initial = [...readCorpus(o.corpusDir), ...t.seeds()];
  for (const s of initial) runOne(s, true);
  log(`  ${t.name}: ${initial.length} seeds, ${features.size} features`);
  let lastLog = performance.now();
  while (performance.now() - t0 < o.seconds * 1000 && !(o.stopAtFinding && findings.length)) {
    const base = corpus.length ? corpus[r.below(corpus.length)] : new Uint8Array(0);
    runOne(mutate(r, base, corpus, dict, maxLen), true);
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log(`  ${t.name}: ${execs} execs, corpus ${corpus.length}, ${features.size} features, ${findings.length} findings`);
    }
  }
  cov.close();
  if (last) fs.rmSync(last, { force: true });
  return { execs, corpus: corpus.length, features: features.size, findings, seconds: (performance.now() - t0) / 1000 };
}
