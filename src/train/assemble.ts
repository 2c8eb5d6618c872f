// Training-graph assembly: forward graph + loss + trainable initializers + optimizer spec →
//   train.onnx  inputs: batch, params, optimizer states, step → outputs: loss, metrics, `<name>.next` for every
//               carried value (params, states, step), optionally `<param>.grad`
//   eval.onnx   inputs: batch, params → loss
//   initial state (params, zero states, step = 1) for safetensors
// Carried pairs (`x.next` → `x`) are listed in the model metadata, so a runner keeps them native between steps.
import { Tensor as OrtTensor } from 'onnxruntime-common';
import { gradients } from '../autodiff';
import type { GraphBuilder } from '../graph/builder';
import { isFloat } from '../graph/dtype';
import { toModelProto } from '../graph/serialize';
import { inPlaceCarries } from './in-place';
import { fromTensorProto, numel, tensorData, type TensorData } from '../graph/tensor-data';
import {
  absmaxLength, absmaxName, dtypeOfFormat, encodeState, stateBytesPerParam, type StateFormat, type StatePrecision,
} from '../optim/precision';
import type { Node, Value } from '../graph/value';
import type { ModelProto, TensorProto } from '../onnx/proto';
import { hasOpsLibrary } from '../native/paths';
import type { StateDtype } from '../optim/nodes';
import { activeStates, emitStep, getOptimizer, type OptimizerSpec } from '../optim/derive';
import type { LrSchedule } from '../optim/schedules';
import { lrGraph } from './schedule-graph';
import { sumSquares } from '../ops/fused';
import * as dp from './data-parallel';

export interface TrainingSpec {
  /** The forward graph; trainable parameters are its initializers. It is consumed (parameters become inputs). */
  forward: GraphBuilder;
  /** Float scalar loss of the forward graph. */
  loss: Value;
  /** Trainable initializers (default: every float initializer). */
  params?: Value[];
  optimizer: OptimizerSpec;
  /** Clip the global gradient norm to this value. */
  gradClip?: number;
  /** Which parameters get weight decay (default: rank ≥ 2 and not a position embedding). */
  weightDecayMask?: (name: string, v: Value) => boolean;
  /** Also output each parameter's gradient as `<param>.grad`. */
  emitGradients?: boolean;
  /**
   * Guard the update: when the loss or the gradient norm is NaN/Inf, every carried value (params, states, step) keeps
   * its old value and the `skipped` output is 1. Costs one extra select pass over the state, so it is opt-in.
   */
  skipNonFinite?: boolean;
  /**
   * One multi-tensor optimizer node per group of parameters sharing the weight decay (one fused pass over the group)
   * instead of one node per parameter; same results. Default: true when the op library is built (without it both
   * forms run as the same standard-op function bodies).
   */
  multiTensor?: boolean;
  /** Storage type of the optimizer states (m1/m2/ν, m/ν, m/v): bfloat16 halves their memory; math stays float32. */
  stateDtype?: StateDtype;
  /** Storage per state slot (fp32, bf16, 8-bit blockwise) and stochastic rounding (src/optim/precision.ts); overrides
   * `stateDtype`. 8-bit slots carry `<param>.<slot>` (uint8) and `<param>.<slot>.absmax` (float32, ceil(n/256)). */
  states?: StatePrecision;
  /** Seed of stochastic rounding. */
  seed?: number;
  metadata?: Record<string, string>;
  /**
   * The backward pass with the fused com.ademamix ops (GeluGrad, SoftmaxGrad, LayerNormalizationGrad: one CPU pass
   * each where the op library is loaded; elsewhere their standard-op function bodies run). Default false: the
   * backward pass in standard ops only. CPU kernels only: on another execution provider leave it off.
   */
  fusedBackward?: boolean;
  /**
   * Data-parallel training over MPI ranks (src/train/data-parallel.ts): gradients and loss averaged over the world
   * in-graph before the norm, clipping, the NaN guard and the optimizer; with shardStates the optimizer states are
   * split over the ranks (ZeRO stage 1). The graph is this rank's.
   */
  world?: dp.WorldSpec;
}

export interface TrainingArtifacts {
  train: ModelProto;
  eval: ModelProto;
  /** Initial values of every carried input: params, optimizer states, step. */
  initialState: Map<string, TensorData>;
  /** carried output → input */
  carry: Record<string, string>;
  /** The carried inputs that may be carried in place in `train` (inPlaceCarries): parameters and optimizer states. */
  inPlace: string[];
  batchInputs: string[];
  params: string[];
  /** Scalar outputs besides the loss: lr, the optimizer's metric scalars (alpha, beta3, …), grad_norm. */
  metrics: string[];
  /** Inputs of eval.onnx besides the batch: the params, and the states evaluation reads (Schedule-Free: z). */
  evalInputs: string[];
  optimizer: OptimizerSpec;
  manifest: OptimizerManifest;
  /** Sharded states (world.shardStates): state input → where this rank's slice lies in the whole tensor. */
  shards?: Map<string, dp.ShardInfo>;
}

/** What a loop outside this project needs to feed and carry (manifest.json of exported artifacts). */
export interface OptimizerManifest {
  name: string; op: string;
  hyper: Record<string, unknown>; lr: LrSchedule;
  /** per-step scalar inputs of the op, computed in-graph from `step` */
  scalars: string[];
  bytesPerParam: number;
  /** storage of each active state slot, bytes of state per parameter, stochastic rounding of the stores */
  stateFormats: Record<string, StateFormat>; stateBytesPerParam: number; stochasticRounding: boolean;
  /** each parameter's state inputs (8-bit slots: the codes and their absmax) (carried like the parameter) */
  states: Record<string, string[]>;
  /** optimizer-wide scalar states */
  globals: string[];
  /** parameters that receive weight decay */
  decayed: string[];
  /** carried output → input */
  carry: Record<string, string>;
  /** eval.onnx's inputs besides the batch, and what it evaluates */
  evalInputs: string[];
  evalReads: string;
}

export const NEXT = '.next';
export const CARRY_METADATA_KEY = 'ademamix.carry';

export function defaultWeightDecayMask(name: string, v: Value): boolean {
  return (v.rank ?? 0) >= 2 && !/(^|[._])(wpe|pos|position)/i.test(name);
}

export function assembleTraining(spec: TrainingSpec): TrainingArtifacts {
  const g = spec.forward;
  const { loss, optimizer: opt } = spec;
  if (loss.dtype !== null && !isFloat(loss.dtype)) throw new Error(`assembleTraining: loss ${loss.describe()} is not a float`);
  const params = spec.params ?? [...g.initializers.keys()].filter((v) => isFloat(v.dtype));
  if (!params.length) throw new Error('assembleTraining: no trainable parameters (no float initializers)');
  const initialState = new Map<string, TensorData>();
  for (const p of params) {
    const t = g.initializers.get(p);
    if (!t) throw new Error(`assembleTraining: parameter ${p.label} is not an initializer of the forward graph`);
    if (p.dtype !== 'float32') throw new Error(`assembleTraining: parameter ${p.label} is ${p.dtype}; only float32 parameters train`);
    initialState.set(p.name!, 'data' in t ? t : fromTensorProto(t as TensorProto));
    g.initializers.delete(p);
    g.inputs.push(p);
  }
  const batchInputs = g.inputs.filter((v) => !params.includes(v)).map((v) => v.name!);

  const def = getOptimizer(opt.kind);
  const slots = activeStates(def, opt);
  const stateDtype = spec.stateDtype ?? 'float32';
  const world = spec.world;
  const sharded = world?.shardStates === true;
  if (sharded && !dp.SHARDABLE_OPTIMIZERS.includes(def.name)) {
    throw new Error(`--shard-states: ${def.name} is not elementwise; sharded states are implemented for ${dp.SHARDABLE_OPTIMIZERS.join(', ')}`);
  }
  const shards = sharded ? new Map<string, dp.ShardInfo>() : undefined;
  const formatOf = (slot: string): StateFormat => spec.states?.formats[slot] ?? (stateDtype === 'bfloat16' ? 'bf16' : 'fp32');
  const formats = Object.fromEntries(def.states.map((s) => [s.name, formatOf(s.name)]));
  for (const k of def.evalParam?.states ?? []) {
    if (formats[k] !== 'fp32') throw new Error(`assembleTraining: ${def.name} keeps '${k}' in fp32 (evaluation and exported weights read it), got ${formats[k]}`);
  }
  // a rank's slice of a state is cut at any element, an 8-bit block or a bf16 store would have to follow it
  if (sharded && slots.some((k) => formats[k] !== 'fp32')) {
    throw new Error(`--shard-states: sharded states are fp32 only (got ${slots.map((k) => `${k}=${formats[k]}`).join(',')})`);
  }
  const stateInputs = new Map<string, Value>();
  const stateInput = (p: Value, slot: string): Value => {
    const name = `${p.name}.${slot}`;
    if (!stateInputs.has(name)) {
      const sd = def.states.find((s) => s.name === slot);
      const fmt = formatOf(slot);
      const p0 = initialState.get(p.name!)!;
      const n = numel(p0.dims);
      if (shards) {
        // this rank's 1/N of the state (fp32: checked above)
        const si = dp.shardInfo(p0.dims, world!); shards.set(name, si);
        initialState.set(name, sd?.init === 'param' ? dp.sliceData({ ...p0, data: Float32Array.from(p0.data as Float32Array) }, si) : tensorData('float32', [si.k]));
        stateInputs.set(name, g.input(name, 'float32', [si.k]));
      } else {
        if (sd?.init === 'param') {
          // a state that starts as a copy of the parameter (Schedule-Free's z), stored as its format stores it
          const enc = encodeState(p0.data as Float32Array, fmt, !sd.unsigned);
          initialState.set(name, { dtype: dtypeOfFormat(fmt), dims: p0.dims, data: enc.data });
          if (enc.format === '8bit') initialState.set(absmaxName(name), { dtype: 'float32', dims: [absmaxLength(n)], data: enc.absmax });
        } else {
          // zeros: an all-zero absmax decodes every code to 0
          initialState.set(name, tensorData(dtypeOfFormat(fmt), p0.dims));
          if (fmt === '8bit') initialState.set(absmaxName(name), tensorData('float32', [absmaxLength(n)]));
        }
        stateInputs.set(name, g.input(name, dtypeOfFormat(fmt), p.shape));
        if (fmt === '8bit') stateInputs.set(absmaxName(name), g.input(absmaxName(name), 'float32', [absmaxLength(n)]));
      }
    }
    return stateInputs.get(name)!;
  };

  // eval.onnx: forward + loss only (serialization drops everything the loss does not need). When the optimizer
  // evaluates another point than the carried parameter (Schedule-Free: x from y and z), the forward nodes read that
  // point for this serialization only.
  const saved = g.outputs.splice(0);
  g.output(loss, 'loss');
  const evalInputs = params.map((p) => p.name!);
  const rewired: [Node, number, Value][] = [];
  if (def.evalParam) {
    const ep = def.evalParam;
    const forwardNodes = [...g.nodes];
    for (const p of params) {
      const st = Object.fromEntries(ep.states.map((k) => [k, stateInput(p, k)]));
      evalInputs.push(...ep.states.map((k) => `${p.name}.${k}`));
      const x = ep.graph(g, p, st, opt);
      for (const n of forwardNodes) n.inputs.forEach((v, k) => { if (v === p) { n.inputs[k] = x; rewired.push([n, k, p]); } });
    }
    // nodes are emitted in creation order: the x nodes (inputs and constants only) go first
    g.nodes.unshift(...g.nodes.splice(forwardNodes.length));
  }
  const evalModel = toModelProto(g, { metadata: { ...spec.metadata, 'ademamix.role': 'eval' } });
  for (const [n, k, p] of rewired) n.inputs[k] = p;
  g.outputs.splice(0);
  g.outputs.push(...saved.filter((o) => o.name !== 'loss'));
  if (!g.outputs.some((o) => o.name === 'loss')) g.outputs.unshift({ name: 'loss', value: loss });

  let grads = gradients(g, loss, params, { fused: spec.fusedBackward ?? false });
  let stepLoss = loss; // the loss the NaN guard and the `loss` output see: the world's mean when data-parallel
  const stopIn = world && world.size > 1 ? g.input(dp.STOP_INPUT, 'float32', []) : undefined;
  let stopOut: Value | undefined;
  if (world && !sharded) ({ grads, loss: stepLoss, stop: stopOut } = dp.allReduceGradients(g, grads, loss, stopIn));
  const paramShards = sharded ? params.map((p) => dp.shardInfo(initialState.get(p.name!)!.dims, world!)) : [];
  if (sharded) grads = dp.reduceScatterGradients(g, grads, world!); // this rank's slices
  const metrics: string[] = [];
  const carry: Record<string, string> = {};
  let ok: Value | null = null; // set when updates are guarded against non-finite values
  const carried = (out: Value, inputName: string): void => {
    const old = g.inputs.find((v) => v.name === inputName);
    g.output(ok && old ? g.op('Where', [ok, out, old]) : out, inputName + NEXT);
    carry[inputName + NEXT] = inputName;
  };

  // global gradient norm (reported always; used for clipping when asked)
  // fused: one SumSquares node over every gradient (gpt-mini: 52 ReduceSumSquare nodes and a Sum were 0.57 ms of
  // the step's kernel time, 2026-12-03); else one ReduceSumSquare per gradient and one variadic Sum (a GPT's ~75
  // gradients had been 3 nodes each: Mul, ReduceSum, Add)
  let sqSum = sumSquares(g, grads, spec.fusedBackward ?? false);
  if (sharded) ({ sq: sqSum, loss: stepLoss, stop: stopOut } = dp.allReduceNormAndLoss(g, sqSum, loss, world!, stopIn));
  if (world) g.outputs.find((o) => o.name === 'loss')!.value = stepLoss;
  if (stopOut) g.output(stopOut, dp.STOP_OUTPUT);
  const norm = g.sqrt(sqSum);
  g.output(norm, 'grad_norm'); metrics.push('grad_norm');
  if (spec.skipNonFinite) {
    const finite = (x: Value): Value => g.op('Not', [g.op('Or', [g.op('IsNaN', [x]), g.op('IsInf', [x])])]);
    ok = g.op('And', [finite(norm), finite(g.cast(stepLoss, 'float32'))]);
    g.output(g.cast(g.op('Not', [ok]), 'int64'), 'skipped'); metrics.push('skipped');
  }
  if (spec.gradClip !== undefined) {
    const scale = g.op('Min', [g.div(spec.gradClip, g.add(norm, 1e-6)), g.scalar(1)]);
    grads = grads.map((gr) => g.mul(gr, scale));
  }
  if (spec.emitGradients && sharded) throw new Error('assembleTraining: emitGradients with sharded states (gradients exist as slices only)');
  if (spec.emitGradients) params.forEach((p, i) => g.output(g.identity(grads[i]), `${p.name}.grad`));

  const step = g.input('step', 'int64', []);
  initialState.set('step', tensorData('int64', [], [1]));
  carried(g.add(step, g.scalar(1, 'int64')), 'step');
  const t = g.cast(step, 'float64');
  const lr = lrGraph(g, t, opt.lr);
  g.output(lr, 'lr'); metrics.push('lr');
  const scalars: Record<string, Value> = {};
  for (const sd of def.scalars) {
    scalars[sd.name] = sd.name === 'lr' ? lr : sd.graph(g, t, opt, lr);
    if (sd.name !== 'lr' && sd.metric !== false) { g.output(scalars[sd.name], sd.name); metrics.push(sd.name); }
  }
  const globals: Record<string, Value> = {};
  for (const gl of def.globals ?? []) {
    if (opt[gl.when] !== true) continue;
    const name = `optimizer.${gl.name}`;
    globals[gl.name] = g.input(name, 'float32', []);
    initialState.set(name, tensorData('float32', [], [gl.init]));
  }

  const mask = spec.weightDecayMask ?? defaultWeightDecayMask;
  const wdOf = (p: Value): number => (mask(p.name!, p) ? opt.weightDecay : 0);
  // multi-tensor: parameter indices grouped by weight decay, in order of first appearance; else one node per tensor
  const multi = spec.multiTensor ?? hasOpsLibrary();
  const groups: [number, number[], string][] = multi
    ? [...params.reduce((m, p, i) => m.set(wdOf(p), [...(m.get(wdOf(p)) ?? []), i]), new Map<number, number[]>())]
      .map(([wd, idx]) => [wd, idx, `${def.name}/wd=${wd}`])
    : params.map((p, i) => [wdOf(p), [i], `${def.name}/${p.name}`]);
  const globalsCarried = new Set<string>();
  const updatedSlices: [number, Value][] = []; // sharded: gathered into whole parameters after every group
  for (const [wd, idx, name] of groups) {
    const ps = idx.map((i) => params[i]);
    const states = Object.fromEntries(slots.map((k) => [k, ps.map((p) => stateInput(p, k))]));
    const q = slots.filter((k) => formats[k] === '8bit');
    const absmax = Object.fromEntries(q.map((k) => [k, ps.map((p) => stateInputs.get(absmaxName(`${p.name}.${k}`))!)]));
    const r = emitStep(g, def, {
      params: sharded ? idx.map((i) => dp.paramSlice(g, params[i], paramShards[i])) : ps,
      grads: idx.map((i) => grads[i]), states, globals, step, scalars, weightDecay: wd, multi, name, stateDtype,
      formats, stochasticRounding: spec.states?.stochasticRounding, seed: spec.seed, absmax,
    }, opt);
    ps.forEach((p, j) => {
      if (sharded) updatedSlices.push([idx[j], r.params[j]]); else carried(r.params[j], p.name!);
      for (const k of slots) carried(r.states[k][j], `${p.name}.${k}`);
      for (const k of q) carried(r.absmax![k][j], absmaxName(`${p.name}.${k}`));
    });
    // an optimizer-wide state (Simplified's S1) is computed alike by every node: carry the first
    for (const [k, v] of Object.entries(r.globals)) {
      if (!globalsCarried.has(k)) { carried(v, `optimizer.${k}`); globalsCarried.add(k); }
    }
  }
  if (sharded) {
    const whole = dp.gatherParams(g, updatedSlices.map(([, v]) => v), updatedSlices.map(([i]) => paramShards[i]), world!);
    updatedSlices.forEach(([i], j) => carried(whole[j], params[i].name!));
  }
  const manifest: OptimizerManifest = {
    name: def.name, op: def.op, hyper: Object.fromEntries(def.hyper.map((h) => [h.key, opt[h.key] ?? null])), lr: opt.lr,
    scalars: def.scalars.map((x) => x.name), bytesPerParam: def.bytesPerParam(opt),
    stateFormats: Object.fromEntries(slots.map((k) => [k, formats[k]])), stateBytesPerParam: stateBytesPerParam(def, opt, formats),
    stochasticRounding: spec.states?.stochasticRounding === true,
    states: Object.fromEntries(params.map((p) => [p.name!, slots.flatMap((k) => formats[k] === '8bit' ? [`${p.name}.${k}`, absmaxName(`${p.name}.${k}`)] : [`${p.name}.${k}`])])),
    globals: Object.keys(globals).map((k) => `optimizer.${k}`),
    decayed: params.filter((p) => wdOf(p) !== 0).map((p) => p.name!),
    carry, evalInputs, evalReads: def.evalParam ? `x = f(param, ${def.evalParam.states.join(', ')}) (computed inside eval.onnx)` : 'param',
  };

  const train = toModelProto(g, {
    metadata: { ...spec.metadata, 'ademamix.role': 'train', [CARRY_METADATA_KEY]: JSON.stringify(carry), 'ademamix.optimizer': JSON.stringify(opt) },
  });
  return { train, eval: evalModel, initialState, carry, inPlace: inPlaceCarries(train, carry), batchInputs, params: params.map((p) => p.name!), metrics, evalInputs, optimizer: opt, manifest, shards };
}

/**
 * The weights to hand off (params.safetensors, a PyTorch state_dict): the carried parameters, or what the optimizer
 * evaluates instead (Schedule-Free: x), computed exactly as eval.onnx computes it. `state` holds evalInputs.
 */
export function exportedParams(art: TrainingArtifacts, state: Record<string, OrtTensor>): Record<string, OrtTensor> {
  const ep = getOptimizer(art.optimizer.kind).evalParam;
  const out: Record<string, OrtTensor> = {};
  for (const p of art.params) {
    const y = state[p];
    if (!ep) { out[p] = y; continue; }
    const st = Object.fromEntries(ep.states.map((k) => [k, state[`${p}.${k}`].data as Float32Array]));
    out[p] = new OrtTensor('float32', ep.host(y.data as Float32Array, st, art.optimizer), y.dims);
  }
  return out;
}
