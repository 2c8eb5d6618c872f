// The op table: each op's eager type/shape inference (checked when a node is created) and, next to it in its
// module, its gradient rule. Ops not in the table can still be emitted with explicit output types.
import type { DType } from '../graph/dtype';
import type { Attr, AttrType, Node, Shape, Value } from '../graph/value';
import type { GraphBuilder } from '../graph/builder';

export interface OutType { dtype: DType | null; shape: Shape }

export class OpError extends Error {
  constructor(message: string) { super(message); this.name = 'OpError'; }
}

export class InferCtx {
  /** `requestedOutputs`: how many outputs the caller asked for (Split without sizes splits into that many). */
  constructor(readonly node: Node, readonly requestedOutputs?: number) {}
  get inputs(): (Value | null)[] { return this.node.inputs; }
  input(i: number): Value {
    const v = this.node.inputs[i];
    if (!v) this.fail(`input ${i} is required`);
    return v;
  }
  has(i: number): boolean { return !!this.node.inputs[i]; }
  attr(name: string): Attr | undefined { return this.node.attrs[name]; }
  int(name: string, dflt: number): number {
    const a = this.node.attrs[name];
    if (!a) return dflt;
    if (a.kind !== 'int') this.fail(`attribute '${name}' must be an int`);
    return Number(a.value);
  }
  float(name: string, dflt: number): number {
    const a = this.node.attrs[name];
    if (!a) return dflt;
    if (a.kind !== 'float') this.fail(`attribute '${name}' must be a float`);
    return a.value;
  }
  ints(name: string): number[] | undefined {
    const a = this.node.attrs[name];
    if (!a) return undefined;
    if (a.kind !== 'ints') this.fail(`attribute '${name}' must be a list of ints`);
    return a.value.map(Number);
  }
  string(name: string, dflt: string): string {
    const a = this.node.attrs[name];
    if (!a) return dflt;
    if (a.kind !== 'string') this.fail(`attribute '${name}' must be a string`);
    return a.value;
  }
  /** One clear error naming the node, op and the offending inputs. */
  fail(msg: string): never {
    const ins = this.node.inputs.map((v) => (v ? v.describe() : '<absent>')).join(', ');
    throw new OpError(`${this.node.label}: ${msg} (inputs: ${ins})`);
  }
  /** Requires inputs `idx` to share one dtype (when known) and returns it. */
  sameDtype(idx: number[]): DType | null {
    let d: DType | null = null;
    for (const i of idx) {
      const v = this.node.inputs[i];
      if (!v || v.dtype === null) continue;
      if (d !== null && v.dtype !== d) this.fail(`inputs must share one element type, got ${d} and ${v.dtype}`);
      d = v.dtype;
    }
    return d;
  }
  requireDtype(i: number, allowed: DType[]): void {
    const v = this.node.inputs[i];
    if (v && v.dtype !== null && !allowed.includes(v.dtype)) {
      this.fail(`input ${i} ${v.label} has type ${v.dtype}, expected one of ${allowed.join('/')}`);
    }
  }
}

/** What a gradient rule gets: the forward node and the gradients of its outputs (null: no gradient flows). */
export interface GradCtx {
  g: GraphBuilder;
  node: Node;
  /** dL/d(output k), or null where the output does not reach the loss. */
  dOut: (Value | null)[];
  /** Which inputs need a gradient (others may be returned as null). */
  needs: boolean[];
  /** Emit the com.ademamix fused backward ops (ops/fused.ts) where a rule has one, instead of their standard-op math. */
  fused: boolean;
  /**
   * The gradient of input i accumulated so far (from the consumers after this node), or null (none yet, or the value
   * is more than one of this node's inputs). A rule that folds it into its own gradient of input i (a fused node's
   * extra input, instead of an Add after it) calls absorb(i): dIn[i] then replaces the sum instead of adding to it.
   */
  prior: (i: number) => Value | null;
  absorb: (i: number) => void;
}
export type GradRule = (ctx: GradCtx) => (Value | null)[];

export interface OpDef {
  opType: string;
  domain?: string;
  /** Types of attributes, so plain JS numbers become int or float attributes correctly. */
  attrTypes?: Record<string, AttrType>;
  infer: (ctx: InferCtx) => OutType[];
  grad?: GradRule;
  /** Integer/boolean ops and shape computations: gradients stop here without an error. */
  nonDifferentiable?: boolean;
}

const table = new Map<string, OpDef>();
const key = (domain: string, opType: string): string => `${domain === 'ai.onnx' ? '' : domain}::${opType}`;

export function defineOp(def: OpDef): OpDef {
  table.set(key(def.domain ?? '', def.opType), def);
  return def;
}

export function getOp(opType: string, domain = ''): OpDef | undefined {
  return table.get(key(domain, opType));
}
