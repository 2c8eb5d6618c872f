// Builder → ONNX protos. Names are assigned here: declared names are kept, everything else gets a short
// unique name derived from its op. Only nodes that the outputs need are emitted (dead code is dropped).
import {
  AttributeProto_AttributeType as AT, AttributeProtoSchema, create, FunctionProtoSchema, GraphProtoSchema,
  ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema, StringStringEntryProtoSchema, TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema, TypeProto_TensorSchema, TypeProtoSchema, ValueInfoProtoSchema,
  type AttributeProto, type FunctionProto, type GraphProto, type ModelProto, type NodeProto, type TypeProto,
} from '../onnx/proto';
import type { GraphBuilder } from './builder';
import { toOnnxType, type DType } from './dtype';
import { toTensorProto } from './tensor-data';
import type { Attr, Node, Shape, Value } from './value';

export function typeProto(dtype: DType | null, shape: Shape): TypeProto {
  const dims = shape?.map((d) => create(TensorShapeProto_DimensionSchema,
    { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : typeof d === 'string' ? { case: 'dimParam', value: d } : { case: undefined } }));
  return create(TypeProtoSchema, {
    value: {
      case: 'tensorType',
      value: create(TypeProto_TensorSchema, {
        elemType: dtype ? toOnnxType(dtype) : 0,
        ...(dims ? { shape: create(TensorShapeProtoSchema, { dim: dims }) } : {}),
      }),
    },
  });
}

function attrProto(name: string, a: Attr): AttributeProto {
  switch (a.kind) {
    case 'float': return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: a.value });
    case 'int': return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(a.value) });
    case 'string': return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(a.value) });
    case 'floats': return create(AttributeProtoSchema, { name, type: AT.FLOATS, floats: a.value });
    case 'ints': return create(AttributeProtoSchema, { name, type: AT.INTS, ints: a.value.map(BigInt) });
    case 'strings': return create(AttributeProtoSchema, { name, type: AT.STRINGS, strings: a.value.map((s) => new TextEncoder().encode(s)) });
    case 'tensor': return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: toTensorProto('', a.value) });
    case 'ref': return create(AttributeProtoSchema, { name, type: ATTR_TYPES[a.type], refAttrName: a.ref });
  }
}

export const ATTR_TYPES = {
  float: AT.FLOAT, int: AT.INT, string: AT.STRING, floats: AT.FLOATS, ints: AT.INTS, strings: AT.STRINGS,
  tensor: AT.TENSOR, graph: AT.GRAPH,
} as const;

interface Emitted { nodes: NodeProto[]; names: Map<Value, string>; declared: Value[] }

/** Names every value and emits the nodes the outputs depend on, in creation (= topological) order. */
function emit(g: GraphBuilder, fixedNames: Map<Value, string>): Emitted {
  const needed = new Set<Node>();
  const stack: Value[] = g.outputs.map((o) => o.value);
  while (stack.length) {
    const v = stack.pop()!;
    const n = v.producer;
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  const names = new Map(fixedNames);
  const used = new Set(names.values());
  const unique = (base: string): string => {
    let s = base; let k = 1;
    while (used.has(s)) s = `${base}_${k++}`;
    used.add(s);
    return s;
  };
  const nodes: NodeProto[] = [];
  const declared: Value[] = [];
  const nodeNames = new Set<string>();
  let counter = 0;
  for (const n of g.nodes) {
    if (!needed.has(n)) continue;
    const input = n.inputs.map((v) => {
      if (!v) return '';
      const nm = names.get(v);
      if (nm === undefined) {
        throw new Error(`${n.label}: input ${v.label} is not produced by any node, input or initializer of this graph`);
      }
      return nm;
    });
    const output = n.outputs.map((v) => {
      if (v.absent) return '';
      let nm = names.get(v);
      if (nm === undefined) { nm = unique(v.name ?? `${n.opType}_${counter}${n.outputs.length > 1 ? `_${v.outputIndex}` : ''}`); names.set(v, nm); }
      return nm;
    });
    let nodeName = n.name ?? `${n.opType}_${counter}`;
    while (nodeNames.has(nodeName)) nodeName = `${nodeName}_`;
    nodeNames.add(nodeName);
    counter++;
    nodes.push(create(NodeProtoSchema, {
      opType: n.opType, domain: n.domain, name: nodeName, input, output, overload: n.overload,
      attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a)),
    }));
    if (n.declareOutputTypes) declared.push(...n.outputs.filter((v) => !v.absent && v.dtype !== null));
  }
  return { nodes, names, declared };
}

/** Graph outputs need their own names: an output that is an input, an initializer or used twice gets an Identity. */
function prepareOutputs(g: GraphBuilder): Map<Value, string> {
  const fixed = new Map<Value, string>();
  for (const v of g.inputs) fixed.set(v, v.name!);
  for (const v of g.initializers.keys()) fixed.set(v, v.name!);
  for (const o of g.outputs) {
    if (fixed.has(o.value)) {
      const id = g.identity(o.value);
      o.value = id;
    }
    fixed.set(o.value, o.name);
  }
  return fixed;
}

export function toGraphProto(g: GraphBuilder, name = 'main'): GraphProto {
  const { nodes, names, declared } = emit(g, prepareOutputs(g));
  const outputNames = new Set(g.outputs.map((o) => o.name));
  return create(GraphProtoSchema, {
    name,
    node: nodes,
    // element types only (shape left to ORT) of the outputs their nodes asked to declare, unless graph outputs
    valueInfo: declared.filter((v) => !outputNames.has(names.get(v)!))
      .map((v) => create(ValueInfoProtoSchema, { name: names.get(v)!, type: typeProto(v.dtype, null) })),
    input: g.inputs.map((v) => create(ValueInfoProtoSchema, { name: v.name!, type: typeProto(v.dtype, v.shape) })),
    // an output whose type the builder could not infer is left untyped; ORT infers it
    output: g.outputs.map((o) => create(ValueInfoProtoSchema, o.value.dtype === null ? { name: o.name }
      : { name: o.name, type: typeProto(o.value.dtype, o.value.shape) })),
    initializer: [...g.initializers].map(([v, t]) => ('data' in t ? toTensorProto(v.name!, t) : { ...t, name: v.name! })),
  });
}

export interface ModelOptions {
  /** ORT 1.30 reads IR ≤ 13; 10 is what opset 20–21 models carry. */
  irVersion?: number;
  producerName?: string;
  docString?: string;
  metadata?: Record<string, string>;
  graphName?: string;
}

export function toModelProto(g: GraphBuilder, opts: ModelOptions = {}): ModelProto {
  const graph = toGraphProto(g, opts.graphName);
  return create(ModelProtoSchema, {
    irVersion: BigInt(opts.irVersion ?? 10),
    producerName: opts.producerName ?? 'ort-ademamix',
    producerVersion: '0.1.0',
    docString: opts.docString ?? '',
    opsetImport: [...g.opsets].map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
    graph,
    functions: [...g.functions.values()],
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
  });
}

export interface FunctionOptions {
  domain: string;
  name: string;
  /** Attribute names with their defaults (undefined: required). */
  attributes?: Record<string, Attr | undefined>;
  docString?: string;
}

/** A builder whose inputs/outputs are the function's formal parameters, as a FunctionProto. */
export function toFunctionProto(g: GraphBuilder, opts: FunctionOptions): FunctionProto {
  if (g.initializers.size) throw new Error(`function ${opts.domain}.${opts.name}: functions cannot hold initializers`);
  const { nodes } = emit(g, prepareOutputs(g));
  const attrs = Object.entries(opts.attributes ?? {});
  return create(FunctionProtoSchema, {
    name: opts.name,
    domain: opts.domain,
    docString: opts.docString ?? '',
    input: g.inputs.map((v) => v.name!),
    output: g.outputs.map((o) => o.name),
    node: nodes,
    opsetImport: [...g.opsets].filter(([d]) => d !== opts.domain)
      .map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
    attribute: attrs.filter(([, a]) => a === undefined).map(([k]) => k),
    attributeProto: attrs.filter(([, a]) => a !== undefined).map(([k, a]) => attrProto(k, a!)),
  });
}
