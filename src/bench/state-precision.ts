// The slow EMA under low-precision storage: AdEMAMix's m2 with β3 = 0.9999 moves by 1e-4 of (g − m2) per step, which
// is far below one 8-bit quantization step (and below half a bf16 step once m2 is large), so round-to-nearest can
// freeze it. This runs the fused kernel for `steps` steps on a fixed gradient stream (a per-element mean plus unit
// noise, the same stream for every storage choice), m2 stored as asked and every other slot fp32, and reports the
// per-block (256 elements) relative error of m2 against the all-fp32 run: ‖m2 − m2_fp32‖₂ / ‖m2_fp32‖₂ per block.
import type { Tensor } from 'onnxruntime-common';
import { Tensor as OrtTensor } from 'onnxruntime-common';
import { NativeSession, type RawTensor } from '../native';
import { opsLibraryPath } from '../native/paths';
import { encodeModel } from '../onnx/io';
import { getOptimizer, makeSpec } from '../optim/derive';
import { decodeState, parseStates, type StoredState } from '../optim/precision';
import { definedStepModel } from '../optim/step-model';
import { Rng } from '../util/rng';

export interface SlowEmaOptions { n: number; steps: number; beta3: number; seed: number; threads: number; mean: number; noise: number }
export interface SlowEmaResult { states: string; stochasticRounding: boolean; median: number; p90: number; max: number; ms: number }

function m2After(o: SlowEmaOptions, states: string, sr: boolean): { m2: Float32Array; ms: number } {
  const def = getOptimizer('ademamix');
  const spec = makeSpec(def, { beta3: o.beta3, alpha: 5, lr: 1e-3 });
  const formats = parseStates(def, states);
  const sm = definedStepModel('ademamix', spec, [[o.n]], 0, { formats, stochasticRounding: sr, seed: o.seed });
  const s = NativeSession.create(encodeModel(sm.model), { opsLibrary: opsLibraryPath(), intraOpThreads: o.threads });
  s.carry(sm.carry);
  const init: Record<string, RawTensor> = {};
  const nb = Math.ceil(o.n / 256);
  for (const k of sm.carried) {
    const slot = k.replace(/_\d+$/, '');
    if (slot.endsWith('_absmax')) init[k] = { type: 'float32', data: new Float32Array(nb), dims: [nb] };
    else if (slot === 'param') init[k] = { type: 'float32', data: new Float32Array(o.n), dims: [o.n] };
    else init[k] = formats[slot] === '8bit' ? { type: 'uint8', data: new Uint8Array(o.n), dims: [o.n] }
      : formats[slot] === 'bf16' ? { type: 'bfloat16', data: new Uint16Array(o.n), dims: [o.n] } : { type: 'float32', data: new Float32Array(o.n), dims: [o.n] };
  }
  s.setStateRaw(init);
  const rng = new Rng(o.seed);
  const mu = Float32Array.from({ length: o.n }, () => o.mean * rng.normal());
  const g = new Float32Array(o.n);
  const t0 = performance.now();
  for (let t = 1; t <= o.steps; t++) {
    for (let i = 0; i < o.n; i++) g[i] = mu[i] + o.noise * rng.normal();
    const feeds: Record<string, Tensor> = {
      grad_0: new OrtTensor('float32', g, [o.n]), step: new OrtTensor('int64', BigInt64Array.from([BigInt(t)]), []),
    };
    for (const sc of def.scalars) feeds[sc.name] = new OrtTensor('float64', Float64Array.from([sc.at(t, spec)]), []);
    s.run(feeds, []);
  }
  const ms = performance.now() - t0;
  const st = s.getStateRaw(['m2_0', ...(formats.m2 === '8bit' ? ['m2_absmax_0'] : [])]);
  s.release();
  const stored: StoredState = formats.m2 === '8bit' ? { format: '8bit', data: st.m2_0.data as Uint8Array, absmax: st.m2_absmax_0.data as Float32Array }
    : formats.m2 === 'bf16' ? { format: 'bf16', data: st.m2_0.data as Uint16Array } : { format: 'fp32', data: st.m2_0.data as Float32Array };
  return { m2: decodeState(stored, true), ms };
}

export function measureSlowEma(o: SlowEmaOptions, cases: { states: string; sr: boolean }[]): SlowEmaResult[] {
  const ref = m2After(o, 'fp32', false).m2;
  return cases.map((c) => {
    const { m2, ms } = m2After(o, c.states, c.sr);
    const errs: number[] = [];
    for (let lo = 0; lo < o.n; lo += 256) {
      let d = 0; let r = 0;
      for (let i = lo; i < Math.min(o.n, lo + 256); i++) { d += (m2[i] - ref[i]) ** 2; r += ref[i] ** 2; }
      errs.push(Math.sqrt(d / r));
    }
    errs.sort((a, b) => a - b);
    return { states: c.states, stochasticRounding: c.sr, median: errs[Math.floor(errs.length / 2)], p90: errs[Math.floor(errs.length * 0.9)], max: errs[errs.length - 1], ms };
  });
}
