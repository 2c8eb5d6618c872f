// ONNX ModelProto → GraphBuilder, so autodiff and assembleTraining work on graphs exported by other tools
// (torch.onnx.export, TorchScript and dynamo). Every node goes through its op's inference rule, so shapes and types
// are checked as when the graph is built in TS; value_info fills in what inference cannot know.
//
// What exporters emit and how it is taken in:
// - initializers: float ones stay initializers (parameters or frozen buffers); integer/bool ones become Constant
//   nodes, so shape inference sees their values (Reshape targets, Split sizes, Slice bounds).
// - Identity(initializer) → name: the TorchScript exporter's de-duplication of initializers with equal values (fresh
//   LayerNorm weights). Each such name gets its own copy, so the parameters stay independent as in the PyTorch model.
//   A real tie (one nn.Parameter used twice) is one initializer used twice, and gets one summed gradient.
// - Constant with value_float/value_ints/…: normalized to a tensor value.
// - SplitToSequence + SequenceAt (dynamo's split/chunk): one Split with static sizes.
// - model-local functions: inlined.
// - opset 13–17 reductions with an `axes` attribute: the axes become an input (the opset-18 form the op rules use).
import { GraphBuilder } from '../graph/builder';
import { fromOnnxType, isFloat, type DType } from '../graph/dtype';
import { fromTensorProto, tensorData, type TensorData } from '../graph/tensor-data';
import { attr, Value, type Attr, type Dim, type Shape } from '../graph/value';
import { constInts } from '../ops/grad-util';
import { foldConstant } from './fold';
import { getOp, OpError } from '../ops/registry';
import {
  AttributeProto_AttributeType as AT, TensorProto_DataLocation, type AttributeProto, type FunctionProto, type ModelProto, type NodeProto,
  type TensorProto, type TypeProto, type ValueInfoProto,
} from '../onnx/proto';

export class ImportError extends Error {
  // names from the file may hold line breaks and control bytes: escaped, so the error stays one line
  constructor(message: string) { super(message.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)); this.name = 'ImportError'; }
}

export interface ImportOptions {
  /** Names the model in errors (a file path). */
  source?: string;
  /** Initializers to declare as graph inputs instead (e.g. parameters of a forward-only model). */
  asInputs?: Set<string>;
  /** Give each TorchScript de-duplicated initializer name its own copy (default true). */
  untieDeduplicated?: boolean;
}

export interface ImportedGraph {
  g: GraphBuilder;
  /** Graph inputs that are not initializers, by name. */
  inputs: Map<string, Value>;
  /** Graph outputs, by name. */
  outputs: Map<string, Value>;
  /** Initializers kept as initializers (all float ones), by name. */
  initializers: Map<string, Value>;
  /** Things the import changed that a user should know about (untied de-duplicated initializers). */
  notes: string[];
}

/** The lowest default-domain opset taken in (older ones use attribute forms for Split/Squeeze/ReduceSum axes). */
export const MIN_OPSET = 13;
/** Imported graphs are raised to at least this opset: the gradient rules emit opset-18+ forms (Pad axes, Reduce axes). */
const TARGET_OPSET = 20;
// Reductions that took `axes` as an attribute before opset 18 (ReduceSum moved to an input at 13).
const AXES_ATTR_BEFORE_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2',
  'ReduceLogSumExp', 'ReduceSumSquare']);

const normDomain = (d: string): string => (d === 'ai.onnx' ? '' : d);
const opName = (n: NodeProto): string => `${n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::` : ''}${n.opType}`;
const nodeLabel = (n: NodeProto): string => `${n.opType} node '${n.name || n.output[0] || '?'}'`;

function tensorTypeOf(t: TypeProto | undefined): { dtype: DType | null; shape: Shape } | null {
  if (!t || t.value.case !== 'tensorType') return null;
  const tt = t.value.value;
  let dtype: DType | null = null;
  try { dtype = tt.elemType ? fromOnnxType(tt.elemType) : null; } catch { dtype = null; }
  const shape: Shape = tt.shape ? tt.shape.dim.map((d): Dim => (d.value.case === 'dimValue' ? Number(d.value.value)
    : d.value.case === 'dimParam' && d.value.value ? d.value.value : null)) : null;
  return { dtype, shape };
}

/**
 * Where a node of a torch export came from: the module scope and the innermost file:line of dynamo's stack trace
 * (`pkg.torch.onnx.*` metadata), or TorchScript's scoped node name.
 */
function sourceOf(n: NodeProto): string {
  const md = (k: string): string | undefined => n.metadataProps.find((p) => p.key === k)?.value;
  const scopes = [...(md('pkg.torch.onnx.name_scopes') ?? '').matchAll(/'([^']*)'/g)].map((m) => m[1]);
  const module = scopes.length >= 2 ? scopes[scopes.length - 2] : '';
  const frames = [...(md('pkg.torch.onnx.stack_trace') ?? '').matchAll(/File "([^"]+)", line (\d+)/g)];
  const at = frames.length ? `${frames[frames.length - 1][1]}:${frames[frames.length - 1][2]}` : '';
  if (module || at) return [module && `module ${module}`, at].filter(Boolean).join(', ');
  return n.name.startsWith('/') ? `module ${n.name.split('/').slice(1, -1).join('.')}` : '';
}

/** A sequence produced by SplitToSequence, held as its parts. */
interface SeqValue { parts: Value[]; from: NodeProto }

class Importer {
  readonly g: GraphBuilder;
  readonly values = new Map<string, Value>();
  readonly seqs = new Map<string, SeqValue>();
  readonly info = new Map<string, ValueInfoProto>();
  readonly functions = new Map<string, FunctionProto>();
  readonly unsupported: string[] = [];
  readonly notes: string[] = [];
  readonly initializers = new Map<string, Value>();
  readonly inputs = new Map<string, Value>();
  readonly modelOpset: number;

  constructor(readonly model: ModelProto, readonly opts: ImportOptions) {
    const src = opts.source ?? 'model';
    const graph = model.graph;
    if (!graph) throw new ImportError(`${src}: the model has no graph`);
    const opset = model.opsetImport.find((o) => normDomain(o.domain) === '');
    this.modelOpset = opset ? Number(opset.version) : TARGET_OPSET;
    if (this.modelOpset < MIN_OPSET) {
      throw new ImportError(`${src}: opset ${this.modelOpset} is too old (need ≥ ${MIN_OPSET}); re-export with opset_version=17 or newer`);
    }
    this.g = new GraphBuilder({ opset: Math.max(this.modelOpset, TARGET_OPSET) });
    for (const vi of [...graph.valueInfo, ...graph.output]) this.info.set(vi.name, vi);
    for (const f of model.functions) this.functions.set(`${normDomain(f.domain)}::${f.name}`, f);
  }

  get src(): string { return this.opts.source ?? 'model'; }

  run(): ImportedGraph {
    const graph = this.model.graph!;
    const inits = new Map(graph.initializer.map((t) => [t.name, t]));
    if (graph.sparseInitializer.length) {
      throw new ImportError(`${this.src}: sparse initializers are not supported (${graph.sparseInitializer.map((s) => s.values?.name).join(', ')})`);
    }
    for (const [name, t] of inits) this.addInitializer(name, t);
    for (const vi of graph.input) {
      if (inits.has(vi.name)) continue; // keep_initializers_as_inputs: an input with a default is an initializer
      const tt = tensorTypeOf(vi.type);
      if (!tt) throw new ImportError(`${this.src}: graph input '${vi.name}' is not a tensor (sequences, maps and optionals are not supported)`);
      const v = this.g.input(vi.name, tt.dtype, tt.shape);
      this.values.set(vi.name, v);
      this.inputs.set(vi.name, v);
    }
    const dedup = this.opts.untieDeduplicated ?? true;
    for (const n of graph.node) {
      if (dedup && this.untie(n, inits)) continue;
      this.node(n, this.values, '');
    }
    if (this.unsupported.length) {
      throw new ImportError(`${this.src}: ${this.unsupported.length} node(s) use ops the importer does not support: ${this.unsupported.join('; ')}`);
    }
    const outputs = new Map<string, Value>();
    for (const o of graph.output) {
      const v = this.values.get(o.name);
      if (!v) throw new ImportError(`${this.src}: graph output '${o.name}' is not produced by any node, input or initializer`);
      outputs.set(o.name, v);
    }
    return { g: this.g, inputs: this.inputs, outputs, initializers: this.initializers, notes: this.notes };
  }

  private addInitializer(name: string, t: TensorProto): void {
    const dtype = fromOnnxType(t.dataType, `${this.src}: initializer '${name}'`);
    const dims = t.dims.map(Number);
    if (this.opts.asInputs?.has(name)) {
      const v = this.g.input(name, dtype, dims);
      this.values.set(name, v); this.inputs.set(name, v);
      return;
    }
    if (isFloat(dtype)) {
      const v = this.g.initializer(name, t, dtype, dims);
      this.values.set(name, v); this.initializers.set(name, v);
      return;
    }
    // integer/bool: a Constant, so inference can read it (shape vectors, split sizes, indices)
    this.values.set(name, this.g.constant(this.tensor(t, `initializer '${name}'`)));
  }

  private tensor(t: TensorProto, what: string): TensorData {
    try { return fromTensorProto(t); } catch (e) {
      throw new ImportError(`${this.src}: ${what}: ${(e as Error).message}${t.dataLocation === TensorProto_DataLocation.EXTERNAL ? ' (external data must be loaded first)' : ''}`);
    }
  }

  /** TorchScript's de-duplicated initializer: `Identity(init) → name` where name is no other value. */
  private untie(n: NodeProto, inits: Map<string, TensorProto>): boolean {
    if (n.opType !== 'Identity' || normDomain(n.domain) !== '' || n.input.length !== 1 || n.output.length !== 1) return false;
    const src = inits.get(n.input[0]);
    const out = n.output[0];
    if (!src || inits.has(out)) return false;
    const dtype = fromOnnxType(src.dataType);
    if (!isFloat(dtype)) return false;
    const dims = src.dims.map(Number);
    let v: Value;
    if (this.opts.asInputs?.has(out)) { v = this.g.input(out, dtype, dims); this.inputs.set(out, v); }
    else { v = this.g.initializer(out, { ...src, name: out }, dtype, dims); this.initializers.set(out, v); }
    this.values.set(out, v);
    this.notes.push(`'${out}' was de-duplicated by the exporter into '${n.input[0]}' (equal values); it is its own tensor again`);
    return true;
  }

  /** Imports one node; `scope` maps names to values (the graph's, or a function body's). */
  private node(n: NodeProto, scope: Map<string, Value>, prefix: string, callAttrs?: Map<string, AttributeProto>, opset = this.modelOpset): void {
    const domain = normDomain(n.domain);
    const label = `${prefix}${nodeLabel(n)}`;
    const fn = this.functions.get(`${domain}::${n.opType}`);
    if (fn) { this.inline(n, fn, scope, prefix, callAttrs); return; }
    if (n.opType === 'SplitToSequence' && domain === '') { this.splitToSequence(n, scope, label); return; }
    if (n.opType === 'SequenceAt' && domain === '') { this.sequenceAt(n, scope, label); return; }

    const inputs = n.input.map((name) => {
      if (name === '') return null;
      if (this.seqs.has(name)) {
        this.unsupported.push(`${label} (op ${opName(n)}: takes the sequence '${name}'; only SequenceAt of a SplitToSequence is supported)`);
        return null;
      }
      const v = scope.get(name);
      if (!v) throw new ImportError(`${this.src}: ${label}: input '${name}' is not produced by an earlier node, an input or an initializer (nodes must be in topological order)`);
      return v;
    });
    const attrs: Record<string, Attr> = {};
    let bad: string | null = null;
    for (const a of n.attribute) {
      const r = this.attribute(a, callAttrs);
      if (r === undefined) continue; // a reference to an attribute the caller did not set
      if (typeof r === 'string') bad = r; else attrs[a.name] = r;
    }
    const def = getOp(n.opType, domain);
    if (!def || bad) {
      this.unsupported.push(`${label} (op ${opName(n)}${bad ? `: ${bad}` : ''}${sourceOf(n) ? `, from ${sourceOf(n)}` : ''})`);
      // keep going with value_info types, so every unsupported node is listed in one error
      n.output.forEach((o) => { if (o) scope.set(o, new Value(this.type(o)?.dtype ?? null, this.type(o)?.shape ?? null)); });
      return;
    }
    if (n.opType === 'Constant') { this.constant(n, attrs, scope, label); return; }
    if (opset < 18 && AXES_ATTR_BEFORE_18.has(n.opType) && attrs.axes) {
      const a = attrs.axes; delete attrs.axes;
      if (a.kind === 'ints') inputs[1] = this.g.ints(a.value.map(Number));
    }
    let outs: Value[];
    try {
      outs = this.g.opN(n.opType, inputs, attrs, {
        domain, name: prefix + (n.name || ''), outputs: n.output.length,
        omit: n.output.flatMap((o, i) => (o === '' ? [i] : [])),
      });
    } catch (e) {
      throw new ImportError(`${this.src}: ${label}: ${(e as Error).message}`);
    }
    const where = sourceOf(n);
    if (where && outs[0]?.producer) outs[0].producer.source = where;
    if (outs.length === 1) outs = [foldConstant(this.g, n.opType, inputs, outs[0], attrs) ?? outs[0]];
    n.output.forEach((o, i) => {
      if (!o) return;
      const v = outs[i];
      if (!prefix) { this.refine(v, o); v.name = o; } // value_info names the main graph's values only
      scope.set(o, v);
    });
  }

  /** The type value_info (or the graph outputs) declare for a name. */
  private type(name: string): { dtype: DType | null; shape: Shape } | null {
    return tensorTypeOf(this.info.get(name)?.type);
  }

  /** Fills what inference could not tell (unknown dtype, rank or dims) from value_info. */
  private refine(v: Value, name: string): void {
    const t = this.type(name);
    if (!t) return;
    if (v.dtype === null) v.dtype = t.dtype;
    if (v.shape === null) v.shape = t.shape ? [...t.shape] : null;
    else if (t.shape && t.shape.length === v.shape.length) v.shape = v.shape.map((d, i) => d ?? t.shape![i]);
  }

  /** An AttributeProto as an Attr; a string says why it is unsupported; undefined: an unset reference. */
  private attribute(a: AttributeProto, callAttrs?: Map<string, AttributeProto>): Attr | string | undefined {
    if (a.refAttrName) {
      const ref = callAttrs?.get(a.refAttrName);
      return ref ? this.attribute({ ...ref, name: a.name }, undefined) : undefined;
    }
    switch (a.type) {
      case AT.FLOAT: return attr.f(a.f);
      case AT.INT: return attr.i(a.i);
      case AT.STRING: return attr.s(new TextDecoder().decode(a.s));
      case AT.FLOATS: return attr.fs([...a.floats]);
      case AT.INTS: return attr.is([...a.ints]);
      case AT.STRINGS: return { kind: 'strings', value: a.strings.map((s) => new TextDecoder().decode(s)) };
      case AT.TENSOR:
        if (!a.t) throw new ImportError(`${this.src}: attribute '${a.name}' is of type TENSOR but holds none`);
        return attr.t(this.tensor(a.t, `attribute '${a.name}'`));
      case AT.GRAPH: case AT.GRAPHS: return `attribute '${a.name}' is a subgraph (control flow)`;
      default: return `attribute '${a.name}' has unsupported type ${a.type}`;
    }
  }

  /** Constant in any of its forms → a tensor-valued Constant node. */
  private constant(n: NodeProto, attrs: Record<string, Attr>, scope: Map<string, Value>, label: string): void {
    const [k, a] = Object.entries(attrs)[0] ?? [];
    let t: TensorData;
    if (a?.kind === 'tensor') t = a.value;
    else if (k === 'value_float' && a?.kind === 'float') t = tensorData('float32', [], [a.value]);
    else if (k === 'value_floats' && a?.kind === 'floats') t = tensorData('float32', [a.value.length], a.value);
    else if (k === 'value_int' && a?.kind === 'int') t = tensorData('int64', [], [a.value as number]);
    else if (k === 'value_ints' && a?.kind === 'ints') t = tensorData('int64', [a.value.length], a.value as number[]);
    else { this.unsupported.push(`${label} (op Constant with ${k ?? 'no'} value: only numeric tensors are supported)`); return; }
    const v = this.g.constant(t);
    if (n.output[0]) { scope.set(n.output[0], v); }
  }

  /** SplitToSequence with static sizes → Split; its parts are handed out by SequenceAt. */
  private splitToSequence(n: NodeProto, scope: Map<string, Value>, label: string): void {
    const x = scope.get(n.input[0]);
    if (!x) throw new ImportError(`${this.src}: ${label}: input '${n.input[0]}' is not defined before it`);
    const at = (k: string, d: number): number => { const a = n.attribute.find((q) => q.name === k); return a ? Number(a.i) : d; };
    const rank = x.rank;
    if (rank === null) { this.unsupported.push(`${label} (op SplitToSequence: input rank unknown)`); return; }
    const axis = at('axis', 0) < 0 ? at('axis', 0) + rank : at('axis', 0);
    const keepdims = at('keepdims', 1);
    const dim = x.shape![axis];
    const splitV = n.input[1] ? scope.get(n.input[1]) : undefined;
    const split = splitV ? constInts(splitV) : null;
    let sizes: number[] | null = null;
    if (!n.input[1]) sizes = typeof dim === 'number' ? Array(dim).fill(1) : null;
    else if (split && splitV!.rank === 0 && typeof dim === 'number') {
      const s = split[0];
      sizes = Array.from({ length: Math.ceil(dim / s) }, (_, i) => Math.min(s, dim - i * s));
    } else if (split && splitV!.rank === 1) sizes = split;
    if (!sizes) {
      this.unsupported.push(`${label} (op SplitToSequence: the split sizes must be constants and the split axis static)`);
      return;
    }
    let parts = this.g.opN('Split', [x, this.g.ints(sizes)], { axis }, { outputs: sizes.length, name: n.name || undefined });
    if (!n.input[1] && keepdims === 0) parts = parts.map((p) => this.g.op('Squeeze', [p, this.g.ints([axis])]));
    this.seqs.set(n.output[0], { parts, from: n });
  }

  private sequenceAt(n: NodeProto, scope: Map<string, Value>, label: string): void {
    const seq = this.seqs.get(n.input[0]);
    const pos = constInts(scope.get(n.input[1]));
    if (!seq || !pos) {
      this.unsupported.push(`${label} (op SequenceAt: needs a SplitToSequence input and a constant position)`);
      return;
    }
    const i = pos[0] < 0 ? pos[0] + seq.parts.length : pos[0];
    const v = seq.parts[i];
    if (!v) throw new ImportError(`${this.src}: ${label}: position ${pos[0]} is outside the ${seq.parts.length} parts of '${n.input[0]}'`);
    scope.set(n.output[0], v);
    if (!v.name) v.name = n.output[0];
  }

  /** Inlines a model-local function: formal inputs/outputs bound to the caller's values, attribute references resolved. */
  private inline(n: NodeProto, fn: FunctionProto, scope: Map<string, Value>, prefix: string, outerAttrs?: Map<string, AttributeProto>): void {
    const inner = new Map<string, Value>();
    fn.input.forEach((formal, i) => {
      const actual = n.input[i];
      if (actual) {
        const v = scope.get(actual);
        if (!v) throw new ImportError(`${this.src}: ${nodeLabel(n)}: input '${actual}' is not defined before it`);
        inner.set(formal, v);
      }
    });
    const callAttrs = new Map<string, AttributeProto>();
    for (const d of fn.attributeProto) callAttrs.set(d.name, d);
    for (const a of n.attribute) {
      if (a.refAttrName) { const r = outerAttrs?.get(a.refAttrName); if (r) callAttrs.set(a.name, { ...r, name: a.name }); }
      else callAttrs.set(a.name, a);
    }
    const p = `${prefix}${n.name || fn.name}/`;
    const own = fn.opsetImport.find((o) => normDomain(o.domain) === '');
    for (const m of fn.node) this.node(m, inner, p, callAttrs, own ? Number(own.version) : this.modelOpset);
    fn.output.forEach((formal, i) => {
      const actual = n.output[i];
      if (!actual) return;
      const v = inner.get(formal);
      if (!v) throw new ImportError(`${this.src}: function ${fn.domain}::${fn.name}: output '${formal}' is not computed`);
      scope.set(actual, v);
    });
  }
}

/** Imports a model's main graph into a new GraphBuilder (external tensor data must already be loaded). */
export function importOnnx(model: ModelProto, opts: ImportOptions = {}): ImportedGraph {
  try {
    return new Importer(model, opts).run();
  } catch (e) {
    if (e instanceof ImportError) throw e;
    if (e instanceof OpError) throw new ImportError(`${opts.source ?? 'model'}: ${e.message}`);
    throw e;
  }
}
