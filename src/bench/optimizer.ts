// `bench optimizer`: one optimizer op over N fp32 parameters with its state carried natively, vs a same-run memcpy
// baseline and vs the standard-op function body (what ORT runs without the op library).
import { Tensor } from 'onnxruntime-common';
import { NativeSession } from '../native';
import { opsLibraryPath } from '../native/paths';
import { encodeModel } from '../onnx/io';
import { optimizerStepModel, type StepOp } from '../optim/step-model';

export interface OptimizerBenchOptions { op: StepOp['op']; params: number; reps: number; threads: number; fallback: boolean }

export const BYTES_PER_PARAM: Record<StepOp['op'], number> = { AdEMAMix: 36, SimplifiedAdEMAMix: 28, AdamW: 28 };

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function specFor(op: StepOp['op']): StepOp {
  if (op === 'AdEMAMix') return { op, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
  if (op === 'SimplifiedAdEMAMix') return { op, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, biasCorrection1: false, biasCorrection2: true };
  return { op, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
}

function timeOp(o: OptimizerBenchOptions, opsLibrary: string | false, reps: number): number {
  const sm = optimizerStepModel(specFor(o.op), [o.params]);
  const s = NativeSession.create(encodeModel(sm.model), { opsLibrary, intraOpThreads: o.threads });
  try {
    s.carry(sm.carry);
    const n = o.params;
    const init: Record<string, Tensor> = { param: new Tensor('float32', new Float32Array(n).fill(0.5), [n]) };
    for (const st of sm.states) init[st] = st === 's1' ? new Tensor('float32', new Float32Array(1), []) : new Tensor('float32', new Float32Array(n), [n]);
    s.setState(init);
    const grad = new Tensor('float32', Float32Array.from({ length: n }, (_, i) => ((i % 1000) - 500) * 1e-4), [n]);
    const times: number[] = [];
    for (let r = 0; r < reps + 2; r++) {
      const feeds: Record<string, Tensor> = { grad, step: new Tensor('int64', BigInt64Array.from([BigInt(r + 1)]), []) };
      for (const k of sm.scalars) feeds[k] = new Tensor('float64', Float64Array.from([k === 'lr' ? 1e-3 : k === 'alpha' ? 5 : 0.999]), []);
      const t0 = process.hrtime.bigint();
      s.run(feeds, []);
      const dt = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r >= 2) times.push(dt); // two warm-up runs (allocation, thread start)
    }
    return median(times);
  } finally { s.release(); }
}

/** memcpy bandwidth (read + write bytes) on a buffer of the op's traffic, same process, same moment. */
function memcpyGbps(bytes: number, reps: number): number {
  const half = Math.floor(bytes / 2);
  const src = new Uint8Array(half).fill(1); const dst = new Uint8Array(half);
  const times: number[] = [];
  for (let r = 0; r < reps + 2; r++) {
    const t0 = process.hrtime.bigint();
    dst.set(src);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r >= 2) times.push(dt);
  }
  return (2 * half) / median(times) / 1e9;
}

export function benchOptimizer(o: OptimizerBenchOptions): Record<string, unknown> {
  const bytes = BYTES_PER_PARAM[o.op] * o.params;
  const memcpy = memcpyGbps(bytes, o.reps);
  const opMs = timeOp(o, opsLibraryPath(), o.reps);
  const result: Record<string, unknown> = {
    bench: 'optimizer', op: o.op, device: 'cpu', params: o.params, threads: o.threads, reps: o.reps,
    bytes_per_param: BYTES_PER_PARAM[o.op],
    op_ms: +opMs.toFixed(3), op_gbps: +(bytes / opMs / 1e6).toFixed(2), memcpy_gbps: +memcpy.toFixed(2),
    op_vs_memcpy: +((bytes / opMs / 1e6) / memcpy).toFixed(3),
  };
  if (o.fallback) {
    const fb = timeOp(o, false, Math.max(3, Math.floor(o.reps / 3)));
    result.fallback_ms = +fb.toFixed(3);
    result.fallback_vs_op = +(fb / opMs).toFixed(2);
  }
  return result;
}
