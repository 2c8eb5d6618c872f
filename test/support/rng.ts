// A tiny seeded PRNG for tests (mulberry32, Box–Muller normals): the same seed gives the same data on every machine.
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed * 0x9e3779b9) >>> 0; }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

export function randn(n: number, seed: number, scale = 1): number[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.normal() * scale);
}
