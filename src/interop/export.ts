// A forward graph exported by PyTorch (or any ONNX producer) → training artifacts: train.onnx, eval.onnx,
// forward.onnx (the model's own outputs, parameters as inputs), initial_state.safetensors, frozen.safetensors (what
// does not train but a PyTorch state_dict needs back) and manifest.json.
import type { StatePrecision } from '../optim/precision';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toModelProto } from '../graph/serialize';
import { fromTensorProto, type TensorData } from '../graph/tensor-data';
import type { Value } from '../graph/value';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { loadModel, saveModelSized } from '../onnx/io';
import type { ModelProto, TensorProto } from '../onnx/proto';
import { assembleTraining, defaultWeightDecayMask, type TrainingArtifacts } from '../train/assemble';
import { optimizer, type OptimizerSpec } from '../train/optimizers';
import { importOnnx, type ImportedGraph } from './import';
import { canonicalizeTorchExport, torchMapOf } from './torch-export';
import { chooseParams, describeChoice, EXPORTER_CONSTANT, readParamsOption, type ParamChoice, type TorchParamMap } from './params';

export interface OnnxTrainingOptions {
  /** The forward model: a file (external data is read) or a loaded ModelProto. */
  onnx: string | ModelProto;
  /** An output that is the float scalar loss, or `ce:<labels>[@<logits output>]`: cross-entropy against a new int64 input. */
  loss: string;
  /** Write the artifacts here (train.onnx, eval.onnx, forward.onnx, initial_state/frozen.safetensors, manifest.json). */
  out?: string;
  /** Exactly these initializers train: names, or a file (JSON list, graphs/export_torch.py's map, or one per line). */
  params?: string | string[];
  /** Initializers matching this pattern stay frozen. */
  freeze?: string | RegExp;
  /** Default: ademamix() (schedules off). Names take each optimizer's defaults. */
  optimizer?: OptimizerSpec | string;
  gradClip?: number;
  /** Default: rank ≥ 2 and not a position embedding (as for the TS models). */
  weightDecayMask?: (name: string, v: Value) => boolean;
  emitGradients?: boolean;
  multiTensor?: boolean;
  /** Optimizer state storage per slot (--states, --stochastic-rounding) and the rounding's seed. */
  states?: StatePrecision;
  seed?: number;
  /**
   * The model's own state_dict (a safetensors file, `safetensors.torch.save_file(model.state_dict(), f)`, or tensors):
   * recovers parameters the export folded into constants (position tables sliced to a static length).
   */
  torchState?: string | Map<string, TensorData>;
  /** Train the parameters that can be when some cannot (default: that is an error naming them). */
  allowUntrained?: boolean;
  /** List every tensor in the report, not only the counts and a few names. */
  verbose?: boolean;
  /** Where the parameter choice and notes are reported (default: nowhere). */
  log?: (text: string) => void;
}

export interface OnnxManifest {
  format: 'ademamix.onnx-training/1';
  source: string;
  loss: string;
  /** Inputs fed each step (the model's inputs, plus the labels of a `ce:` loss). */
  batchInputs: string[];
  params: string[];
  /** Parameters with weight decay. */
  decayed: string[];
  frozen: { name: string; reason: string }[];
  carry: Record<string, string>;
  metrics: string[];
  optimizer: OptimizerSpec;
  /** The optimizer's op, scalars, each parameter's states, eval.onnx's inputs (from its definition). */
  optimizerState: TrainingArtifacts['manifest'];
  /** The model's own outputs, computed by forward.onnx. */
  outputs: string[];
  /** The PyTorch names of the graph's tensors, when --params was a map from graphs/export_torch.py. */
  torch: TorchParamMap | null;
  notes: string[];
}

export interface OnnxTrainingResult {
  artifacts: TrainingArtifacts;
  /** Forward model: the model's inputs and the parameters as inputs → the model's outputs. */
  forward: ModelProto;
  choice: ParamChoice;
  manifest: OnnxManifest;
  /** Initializers that do not train but belong to the model's state (frozen parameters, buffers). */
  frozenState: Map<string, TensorData>;
}

function optimizerOf(o: OnnxTrainingOptions['optimizer']): OptimizerSpec {
  return typeof o === 'object' ? o : optimizer(o ?? 'ademamix');
}

/** The loss on an imported graph: an existing scalar output, or cross-entropy of a logits output against new labels. */
function buildLoss(imp: ImportedGraph, spec: string, source: string): { loss: Value; labels?: string } {
  const outs = [...imp.outputs.keys()];
  const m = /^ce:([^@]+)(?:@(.+))?$/.exec(spec);
  if (!m) {
    const v = imp.outputs.get(spec);
    if (!v) throw new Error(`${source}: --loss '${spec}' is not an output of the model (outputs: ${outs.join(', ')}); or use ce:<labels>`);
    if (v.shape && v.shape.some((d) => d !== 1)) {
      throw new Error(`${source}: output '${spec}' has shape [${v.shape.join(',')}], not a scalar loss; use --loss ce:<labels>@${spec} for cross-entropy on logits`);
    }
    return { loss: v };
  }
  const [, labels, logitsName] = m;
  const floatOuts = [...imp.outputs].filter(([, v]) => v.dtype === 'float32' || v.dtype === null);
  let logits: Value;
  if (logitsName) {
    const v = imp.outputs.get(logitsName);
    if (!v) throw new Error(`${source}: --loss ${spec}: '${logitsName}' is not an output (outputs: ${outs.join(', ')})`);
    logits = v;
  } else {
    if (floatOuts.length !== 1) throw new Error(`${source}: --loss ${spec}: the model has ${floatOuts.length} float outputs (${outs.join(', ')}); name the logits as ce:${labels}@<output>`);
    logits = floatOuts[0][1];
  }
  if (imp.inputs.has(labels)) throw new Error(`${source}: --loss ${spec}: the model already has an input '${labels}'`);
  const r = logits.rank;
  if (r === null || r < 2) throw new Error(`${source}: --loss ${spec}: logits ${logits.describe()} need rank ≥ 2 with classes last`);
  const { g } = imp;
  const y = g.input(labels, 'int64', logits.shape!.slice(0, -1));
  // classes last, as PyTorch's F.cross_entropy(logits.view(-1, C), labels.view(-1)); -100 is its ignore_index
  const c = logits.shape![r - 1];
  const flat = r === 2 ? logits : g.op('Reshape', [logits, typeof c === 'number' ? g.ints([-1, c])
    : g.op('Concat', [g.ints([-1]), g.op('Shape', [logits], { start: -1 })], { axis: 0 })]);
  const flatY = r === 2 ? y : g.op('Reshape', [y, g.ints([-1])]);
  const loss = g.op('SoftmaxCrossEntropyLoss', [flat, flatY], { reduction: 'mean', ignore_index: -100 });
  return { loss, labels };
}

/** Builds the training artifacts of an ONNX forward model and, with `out`, writes them. */
export function exportTrainingFromOnnx(opts: OnnxTrainingOptions): OnnxTrainingResult {
  const source = typeof opts.onnx === 'string' ? opts.onnx : '<model>';
  const loaded = typeof opts.onnx === 'string' ? loadModel(opts.onnx, { loadExternalData: true }) : opts.onnx;
  const optimizer = optimizerOf(opts.optimizer);
  const log = opts.log ?? ((): void => undefined);

  let names: string[] | undefined; let map: TorchParamMap | null = null;
  if (Array.isArray(opts.params)) names = opts.params;
  else if (typeof opts.params === 'string') ({ names, map } = readParamsOption(opts.params));
  const freeze = typeof opts.freeze === 'string' ? new RegExp(opts.freeze) : opts.freeze;

  // a torch.onnx export: every parameter back as one initializer under its state_dict key (src/interop/torch-export.ts)
  const torchState = typeof opts.torchState === 'string' ? loadSafetensors(opts.torchState).tensors : opts.torchState;
  const canon = canonicalizeTorchExport(loaded, { torchState });
  const model = canon?.model ?? loaded;
  const imp = importOnnx(model, { source });
  const { loss, labels } = buildLoss(imp, opts.loss, source);
  for (const n of [...(canon?.info.notes ?? []), ...imp.notes]) log(`note: ${n}`);
  const choice = chooseParams(imp, loss, { names, freeze, torch: canon?.info, allowUntrained: opts.allowUntrained }, source);
  if (!choice.params.length) throw new Error(`${source}: no parameter to train (${choice.frozen.length} initializers are frozen: see --params/--freeze)`);
  log(describeChoice(choice, opts.verbose));
  if (!map && canon) map = torchMapOf(canon.info, choice.params.map((p) => p.name!), choice.frozen.filter((f) => /buffer|--freeze|--params/.test(f.reason)).map((f) => f.name));
  // state_dict entries the graph lacks (buffers folded away): from --torch-state when given, else a warning
  const fromState = new Map<string, TensorData>();
  if (map && torchState) {
    // every state_dict key the graph does not account for (folded buffers; parameters left untrained) goes back as it was
    const covered = new Set([...map.params, ...map.buffers].flatMap((e) => e.torch));
    for (const [k, t] of torchState) if (!covered.has(k)) { fromState.set(k, t); map.buffers.push({ onnx: k, torch: [k] }); }
    map.missing = (map.missing ?? []).filter((k) => !fromState.has(k));
  }
  if (map?.missing?.length) {
    log(`warning: ${map.missing.length} state_dict tensor(s) are not in the graph (${map.missing.join(', ')}): the exporter folded ` +
      'them into constants, so the state_dict handed back lacks them (load it with strict=False, or pass --torch-state so they are copied)');
  }

  const outputs = [...imp.outputs.keys()];
  // train.onnx carries only the loss and the optimizer's outputs: the model's own outputs are forward.onnx's
  imp.g.outputs.splice(0);
  const mask = opts.weightDecayMask ?? defaultWeightDecayMask;
  let artifacts: TrainingArtifacts;
  try {
    artifacts = assembleTraining({
      forward: imp.g, loss, params: choice.params, optimizer, gradClip: opts.gradClip, weightDecayMask: mask,
      emitGradients: opts.emitGradients, multiTensor: opts.multiTensor, states: opts.states, seed: opts.seed,
      metadata: { 'ademamix.source': path.basename(source), 'ademamix.loss': opts.loss },
    });
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }

  // forward.onnx: a second import with the parameters as inputs
  const paramNames = new Set(choice.params.map((p) => p.name!));
  const fwd = importOnnx(model, { source, asInputs: paramNames });
  for (const [name, v] of fwd.outputs) fwd.g.output(v, name);
  const forward = toModelProto(fwd.g, { metadata: { 'ademamix.role': 'forward' } });

  // state a PyTorch state_dict needs besides the trained parameters: frozen params and buffers (by the map, or by name)
  const wanted = map ? new Set([...map.params, ...map.buffers].map((e) => e.onnx)) : null;
  const frozenState = new Map<string, TensorData>();
  for (const f of choice.frozen) {
    if (wanted ? !wanted.has(f.name) : EXPORTER_CONSTANT.test(f.name)) continue;
    const t = model.graph!.initializer.find((i) => i.name === f.name)
      ?? model.graph!.initializer.find((i) => i.name === dedupSource(model, f.name));
    if (t) frozenState.set(f.name, fromTensorProto({ ...t, name: f.name } as TensorProto));
  }
  for (const [k, t] of fromState) frozenState.set(k, t);

  const decayed = choice.params.filter((p) => optimizer.weightDecay > 0 && mask(p.name!, p)).map((p) => p.name!);
  const manifest: OnnxManifest = {
    format: 'ademamix.onnx-training/1', source: path.basename(source), loss: opts.loss,
    batchInputs: artifacts.batchInputs, params: artifacts.params, decayed, frozen: choice.frozen,
    carry: artifacts.carry, metrics: artifacts.metrics, optimizer, optimizerState: artifacts.manifest, outputs, torch: map, notes: imp.notes,
  };
  if (labels && !manifest.batchInputs.includes(labels)) manifest.batchInputs.push(labels);

  if (opts.out) {
    fs.mkdirSync(opts.out, { recursive: true });
    saveModelSized(artifacts.train, path.join(opts.out, 'train.onnx'));
    saveModelSized(artifacts.eval, path.join(opts.out, 'eval.onnx'));
    saveModelSized(forward, path.join(opts.out, 'forward.onnx'));
    saveSafetensors(path.join(opts.out, 'initial_state.safetensors'), artifacts.initialState);
    saveSafetensors(path.join(opts.out, 'frozen.safetensors'), frozenState);
    fs.writeFileSync(path.join(opts.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  }
  return { artifacts, forward, choice, manifest, frozenState };
}

/** The initializer a de-duplicated name (TorchScript's Identity(init) → name) points at. */
function dedupSource(model: ModelProto, name: string): string | undefined {
  const n = model.graph!.node.find((x) => x.opType === 'Identity' && x.output[0] === name);
  return n?.input[0];
}
