// A small seeded PRNG (splitmix64-seeded xoshiro128**), so inits, data order and dropout seeds are reproducible and
// its position can be saved in checkpoints.
// Math's functions captured once: under jest every lookup of the global `Math` goes through its vm context's global
// object, ~0.2 µs each (normal() took 2.3 s per million draws in a test, 0.06 s in plain node)
const { imul, sqrt, log, cos, floor, PI } = Math;

export class Rng {
  private s: Uint32Array;
  constructor(seed: number | Uint32Array = 0) {
    if (seed instanceof Uint32Array) { this.s = Uint32Array.from(seed); return; }
    this.s = new Uint32Array(4);
    let x = BigInt.asUintN(64, BigInt(floor(seed)) + 0x9e3779b97f4a7c15n);
    for (let i = 0; i < 4; i += 2) {
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      let z = x;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      z ^= z >> 31n;
      this.s[i] = Number(z & 0xffffffffn); this.s[i + 1] = Number(z >> 32n);
    }
  }
  /** The generator's position, for checkpoints. */
  get state(): Uint32Array { return Uint32Array.from(this.s); }

  nextU32(): number {
    const s = this.s;
    const r = imul(rotl(imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
    return r;
  }
  /** Uniform in [0, 1). */
  next(): number { return (this.nextU32() * 2 ** 21 + (this.nextU32() >>> 11)) / 2 ** 53; }
  int(n: number): number { return floor(this.next() * n); }
  normal(): number {
    let u = 0; while (u === 0) u = this.next();
    return sqrt(-2 * log(u)) * cos(2 * PI * this.next());
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) { const j = this.int(i + 1); [a[i], a[j]] = [a[j], a[i]]; }
    return a;
  }
}
const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;
