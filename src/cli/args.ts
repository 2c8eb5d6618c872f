// Command-line arguments: node:util's parseArgs over each command's declared options.
import { parseArgs as nodeParseArgs } from 'node:util';
export interface Args { _: string[]; [k: string]: string | boolean | string[] }

/** The options a command takes: a value (`--lr 0.1`, `--lr=0.1`) or a switch (`--quiet`; `--no-reuse` turns one off). */
export type OptionKinds = Record<string, 'string' | 'boolean'>;

/**
 * A command's arguments through node:util's parseArgs, strict: an option the command does not take, or a value
 * missing, is one UsageError naming it. `_` holds the positional words (the command first).
 */
export function parseCommandArgs(cmd: string, argv: string[], kinds: OptionKinds): Args {
  const negated: Record<string, false> = {};
  const rest = argv.filter((a) => {
    const m = /^--no-([\w-]+)$/.exec(a);
    if (m && kinds[m[1]] === 'boolean') { negated[m[1]] = false; return false; }
    return true;
  });
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [k, t] of Object.entries(kinds)) options[k] = { type: t };
  try {
    const r = nodeParseArgs({ args: rest, options, allowPositionals: true, strict: true });
    return { _: r.positionals, ...(r.values as Record<string, string | boolean>), ...negated };
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '')
      .replace(/^Unknown option '([^']*)'$/, 'unknown option $1').replace(/^Option '([^']*)' argument missing$/, '$1 needs a value');
    throw new UsageError(`${cmd}: ${msg} (see ademamix ${cmd} --help)`);
  }
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
