// `bench optimizer`: one optimizer op over N fp32 parameters with its state carried natively, vs a memcpy of the
// same bytes in the same run (alternated with the op, medians), and vs the standard-op function body (what ORT runs
// without the op library). Any optimizer of src/optim/defs/, by name or op name.
import { Tensor } from 'onnxruntime-common';
import { NativeSession } from '../native';
import { opsLibraryPath } from '../native/paths';
import { encodeModel } from '../onnx/io';
import { getOptimizer, makeSpec, OPTIMIZERS } from '../optim/derive';
import { definedStepModel } from '../optim/step-model';

export interface OptimizerBenchOptions { op: string; params: number; reps: number; threads: number; fallback: boolean }

/** The definition an `--op` names: its CLI name or its op name. */
export function benchDef(op: string) {
  return OPTIMIZERS.find((d) => d.op === op) ?? getOptimizer(op);
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

interface Timed { run(r: number): number; release(): void }

function opRunner(o: OptimizerBenchOptions, opsLibrary: string | false): Timed {
  const def = benchDef(o.op);
  const spec = makeSpec(def, { weightDecay: 0.1 });
  const sm = definedStepModel(def.name, spec, [[o.params]], 0.1);
  const s = NativeSession.create(encodeModel(sm.model), { opsLibrary, intraOpThreads: o.threads });
  s.carry(sm.carry);
  const n = o.params;
  const init: Record<string, Tensor> = {};
  for (const k of sm.carried) init[k] = new Tensor('float32', new Float32Array(n).fill(k.startsWith('param') || k.startsWith('z') ? 0.5 : 0), [n]);
  for (const k of sm.globals) init[k] = new Tensor('float32', new Float32Array(1), []);
  s.setState(init);
  const grad = new Tensor('float32', Float32Array.from({ length: n }, (_, i) => ((i % 1000) - 500) * 1e-4), [n]);
  return {
    run(r) {
      const feeds: Record<string, Tensor> = { grad_0: grad, step: new Tensor('int64', BigInt64Array.from([BigInt(r + 1)]), []) };
      for (const sc of def.scalars) feeds[sc.name] = new Tensor('float64', Float64Array.from([sc.at(r + 1, spec)]), []);
      const t0 = process.hrtime.bigint();
      s.run(feeds, []);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    },
    release: () => s.release(),
  };
}

/** memcpy of `bytes` (half read, half written), ms. */
function copyRunner(bytes: number): Timed {
  const half = Math.floor(bytes / 2);
  const src = new Uint8Array(half).fill(1); const dst = new Uint8Array(half);
  return {
    run() { const t0 = process.hrtime.bigint(); dst.set(src); return Number(process.hrtime.bigint() - t0) / 1e6; },
    release() {},
  };
}

export function benchOptimizer(o: OptimizerBenchOptions): Record<string, unknown> {
  const def = benchDef(o.op);
  const bpp = def.bytesPerParam(makeSpec(def, {}));
  const bytes = bpp * o.params;
  const op = opRunner(o, opsLibraryPath()); const copy = copyRunner(bytes);
  const opT: number[] = []; const copyT: number[] = [];
  try {
    for (let r = 0; r < o.reps + 2; r++) { // alternated, so both see the same machine load; two warm-up rounds
      const a = op.run(r); const b = copy.run(r);
      if (r >= 2) { opT.push(a); copyT.push(b); }
    }
  } finally { op.release(); }
  const opMs = median(opT); const copyMs = median(copyT);
  const gbps = (ms: number): number => +(bytes / ms / 1e6).toFixed(2);
  const result: Record<string, unknown> = {
    bench: 'optimizer', optimizer: def.name, op: def.op, device: 'cpu', params: o.params, threads: o.threads, reps: o.reps,
    bytes_per_param: bpp, op_ms: +opMs.toFixed(3), op_gbps: gbps(opMs), memcpy_ms: +copyMs.toFixed(3), memcpy_gbps: gbps(copyMs),
    op_vs_memcpy: +(copyMs / opMs).toFixed(3),
  };
  if (o.fallback) {
    const fb = opRunner(o, false);
    const ts: number[] = [];
    try { for (let r = 0; r < Math.max(3, Math.floor(o.reps / 3)) + 1; r++) { const x = fb.run(r); if (r >= 1) ts.push(x); } } finally { fb.release(); }
    result.fallback_ms = +median(ts).toFixed(3);
    result.fallback_vs_op = +(median(ts) / opMs).toFixed(2);
  }
  return result;
}
