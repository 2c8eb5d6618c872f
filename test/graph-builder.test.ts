import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto, toFunctionProto } from '../src/graph/serialize';
import { encodeModel, decodeModel } from '../src/onnx/io';
import { tensorData } from '../src/graph/tensor-data';
import { attr } from '../src/graph/value';

describe('graph builder', () => {
  test('values connect by identity; names are assigned at serialization; dead nodes are dropped', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 3]);
    const w = g.initializer('w', tensorData('float32', [3], [1, 2, 3]));
    const y = g.mul(g.add(x, w), 2);
    g.sub(x, 1); // unused: must not be emitted
    expect(y.dtype).toBe('float32');
    expect(y.shape).toEqual(['batch', 3]);
    g.output(y, 'y');
    g.output(x, 'x_copy'); // an input as an output gets an Identity
    const model = toModelProto(g);
    expect(model.opsetImport[0].version).toBe(20n);
    expect(model.graph!.node.map((n) => n.opType)).toEqual(['Add', 'Constant', 'Mul', 'Identity']);
    const names = model.graph!.node.flatMap((n) => n.output);
    expect(new Set(names).size).toBe(names.length);
    const s = await ort.InferenceSession.create(encodeModel(model));
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 1, 1, 0, 0, 0]), [2, 3]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([4, 6, 8, 2, 4, 6]);
    expect(Array.from(out.x_copy.data as Float32Array)).toEqual([1, 1, 1, 0, 0, 0]);
  });

  test('dtype and shape checks at node creation name the op and the inputs', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4, 3]);
    const i = g.input('i', 'int64', [2, 3]);
    expect(() => g.add(a, b)).toThrow(/Add node: shapes \[2,3\] and \[4,3\] do not broadcast \(inputs: 'a' \(float32\[2,3\]\), 'b' \(float32\[4,3\]\)\)/);
    expect(() => g.mul(a, i)).toThrow(/Mul node: inputs must share one element type, got float32 and int64/);
    expect(() => g.sqrt(i)).toThrow(/Sqrt node: input 0 'i' has type int64/);
    // symbolic dims broadcast against 1 and against themselves
    const s = g.input('s', 'float32', ['n', 1]);
    expect(g.add(s, g.input('t', 'float32', [1, 'm'])).shape).toEqual(['n', 'm']);
  });

  test('model-local functions with attribute references run in ORT', async () => {
    const f = new GraphBuilder();
    const x = f.input('x', 'float32', null);
    const k = f.op('Constant', [], { value_float: attr.ref('scale', 'float') });
    f.output(f.mul(x, k), 'y');
    const fn = toFunctionProto(f, { domain: 'my.domain', name: 'Scale', attributes: { scale: attr.f(2) } });
    const g = new GraphBuilder();
    g.addFunction(fn);
    const inp = g.input('x', 'float32', [2]);
    g.output(g.op('Scale', [inp], { scale: attr.f(3) }, { domain: 'my.domain', outTypes: [{ dtype: 'float32', shape: [2] }] }), 'y3');
    g.output(g.op('Scale', [inp], {}, { domain: 'my.domain', outTypes: [{ dtype: 'float32', shape: [2] }] }), 'y2');
    const bytes = encodeModel(toModelProto(g, { metadata: { purpose: 'test' } }));
    const model = decodeModel(bytes);
    expect(model.opsetImport.map((o) => o.domain)).toEqual(['', 'my.domain']);
    expect(model.metadataProps[0]).toMatchObject({ key: 'purpose', value: 'test' });
    const s = await ort.InferenceSession.create(bytes);
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, -2]), [2]) });
    expect(Array.from(out.y3.data as Float32Array)).toEqual([3, -6]);
    expect(Array.from(out.y2.data as Float32Array)).toEqual([2, -4]);
  });

  test('an input from another graph is reported, not silently renamed', () => {
    const g1 = new GraphBuilder(); const g2 = new GraphBuilder();
    const x = g1.input('x', 'float32', [1]);
    g2.output(g2.neg(x), 'y');
    g2.input('z', 'float32', [1]);
    expect(() => toModelProto(g2)).toThrow(/Neg node: input 'x' is not produced by any node, input or initializer of this graph/);
  });
});
