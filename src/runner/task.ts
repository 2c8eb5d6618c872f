// A task = a model preset built for its data plus the batch streams a run needs: the training stream (resumable by
// position), fixed validation batches, and fixed "tracked" training batches for forgetting curves.
import { Tensor } from 'onnxruntime-common';
import { buildGpt, gptConfig, type BuiltModel } from '../../graphs/gpt';
import { buildVit, vitConfig } from '../../graphs/vit';
import { loadMnist, ImageBatcher, type ImageSet } from '../data/mnist';
import { loadText, TextBatcher } from '../data/text';
import { loadImageArrays, loadImageFolder, splitImages } from '../data/images';
import { Rng } from '../util/rng';
import { isVision, type TrainConfig } from './config';

export interface Batch { feeds: Record<string, Tensor>; /** tokens (text) or images in the batch, for throughput */ items: number }

export interface BatchStream {
  next(): Batch;
  /** Where the stream is, as plain numbers (saved in checkpoints). */
  position(): number[];
  seek(p: number[]): void;
}

export interface Task {
  model: BuiltModel;
  train: BatchStream;
  /** Fixed validation batches (the same for every eval of a run). */
  val: Batch[];
  /** Fixed training batches for forgetting tracking (drawn apart from the training stream). */
  tracked: Batch[];
  /** 'tokens' or 'images' (what throughput counts). */
  unit: string;
  describe: string;
}

// Separate seeds per stream, so changing eval or tracking settings never changes the training data order.
const VAL_SEED = 0x5eed_0001; const TRACK_SEED = 0x5eed_0002;

/** `fused`: the model's attention as com.ademamix SelfAttention nodes (buildGpt/buildVit), for CPU sessions. */
export function buildTask(c: TrainConfig, o: { fused?: boolean } = {}): Task {
  return isVision(c) ? visionTask(c, o) : textTask(c, o);
}

function textTask(c: TrainConfig, o: { fused?: boolean }): Task {
  const data = loadText({ source: c.data, level: c.level, valFraction: c.valFraction });
  const cfg = gptConfig(c.model, { ...c.modelOverrides, vocabSize: data.vocabSize });
  if (c.seq > cfg.blockSize) throw new Error(`seq ${c.seq} is longer than ${c.model}'s block size ${cfg.blockSize}`);
  const B = c.batch; const T = c.seq;
  const toBatch = (b: { tokens: BigInt64Array; targets: BigInt64Array }): Batch => ({
    feeds: { tokens: new Tensor('int64', b.tokens, [B, T]), targets: new Tensor('int64', b.targets, [B, T]) }, items: B * T,
  });
  const trainB = new TextBatcher(data.train, B, T, new Rng(c.seed));
  const valB = new TextBatcher(data.val, B, T, new Rng(VAL_SEED + c.seed));
  const trackB = new TextBatcher(data.train, B, T, new Rng(TRACK_SEED + c.seed));
  return {
    model: buildGpt(cfg, c.seed, o),
    train: { next: () => toBatch(trainB.next()), position: () => trainB.position(), seek: (p) => trainB.seek(p) },
    val: Array.from({ length: c.evalBatches }, () => toBatch(valB.next())),
    tracked: Array.from({ length: c.trackBatches }, () => toBatch(trackB.next())),
    unit: 'tokens',
    describe: `${c.model} (${cfg.nLayer} layers, ${cfg.nEmbd} wide, vocab ${cfg.vocabSize}) on ${c.data} (${c.level}-level, ` +
      `${data.train.length} train / ${data.val.length} val tokens)`,
  };
}

function visionTask(c: TrainConfig, o: { fused?: boolean }): Task {
  let train: ImageSet; let test: ImageSet; let name = 'MNIST'; let numClasses = 10;
  if (c.data === 'mnist') ({ train, test } = loadMnist(0.15, 0));
  else {
    const d = c.data.endsWith('.safetensors') ? loadImageArrays(c.data) : loadImageFolder(c.data);
    ({ train, test } = splitImages(d, c.valFraction, 0));
    name = c.data; numClasses = d.classes.length;
  }
  // user data sets the input geometry and class count unless overridden explicitly
  const cfg = vitConfig(c.model, c.data === 'mnist' ? c.modelOverrides : { imageSize: train.size, channels: train.channels, numClasses, ...c.modelOverrides });
  if (cfg.imageSize !== train.size || cfg.channels !== train.channels) {
    throw new Error(`model ${c.model} expects ${cfg.channels}×${cfg.imageSize}² images; ${name} has ${train.channels}×${train.size}²`);
  }
  if (cfg.imageSize % cfg.patchSize) throw new Error(`${name}: image size ${cfg.imageSize} is not a multiple of ${c.model}'s patch size ${cfg.patchSize} (set --override patchSize=N)`);
  const B = c.batch; const C = cfg.channels; const S = cfg.imageSize;
  const toBatch = (b: { images: Float32Array; labels: BigInt64Array }): Batch => ({
    feeds: { images: new Tensor('float32', b.images, [B, C, S, S]), labels: new Tensor('int64', b.labels, [B]) }, items: B,
  });
  const trainB = new ImageBatcher(train, B, c.seed);
  const fixed = (set: ImageSet, n: number, seed: number): Batch[] => {
    const b = new ImageBatcher(set, B, seed);
    return Array.from({ length: n }, () => toBatch(b.next()));
  };
  return {
    model: buildVit(cfg, c.seed, o),
    train: { next: () => toBatch(trainB.next()), position: () => trainB.position(), seek: ([e, o]) => trainB.seek(e, o) },
    val: fixed(test, c.evalBatches, VAL_SEED),
    tracked: fixed(train, c.trackBatches, TRACK_SEED + c.seed),
    unit: 'images',
    describe: `${c.model} (${cfg.depth} layers, ${cfg.dim} wide, patch ${cfg.patchSize}) on ${name} (${train.count} train / ${test.count} test)`,
  };
}
