// Which machine a benchmark ran on. Figures move with the CPU: where it has AVX-512 the fused ops' matrix tiles
// (custom-ops nn_kernels, avx512 build) and ORT's MLAS use 16-float registers, and PyTorch's MKL on AMD does not.
import * as fs from 'node:fs';
import * as os from 'node:os';

/** The CPU's model name, its count, and the fused ops' kernel build the op library picks on it. */
export function hostInfo(): { cpu: string; cpus: number; kernels: string } {
  let flags = new Set<string>();
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    flags = new Set((line?.split(':')[1] ?? '').trim().split(/\s+/));
  } catch { /* not Linux: no flags, kernels reported as unknown below */ }
  // the same choice as custom-ops/src/cpu_dispatch.cc (UseAvx2, UseAvx512), ADEMAMIX_CPU included
  const force = process.env.ADEMAMIX_CPU;
  const avx2 = flags.has('avx2') && flags.has('fma') && force !== 'base';
  const avx512 = avx2 && ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f)) && force !== 'avx2';
  return { cpu: os.cpus()[0]?.model.trim() ?? 'unknown', cpus: os.cpus().length, kernels: flags.size === 0 ? 'unknown' : avx512 ? 'avx512' : avx2 ? 'avx2' : 'base' };
}
