// Optimizer state precision: each state slot of a definition (defs/types.ts StateDef) is stored as fp32, bf16 or
// 8-bit blockwise (bitsandbytes' semantics: blocks of 256 elements, one float32 absmax per block, a dynamic
// quantization map, signed for momenta and unsigned for slots declared `unsigned`). The math is float32 either way:
// dequantize → the definition's fp32 update → requantize, in the fused kernel (custom-ops/include/ademamix/codec.h)
// and in the standard-op function body (derive.ts codedFunction). This module holds what the host needs: the
// `--states` syntax, the quantization maps (also emitted into schemas.gen.h for the kernels), a host codec (initial
// states, checkpoint conversion) following the kernels' rules, and the bytes of state per parameter.
import type { OptimizerDef, OptimizerSpec } from './defs/types';

export type StateFormat = 'fp32' | 'bf16' | '8bit';
export const STATE_FORMATS: readonly StateFormat[] = ['fp32', 'bf16', '8bit'];
/** The `formats` attribute's codes (kernels: codec.h kFmt*). */
export const FORMAT_CODE: Record<StateFormat, number> = { fp32: 0, bf16: 1, '8bit': 2 };

/** bitsandbytes' block size for its blockwise 8-bit optimizers (optim/optimizer.py: blocks = ceil(n / 256)). */
export const QUANT_BLOCK = 256;

/** Per-slot formats of one run (every slot of the definition named), and whether stores round stochastically. */
export interface StatePrecision { formats: Record<string, StateFormat>; stochasticRounding: boolean }

export class StatesError extends Error {
  constructor(message: string) { super(message); this.name = 'StatesError'; }
}

const isFormat = (s: string): s is StateFormat => (STATE_FORMATS as readonly string[]).includes(s);

/**
 * `--states` text → a format per slot of `def`: one format for every slot (`8bit`: each slot's `eightBitAs`, 8-bit
 * unless its definition says otherwise), or `slot=fmt` pairs (`m1=8bit,m2=fp32,nu=8bit`; slots not named stay fp32).
 * Errors name the flag and the bad value or slot.
 */
export function parseStates(def: OptimizerDef, text: string | undefined, flag = '--states'): Record<string, StateFormat> {
  const slots = def.states.map((s) => s.name);
  const out: Record<string, StateFormat> = Object.fromEntries(slots.map((s) => [s, 'fp32' as StateFormat]));
  if (text === undefined || text === '') return out;
  const fmtErr = (v: string): StatesError => new StatesError(`${flag}: unknown state format '${v}' (use ${STATE_FORMATS.join(', ')})`);
  if (!text.includes('=')) {
    if (!isFormat(text)) throw fmtErr(text);
    for (const s of def.states) out[s.name] = text === '8bit' ? s.eightBitAs ?? '8bit' : text;
    return out;
  }
  const seen = new Set<string>();
  for (const part of text.split(',')) {
    const [slot, fmt, ...rest] = part.split('=');
    if (!slot || fmt === undefined || rest.length) throw new StatesError(`${flag}: expected fp32|bf16|8bit or slot=format pairs, got '${part}'`);
    if (!slots.includes(slot)) throw new StatesError(`${flag}: ${def.name} has no state '${slot}' (its states: ${slots.join(', ')})`);
    if (seen.has(slot)) throw new StatesError(`${flag}: state '${slot}' is given twice`);
    if (!isFormat(fmt)) throw fmtErr(fmt);
    seen.add(slot);
    out[slot] = fmt;
  }
  return out;
}

/** The canonical text of a format map (one word when every slot agrees), for configs and names. */
export function formatStates(formats: Record<string, StateFormat>): string {
  const v = Object.values(formats);
  return v.every((f) => f === v[0]) ? v[0] ?? 'fp32' : Object.entries(formats).map(([k, f]) => `${k}=${f}`).join(',');
}

/** Every slot fp32 (the plain ops). */
export const allFp32 = (formats: Record<string, StateFormat> | undefined): boolean => !formats || Object.values(formats).every((f) => f === 'fp32');

/** Number of absmax entries of an 8-bit state of n elements. */
export const absmaxLength = (n: number): number => Math.ceil(n / QUANT_BLOCK);

/** Bytes one state element takes in a format (8-bit: its byte plus its share of the block's float32 absmax). */
export const bytesPerElementOf = (f: StateFormat): number => (f === 'fp32' ? 4 : f === 'bf16' ? 2 : 1 + 4 / QUANT_BLOCK);

/** Bytes of optimizer state per parameter for this spec's active slots (AdEMAMix: 12 → 6 → 3.05). */
export function stateBytesPerParam(def: OptimizerDef, spec: OptimizerSpec | Record<string, unknown>, formats: Record<string, StateFormat>): number {
  return def.states.filter((s) => !s.dropWhenZero || (spec[s.dropWhenZero] ?? def.hyper.find((h) => h.key === s.dropWhenZero)?.default) !== 0)
    .reduce((a, s) => a + bytesPerElementOf(formats[s.name] ?? 'fp32'), 0);
}

// ---- the dynamic quantization map ---------------------------------------------------------------------------------
// bitsandbytes' create_dynamic_map (max_exponent_bits 7, 8 bits): for decade i = 0..6 the values 10^(i−6)·c, c the
// midpoints of a linear grid of 0.1..1 with 2^i intervals (signed: ± each) or 2^(i+1) (unsigned), plus 0 and 1;
// sorted. 256 values either way. Built in double, stored as float32 (what the kernels hold).

function dynamicMap(signed: boolean): Float32Array {
  const v: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const intervals = signed ? 2 ** i : 2 ** (i + 1);
    const scale = 10 ** (i - 6);
    for (let k = 0; k < intervals; k++) {
      const lo = 0.1 + (0.9 * k) / intervals; const hi = 0.1 + (0.9 * (k + 1)) / intervals;
      const m = scale * ((lo + hi) / 2);
      v.push(m);
      if (signed) v.push(-m);
    }
  }
  if (v.length !== 256) throw new Error(`dynamic map has ${v.length} values`);
  return Float32Array.from(v.sort((a, b) => a - b));
}

/** Decision thresholds of the map: code = the largest k with x ≥ t[k] (t[0] = −∞); t[k] = the float32 midpoint of
 * map[k−1] and map[k]. Nearest value, ties upwards. Kernels, function bodies and the host codec all use these. */
function thresholds(map: Float32Array): Float32Array {
  const t = new Float32Array(256);
  t[0] = -Infinity;
  for (let k = 1; k < 256; k++) t[k] = Math.fround((map[k - 1] + map[k]) / 2);
  return t;
}

export interface QuantMap { values: Float32Array; thresholds: Float32Array }
const MAPS: Record<'signed' | 'unsigned', QuantMap> = (() => {
  const s = dynamicMap(true); const u = dynamicMap(false);
  return { signed: { values: s, thresholds: thresholds(s) }, unsigned: { values: u, thresholds: thresholds(u) } };
})();
export const quantMap = (signed: boolean): QuantMap => MAPS[signed ? 'signed' : 'unsigned'];

// ---- host codec (the kernels' rules, float32 arithmetic through Math.fround) -----------------------------------------

/** Code of a normalized value (x / absmax) by the thresholds: 8 steps of binary search. */
export function quantizeCode(x: number, m: QuantMap): number {
  let c = 0;
  for (let b = 128; b >= 1; b >>= 1) if (x >= m.thresholds[c + b]) c += b;
  return c;
}

/** float32 values → 8-bit codes and per-block absmax (absmax 0: every code decodes to 0; we store map's 0). */
export function quantize8(x: ArrayLike<number>, signed: boolean): { codes: Uint8Array; absmax: Float32Array } {
  const m = quantMap(signed);
  const n = x.length; const nb = absmaxLength(n);
  const codes = new Uint8Array(n); const absmax = new Float32Array(nb);
  const zero = quantizeCode(0, m);
  for (let b = 0; b < nb; b++) {
    const lo = b * QUANT_BLOCK; const hi = Math.min(n, lo + QUANT_BLOCK);
    let a = 0;
    for (let i = lo; i < hi; i++) a = Math.max(a, Math.abs(Math.fround(x[i])));
    absmax[b] = a;
    for (let i = lo; i < hi; i++) codes[i] = a === 0 ? zero : quantizeCode(Math.fround(Math.fround(x[i]) / a), m);
  }
  return { codes, absmax };
}

export function dequantize8(codes: Uint8Array, absmax: Float32Array, signed: boolean): Float32Array {
  const v = quantMap(signed).values;
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = Math.fround(v[codes[i]] * absmax[Math.floor(i / QUANT_BLOCK)]);
  return out;
}

const f32 = new Float32Array(1); const u32 = new Uint32Array(f32.buffer);
/** float32 → bfloat16 bits, round to nearest even (NaN kept quiet), as the kernels store. */
export function toBf16Bits(x: number): number {
  f32[0] = x; const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
export function fromBf16Bits(b: number): number { u32[0] = (b << 16) >>> 0; return f32[0]; }

/** A state tensor as stored: fp32 data, bf16 bits, or 8-bit codes with their absmax. */
export type StoredState =
  | { format: 'fp32'; data: Float32Array }
  | { format: 'bf16'; data: Uint16Array }
  | { format: '8bit'; data: Uint8Array; absmax: Float32Array };

export function encodeState(x: Float32Array, format: StateFormat, signed: boolean): StoredState {
  if (format === 'fp32') return { format, data: Float32Array.from(x) };
  if (format === 'bf16') return { format, data: Uint16Array.from(x, toBf16Bits) };
  const q = quantize8(x, signed);
  return { format, data: q.codes, absmax: q.absmax };
}

export function decodeState(s: StoredState, signed: boolean): Float32Array {
  if (s.format === 'fp32') return Float32Array.from(s.data);
  if (s.format === 'bf16') return Float32Array.from(s.data, fromBf16Bits);
  return dequantize8(s.data, s.absmax, signed);
}

/** The element type a format stores. */
export const dtypeOfFormat = (f: StateFormat): 'float32' | 'bfloat16' | 'uint8' => (f === 'fp32' ? 'float32' : f === 'bf16' ? 'bfloat16' : 'uint8');
/** The checkpoint/state name of an 8-bit state's absmax. */
export const absmaxName = (stateName: string): string => `${stateName}.absmax`;
