// Optimizer state precision (src/optim/precision.ts, the <Op>Coded ops, custom-ops codec.h):
// - an independent float64 model of bitsandbytes' blockwise 8-bit quantization (its dynamic map built from the
//   published algorithm, nearest value by brute force over the 256 values, absmax = max |x| per block of 256) checks
//   the fused kernel and the standard-op function body on tensors with outliers, exact zeros, denormals and constant
//   blocks;
// - one fused step with 8-bit / bf16 / mixed states, for every definition, against "dequantize (the model) → the
//   definition's float64 reference step → requantize (the model)";
// - stochastic rounding stays between the two neighbours and is unbiased; the `--states` syntax and its errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { NativeSession, type RawTensor } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';
import { definedStepModel } from '../src/optim/step-model';
import { activeStates, getOptimizer, hyperOf, makeSpec, OPTIMIZERS } from '../src/optim/derive';
import { parseStates, quantMap, stateBytesPerParam, type StateFormat } from '../src/optim/precision';
import { Rng } from '../src/util/rng';
import { assembleTraining } from '../src/train/assemble';
import { buildTask } from '../src/runner/task';
import { optimizerSpec, statePrecision } from '../src/runner/trainer';
import { micro } from './support/runs';
import { main } from '../src/cli';
import { loadSafetensors } from '../src/io/safetensors';

beforeAll(() => { expect(fs.existsSync(opsLibraryPath())).toBe(true); });

// ---- the float64 model (written from bitsandbytes' published algorithm; no code under test) -----------------------

/** create_dynamic_map(signed, max_exponent_bits = 7, total_bits = 8): per decade i (0..6) the midpoints of
 * linspace(0.1, 1, 2^i + 1) (signed, both signs) or linspace(0.1, 1, 2^(i+1) + 1) (unsigned), times 10^(i−6); then
 * 0 and 1; sorted. */
function modelMap(signed: boolean): number[] {
  const out = [0, 1];
  for (let i = 0; i <= 6; i++) {
    const points = (signed ? 2 ** i : 2 ** (i + 1)) + 1;
    const grid = Array.from({ length: points }, (_, k) => 0.1 + (0.9 * k) / (points - 1));
    for (let k = 0; k + 1 < points; k++) {
      const v = ((grid[k] + grid[k + 1]) / 2) * Math.pow(10, i - 6);
      out.push(v);
      if (signed) out.push(-v);
    }
  }
  return out.sort((a, b) => a - b);
}
const MODEL_MAP = { signed: modelMap(true), unsigned: modelMap(false) };

/** Nearest map index of v by brute force; also the gap to the runner-up (a near tie when tiny). */
function nearest(v: number, map: number[]): { k: number; margin: number } {
  let best = 0; let d0 = Infinity; let d1 = Infinity;
  for (let k = 0; k < map.length; k++) {
    const d = Math.abs(v - map[k]);
    if (d < d0) { d1 = d0; d0 = d; best = k; } else if (d < d1) d1 = d;
  }
  return { k: best, margin: d1 - d0 };
}

interface ModelQ { codes: number[]; absmax: number[]; margin: number[] }
function modelQuantize(x: ArrayLike<number>, signed: boolean): ModelQ {
  const map = signed ? MODEL_MAP.signed : MODEL_MAP.unsigned;
  const codes: number[] = []; const absmax: number[] = []; const margin: number[] = [];
  for (let lo = 0; lo < x.length; lo += 256) {
    const hi = Math.min(x.length, lo + 256);
    let a = 0;
    for (let i = lo; i < hi; i++) a = Math.max(a, Math.abs(x[i]));
    absmax.push(a);
    for (let i = lo; i < hi; i++) {
      const r = a === 0 ? { k: map.indexOf(0), margin: Infinity } : nearest(x[i] / a, map);
      codes.push(r.k); margin.push(r.margin);
    }
  }
  return { codes, absmax, margin };
}
function modelDequantize(codes: ArrayLike<number>, absmax: ArrayLike<number>, signed: boolean): Float64Array {
  const map = signed ? MODEL_MAP.signed : MODEL_MAP.unsigned;
  return Float64Array.from({ length: codes.length }, (_, i) => map[codes[i]] * absmax[Math.floor(i / 256)]);
}
const f32bits = new Float32Array(1); const u32bits = new Uint32Array(f32bits.buffer);
/** bfloat16 of a double: to float32 first, then the upper half rounded to nearest even. */
function modelBf16(x: number): number {
  f32bits[0] = x; const u = u32bits[0];
  const r = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  u32bits[0] = r >>> 0; return f32bits[0];
}
const bf16Of = (bits: number): number => { u32bits[0] = (bits << 16) >>> 0; return f32bits[0]; };

// ---- helpers ------------------------------------------------------------------------------------------------------

const f32 = (a: ArrayLike<number>, dims: number[]): Tensor => new Tensor('float32', Float32Array.from(a), dims);
const f64 = (x: number): Tensor => new Tensor('float64', Float64Array.from([x]), []);
const i64 = (x: number): Tensor => new Tensor('int64', BigInt64Array.from([BigInt(x)]), []);
const raw = (type: string, data: RawTensor['data'], dims: number[]): RawTensor => ({ type, data, dims });
const dtypeOf = (f: StateFormat): string => (f === 'fp32' ? 'float32' : f === 'bf16' ? 'bfloat16' : 'uint8');

/** One step of `opt` over tensors of `sizes` with the given formats and start states; the outputs decoded as stored. */
function runStep(opt: string, spec: ReturnType<typeof makeSpec>, sizes: number[], formats: Record<string, StateFormat>, lib: string | false,
  start: { params: Float32Array[]; grads: Float32Array[]; states: Record<string, RawTensor[]>; absmax: Record<string, Float32Array[]> },
  t: number, opts: { stochasticRounding?: boolean; seed?: number } = {}) {
  const def = getOptimizer(opt);
  const sm = definedStepModel(opt, spec, sizes.map((n) => [n]), 0.05, { formats, ...opts });
  const s = NativeSession.create(encodeModel(sm.model), { opsLibrary: lib, intraOpThreads: 2 });
  s.carry(sm.carry);
  const init: Record<string, RawTensor> = {};
  sizes.forEach((n, i) => {
    init[`param_${i}`] = raw('float32', start.params[i], [n]);
    for (const k of sm.states) {
      init[`${k}_${i}`] = start.states[k][i];
      if (formats[k] === '8bit') init[`${k}_absmax_${i}`] = raw('float32', start.absmax[k][i], [Math.ceil(n / 256)]);
    }
  });
  s.setStateRaw(init);
  const feeds: Record<string, Tensor> = { step: i64(t) };
  sizes.forEach((n, i) => { feeds[`grad_${i}`] = f32(start.grads[i], [n]); });
  for (const sc of def.scalars) feeds[sc.name] = f64(sc.at(t, spec));
  s.run(feeds, []);
  const out = s.getStateRaw(sm.carried);
  s.release();
  return out;
}

// tensors that stress the quantizer: outliers, exact zeros, denormals, constant blocks, ragged tails
function hardTensors(rng: Rng): Float32Array[] {
  const outliers = Float32Array.from({ length: 1000 }, (_, i) => (i % 97 === 0 ? 1e3 * rng.normal() : 1e-3 * rng.normal()));
  const zeros = Float32Array.from({ length: 700 }, (_, i) => (i < 256 ? 0 : i % 3 === 0 ? 0 : rng.normal()));
  const denormals = Float32Array.from({ length: 600 }, (_, i) => (i < 256 ? (1 + (i % 7)) * 1e-41 * (i % 2 ? -1 : 1) : i < 512 ? rng.normal() * 1e-39 : rng.normal()));
  const constant = Float32Array.from({ length: 769 }, (_, i) => (i < 256 ? 0.37 : i < 512 ? -2.5 : i < 768 ? 1e-30 : 7));
  return [outliers, zeros, denormals, constant, Float32Array.from([3.25])];
}

describe('8-bit blockwise quantization against the float64 model', () => {
  test('the dynamic maps are bitsandbytes\' (256 values, sorted, 0 and 1 present), stored as float32', () => {
    for (const signed of [true, false]) {
      const have = quantMap(signed).values; const want = signed ? MODEL_MAP.signed : MODEL_MAP.unsigned;
      expect(have.length).toBe(256); expect(want.length).toBe(256);
      const err = Math.max(...want.map((w, k) => Math.abs(have[k] - w) / Math.max(Math.abs(w), 1e-30)));
      expect(err).toBeLessThan(1e-7); // float32 rounding of each value (measured 5.1e-8)
    }
    expect(MODEL_MAP.signed[0]).toBeCloseTo(-0.99297, 5);
    expect(MODEL_MAP.unsigned[0]).toBe(0);
  });

  // AdamW with beta1 = beta2 = 0 from zero states stores m = g (signed map) and v = g² (unsigned) exactly through the
  // quantizer: the kernel's and the body's quantize alone.
  for (const [label, lib] of [['fused kernel', 'lib'], ['function body', false]] as const) {
    test(`quantize (${label}): absmax exact, codes the nearest map value (ties excepted), on hard tensors`, () => {
      const rng = new Rng(7);
      const xs = hardTensors(rng);
      const sizes = xs.map((x) => x.length);
      const spec = makeSpec(getOptimizer('adamw'), { beta1: 0, beta2: 0, lr: 0 });
      const formats: Record<string, StateFormat> = { m: '8bit', v: '8bit' };
      const z = (n: number): RawTensor => raw('uint8', new Uint8Array(n), [n]);
      const out = runStep('adamw', spec, sizes, formats, lib === 'lib' ? opsLibraryPath() : false, {
        params: xs.map((x) => new Float32Array(x.length)), grads: xs,
        states: { m: sizes.map(z), v: sizes.map(z) }, absmax: { m: sizes.map((n) => new Float32Array(Math.ceil(n / 256))), v: sizes.map((n) => new Float32Array(Math.ceil(n / 256))) },
      }, 1);
      let ties = 0; let checked = 0;
      xs.forEach((x, i) => {
        for (const [slot, signed, vals] of [['m', true, Array.from(x)], ['v', false, Array.from(x, (g) => Math.fround(g * g))]] as const) {
          const want = modelQuantize(vals, signed);
          const codes = out[`${slot}_${i}`].data as Uint8Array; const absmax = out[`${slot}_absmax_${i}`].data as Float32Array;
          expect(Array.from(absmax)).toEqual(want.absmax.map((a) => Math.fround(a))); // max |x|: exact
          codes.forEach((c, j) => {
            checked++;
            if (want.absmax[Math.floor(j / 256)] === 0) { expect(MODEL_MAP[signed ? 'signed' : 'unsigned'][c]).toBe(0); return; }
            if (c !== want.codes[j]) { ties++; expect(want.margin[j]).toBeLessThan(1e-6 * Math.abs(vals[j] / want.absmax[Math.floor(j / 256)]) + 1e-12); }
          });
          const deq = modelDequantize(codes, absmax, signed);
          // dequantized values within half a map step of the input (the map's widest gap is 0.0141 at |v| near 1)
          deq.forEach((d, j) => expect(Math.abs(d - vals[j])).toBeLessThanOrEqual(0.0071 * absmax[Math.floor(j / 256)] + 1e-45));
        }
      });
      expect(checked).toBe(2 * sizes.reduce((a, b) => a + b, 0));
      if (process.env.ADEMAMIX_PRINT) console.log(`quantize (${label}): ${ties} near-tie mismatches in ${checked}`);
      expect(ties).toBeLessThanOrEqual(2); // near-ties decided by float32 midpoints (measured 0)
    });
  }
});

// ---- one fused step vs dequantize → float64 step → requantize ------------------------------------------------------

const FORMAT_SETS: Record<string, StateFormat | 'mixed'> = { '8bit': '8bit', bf16: 'bf16', mixed: 'mixed' };
const MEASURED: Record<string, unknown>[] = [];
afterAll(() => { if (MEASURED.length && process.env.ADEMAMIX_PRINT) console.table(MEASURED); });

describe('one coded step of every definition vs dequantize → float64 reference step → requantize', () => {
  for (const def of OPTIMIZERS) {
    for (const [label, which] of Object.entries(FORMAT_SETS)) {
      for (const [impl, lib] of [['kernel', 'lib'], ['body', false]] as const) {
        test(`${def.name}, ${label} states, ${impl}`, () => {
          const rng = new Rng(11 + def.name.length);
          const spec = makeSpec(def, def.name === 'ademamix' ? { alpha: 5, beta3: 0.999, lr: 1e-2 } : { lr: 1e-2 });
          const slots = activeStates(def, spec);
          // mixed: alternate 8-bit, fp32, bf16 over the slots
          const formats = Object.fromEntries(def.states.map((s, k) => [s.name, which === 'mixed' ? (['8bit', 'fp32', 'bf16'] as const)[k % 3] : which])) as Record<string, StateFormat>;
          const sizes = [1000, 256, 3];
          const signedOf = (k: string): boolean => !def.states.find((s) => s.name === k)!.unsigned;
          // start states: random codes and absmax (8-bit), random values (fp32/bf16); second moments positive
          const states: Record<string, RawTensor[]> = {}; const absmax: Record<string, Float32Array[]> = {};
          const start64: Record<string, Float64Array[]> = {};
          for (const k of slots) {
            states[k] = []; absmax[k] = []; start64[k] = [];
            for (const n of sizes) {
              if (formats[k] === '8bit') {
                const c = Uint8Array.from({ length: n }, () => rng.int(256));
                const a = Float32Array.from({ length: Math.ceil(n / 256) }, () => Math.fround(signedOf(k) ? 0.5 * Math.exp(rng.normal()) : 1e-2 * Math.exp(rng.normal())));
                states[k].push(raw('uint8', c, [n])); absmax[k].push(a);
                start64[k].push(modelDequantize(c, a, signedOf(k)));
              } else {
                const v = Float32Array.from({ length: n }, () => (signedOf(k) ? 0.3 * rng.normal() : 1e-2 * Math.exp(rng.normal())));
                if (formats[k] === 'bf16') {
                  const bits = Uint16Array.from(v, (x) => { f32bits[0] = modelBf16(x); return u32bits[0] >>> 16; });
                  states[k].push(raw('bfloat16', bits, [n])); start64[k].push(Float64Array.from(bits, bf16Of));
                } else { states[k].push(raw('float32', v, [n])); start64[k].push(Float64Array.from(v)); }
              }
            }
          }
          const params = sizes.map((n) => Float32Array.from({ length: n }, () => rng.normal()));
          const grads = sizes.map((n) => Float32Array.from({ length: n }, () => 0.5 * rng.normal()));
          const t = 1; // the references count their own steps from 1
          const out = runStep(def.name, spec, sizes, formats, lib === 'lib' ? opsLibraryPath() : false, { params, grads, states, absmax }, t);
          const ref = def.reference(hyperOf(def, spec, 0.05), params.map((p) => Float64Array.from(p)));
          for (const k of slots) sizes.forEach((_, i) => ref.state(k, i).set(start64[k][i]));
          ref.step(grads, Object.fromEntries(def.scalars.map((s) => [s.name, s.at(t, spec)])));
          let worstParam = 0; let flips = 0; let total = 0; let worstWide = 0; let worstAbsmax = 0; let worstFp32 = 0;
          sizes.forEach((n, i) => {
            const p = out[`param_${i}`].data as Float32Array;
            p.forEach((v, j) => { worstParam = Math.max(worstParam, Math.abs(v - ref.params[i][j]) / (1e-3 + Math.abs(ref.params[i][j] - params[i][j]))); });
            for (const k of slots) {
              const want = ref.state(k, i);
              if (formats[k] === '8bit') {
                const q = modelQuantize(want, signedOf(k));
                const a = out[`${k}_absmax_${i}`].data as Float32Array; const c = out[`${k}_${i}`].data as Uint8Array;
                a.forEach((x, b) => { worstAbsmax = Math.max(worstAbsmax, Math.abs(x - q.absmax[b]) / q.absmax[b]); });
                c.forEach((x, j) => { total++; if (x !== q.codes[j]) { flips++; expect(Math.abs(x - q.codes[j])).toBe(1); } });
              } else {
                const got = formats[k] === 'bf16' ? Float64Array.from(out[`${k}_${i}`].data as Uint16Array, bf16Of) : Float64Array.from(out[`${k}_${i}`].data as Float32Array);
                got.forEach((x, j) => {
                  const w = formats[k] === 'bf16' ? modelBf16(want[j]) : want[j];
                  // bf16: in units of one bf16 step (2^-7 relative); fp32: relative
                  if (formats[k] === 'bf16') worstWide = Math.max(worstWide, Math.abs(x - w) / (Math.abs(w) * 2 ** -7 + 1e-30));
                  else worstFp32 = Math.max(worstFp32, Math.abs(x - w) / (Math.abs(w) + 1e-30));
                });
              }
            }
          });
          MEASURED.push({ name: `${def.name} ${label} ${impl}`, worstParam, worstAbsmax, flips, total, worstWide, worstFp32 });
          // param: the float32 step vs float64, relative to the update (+1e-3); the bodies' float32 β attributes add
          // ~1.3e-5 relative to (1 − β2) (measured ≤ 1.8e-4 over all definitions and formats)
          expect(worstParam).toBeLessThan(1e-3);
          // absmax of the new 8-bit states: the same float32 effects (measured ≤ 6.7e-6 relative)
          expect(worstAbsmax).toBeLessThan(5e-5);
          // 8-bit codes off by one where the float32 state sits within rounding of a map midpoint (measured ≤ 1 in 3777)
          expect(flips).toBeLessThanOrEqual(Math.max(3, total * 3e-3));
          // bf16: the same value unless the float32 math lands across a rounding boundary (measured ≤ 0.92 of one step)
          expect(worstWide).toBeLessThanOrEqual(1.01);
          // fp32 slots of mixed sets: float32 math; the bodies' float32 (1 − β2) (measured ≤ 9.4e-6 relative)
          expect(worstFp32).toBeLessThan(5e-5);
        });
      }
    }
  }
});

// ---- stochastic rounding ------------------------------------------------------------------------------------------

describe('stochastic rounding', () => {
  // AdamW with beta1 = 0 from zero states stores m = g: each stored m is g rounded (up or down) by the random stream.
  const N = 256 * 200;
  const run = (fmt: StateFormat, g: Float32Array, sr: boolean, lib: string | false) => {
    const spec = makeSpec(getOptimizer('adamw'), { beta1: 0, beta2: 0, lr: 0 });
    const z = (d: string): RawTensor => raw(d, d === 'uint8' ? new Uint8Array(N) : d === 'bfloat16' ? new Uint16Array(N) : new Float32Array(N), [N]);
    return runStep('adamw', spec, [N], { m: fmt, v: 'fp32' }, lib, {
      params: [new Float32Array(N)], grads: [g], states: { m: [z(dtypeOf(fmt))], v: [z('float32')] },
      absmax: { m: [new Float32Array(N / 256)], v: [] },
    }, 3, { stochasticRounding: sr, seed: 42 });
  };

  test('8-bit: every code is one of the two map values around x / absmax, and the mean is x (unbiased)', () => {
    const v = 0.3333; // between two map values of the signed map
    const g = Float32Array.from({ length: N }, (_, i) => (i % 256 === 0 ? 1 : v));
    const map = MODEL_MAP.signed;
    const hi = map.findIndex((m) => m > v); const lo = hi - 1;
    for (const sr of [true, false]) {
      const out = run('8bit', g, sr, opsLibraryPath());
      const codes = out.m_0.data as Uint8Array;
      let sum = 0; let n = 0; let up = 0;
      codes.forEach((c, i) => { if (i % 256 === 0) return; expect([lo, hi]).toContain(c); sum += map[c]; n++; up += c === hi ? 1 : 0; });
      const mean = sum / n;
      if (sr) {
        // P(up) = (v − lo) / (hi − lo): the mean's standard error is (hi − lo)·√(p(1−p)/n) ≈ 3e-5 here
        if (process.env.ADEMAMIX_PRINT) console.log('8-bit SR mean error', Math.abs(mean - v), 'p', up / n);
        expect(Math.abs(mean - v)).toBeLessThan(1.5e-4); // measured 1.0e-5
        expect(up / n).toBeCloseTo((v - map[lo]) / (map[hi] - map[lo]), 1);
      } else {
        expect(up === 0 || up === n).toBe(true); // round to nearest: every element the same code
      }
    }
  });

  test('bf16: each value rounds to one of its two bf16 neighbours, unbiased; the body rounds to nearest', () => {
    const x = 1 + 2 ** -9 + 2 ** -11; // between 1 and 1 + 2^-7, 0.3125 of the way up
    const g = new Float32Array(N).fill(x);
    const out = run('bf16', g, true, opsLibraryPath());
    const vals = Array.from(out.m_0.data as Uint16Array, bf16Of);
    for (const y of vals) expect([1, 1 + 2 ** -7]).toContain(y);
    const mean = vals.reduce((a, b) => a + b, 0) / N;
    if (process.env.ADEMAMIX_PRINT) console.log('bf16 SR mean error', Math.abs(mean - x));
    expect(Math.abs(mean - x)).toBeLessThan(1e-4); // standard error 3.6e-5 (measured 1.4e-5)
    const body = Array.from(run('bf16', g, true, false).m_0.data as Uint16Array, bf16Of);
    expect(new Set(body)).toEqual(new Set([1])); // nearest
  });
});

// ---- the --states syntax ------------------------------------------------------------------------------------------

describe('--states', () => {
  const ade = getOptimizer('ademamix');
  test('one format for every slot, or slot=format pairs (others fp32); bytes of state per parameter', () => {
    // a blanket 8bit keeps AdEMAMix's slow EMA in fp32 (the measured default); naming it gives 8-bit
    expect(parseStates(ade, '8bit')).toEqual({ m1: '8bit', m2: 'fp32', nu: '8bit' });
    expect(parseStates(ade, 'm1=8bit,m2=8bit,nu=8bit')).toEqual({ m1: '8bit', m2: '8bit', nu: '8bit' });
    expect(parseStates(getOptimizer('adamw'), '8bit')).toEqual({ m: '8bit', v: '8bit' });
    expect(parseStates(ade, 'm2=fp32,nu=bf16')).toEqual({ m1: 'fp32', m2: 'fp32', nu: 'bf16' });
    expect(parseStates(ade, undefined)).toEqual({ m1: 'fp32', m2: 'fp32', nu: 'fp32' });
    const spec = makeSpec(ade, {});
    expect(stateBytesPerParam(ade, spec, parseStates(ade, 'fp32'))).toBe(12);
    expect(stateBytesPerParam(ade, spec, parseStates(ade, 'bf16'))).toBe(6);
    expect(stateBytesPerParam(ade, spec, parseStates(ade, 'm1=8bit,m2=8bit,nu=8bit'))).toBeCloseTo(3.046875, 9); // 3·(1 + 4/256)
    expect(stateBytesPerParam(ade, spec, parseStates(ade, '8bit'))).toBeCloseTo(6.03125, 9); // m2 fp32
    expect(stateBytesPerParam(getOptimizer('adamw'), makeSpec(getOptimizer('adamw'), {}), parseStates(getOptimizer('adamw'), '8bit'))).toBeCloseTo(2.03125, 9);
    expect(stateBytesPerParam(ade, makeSpec(ade, { beta1: 0 }), parseStates(ade, 'm2=8bit,nu=8bit'))).toBeCloseTo(2.03125, 9); // no m1
  });
  test('errors name the flag and the bad value or slot', () => {
    expect(() => parseStates(ade, 'int4')).toThrow("--states: unknown state format 'int4' (use fp32, bf16, 8bit)");
    expect(() => parseStates(ade, 'm=8bit')).toThrow("--states: ademamix has no state 'm' (its states: m1, m2, nu)");
    expect(() => parseStates(ade, 'm1=8bit,m1=bf16')).toThrow("--states: state 'm1' is given twice");
    expect(() => parseStates(ade, 'm1=9bit')).toThrow("--states: unknown state format '9bit'");
    expect(() => parseStates(ade, 'm1')).toThrow("--states: unknown state format 'm1'");
    expect(() => parseStates(ade, 'm1=8bit,=')).toThrow('--states: expected fp32|bf16|8bit or slot=format pairs');
  });
});

// ---- a whole training graph with 8-bit states runs on a stock ONNX Runtime (the function bodies) -------------------

test('train.onnx with --states 8bit runs on stock onnxruntime-node (the function bodies) and follows the fused kernels', async () => {
  // all 8-bit: onnxruntime-node's JS binding has no bfloat16 inputs (bf16 bodies are covered by the step tests above)
  const c = micro({ states: '8bit' });
  const task = buildTask(c);
  const art = assembleTraining({ forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(c), states: statePrecision(c), seed: c.seed });
  expect(art.manifest.stateFormats).toEqual({ m1: '8bit', m2: 'fp32', nu: '8bit' });
  expect(art.initialState.get('wte.weight.m1')!.dtype).toBe('uint8');
  expect(art.initialState.get('wte.weight.m1.absmax')!.dims).toEqual([Math.ceil(art.initialState.get('wte.weight')!.data.length / 256)]);
  const bytes = encodeModel(art.train);
  const stock = await ort.InferenceSession.create(bytes);
  const native = NativeSession.create(bytes, { opsLibrary: opsLibraryPath(), intraOpThreads: 2 });
  native.carry(art.carry);
  const init: Record<string, RawTensor> = {};
  for (const [k, v] of art.initialState) init[k] = { type: v.dtype, data: v.data as RawTensor['data'], dims: v.dims };
  native.setStateRaw(init);
  let state: Record<string, Tensor> = {};
  for (const [k, v] of art.initialState) state[k] = new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims);
  const lossesStock: number[] = []; const lossesNative: number[] = [];
  for (let t = 0; t < 5; t++) {
    const b = task.train.next();
    const out = await stock.run({ ...b.feeds, ...state } as Record<string, Tensor>);
    lossesStock.push(Number(out.loss.data[0]));
    state = Object.fromEntries(Object.entries(art.carry).map(([o, i]) => [i, out[o] as Tensor]));
    lossesNative.push(Number(native.run(b.feeds, ['loss']).loss.data[0]));
  }
  native.release();
  expect(state['wte.weight.m1'].type).toBe('uint8');
  if (process.env.ADEMAMIX_PRINT) console.log('stock vs native losses', lossesStock, lossesNative);
  // float32 bodies and kernels differ by rounding only (measured: identical losses over these 5 steps)
  lossesStock.forEach((l, k) => expect(Math.abs(l - lossesNative[k])).toBeLessThan(1e-6 * Math.abs(l)));
});

test('export --model --states: manifest and initial state carry the formats; bad values are one-line errors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'states-export-'));
  const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await main(['export', '--model', 'gpt-tiny', '--optimizer', 'lion', '--states', 'bf16', '--out', dir])).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(m.optimizer.stateFormats).toEqual({ m: 'bf16' });
    expect(m.optimizer.stateBytesPerParam).toBe(2);
    const st = loadSafetensors(path.join(dir, 'initial_state.safetensors')).tensors;
    expect(st.get('wte.weight.m')!.dtype).toBe('bfloat16');
    expect(await main(['export', '--model', 'gpt-tiny', '--states', 'nu=int8', '--out', dir])).toBe(1);
    expect(String(err.mock.calls.at(-1)?.[0])).toBe("ademamix export: --states: unknown state format 'int8' (use fp32, bf16, 8bit)\n");
  } finally { log.mockRestore(); err.mockRestore(); }
});
