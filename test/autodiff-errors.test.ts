// gradients(): error reporting, pruning of non-differentiable paths, unreachable parameters, tied weights, and
// the size of the backward graph on a deep model.
import * as ort from 'onnxruntime-node';
import { gradientMap, gradients } from '../src/autodiff';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { tensorData } from '../src/graph/tensor-data';
import type { Value } from '../src/graph/value';
import { encodeModel } from '../src/onnx/io';

const run = async (g: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> =>
  (await ort.InferenceSession.create(encodeModel(toModelProto(g)))).run(feeds);
const f32 = (data: number[], dims: number[]): ort.Tensor => new ort.Tensor('float32', Float32Array.from(data), dims);

describe('gradients() errors', () => {
  test('ops without a rule on the path: one error naming every such node and op type', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [2, 3]);
    const a = g.op('ReduceProd', [x, g.ints([1])], { keepdims: 1 }, { name: 'prod1' });
    const b = g.op('Foo', [x], {}, { domain: 'my.ops', outTypes: [{ dtype: 'float32', shape: [2, 3] }], name: 'custom1' });
    const loss = g.op('ReduceSum', [g.mul(a, b)], { keepdims: 0 });
    expect(() => gradients(g, loss, [x])).toThrow(
      /no gradient rule for 2 node\(s\).*ReduceProd node 'prod1' \(op ReduceProd.*Foo node 'custom1' \(op my\.ops::Foo/);
  });

  test('an op without a rule off the path (not fed by the parameters) is fine', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const c = g.input('c', 'float32', [3]);
    const k = g.op('ReduceProd', [c], { keepdims: 1 });
    const [dx] = gradients(g, g.op('ReduceSum', [g.mul(x, k)], { keepdims: 0 }), [x]);
    expect(dx.shape).toEqual([3]);
  });

  test('the loss must be a float scalar', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['n', 3]);
    expect(() => gradients(g, g.mul(x, 2), [x])).toThrow(/loss output 0 of Mul node \(float32\[n,3\]\) must be a scalar/);
    const i = g.op('ReduceSum', [g.cast(x, 'int64')], { keepdims: 0 });
    expect(() => gradients(g, i, [x])).toThrow(/must be a float tensor/);
    expect(() => gradients(g, g.op('ReduceSum', [x], { keepdims: 1 }), [x])).not.toThrow(); // shape [1,1] is fine
  });

  test('a failing rule is reported with its node', () => {
    const g = new GraphBuilder();
    const s = g.input('s', 'float32', [4, 3]);
    const w = g.input('w', 'float32', [3]);
    const loss = g.op('SoftmaxCrossEntropyLoss', [s, g.ints([0, 1, 2, 0]), w], {}, { name: 'xent' });
    expect(() => gradients(g, loss, [s, w])).toThrow(/rule for SoftmaxCrossEntropyLoss node 'xent' failed: the gradient for the class weights/);
  });

  test('an unreachable parameter gets zeros of its run-time shape, or an error when asked', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['n', 2]);
    const unused = g.input('unused', 'float32', ['n', 3]);
    const loss = g.op('ReduceSum', [g.mul(x, x)], { keepdims: 0 });
    expect(() => gradients(g, loss, [x, unused], { unreachable: 'error' })).toThrow(/'unused' \(float32\[n,3\]\) does not reach the loss/);
    const m = gradientMap(g, loss, [x, unused]);
    g.output(m.get(unused)!, 'd_unused');
    const out = await run(g, { x: f32([1, 2, 3, 4], [2, 2]), unused: f32([1, 1, 1, 1, 1, 1], [2, 3]) });
    expect(out.d_unused.dims).toEqual([2, 3]);
    expect(Array.from(out.d_unused.data as Float32Array)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('pruning', () => {
  test('integer and boolean paths (Shape, Range, comparisons, ArgMax, integer Cast, Where condition, Trilu masks) do not raise', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 'T']);
    const T = g.op('Shape', [x], { start: 1, end: 2 });
    const mask = g.cast(g.op('Trilu', [g.op('ConstantOfShape', [g.op('Concat', [T, T], { axis: 0 })], { value: tensorData('int64', [1], [1]) })], { upper: 0 }), 'bool');
    const scores = g.op('MatMul', [g.op('Unsqueeze', [x, g.ints([2])]), g.op('Unsqueeze', [x, g.ints([1])])]); // [B,T,T]
    const masked = g.op('Where', [mask, scores, g.scalar(-1e4)]);
    const idx = g.op('ArgMax', [x], { axis: 1, keepdims: 0 });                       // int64, from x
    const n = g.cast(g.op('Size', [x]), 'float32');                                 // float, but from Shape/Size: no gradient
    const floor = g.op('Floor', [x]);                                                // zero gradient a.e.: pruned
    const picked = g.op('ReduceSum', [g.op('Gather', [x, idx], { axis: 1 })], { keepdims: 0 }); // flows to x, not idx
    const w = g.op('Where', [g.op('Greater', [x, g.scalar(0)]), x, g.scalar(0)]);  // condition from x: pruned
    const loss = g.add(g.add(g.op('ReduceSum', [g.op('Softmax', [masked], { axis: -1 })], { keepdims: 0 }),
      g.div(g.add(g.op('ReduceSum', [g.mul(w, floor)], { keepdims: 0 }), picked), n)),
    g.op('ReduceSum', [g.cast(g.cast(x, 'int32'), 'float32')], { keepdims: 0 }));
    const [dx] = gradients(g, loss, [x]);
    g.output(dx, 'dx');
    // no backward node for the integer/bool side: only standard float ops and shape plumbing
    const out = await run(g, { x: f32([0.5, -1, 2.5, 1.5, 0.25, -2], [2, 3]) });
    expect(out.dx.dims).toEqual([2, 3]);
    expect(Array.from(out.dx.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  test('tied weights get one summed gradient', async () => {
    const g = new GraphBuilder();
    const w = g.input('w', 'float32', [3, 2]);
    const ids = g.ints([0, 2]);
    const e = g.op('Gather', [w, ids], { axis: 0 });                      // [2,2]
    const logits = g.matmul(e, g.op('Transpose', [w]));                  // [2,3], tied
    const loss = g.op('ReduceSum', [g.mul(logits, logits)], { keepdims: 0 });
    const [dw] = gradients(g, loss, [w]);
    expect(dw.producer!.opType).toBe('Add');
    g.output(dw, 'dw');
    const W = [1, 2, 3, 4, 5, 6];
    const out = await run(g, { w: f32(W, [3, 2]) });
    // reference: d/dW Σ (E Wᵀ)² with E = W[ids]
    const Wm = [[1, 2], [3, 4], [5, 6]]; const E = [Wm[0], Wm[2]];
    const L = E.map((er) => Wm.map((wr) => er[0] * wr[0] + er[1] * wr[1]));
    const ref = Wm.map(() => [0, 0]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) {
      ref[j][k] += 2 * L[i][j] * E[i][k];
      ref[[0, 2][i]][k] += 2 * L[i][j] * Wm[j][k];
    }
    expect(Array.from(out.dw.data as Float32Array)).toEqual(ref.flat());
  });
});

describe('backward graph size', () => {
  // Structure, not time (speed lives in benchmarks): the backward pass of an L-layer MLP has O(L) nodes, so 4× the
  // depth gives 4× the nodes, and no constant it adds is more than a few ints.
  function mlp(layers: number): { backward: number; model: ReturnType<typeof toModelProto> } {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 16]);
    const params: Value[] = [];
    let h = x;
    for (let l = 0; l < layers; l++) {
      const w = g.initializer(`w${l}`, tensorData('float32', [16, 16]));
      const b = g.initializer(`b${l}`, tensorData('float32', [16]));
      params.push(w, b);
      h = g.op('Tanh', [g.add(g.matmul(h, w), b)]);
    }
    const loss = g.op('ReduceMean', [g.mul(h, h)], { keepdims: 0 });
    const before = g.nodes.length;
    const grads = gradients(g, loss, params);
    grads.forEach((d, i) => g.output(d, `grad_${params[i].name}`));
    return { backward: g.nodes.length - before, model: toModelProto(g) };
  }

  test('an MLP: gradients() emits O(layers) ops, with no constant larger than a few ints', () => {
    const a = mlp(50); const b = mlp(200);
    expect(b.backward).toBeLessThan(15 * 200);
    expect(b.backward / a.backward).toBeGreaterThan(3.9);
    expect(b.backward / a.backward).toBeLessThan(4.1);
    for (const n of b.model.graph!.node) {
      for (const at of n.attribute) if (at.t) expect(at.t.rawData.length).toBeLessThanOrEqual(64);
    }
  });
});

describe('inference rules', () => {
  test('errors name the op and the offending inputs', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', ['batch', 3]);
    const b = g.input('b', 'float32', [4, 2]);
    expect(() => g.op('Gemm', [a, b])).toThrow(/Gemm node: inner dimensions differ: 3 vs 4 \(inputs: 'a' \(float32\[batch,3\]\), 'b'/);
    expect(() => g.op('MatMul', [a, b])).toThrow(/MatMul node: inner dimensions differ/);
    expect(() => g.op('Reshape', [b, g.ints([3, -1])])).toThrow(/Reshape node: cannot reshape 8 elements/);
    expect(() => g.op('LayerNormalization', [a, g.input('s', 'float32', [5])])).toThrow(/LayerNormalization node: input 1 's' \(float32\[5\]\) does not broadcast/);
    expect(() => g.op('SoftmaxCrossEntropyLoss', [g.input('sc', 'float32', [5, 3]), g.input('t', 'int64', [7])])).toThrow(/SoftmaxCrossEntropyLoss node: targets must have shape \[5\]/);
    expect(() => g.op('Conv', [g.input('x', 'float32', ['n', 3, 8, 8]), g.input('w', 'float32', [4, 2, 2, 2])])).toThrow(/Conv node: X has 3 channels but W expects 2×1/);
    expect(() => g.op('Concat', [a, b], { axis: 2 })).toThrow(/Concat node: axis 2 is out of range for rank 2/);
    expect(() => g.op('Gather', [a, g.scalar(0)], { axis: 0 })).toThrow(/Gather node: input 1 .* has type float32, expected one of int64\/int32/);
  });

  test('symbolic dims flow through shape ops built from Shape', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 'seq', 8]);
    const bt = g.op('Shape', [x], { start: 0, end: 2 });
    expect(bt.shape).toEqual([2]);
    const heads = g.op('Reshape', [x, g.op('Concat', [bt, g.ints([2, 4])], { axis: 0 })]);
    expect(heads.shape).toEqual(['batch', 'seq', 2, 4]);
    expect(g.op('Reshape', [heads, g.ints([0, 0, -1])]).shape).toEqual(['batch', 'seq', 8]);
    expect(g.op('Reshape', [x, g.ints([-1, 8])]).shape).toEqual([null, 8]);
    const cls = g.input('cls', 'float32', [1, 1, 8]);
    const e = g.op('Expand', [cls, g.op('Concat', [g.op('Shape', [x], { start: 0, end: 1 }), g.ints([1, 8])], { axis: 0 })]);
    expect(e.shape).toEqual(['batch', 1, 8]);
    expect(g.op('Concat', [e, x], { axis: 1 }).shape).toEqual(['batch', null, 8]);
    expect(g.op('Flatten', [x], { axis: 2 }).shape).toEqual([null, 8]);
    expect(g.op('Conv', [g.input('img', 'float32', ['n', 3, 32, 32]), g.input('k', 'float32', [16, 3, 8, 8])], { strides: [8, 8] }).shape)
      .toEqual(['n', 16, 4, 4]);
    const mask = g.op('ConstantOfShape', [g.op('Concat', [g.op('Shape', [x], { start: 1, end: 2 }), g.op('Shape', [x], { start: 1, end: 2 })], { axis: 0 })]);
    expect(g.op('Trilu', [mask]).shape).toEqual(['seq', 'seq']);
    expect(g.op('ArgMax', [x], { axis: -1, keepdims: 0 }).shape).toEqual(['batch', 'seq']);
    expect(g.op('Pad', [x, g.ints([0, 1, 0, 0, 1, 0])]).shape).toEqual(['batch', null, 8]);
    expect(g.op('Tile', [x, g.ints([1, 1, 3])]).shape).toEqual(['batch', 'seq', 24]);
  });
});
