// The process's place in a data-parallel run: rank and world size from Open MPI's environment (mpirun sets
// OMPI_COMM_WORLD_RANK / _SIZE for every process it starts), and the few collectives the runner makes outside the
// graph. A process not started by mpirun is a world of one, and nothing here loads MPI.
import { createHash } from 'node:crypto';
import { hasMpiLibrary, mpiLibraryPath, nativeMpi, type MpiArray, type NativeMpi } from '../native';

export class WorldError extends Error {
  constructor(message: string) { super(message); this.name = 'WorldError'; }
}

export interface World {
  rank: number;
  size: number;
  /** rank 0: the one that writes metrics, plots, checkpoints and the report */
  lead: boolean;
  allreduce(a: MpiArray, op?: 'sum' | 'max' | 'min'): void;
  allgather(send: Float32Array): Float32Array;
  /** Fails on every rank, with `what` named, unless all ranks pass the same digest. */
  assertSame(digest: string, what: string): void;
  barrier(): void;
  /** Ends every rank of the run now (mpirun reports it); a world of one exits. */
  abort(code: number): never;
  finalize(): void;
  commSeconds(): number;
}

/** Rank and size that mpirun gave this process (a world of one without it). */
export function worldEnv(env: NodeJS.ProcessEnv = process.env): { rank: number; size: number } {
  const size = Number(env.OMPI_COMM_WORLD_SIZE ?? 1); const rank = Number(env.OMPI_COMM_WORLD_RANK ?? 0);
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) {
    throw new WorldError(`bad MPI environment: OMPI_COMM_WORLD_RANK=${env.OMPI_COMM_WORLD_RANK} OMPI_COMM_WORLD_SIZE=${env.OMPI_COMM_WORLD_SIZE}`);
  }
  return { rank, size };
}

const single: World = {
  rank: 0, size: 1, lead: true,
  allreduce: () => undefined,
  allgather: (s) => Float32Array.from(s),
  assertSame: () => undefined,
  barrier: () => undefined,
  abort: (code) => process.exit(code),
  finalize: () => undefined,
  commSeconds: () => 0,
};

let joined: World | undefined;

/** Joins the MPI world this process was started in (once; later calls return it). */
export function joinWorld(): World {
  if (joined) return joined;
  const { rank, size } = worldEnv();
  if (size === 1) return (joined = single);
  if (!hasMpiLibrary()) {
    throw new WorldError(`this process is rank ${rank} of ${size} (started by mpirun), but ${mpiLibraryPath()} was not built: ` +
      'install Open MPI (apt-get install openmpi-bin libopenmpi-dev), then `npm run build:native`');
  }
  const mpi: NativeMpi = nativeMpi();
  const got = mpi.init(mpiLibraryPath());
  if (got.rank !== rank || got.size !== size) {
    throw new WorldError(`MPI reports rank ${got.rank} of ${got.size}; the environment says ${rank} of ${size}`);
  }
  joined = {
    rank, size, lead: rank === 0,
    allreduce: (a, op = 'sum') => mpi.allreduce(a, op),
    allgather: (s) => { const r = new Float32Array(s.length * size); mpi.allgather(s, r); return r; },
    assertSame: (digest, what) => {
      // 48 bits of the digest as a float64 (exact): equal on every rank iff max = min
      const v = parseInt(digest.slice(0, 12), 16);
      const a = new Float64Array([v, -v]);
      mpi.allreduce(a, 'max');
      if (a[0] !== -a[1]) throw new WorldError(`the ranks disagree on ${what} (rank ${rank} has digest ${digest.slice(0, 12)})`);
    },
    barrier: () => mpi.barrier(),
    abort: (code) => mpi.abort(code),
    finalize: () => mpi.finalize(),
    commSeconds: () => mpi.commSeconds(),
  };
  return joined;
}

/** A digest of tensors' names, shapes and bytes (for assertSame). */
export function stateDigest(state: Record<string, { dims: readonly number[]; data: ArrayBufferView }>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(state).sort()) {
    const t = state[k];
    h.update(`${k}[${t.dims.join(',')}]`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}
