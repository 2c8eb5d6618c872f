// Shape helpers for inference rules: numpy broadcasting with symbolic dims.
import type { Dim, Shape, Value } from '../graph/value';
import { constInts } from './grad-util';
import type { InferCtx } from './registry';

export function broadcast(ctx: InferCtx, shapes: Shape[]): Shape {
  if (shapes.some((s) => s === null)) return null;
  const ss = shapes as Dim[][];
  const rank = Math.max(...ss.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of ss) {
      const k = s.length - rank + i;
      const x = k < 0 ? 1 : s[k]; // a missing leading dim is 1; a null dim stays unknown
      if (x === 1) continue;
      if (d === 1) { d = x; continue; }
      if (x === null || d === null) { d = d ?? x; continue; }
      if (x !== d) {
        if (typeof x === 'number' && typeof d === 'number') {
          ctx.fail(`shapes ${ss.map((s) => `[${s.map((v) => v ?? '?')}]`).join(' and ')} do not broadcast`);
        }
        d = typeof d === 'number' ? d : typeof x === 'number' ? x : d; // symbolic vs other: keep the known one
      }
    }
    out.push(d);
  }
  return out;
}

export const normAxis = (ctx: InferCtx, axis: number, rank: number): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
};

export const staticNumel = (s: Shape): number | null => {
  if (!s) return null;
  let n = 1;
  for (const d of s) { if (typeof d !== 'number') return null; n *= d; }
  return n;
};

/** Could two dims be equal at run time? Only two different static sizes are a certain mismatch. */
export const sameDim = (a: Dim, b: Dim): boolean => a === b || typeof a !== 'number' || typeof b !== 'number';
/** Could two shapes be equal at run time? An unknown one (null) can; else the same rank and every dim sameDim. */
export const sameShape = (a: Shape, b: Shape): boolean =>
  a === null || b === null || (a.length === b.length && a.every((d, i) => sameDim(d, b[i])));

/**
 * The elements of a 1-D int64 shape-like value, traced through the ops that build shapes (Constant, Shape,
 * Concat, Slice, Gather, Squeeze/Unsqueeze, Cast, Identity): numbers, symbols (from symbolic dims) or null.
 * Null when the value cannot be traced. Lets Reshape/Expand/ConstantOfShape with run-time shapes keep symbols.
 */
export function shapeValue(v: Value | null | undefined, depth = 0): Dim[] | null {
  const n = v?.producer;
  if (!n || depth > 32) return null;
  const ints = (k: number): number[] | null => constInts(n.inputs[k]);
  switch (n.opType) {
    case 'Constant': return constInts(v);
    case 'Shape': {
      const s = n.inputs[0]!.shape;
      if (!s) return null;
      const r = s.length;
      const norm = (x: number): number => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
      const a = n.attrs.start; const b = n.attrs.end;
      return s.slice(norm(a?.kind === 'int' ? Number(a.value) : 0), norm(b?.kind === 'int' ? Number(b.value) : r));
    }
    case 'Concat': {
      const parts = n.inputs.map((x) => shapeValue(x, depth + 1));
      return parts.every((p) => p) ? (parts as Dim[][]).flat() : null;
    }
    case 'Slice': {
      const src = shapeValue(n.inputs[0], depth + 1); const st = ints(1); const en = ints(2);
      const steps = n.inputs[4] ? ints(4) : [1];
      if (!src || !st || !en || !steps || steps[0] !== 1 || st.length !== 1) return null;
      const L = src.length; const c = (x: number): number => Math.min(Math.max(x < 0 ? x + L : x, 0), L);
      return src.slice(c(st[0]), c(en[0]));
    }
    case 'Gather': {
      const src = shapeValue(n.inputs[0], depth + 1); const idx = ints(1);
      if (!src || !idx) return null;
      return idx.map((i) => src[i < 0 ? i + src.length : i] ?? null);
    }
    case 'Squeeze': case 'Unsqueeze': case 'Cast': case 'Identity': return shapeValue(n.inputs[0], depth + 1);
    default: return null;
  }
}

/** Reshape's output dims for a target (0: copy, −1: inferred, cancelling symbols where it can). */
export function reshapeDims(x: Shape, target: Dim[], allowzero: boolean): Dim[] {
  const out = target.map((t, i) => (t === 0 && !allowzero ? x?.[i] ?? null : t === -1 ? -1 : t));
  const neg = out.indexOf(-1);
  if (neg < 0 || !x) return out.map((d) => (d === -1 ? null : d));
  // numel(x) / Π(other target dims), with symbols cancelled
  const syms: string[] = []; let num = 1;
  for (const d of x) { if (d === null) return out.map((e) => (e === -1 ? null : e)); if (typeof d === 'string') syms.push(d); else num *= d; }
  for (const [i, d] of out.entries()) {
    if (i === neg) continue;
    if (d === null) { out[neg] = null; return out; }
    if (typeof d === 'string') {
      const k = syms.indexOf(d);
      if (k < 0) { out[neg] = null; return out; }
      syms.splice(k, 1);
    } else num /= d;
  }
  out[neg] = syms.length === 0 && Number.isInteger(num) ? num : syms.length === 1 && num === 1 ? syms[0] : null;
  return out;
}
