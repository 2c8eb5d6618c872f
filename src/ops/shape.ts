// Shape helpers for inference rules: numpy broadcasting with symbolic dims.
import type { Dim, Shape } from '../graph/value';
import type { InferCtx } from './registry';

export function broadcast(ctx: InferCtx, shapes: Shape[]): Shape {
  if (shapes.some((s) => s === null)) return null;
  const ss = shapes as Dim[][];
  const rank = Math.max(...ss.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of ss) {
      const x = s[s.length - rank + i] ?? 1;
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
