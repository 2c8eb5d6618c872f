// The Python reference environment (.venv, made by scripts/setup-python.sh on first use).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
let cached: string | undefined;

export function python(): string {
  if (!cached) {
    cached = execFileSync('bash', [path.join(root, 'scripts/setup-python.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  }
  return cached;
}

export function runPython(script: string, args: string[] = []): string {
  return execFileSync(python(), [path.resolve(root, script), ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
}
