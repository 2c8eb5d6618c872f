// Which carried pairs of a model may be carried in place (NativeSession.carry's `inPlace`): the output written into
// its input's own buffer. Safe when the node that writes the output is an optimizer node (its kernels detect an
// output that is its input and update element by element, reading before writing) that reads the input itself, and
// every other node reading the input is one of that node's ancestors, so that any topological order ORT picks runs
// them first. An assembled training graph's parameters and optimizer states pass (the backward pass that reads a
// weight feeds the gradients the optimizer node reads); `step`, or a parameter read again after its update, does not.
import { OPS_DOMAIN } from '../ops/optimizers';
import type { ModelProto } from '../onnx/proto';
import { OPTIMIZER_OP_TYPES } from '../optim/derive';

/** The inputs of `carry` (output → input) that may be carried in place in `model`. */
export function inPlaceCarries(model: ModelProto, carry: Readonly<Record<string, string>>): string[] {
  const nodes = model.graph?.node ?? [];
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.output.forEach((o) => { if (o) producer.set(o, i); }));
  const readers = new Map<string, number[]>();
  nodes.forEach((n, i) => n.input.forEach((x) => { if (x) (readers.get(x) ?? readers.set(x, []).get(x)!).push(i); }));
  const graphOutputs = new Set((model.graph?.output ?? []).map((o) => o.name));
  const ancestors = new Map<number, Set<number>>();
  const ancestorsOf = (i: number): Set<number> => {
    let seen = ancestors.get(i);
    if (seen) return seen;
    seen = new Set<number>();
    const stack = [i];
    while (stack.length) {
      for (const x of nodes[stack.pop()!].input) {
        const p = producer.get(x);
        if (p !== undefined && !seen.has(p)) { seen.add(p); stack.push(p); }
      }
    }
    ancestors.set(i, seen);
    return seen;
  };
  const out: string[] = [];
  for (const [o, i] of Object.entries(carry)) {
    const w = producer.get(o);
    const n = w === undefined ? undefined : nodes[w];
    // the fp32 and bf16 optimizer ops take aliased outputs (the kernel check runs them in place); not the coded
    // (8-bit) ops, nor the collectives
    if (!n || n.domain !== OPS_DOMAIN || !OPTIMIZER_OP_TYPES.has(n.opType) || !n.input.includes(i) || graphOutputs.has(i)) continue;
    const before = ancestorsOf(w!);
    if ((readers.get(i) ?? []).every((r) => r === w || before.has(r))) out.push(i);
  }
  return out;
}
