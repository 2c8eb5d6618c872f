// Float64 reference optimizers, written straight from the contract (shared/optimizers.md), one step at a time.
// Tests compare the fused kernels, the function bodies and the full training graphs against these.

export interface AdemamixRefConfig { beta1: number; beta2: number; eps: number; weightDecay: number }
export interface AdemamixScalars { lr: number; alpha: number; beta3: number }

export class AdemamixRef {
  readonly m1: Float64Array; readonly m2: Float64Array; readonly nu: Float64Array;
  t = 0;
  constructor(readonly param: Float64Array, readonly c: AdemamixRefConfig) {
    const n = param.length;
    this.m1 = new Float64Array(n); this.m2 = new Float64Array(n); this.nu = new Float64Array(n);
  }
  step(grad: ArrayLike<number>, s: AdemamixScalars): void {
    const t = ++this.t;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this.c;
    const bc1 = b1 === 0 ? 1 : 1 - Math.pow(b1, t);
    const bc2 = 1 - Math.pow(b2, t);
    for (let i = 0; i < this.param.length; i++) {
      const g = grad[i];
      const m1 = b1 === 0 ? g : (this.m1[i] = b1 * this.m1[i] + (1 - b1) * g);
      const m2 = (this.m2[i] = s.beta3 * this.m2[i] + (1 - s.beta3) * g);
      const nu = (this.nu[i] = b2 * this.nu[i] + (1 - b2) * g * g);
      const u = (m1 / bc1 + s.alpha * m2) / (Math.sqrt(nu / bc2) + eps);
      this.param[i] -= s.lr * (u + wd * this.param[i]);
    }
  }
}

export interface SimplifiedRefConfig {
  beta2: number; eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean;
}

export class SimplifiedAdemamixRef {
  readonly m: Float64Array; readonly nu: Float64Array;
  s1 = 0; t = 0;
  constructor(readonly param: Float64Array, readonly c: SimplifiedRefConfig) {
    this.m = new Float64Array(param.length); this.nu = new Float64Array(param.length);
  }
  step(grad: ArrayLike<number>, s: { lr: number; alpha: number; beta1: number }): void {
    const t = ++this.t;
    const { beta2: b2, eps, weightDecay: wd } = this.c;
    const s2 = 1 - Math.pow(b2, t);
    this.s1 = s.beta1 * this.s1 + 1;
    for (let i = 0; i < this.param.length; i++) {
      const g = grad[i];
      const m = (this.m[i] = s.beta1 * this.m[i] + g);
      const nu = (this.nu[i] = b2 * this.nu[i] + (1 - b2) * g * g);
      let u = this.c.biasCorrection2 ? (m + s.alpha * g) / (Math.sqrt(nu / s2) + eps)
        : (m + s.alpha * g) / (Math.sqrt(nu) + eps * Math.sqrt(s2));
      if (this.c.biasCorrection1) u /= this.s1;
      this.param[i] -= s.lr * (u + wd * this.param[i]);
    }
  }
}

export class AdamWRef {
  readonly m: Float64Array; readonly v: Float64Array;
  t = 0;
  constructor(readonly param: Float64Array, readonly c: AdemamixRefConfig) {
    this.m = new Float64Array(param.length); this.v = new Float64Array(param.length);
  }
  step(grad: ArrayLike<number>, lr: number): void {
    const t = ++this.t;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this.c;
    const bc1 = 1 - Math.pow(b1, t); const bc2 = 1 - Math.pow(b2, t);
    for (let i = 0; i < this.param.length; i++) {
      const g = grad[i];
      this.param[i] *= 1 - lr * wd;
      const m = (this.m[i] = b1 * this.m[i] + (1 - b1) * g);
      const v = (this.v[i] = b2 * this.v[i] + (1 - b2) * g * g);
      this.param[i] -= (lr * (m / bc1)) / (Math.sqrt(v / bc2) + eps);
    }
  }
}
