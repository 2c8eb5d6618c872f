// A training run's configuration: everything that decides the numbers (model, data, optimizer, schedule, seed, batch)
// plus bookkeeping (intervals, checkpoint policy). It is saved as config.json in the run directory and inside every
// checkpoint, so a resumed run rebuilds exactly the same graphs and data order.
import { isImageSource } from '../data/images';
import { getOptimizer, OPTIMIZER_NAMES } from '../optim/derive';
import { allFp32, parseStates, type StateFormat } from '../optim/precision';
import type { LrSchedule } from '../optim/schedules';

/** An optimizer definition's name (src/optim/defs/). */
export type OptimizerName = string;
export type NanPolicy = 'stop' | 'skip';

export interface TrainConfig {
  /** Model preset (gpt-tiny, gpt-mini, gpt-small, vit-tiny, vit-mini, vit-s) and overrides of its fields. */
  model: string;
  modelOverrides: Record<string, number>;
  /** Text: 'moby-dick' (bundled) or a text file. Images (ViT): 'mnist' (bundled), a folder of class folders of PNGs, or a .safetensors file. */
  data: string;
  level: 'char' | 'byte';
  valFraction: number;
  optimizer: OptimizerName;
  lr: number;
  warmup: number;
  decay: 'constant' | 'cosine' | 'linear';
  minLrRatio: number;
  weightDecay: number;
  beta1?: number; beta2?: number; beta3?: number; alpha?: number;
  /** Warmup lengths of α and β3 (Simplified: β1); default: the run length, as in the paper. */
  tAlpha?: number; tBeta?: number;
  /** Hyperparameters of the chosen optimizer that have no field above (eps and the like), by definition key. */
  hyper?: Record<string, number>;
  gradClip?: number;
  /** Optimizer state storage (--states): fp32 | bf16 | 8bit for every slot, or `slot=format,…`; default fp32. */
  states?: string;
  /** Stochastic rounding of bf16 and 8-bit state stores (--stochastic-rounding). */
  stochasticRounding?: boolean;
  steps: number;
  batch: number;
  /** Sequence length (text models). */
  seq: number;
  seed: number;
  threads: number;
  evalEvery: number;
  evalBatches: number;
  logEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  nanPolicy: NanPolicy;
  /** Forgetting tracking: K fixed training batches, each injected once, then their loss followed over time. */
  trackBatches: number;
  trackEvery: number;
}

/** The embedded default (`npm start`): a tiny char-level GPT on Moby-Dick with AdEMAMix, a few minutes on 2 cores. */
export const DEFAULT_CONFIG: TrainConfig = {
  model: 'gpt-tiny', modelOverrides: {}, data: 'moby-dick', level: 'char', valFraction: 0.1,
  optimizer: 'ademamix', lr: 2e-3, warmup: 100, decay: 'cosine', minLrRatio: 0.1, weightDecay: 0.1,
  alpha: 5, beta3: 0.999,
  steps: 3000, batch: 32, seq: 64, seed: 0, threads: 0,
  evalEvery: 200, evalBatches: 8, logEvery: 10, checkpointEvery: 500, keepCheckpoints: 3,
  nanPolicy: 'stop', trackBatches: 0, trackEvery: 50,
};

/** Settings that may change on resume without changing the trajectory. */
export const RESUMABLE_KEYS: (keyof TrainConfig)[] = ['threads', 'evalEvery', 'evalBatches', 'logEvery', 'checkpointEvery', 'keepCheckpoints', 'nanPolicy'];

/** Optimizer settings with a field of their own in TrainConfig; any other hyperparameter lives in `hyper`. */
export const OPTIMIZER_FIELDS = ['weightDecay', 'beta1', 'beta2', 'beta3', 'alpha', 'tAlpha', 'tBeta'];

/** A hyperparameter's configured value (config key as in the definition), or undefined. */
export function configHyper(c: TrainConfig, key: string): unknown {
  return OPTIMIZER_FIELDS.includes(key) ? (c as unknown as Record<string, unknown>)[key] : c.hyper?.[key];
}

export function isVision(c: Pick<TrainConfig, 'model'>): boolean { return c.model.startsWith('vit'); }

export function lrSchedule(c: TrainConfig): LrSchedule {
  return { lr: c.lr, warmup: c.warmup, decay: c.decay, totalSteps: c.steps, minLr: c.lr * c.minLrRatio };
}

export class ConfigError extends Error {
  constructor(message: string) { super(message); this.name = 'ConfigError'; }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first setting of the wrong JSON type (a config file, a checkpoint's config), or undefined; unknown keys pass. */
export function configTypeError(c: unknown): string | undefined {
  if (!isRecord(c)) return 'must be a JSON object of settings';
  for (const [k, v] of Object.entries(c)) {
    const want = k === 'states' ? 'string' : k === 'stochasticRounding' ? 'boolean' : OPTIMIZER_FIELDS.includes(k) || k === 'gradClip' ? 'number'
      : k === 'hyper' || k === 'modelOverrides' ? 'record' : k in DEFAULT_CONFIG ? typeof DEFAULT_CONFIG[k as keyof TrainConfig] : undefined;
    if (want === undefined || v === undefined) continue; // undefined is absent (JSON has none; code may spread it)
    if (want === 'record') {
      if (!isRecord(v) || Object.values(v).some((x) => typeof x !== 'number')) return `${k} must map names to numbers`;
    } else if (typeof v !== want) return `${k} must be a ${want}, got ${String(JSON.stringify(v)).slice(0, 40)}`;
  }
  return undefined;
}

/** Checks types, ranges and combinations once, with messages that name the setting. */
export function validateConfig(c: TrainConfig): TrainConfig {
  const typeError = configTypeError(c);
  if (typeError) throw new ConfigError(typeError);
  const posInt = (k: keyof TrainConfig, min = 1): void => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < min) throw new ConfigError(`${k} must be an integer ≥ ${min}, got ${v}`);
  };
  posInt('steps'); posInt('batch'); posInt('seq', 2); posInt('evalEvery', 0); posInt('evalBatches');
  posInt('logEvery'); posInt('checkpointEvery', 0); posInt('keepCheckpoints'); posInt('threads', 0);
  posInt('trackBatches', 0); posInt('trackEvery'); posInt('warmup', 0);
  if (!(c.lr > 0 && c.lr <= 3.4028234663852886e38)) throw new ConfigError(`lr must be > 0 and at most float32's max (3.4e38), got ${c.lr}`);
  if (!OPTIMIZER_NAMES.includes(c.optimizer)) throw new ConfigError(`optimizer must be one of ${OPTIMIZER_NAMES.join(', ')}, got '${c.optimizer}'`);
  if (!['constant', 'cosine', 'linear'].includes(c.decay)) throw new ConfigError(`decay must be constant, cosine or linear, got '${c.decay}'`);
  if (!['stop', 'skip'].includes(c.nanPolicy)) throw new ConfigError(`nan-policy must be stop or skip, got '${c.nanPolicy}'`);
  if (!['char', 'byte'].includes(c.level)) throw new ConfigError(`level must be char or byte, got '${c.level}'`);
  if (isVision(c) !== isImageSource(c.data)) {
    throw new ConfigError(isVision(c)
      ? `model ${c.model} trains on images: use --data mnist, a folder of class subfolders with PNGs, or a .safetensors file with images/labels (got '${c.data}')`
      : `model ${c.model} is a text model: --data ${c.data} is image data (for vit presets)`);
  }
  if (c.states !== undefined || c.stochasticRounding) {
    const def = getOptimizer(c.optimizer);
    let formats: Record<string, StateFormat>;
    try { formats = parseStates(def, c.states); } catch (e) { throw new ConfigError((e as Error).message); }
    if (c.stochasticRounding && allFp32(formats)) throw new ConfigError('--stochastic-rounding: needs bf16 or 8-bit states (--states bf16|8bit)');
    for (const k of def.evalParam?.states ?? []) {
      if (formats[k] !== 'fp32') throw new ConfigError(`--states: ${def.name} keeps '${k}' in fp32 (evaluation and exported weights read it), got ${k}=${formats[k]}`);
    }
    if (!allFp32(formats) && (def.globals ?? []).some((gl) => configHyper(c, gl.when) === true)) {
      throw new ConfigError(`--states: ${def.name} with its scalar state (${(def.globals ?? []).map((gl) => gl.when).join(', ')}) keeps fp32 states`);
    }
  }
  if (c.trackBatches * 2 > c.steps) throw new ConfigError(`track-batches ${c.trackBatches} needs at least ${c.trackBatches * 2} steps`);
  return c;
}
