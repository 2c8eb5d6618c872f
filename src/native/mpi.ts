// The session addon's `mpi` export: collectives outside the graph over libademamix_mpi.so (the library the op
// library's collective ops load too, so both share one MPI world). Built only where Open MPI is installed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addonPath, buildDir } from './paths';

/** Element arrays the collectives take. */
export type MpiArray = Float32Array | Float64Array | Uint8Array;

export interface NativeMpi {
  init(libraryPath: string): { rank: number; size: number };
  /** In place. */
  allreduce(a: MpiArray, op: 'sum' | 'max' | 'min'): void;
  /** recv holds size × send.length elements, rank-major. */
  allgather(send: MpiArray, recv: MpiArray): void;
  bcast(a: MpiArray, root: number): void;
  barrier(): void;
  abort(code: number): never;
  finalize(): void;
  /** Seconds spent inside collectives since init (this process). */
  commSeconds(): number;
}

const MPI_LIB = 'custom-ops/libademamix_mpi.so';

export const mpiLibraryPath = (): string => path.join(buildDir(), MPI_LIB);
export const hasMpiLibrary = (): boolean => fs.existsSync(mpiLibraryPath());

export function nativeMpi(): NativeMpi {
  // require() caches the addon: this is the instance NativeSession uses
  return (require(addonPath()) as { mpi: NativeMpi }).mpi; // eslint-disable-line @typescript-eslint/no-require-imports
}
