// What one optimizer definition holds. Each optimizer is one file in this folder; everything else (graph nodes,
// function bodies, training assembly, the runner's state, checkpoint names, CLI flags and help, export flags,
// manifests, benches, the C++ op schemas in custom-ops/include/ademamix/schemas.gen.h) is derived from it.
import type { GraphBuilder } from '../../graph/builder';
import type { Value } from '../../graph/value';
import type { LrSchedule } from '../schedules';
import type { StateDtype } from '../nodes';
import type { StateFormat } from '../precision';

/** A training spec: the optimizer's name, its lr schedule and its hyperparameter values (keys of `hyper`). */
export type OptimizerSpec = { kind: string; lr: LrSchedule; weightDecay: number } & { [key: string]: unknown };

export interface HyperDef {
  /** Field of the spec (and of the attribute map handed to the reference), e.g. 'beta1', 'weightDecay'. */
  key: string;
  /** CLI flag (train, export --model, export --onnx), e.g. 'beta1', 'weight-decay'; none: not on the CLI. */
  flag?: string;
  /** TrainConfig field the flag sets when it differs from `key` (AdEMAMix's tBeta3 comes from --t-beta). */
  config?: string;
  default: number | boolean;
  help: string;
  /** Valid range; `[0, 1)` by default for names starting with 'beta', none otherwise. */
  range?: { min: number; max: number; minOpen?: boolean; maxOpen?: boolean };
  /** ONNX attribute of the op the value is passed as (absent: used only by the schedules). */
  attr?: string;
  /** 'bool' hyperparameters are int attributes 0/1. Default 'float'. */
  type?: 'float' | 'bool';
  /** A schedule length: unset means the run length (config.steps). */
  runLength?: boolean;
}

export interface StateDef {
  /** Checkpoint/state name suffix: `<param>.<name>`. */
  name: string;
  /** The slot is absent when this hyperparameter is 0 (AdEMAMix's m1 at beta1 = 0). */
  dropWhenZero?: string;
  /** Initial value: zeros (default), or a copy of the parameter (Schedule-Free's z). */
  init?: 'zeros' | 'param';
  /** Never negative (second moments): 8-bit storage uses bitsandbytes' unsigned dynamic map; else the signed one. */
  unsigned?: boolean;
  /** What a blanket `--states 8bit` stores this slot as (default 8-bit); naming the slot (`m2=8bit`) always gets 8-bit.
   * AdEMAMix's slow EMA: chosen from the measurement in docs/results.md ("Optimizer state precision"). */
  eightBitAs?: StateFormat;
}

/** A per-step scalar input of the op (after `step`), computed in-graph from the step in double. */
export interface ScalarDef {
  name: string;
  /** In-graph value (float64 scalar) from t = float64(step) and the spec; `lr` is the lr schedule's value. */
  graph(g: GraphBuilder, t: Value, spec: OptimizerSpec, lr: Value): Value;
  /** The same value in float64 on the host, from its definition (tests and references feed this). */
  at(t: number, spec: OptimizerSpec): number;
  /** Reported as a training metric under its name (default true). */
  metric?: boolean;
}

/** Inputs of one tensor's update in a standard-op function body. */
export interface BodyArgs {
  g: GraphBuilder;
  param: Value; grad: Value;
  states: Record<string, Value>;
  /** int64 step (1-based) */
  step: Value;
  /** the per-step scalars as fed (float or double) */
  scalars: Record<string, Value>;
  /** the calling node's float attribute as a float32 scalar */
  attr(name: string): Value;
}
export interface BodyResult { param: Value; states: Record<string, Value> }

/** Float64 reference over a list of tensors, written from shared/optimizers.md. `h` holds the hyperparameters. */
export interface Reference {
  readonly params: Float64Array[];
  step(grads: ArrayLike<number>[], scalars: Record<string, number>): void;
  /** State `name` of tensor i (for tests). */
  state(name: string, i: number): Float64Array;
  /** What evaluation and export read (Schedule-Free: x); the params themselves otherwise. */
  evalParams?(): Float64Array[];
}

/** Arguments of a custom emission (the three original ops keep their hand-written nodes). */
export interface EmitArgs {
  params: Value[]; grads: Value[];
  states: Record<string, Value[]>;
  globals: Record<string, Value>;
  step: Value;
  scalars: Record<string, Value>;
  weightDecay: number;
  /** one multi-tensor node for the group, or one node per tensor */
  multi: boolean;
  name: string;
  stateDtype: StateDtype;
  /** Per-slot storage (src/optim/precision.ts); absent or all fp32: the float32 ops (or `stateDtype`). */
  formats?: Record<string, StateFormat>;
  /** Stochastic rounding of bf16 and 8-bit stores (the coded op's kernel; its function body rounds to nearest). */
  stochasticRounding?: boolean;
  /** Seed of the stochastic rounding's counter-based random stream. */
  seed?: number;
  /** The float32 absmax of each 8-bit slot (one tensor of ceil(n/256) per parameter). */
  absmax?: Record<string, Value[]>;
}
export interface EmitResult { params: Value[]; states: Record<string, Value[]>; globals: Record<string, Value>; absmax?: Record<string, Value[]> }

export interface OptimizerDef {
  /** `--optimizer` value and spec.kind */
  name: string;
  /** One line for the help text and docs. */
  title: string;
  /** ONNX op (domain com.ademamix); the multi-tensor fused op for definitions without `emit`. */
  op: string;
  /** Default peak learning rate. */
  lr: number;
  /** The lr schedule keeps its warmup but never decays (Schedule-Free). */
  noLrDecay?: boolean;
  /** Hyperparameters besides lr (weightDecay included). */
  hyper: HyperDef[];
  /** Per-tensor states, in the op's order. */
  states: StateDef[];
  /** Optimizer-wide scalar states (Simplified's S1 with bias_correction1), carried as `optimizer.<name>`. */
  globals?: { name: string; /** the bool hyperparameter (and op attribute) that turns it on */ when: string; init: number }[];
  /** Per-step scalar inputs after `step`, in the op's order. */
  scalars: ScalarDef[];
  /** Bytes one fp32 step moves per parameter (the bandwidth floor; bench optimizer). */
  bytesPerParam(spec: OptimizerSpec): number;
  /** Standard-op body of one tensor's update, in float32 (generic definitions' function body; every definition's
   * coded-state body wraps it in dequantize/quantize). */
  body?(a: BodyArgs): BodyResult;
  /** C++ functor in custom-ops/include/ademamix/kernels.h (generic definitions); `normPass`: it needs a per-tensor
   * norm pass first (MARS). */
  kernel?: { functor: string; normPass?: boolean };
  /** Emission of the original ops through their own node builders (src/optim/nodes.ts). */
  emit?(g: GraphBuilder, x: EmitArgs, spec: OptimizerSpec): EmitResult;
  /** Float64 reference: h holds the hyperparameters (keys as in `hyper`; weightDecay is the group's). */
  reference(h: Record<string, number | boolean>, params: Float64Array[]): Reference;
  /** What evaluation and exported weights read instead of the carried parameter (Schedule-Free: x from y and z). */
  evalParam?: {
    states: string[];
    graph(g: GraphBuilder, param: Value, states: Record<string, Value>, spec: OptimizerSpec): Value;
    /** The same in float32 on the host (bit-identical to `graph`). */
    host(param: Float32Array, states: Record<string, Float32Array>, spec: OptimizerSpec): Float32Array;
  };
}
