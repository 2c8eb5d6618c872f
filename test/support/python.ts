// The Python reference environment (.venv, made by scripts/setup-python.sh on first use).
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
let cached: string | undefined;

export function python(): string {
  if (!cached) {
    cached = execFileSync('bash', [path.join(root, 'scripts/setup-python.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  }
  return cached;
}

/** Runs a Python script, returning its stdout; its stderr (torch's exporter notes) is shown only when it fails. */
export function runPython(script: string, args: string[] = []): string {
  const r = spawnSync(python(), [path.resolve(root, script), ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}
