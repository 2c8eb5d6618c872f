// `bench optimizer`: one optimizer node over a parameter list (GPT-shaped by default: the gpt-small layout scaled to
// --params, ~150 tensors through the multi-tensor op; or one flat tensor) with its state carried natively, against a
// NATIVE copy of the same bytes in the same process and run: the op library's BenchCopy kernel over a list of the same
// shapes (scaled so the copy moves bytes_per_param × params bytes), on the same intra-op pool with the same thread
// count and the same chunking, through the same kind of NativeSession (carried outputs). Op and copies are alternated
// rep by rep; medians. Also the standard-op function body (what ORT runs without the op library) and, when the Python
// venv has torch, torch.optim.AdamW (foreach and single-tensor) on the same shapes and threads
// (scripts/bench-torch-optimizer.py). Any optimizer of src/optim/defs/, by name or op name.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-common';
import { GraphBuilder } from '../graph/builder';
import { toModelProto } from '../graph/serialize';
import { attr } from '../graph/value';
import { NativeSession } from '../native';
import { opsLibraryPath, packageRoot } from '../native/paths';
import { encodeModel } from '../onnx/io';
import { getOptimizer, makeSpec, OPTIMIZERS } from '../optim/derive';
import { definedStepModel } from '../optim/step-model';
import { inPlaceCarries } from '../train/in-place';
import { allFp32, formatStates, parseStates, stateBytesPerParam } from '../optim/precision';
import type { RawTensor } from '../native';

export type BenchShape = 'gpt' | 'flat';

export interface OptimizerBenchOptions {
  op: string; params: number; reps: number; threads: number; fallback: boolean;
  /** default 'gpt' */
  shape?: BenchShape;
  /** torch's AdamW column: true = required, false = off, undefined = when the venv has torch */
  torch?: boolean;
  /** Optimizer state storage (--states, as for train; default fp32) and stochastic rounding of its stores. */
  states?: string;
  stochasticRounding?: boolean;
  /**
   * Spinning idle pool threads (default false). The op and the two copies are three sessions, each with its own
   * intra-op pool, run in turn: with spinning on, the previous one's threads spin on the cores the next one needs
   * (measured on 2 cores: every side at about half its bandwidth).
   */
  spin?: boolean;
  /**
   * Carry the op's parameters and states in place (default true, as training does where inPlaceCarries allows: the
   * kernels then read and write the same lines); false: double-buffered (separate outputs, streaming stores).
   */
  inPlace?: boolean;
}

/** The definition an `--op` names: its CLI name or its op name. */
export function benchDef(op: string) {
  return OPTIMIZERS.find((d) => d.op === op) ?? getOptimizer(op);
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

// ---- shapes -------------------------------------------------------------------------------------------------------

/** gpt-small's parameter tensors (GPT-2 124M: vocab 50257, context 1024, width 768, 12 layers, tied head), as
 * element counts: embeddings, per layer LayerNorm weight/bias, qkv weight/bias, attention projection weight/bias,
 * LayerNorm, MLP in weight/bias, MLP out weight/bias; the final LayerNorm. 148 tensors. */
export function gptSmallSizes(): number[] {
  const V = 50257, T = 1024, d = 768, L = 12;
  const sizes = [V * d, T * d];
  for (let l = 0; l < L; l++) sizes.push(d, d, d * 3 * d, 3 * d, d * d, d, d, d, d * 4 * d, 4 * d, 4 * d * d, d);
  sizes.push(d, d);
  return sizes;
}

/** `total` elements split like `base` (each tensor scaled, at least 1; the largest takes the rounding). */
export function scaleSizes(base: number[], total: number): number[] {
  const sum = base.reduce((a, b) => a + b, 0);
  const out = base.map((n) => Math.max(1, Math.round((n * total) / sum)));
  let big = 0;
  for (let i = 1; i < out.length; i++) if (out[i] > out[big]) big = i;
  out[big] += total - out.reduce((a, b) => a + b, 0);
  if (out[big] < 1) throw new RangeError(`bench optimizer: --params ${total} is too small for ${base.length} tensors`);
  return out;
}

/** The parameter list of a shape at `params` elements. */
export function benchSizes(shape: BenchShape, params: number): number[] {
  return shape === 'flat' ? [params] : scaleSizes(gptSmallSizes(), params);
}

// ---- runners ------------------------------------------------------------------------------------------------------

interface Timed { run(r: number): number; release(): void }

function opRunner(o: OptimizerBenchOptions, sizes: number[], opsLibrary: string | false): Timed {
  const def = benchDef(o.op);
  const spec = makeSpec(def, { weightDecay: 0.1 });
  const formats = parseStates(def, o.states);
  const sm = definedStepModel(def.name, spec, sizes.map((n) => [n]), 0.1, { formats, stochasticRounding: o.stochasticRounding, seed: 1 });
  const s = NativeSession.create(encodeModel(sm.model), { opsLibrary, intraOpThreads: o.threads, intraOpSpinning: o.spin === true });
  s.carry(sm.carry, { inPlace: o.inPlace === false ? [] : inPlaceCarries(sm.model, sm.carry) });
  const sizeOf = (name: string): number => sizes[Number(name.slice(name.lastIndexOf('_') + 1))];
  const init: Record<string, RawTensor> = {};
  for (const k of sm.carried) {
    const n = sizeOf(k);
    const slot = k.slice(0, k.lastIndexOf('_'));
    if (slot.endsWith('_absmax')) { init[k] = { type: 'float32', data: new Float32Array(Math.ceil(n / 256)), dims: [Math.ceil(n / 256)] }; continue; }
    const f = formats[slot] ?? 'fp32';
    if (f === '8bit') init[k] = { type: 'uint8', data: new Uint8Array(n), dims: [n] };
    else if (f === 'bf16') init[k] = { type: 'bfloat16', data: new Uint16Array(n), dims: [n] };
    else init[k] = { type: 'float32', data: new Float32Array(n).fill(k.startsWith('param') || k.startsWith('z') ? 0.5 : 0), dims: [n] };
  }
  for (const k of sm.globals) init[k] = new Tensor('float32', new Float32Array(1), []);
  // the gradients live natively too (set once, read by every run), as a training graph's do: feeding ~150 tensors
  // from JS per run cost ~1 ms of name matching and wrapping that is not the op's
  sizes.forEach((n, i) => { init[`grad_${i}`] = { type: 'float32', data: Float32Array.from({ length: n }, (_, j) => ((j % 1000) - 500) * 1e-4), dims: [n] }; });
  s.setStateRaw(init);
  return {
    run(r) {
      const feeds: Record<string, Tensor> = { step: new Tensor('int64', BigInt64Array.from([BigInt(r + 1)]), []) };
      for (const sc of def.scalars) feeds[sc.name] = new Tensor('float64', Float64Array.from([sc.at(r + 1, spec)]), []);
      const t0 = process.hrtime.bigint();
      s.run(feeds, []);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    },
    release: () => s.release(),
  };
}

/** A model of one com.ademamix BenchCopy node over float32 tensors of `sizes`: inputs `x_i`, outputs `x_i_out`. */
export function copyModel(sizes: number[], stream: boolean): Uint8Array {
  const g = new GraphBuilder();
  const xs = sizes.map((n, i) => g.input(`x_${i}`, 'float32', [n]));
  const ys = g.opN('BenchCopy', xs, { stream: attr.i(stream ? 1 : 0) }, {
    domain: 'com.ademamix', outputs: sizes.length, outTypes: sizes.map((n) => ({ dtype: 'float32', shape: [n] })),
  });
  ys.forEach((y, i) => g.output(y, `x_${i}_out`));
  return encodeModel(toModelProto(g));
}

/**
 * A model of one BenchCopy node in pattern mode (`reads` R, `writes` W): inputs `p{r}_{i}` for R groups of the
 * tensors of `sizes`, outputs `p{w}_{i}_out` for W groups: the optimizer's own streams (R = 2 + states: param, grad,
 * states; W = 1 + states) with trivial arithmetic.
 */
export function patternModel(sizes: number[], reads: number, writes: number, blocked = true): Uint8Array {
  const g = new GraphBuilder();
  const xs = Array.from({ length: reads }, (_, r) => sizes.map((n, i) => g.input(`p${r}_${i}`, 'float32', [n]))).flat();
  const ys = g.opN('BenchCopy', xs, { reads: attr.i(reads), writes: attr.i(writes), blocked: attr.i(blocked ? 1 : 0) }, {
    domain: 'com.ademamix', outputs: writes * sizes.length,
    outTypes: Array.from({ length: writes }, () => sizes.map((n) => ({ dtype: 'float32' as const, shape: [n] }))).flat(),
  });
  ys.forEach((y, k) => g.output(y, `p${Math.floor(k / sizes.length)}_${k % sizes.length}_out`));
  return encodeModel(toModelProto(g));
}

/** BenchCopy in pattern mode over `sizes`, outputs carried back to the first W groups (double-buffered, as the op's). */
function patternRunner(sizes: number[], reads: number, writes: number, blocked: boolean, threads: number, spin: boolean): Timed {
  const carry: Record<string, string> = {}; const init: Record<string, Tensor> = {};
  for (let r = 0; r < reads; r++) {
    sizes.forEach((n, i) => {
      if (r < writes) carry[`p${r}_${i}_out`] = `p${r}_${i}`;
      init[`p${r}_${i}`] = new Tensor('float32', new Float32Array(n).fill(r < writes ? 0 : 1e-30), [n]);
    });
  }
  return carriedRunner(patternModel(sizes, reads, writes, blocked), carry, init, threads, spin);
}

/** A BenchCopy model run with no feeds, its outputs carried back double-buffered from `init`. */
function carriedRunner(model: Uint8Array, carry: Record<string, string>, init: Record<string, Tensor>, threads: number, spin: boolean): Timed {
  const s = NativeSession.create(model, { opsLibrary: opsLibraryPath(), intraOpThreads: threads, intraOpSpinning: spin });
  s.carry(carry); s.setState(init);
  return {
    run() { const t0 = process.hrtime.bigint(); s.run({}, []); return Number(process.hrtime.bigint() - t0) / 1e6; },
    release: () => s.release(),
  };
}

/** The copy of the op's bytes: per tensor, bytes_per_param / 8 floats per parameter (read once, written once). */
export function copySizes(sizes: number[], bytesPerParam: number): number[] {
  return sizes.map((n) => Math.max(1, Math.round((n * bytesPerParam) / 8)));
}

/** BenchCopy over `sizes`, state carried like the optimizer's (double-buffered outputs). */
function copyRunner(sizes: number[], threads: number, stream: boolean, spin: boolean): Timed {
  return carriedRunner(copyModel(sizes, stream), Object.fromEntries(sizes.map((_, i) => [`x_${i}_out`, `x_${i}`])),
    Object.fromEntries(sizes.map((n, i) => [`x_${i}`, new Tensor('float32', new Float32Array(n).fill(1), [n])])), threads, spin);
}

// ---- torch --------------------------------------------------------------------------------------------------------

/** The venv's Python (ADEMAMIX_VENV or .venv, as scripts/setup-python.sh makes it) when it can import torch, else
 * null. Never installs anything. */
export function torchPython(): string | null {
  const venv = process.env.ADEMAMIX_VENV ?? path.join(packageRoot(), '.venv');
  const py = path.join(venv, 'bin', 'python');
  if (!fs.existsSync(py)) return null;
  const r = spawnSync(py, ['-c', 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'], { encoding: 'utf8' });
  return r.status === 0 ? py : null;
}

export interface TorchTimes { torch_version: string; torch_threads: number; foreach_ms: number; single_ms: number }

/** torch.optim.AdamW foreach and single-tensor over `sizes`, timed in Python. */
export function torchAdamW(py: string, sizes: number[], threads: number, reps: number): TorchTimes {
  const script = path.join(packageRoot(), 'scripts', 'bench-torch-optimizer.py');
  const r = spawnSync(py, [script], { input: JSON.stringify({ sizes, threads, reps }), encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench optimizer: ${script} failed (${r.error?.message ?? `exit ${r.status}`}):\n${(r.stderr ?? '').slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchTimes;
}

// ---- the bench ----------------------------------------------------------------------------------------------------

const gbps = (bytes: number, ms: number): number => +(bytes / ms / 1e6).toFixed(2);

export function benchOptimizer(o: OptimizerBenchOptions, torchCache?: Map<string, TorchTimes>): Record<string, unknown> {
  const def = benchDef(o.op);
  const shape = o.shape ?? 'gpt';
  const spec = makeSpec(def, {});
  const formats = parseStates(def, o.states);
  // bytes one step moves: the fp32 step's, with each state read and written at its stored size instead of 4 bytes
  const stateBytes = stateBytesPerParam(def, spec, formats);
  const bpp = def.bytesPerParam(spec) - 2 * stateBytesPerParam(def, spec, {}) + 2 * stateBytes;
  const bytes = bpp * o.params;
  const sizes = benchSizes(shape, o.params);
  const cSizes = copySizes(sizes, bpp);
  const copyBytes = 8 * cSizes.reduce((a, b) => a + b, 0);
  // the op's own streams (fp32 states only): param, grad and each state read; param and each state written
  const states = allFp32(formats) ? stateBytesPerParam(def, spec, {}) / 4 : 0;
  const reads = 2 + states; const writes = 1 + states;
  const runners: Timed[] = [];
  const opT: number[] = []; const ntT: number[] = []; const mcT: number[] = []; const pbT: number[] = []; const piT: number[] = [];
  try {
    const op = opRunner(o, sizes, opsLibraryPath()); runners.push(op);
    const nt = copyRunner(cSizes, o.threads, true, o.spin === true); runners.push(nt);
    const mc = copyRunner(cSizes, o.threads, false, o.spin === true); runners.push(mc);
    const pb = states ? patternRunner(sizes, reads, writes, true, o.threads, o.spin === true) : null; if (pb) runners.push(pb);
    const pi = states ? patternRunner(sizes, reads, writes, false, o.threads, o.spin === true) : null; if (pi) runners.push(pi);
    for (let r = 0; r < o.reps + 2; r++) { // alternated, so all see the same machine load; two warm-up rounds
      const a = op.run(r); const b = nt.run(r); const c = mc.run(r); const d = pb ? pb.run(r) : NaN; const e = pi ? pi.run(r) : NaN;
      if (r >= 2) { opT.push(a); ntT.push(b); mcT.push(c); pbT.push(d); piT.push(e); }
    }
  } finally { for (const x of runners) x.release(); }
  const opMs = median(opT); const ntMs = median(ntT); const mcMs = median(mcT); const ptMs = Math.min(median(pbT), median(piT));
  const opG = bytes / opMs; const copyG = Math.max(copyBytes / ntMs, copyBytes / mcMs);
  const result: Record<string, unknown> = {
    bench: 'optimizer', optimizer: def.name, op: allFp32(formats) ? def.op : `${def.op}Coded`, device: 'cpu', shape, tensors: sizes.length, params: o.params,
    threads: o.threads, spinning: o.spin === true, carry: o.inPlace === false ? 'double-buffered' : 'in-place', reps: o.reps, states: formatStates(formats), stochastic_rounding: o.stochasticRounding === true,
    state_bytes_per_param: +stateBytes.toFixed(6), bytes_per_param: +bpp.toFixed(6), bytes,
    op_ms: +opMs.toFixed(3), op_gbps: gbps(bytes, opMs),
    copy_bytes: copyBytes, copy_stream_ms: +ntMs.toFixed(3), copy_stream_gbps: gbps(copyBytes, ntMs),
    copy_memcpy_ms: +mcMs.toFixed(3), copy_memcpy_gbps: gbps(copyBytes, mcMs),
    copy_gbps: +(copyG / 1e6).toFixed(2),
    op_vs_copy: +(opG / copyG).toFixed(3),
  };
  if (states) {
    // the same streams with no arithmetic (BenchCopy's pattern mode, the faster of its blocked and interleaved stores):
    // what the access pattern itself allows. Its
    // bytes are the streams' ((reads + writes) × 4 per param), which differ from bytes_per_param where the contract
    // counts otherwise (Lion: 16 there, 20 in its five streams; MARS: 44, of which its norm pass re-reads 8).
    const pBytes = 4 * (reads + writes) * o.params;
    Object.assign(result, {
      pattern_reads: reads, pattern_writes: writes, pattern_bytes_per_param: 4 * (reads + writes),
      copy_pattern_ms: +ptMs.toFixed(3), copy_pattern_gbps: gbps(pBytes, ptMs),
      // the op's time against its streams' time at the pattern's speed
      op_vs_pattern: +(ptMs / opMs).toFixed(3),
    });
  }
  if (o.fallback) {
    const fb = opRunner(o, sizes, false);
    const ts: number[] = [];
    try { for (let r = 0; r < Math.max(3, Math.floor(o.reps / 3)) + 1; r++) { const x = fb.run(r); if (r >= 1) ts.push(x); } } finally { fb.release(); }
    result.fallback_ms = +median(ts).toFixed(3);
    result.fallback_vs_op = +(median(ts) / opMs).toFixed(2);
  }
  if (o.torch !== false) {
    const py = torchPython();
    if (!py && o.torch === true) throw new Error('bench optimizer: --torch needs the Python venv with torch (scripts/setup-python.sh)');
    if (py) {
      const key = `${shape}:${o.params}:${o.threads}`;
      let t = torchCache?.get(key);
      if (!t) { t = torchAdamW(py, sizes, o.threads, o.reps); torchCache?.set(key, t); }
      const adamwBytes = 28 * o.params; // torch AdamW: param r/w, grad r, exp_avg r/w, exp_avg_sq r/w
      Object.assign(result, {
        torch_version: t.torch_version, torch_threads: t.torch_threads,
        torch_adamw_foreach_ms: t.foreach_ms, torch_adamw_foreach_gbps: gbps(adamwBytes, t.foreach_ms),
        torch_adamw_single_ms: t.single_ms, torch_adamw_single_gbps: gbps(adamwBytes, t.single_ms),
        op_vs_torch_foreach: +(t.foreach_ms / opMs).toFixed(3),
      });
    }
  }
  return result;
}

/** Every optimizer (`--all`), one result each; torch's column timed once for the shared shapes. */
export function benchAllOptimizers(o: Omit<OptimizerBenchOptions, 'op'>): Record<string, unknown>[] {
  const cache = new Map<string, TorchTimes>();
  return OPTIMIZERS.map((d) => benchOptimizer({ ...o, op: d.name }, cache));
}
