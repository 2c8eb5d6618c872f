// `ademamix train --world N`: starts the run as N ranks on this machine through Open MPI's mpirun (the command line
// again, less --world, under `mpirun -np N`), and turns mpirun's way of reporting a lost rank into one clear line.
import { spawn, spawnSync } from 'node:child_process';

export class LaunchError extends Error {
  constructor(message: string) { super(message); this.name = 'LaunchError'; }
}

/** Parses --world: an integer ≥ 1 (the message names the flag). */
export function parseWorldFlag(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < 1) throw new LaunchError(`--world needs an integer ≥ 1 (the number of ranks), got '${String(v)}'`);
  return n;
}

/** The command line without `--world N` / `--world=N`. */
export function withoutWorldFlag(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--world') { i++; continue; }
    if (argv[i].startsWith('--world=')) continue;
    out.push(argv[i]);
  }
  return out;
}

export function mpirunPath(): string {
  const r = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  if (r.status !== 0 || !p) {
    throw new LaunchError('--world: mpirun not found on PATH; install Open MPI (apt-get install openmpi-bin libopenmpi-dev) ' +
      'or start the ranks with your own mpirun');
  }
  return p;
}

export interface LaunchResult { code: number; message?: string }

/**
 * Runs `argv` (a command line of this program: node, script, words) as `ranks` ranks under mpirun, passing the ranks'
 * output through. mpirun's banners (blocks between dashed lines) are condensed into one line naming the rank that
 * ended the run; `onFail` adds what the user can do next (the last checkpoint).
 */
export function launchWorld(ranks: number, argv: string[], onFail: (why: string) => string): Promise<LaunchResult> {
  const mpirun = mpirunPath();
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (process.getuid?.() === 0) { env.OMPI_ALLOW_RUN_AS_ROOT = '1'; env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = '1'; } // CI runs as root
  // --oversubscribe: more ranks than cores is allowed (2 cores here); --bind-to none: --threads decides the cores;
  // mpi_yield_when_idle: a rank waiting in a collective yields its core instead of spinning on it, since the ranks share
  // the machine's cores with ORT's threads (measured on 2 shared cores: a 438 KB all-reduce 9.7 ms spinning, 2.8 yielding)
  const args = ['-np', String(ranks), '--oversubscribe', '--bind-to', 'none', '--mca', 'mpi_yield_when_idle', '1', ...argv];
  return new Promise((resolve, reject) => {
    // its own process group: a Ctrl-C in the terminal reaches this launcher alone, which asks the ranks to stop after
    // their step through SIGUSR1 (mpirun forwards it; on SIGINT it would kill them at once); a second Ctrl-C or a
    // SIGTERM ends the job through mpirun
    const child = spawn(mpirun, args, { env, stdio: ['inherit', 'inherit', 'pipe'], detached: true });
    let interrupts = 0;
    const onInt = (): void => {
      if (++interrupts === 1) {
        process.stderr.write('\nCtrl-C: the ranks finish this step and save a checkpoint (Ctrl-C again to end them at once)\n');
        child.kill('SIGUSR1');
      } else child.kill('SIGTERM');
    };
    const onTerm = (): void => { child.kill('SIGTERM'); };
    process.on('SIGINT', onInt); process.on('SIGTERM', onTerm);
    let inBanner = false; let why: string | undefined; let pending = '';
    const scan = (line: string): void => {
      if (/^-{20,}$/.test(line.trim())) { inBanner = !inBanner; return; }
      let m = /process rank (\d+) with PID (\d+) on node (\S+) exited on signal (\d+)(?: \(([^)]+)\))?/.exec(line);
      // (Open MPI 4.1 may report PID 0 for a rank it did not fork itself)
      if (m) why ??= `rank ${m[1]} (${m[2] !== '0' ? `pid ${m[2]} ` : ''}on ${m[3]}) was killed by signal ${m[4]}${m[5] ? ` (${m[5]})` : ''}`;
      m = /MPI_ABORT was invoked on rank (\d+)/.exec(line);
      if (m) why ??= `rank ${m[1]} stopped the run after an error (above)`;
      m = /process rank (\d+) with PID (\d+) on node (\S+) exited with status (\d+)|rank (\d+) with PID (\d+) .*exited.*status (\d+)/.exec(line);
      if (m && !why) why = `rank ${m[1] ?? m[5]} exited with status ${m[4] ?? m[7]}`;
      if (inBanner || /^(mpirun|Primary job|prterun)\b/.test(line) || /^\s*(Process name|Exit code|Local host|PID):/.test(line)) return;
      process.stderr.write(line + '\n');
    };
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      const lines = (pending + d).split('\n'); pending = lines.pop()!;
      for (const l of lines) scan(l);
    });
    child.on('error', (e) => reject(new LaunchError(`--world: cannot start ${mpirun}: ${e.message}`)));
    child.on('close', (code, signal) => {
      process.off('SIGINT', onInt); process.off('SIGTERM', onTerm);
      if (pending) scan(pending);
      if (code === 0 || (interrupts === 1 && code === 130)) { resolve({ code: code ?? 0 }); return; }
      const reason = why ?? (signal ? `mpirun ended by signal ${signal}` : `a rank failed (mpirun exit status ${code})`);
      resolve({ code: code ?? 1, message: onFail(reason) });
    });
  });
}
