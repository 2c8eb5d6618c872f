// The graph builder: inputs, initializers, nodes (checked eagerly by their op's inference rule), outputs,
// opset imports and model-local functions. See serialize.ts for the ModelProto/FunctionProto it becomes.
import type { FunctionProto, TensorProto } from '../onnx/proto';
import { getOp, InferCtx, OpError } from '../ops/registry';
import '../ops/all';
import { toOnnxType, type DType } from './dtype';
import { tensorData, type TensorData } from './tensor-data';
import { attr, Node, Value, type Attr, type AttrType, type Shape } from './value';

export type AttrInput = Attr | number | bigint | string | number[] | string[] | TensorData;
export type Operand = Value | number;

export interface OpOptions {
  domain?: string;
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Output types for ops without an inference rule (custom ops, rarely used standard ones). */
  outTypes?: { dtype: DType | null; shape: Shape }[];
  name?: string;
  /** Indices of optional outputs that are not produced (emitted as ""). */
  omit?: number[];
  /** NodeProto.overload: picks among model-local functions of the same (domain, op), e.g. one per list length. */
  overload?: string;
  /** Write the outputs' inferred element types into value_info (for custom ops ORT cannot infer, e.g. variadic
   * outputs of mixed types). */
  declareOutputTypes?: boolean;
}

export const DEFAULT_OPSET = 20;

export class GraphBuilder {
  readonly inputs: Value[] = [];
  readonly initializers = new Map<Value, TensorData | TensorProto>();
  readonly nodes: Node[] = [];
  readonly outputs: { name: string; value: Value }[] = [];
  /** domain → version; '' is the default ONNX domain. */
  readonly opsets = new Map<string, number>();
  readonly functions = new Map<string, FunctionProto>();

  constructor(opts: { opset?: number } = {}) {
    this.opsets.set('', opts.opset ?? DEFAULT_OPSET);
  }

  get opset(): number { return this.opsets.get('')!; }

  /** An empty builder at the same opset, for the body of a model-local function (ops/ cannot import this class). */
  emptyLike(): GraphBuilder { return new GraphBuilder({ opset: this.opset }); }

  input(name: string, dtype: DType | null, shape: Shape): Value {
    if (this.inputs.some((v) => v.name === name)) throw new OpError(`graph input '${name}' is declared twice`);
    const v = new Value(dtype, shape, null, 0, name);
    this.inputs.push(v);
    return v;
  }

  /** A named initializer (a parameter or a large constant). An external TensorProto is kept as it is. */
  initializer(name: string, t: TensorData | TensorProto, dtype?: DType, shape?: Shape): Value {
    const v = 'data' in t ? new Value(t.dtype, [...t.dims], null, 0, name)
      : new Value(dtype ?? null, shape ?? null, null, 0, name);
    this.initializers.set(v, t);
    return v;
  }

  /** A small constant, emitted as a Constant node (works inside function bodies too). */
  constant(t: TensorData): Value {
    return this.op('Constant', [], { value: attr.t(t) });
  }

  scalar(x: number | bigint, dtype: DType = 'float32'): Value { return this.constant(tensorData(dtype, [], [x as number])); }

  /** 1-D int64 constant, the form shape-like inputs (axes, shapes, starts) take. */
  ints(xs: (number | bigint)[]): Value { return this.constant(tensorData('int64', [xs.length], xs as number[])); }

  op(opType: string, inputs: (Operand | null)[], attrs: Record<string, AttrInput> = {}, opts: OpOptions = {}): Value {
    return this.opN(opType, inputs, attrs, { ...opts, outputs: opts.outputs ?? 1 })[0];
  }

  /** Emits a node and returns all its outputs. Numbers in `inputs` become scalar constants of the other inputs' type. */
  opN(opType: string, inputs: (Operand | null)[], attrs: Record<string, AttrInput> = {}, opts: OpOptions = {}): Value[] {
    const domain = opts.domain ?? '';
    const def = getOp(opType, domain);
    const dtypeHint = inputs.find((x): x is Value => x instanceof Value && x.dtype !== null)?.dtype ?? 'float32';
    const ins = inputs.map((x) => (typeof x === 'number' ? this.scalar(x, dtypeHint) : x));
    const node = new Node(opType, domain, ins, coerceAttrs(opType, attrs, def?.attrTypes), opts.name);
    let outTypes = opts.outTypes;
    if (def) outTypes = def.infer(new InferCtx(node, opts.outputs));
    const count = opts.outputs ?? outTypes?.length ?? 1;
    node.outputs = Array.from({ length: count }, (_, k) =>
      new Value(outTypes?.[k]?.dtype ?? null, outTypes?.[k]?.shape ?? null, node, k));
    for (const k of opts.omit ?? []) node.outputs[k].absent = true;
    node.overload = opts.overload ?? '';
    node.declareOutputTypes = opts.declareOutputTypes ?? false;
    if (domain !== '' && !this.opsets.has(domain)) this.opsets.set(domain, 1);
    this.nodes.push(node);
    return node.outputs;
  }

  output(value: Value, name: string): Value {
    if (this.outputs.some((o) => o.name === name)) throw new OpError(`graph output '${name}' is declared twice`);
    this.outputs.push({ name, value });
    return value;
  }

  addFunction(f: FunctionProto): void {
    this.functions.set(`${f.domain}::${f.name}::${f.overload}`, f);
    if (!this.opsets.has(f.domain)) this.opsets.set(f.domain, 1);
  }

  // ---- sugar for the common ops (readable model code, nanoGPT-style) ----
  add(a: Operand, b: Operand): Value { return this.op('Add', [a, b]); }
  sub(a: Operand, b: Operand): Value { return this.op('Sub', [a, b]); }
  mul(a: Operand, b: Operand): Value { return this.op('Mul', [a, b]); }
  div(a: Operand, b: Operand): Value { return this.op('Div', [a, b]); }
  pow(a: Operand, b: Operand): Value { return this.op('Pow', [a, b]); }
  neg(a: Value): Value { return this.op('Neg', [a]); }
  sqrt(a: Value): Value { return this.op('Sqrt', [a]); }
  exp(a: Value): Value { return this.op('Exp', [a]); }
  log(a: Value): Value { return this.op('Log', [a]); }
  cast(a: Value, to: DType): Value { return this.op('Cast', [a], { to: attr.i(toOnnxType(to)) }); }
  identity(a: Value): Value { return this.op('Identity', [a]); }
  matmul(a: Value, b: Value): Value { return this.op('MatMul', [a, b]); }
}


function coerceAttrs(opType: string, attrs: Record<string, AttrInput>, types?: Record<string, AttrType>): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined) continue;
    if (typeof v === 'object' && v !== null && 'kind' in v) { out[k] = v; continue; }
    const t = types?.[k];
    if (typeof v === 'number' || typeof v === 'bigint') {
      if (t === 'float') out[k] = attr.f(Number(v));
      else if (t === 'int' || (t === undefined && Number.isInteger(v as number)) || typeof v === 'bigint') out[k] = attr.i(v);
      else out[k] = attr.f(Number(v));
    } else if (typeof v === 'string') out[k] = attr.s(v);
    else if (Array.isArray(v)) {
      if (v.every((x) => typeof x === 'string')) out[k] = { kind: 'strings', value: v as string[] };
      else if (t === 'floats') out[k] = attr.fs(v as number[]);
      else if (t === 'ints' || (v as number[]).every((x) => Number.isInteger(x))) out[k] = attr.is(v as number[]);
      else out[k] = attr.fs(v as number[]);
    } else if ('data' in v) out[k] = attr.t(v);
    else throw new OpError(`${opType}: attribute '${k}' has an unsupported value`);
  }
  return out;
}
