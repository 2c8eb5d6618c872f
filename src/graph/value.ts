// Typed values and nodes of the graph builder. Values are connected by object identity; names are only
// assigned when the graph is serialized (see serialize.ts), so builders never juggle strings.
import type { DType } from './dtype';
import type { TensorData } from './tensor-data';

/** A dimension: a number when static, a string when symbolic (batch, seq), null when unknown. */
export type Dim = number | string | null;
/** A shape, or null when even the rank is unknown. */
export type Shape = Dim[] | null;

export type AttrType = 'float' | 'int' | 'string' | 'floats' | 'ints' | 'strings' | 'tensor' | 'graph';

export type Attr =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number | bigint }
  | { kind: 'string'; value: string }
  | { kind: 'floats'; value: number[] }
  | { kind: 'ints'; value: (number | bigint)[] }
  | { kind: 'strings'; value: string[] }
  | { kind: 'tensor'; value: TensorData }
  /** Inside a function body: take the value of the calling node's attribute `ref`. */
  | { kind: 'ref'; ref: string; type: AttrType };

/** Attribute constructors, for the places where a plain JS value is ambiguous (1 as int or float). */
export const attr = {
  f: (value: number): Attr => ({ kind: 'float', value }),
  i: (value: number | bigint): Attr => ({ kind: 'int', value }),
  s: (value: string): Attr => ({ kind: 'string', value }),
  fs: (value: number[]): Attr => ({ kind: 'floats', value }),
  is: (value: (number | bigint)[]): Attr => ({ kind: 'ints', value }),
  t: (value: TensorData): Attr => ({ kind: 'tensor', value }),
  ref: (ref: string, type: AttrType): Attr => ({ kind: 'ref', ref, type }),
};

let nextId = 0;

export class Value {
  readonly id = nextId++;
  constructor(
    public dtype: DType | null,
    public shape: Shape,
    /** The node that computes this value; null for graph inputs and initializers. */
    readonly producer: Node | null = null,
    readonly outputIndex = 0,
    /** A preferred name; kept at serialization when unique. */
    public name?: string,
  ) {}

  /** An optional node output that is not produced (serialized as ""). */
  absent = false;

  get rank(): number | null { return this.shape ? this.shape.length : null; }

  /** How errors refer to this value. */
  get label(): string {
    if (this.name) return `'${this.name}'`;
    if (this.producer) return `output ${this.outputIndex} of ${this.producer.label}`;
    return `value#${this.id}`;
  }

  describe(): string { return `${this.label} (${this.dtype ?? '?'}${fmtShape(this.shape)})`; }
}

export function fmtShape(s: Shape): string {
  return s === null ? '[?]' : `[${s.map((d) => (d === null ? '?' : d)).join(',')}]`;
}

export class Node {
  outputs: Value[] = [];
  constructor(
    readonly opType: string,
    readonly domain: string,
    readonly inputs: (Value | null)[],
    readonly attrs: Record<string, Attr>,
    public name?: string,
  ) {}
  /** Which model-local function of this (domain, op) a runtime without a kernel should use (NodeProto.overload). */
  overload = '';
  /** Declare the outputs' element types as value_info: a custom op's schema may not let ORT infer them. */
  declareOutputTypes = false;
  /** Where an imported node came from in the exporter's source (module scope, file:line), for errors. */
  source = '';

  get label(): string { return `${this.opType}${this.name ? ` node '${this.name}'` : ' node'}`; }
}
