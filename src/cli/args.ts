// A tiny argument parser: positional words, `--key value`, `--flag`, `--no-flag`.
export interface Args { _: string[]; [k: string]: string | boolean | string[] }

export function parseArgs(argv: string[]): Args {
  const out: Args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { out._.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) { out[a.slice(2, eq)] = a.slice(eq + 1); continue; }
      const key = a.slice(2);
      if (key.startsWith('no-')) { out[key.slice(3)] = false; continue; }
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) { out[key] = next; i++; } else out[key] = true;
    } else out._.push(a);
  }
  return out;
}

export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

export function num(args: Args, key: string, dflt: number): number {
  const v = args[key];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n)) throw new UsageError(`--${key} needs a number, got '${String(v)}'`);
  return n;
}

export function str(args: Args, key: string, dflt: string): string {
  const v = args[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw new UsageError(`--${key} needs a value`);
  return v;
}
