// The native session: plain runs, carried state kept native across runs, runAsync, and clear errors.
import { Tensor } from 'onnxruntime-common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NativeSession, nativeOrtVersion } from '../src/native';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { encodeModel } from '../src/onnx/io';

const f32 = (a: number[], dims: number[]): Tensor => new Tensor('float32', Float32Array.from(a), dims);

/** s_out = 0.5·s + x; y = ReduceSum(s_out) */
function stateModel(): Uint8Array {
  const g = new GraphBuilder();
  const s = g.input('s', 'float32', [3]);
  const x = g.input('x', 'float32', [3]);
  const sOut = g.add(g.mul(s, 0.5), x);
  g.output(sOut, 's_out');
  g.output(g.op('ReduceSum', [sOut], { keepdims: 0 }, { outTypes: [{ dtype: 'float32', shape: [] }] }), 'y');
  return encodeModel(toModelProto(g));
}

describe('NativeSession', () => {
  test('runs on onnxruntime-node\'s own runtime, from bytes and from a path, with metadata', () => {
    expect(nativeOrtVersion()).toMatch(/^1\.\d+/);
    const bytes = stateModel();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ademamix-sess-'));
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, bytes);
    for (const model of [bytes, file]) {
      const s = NativeSession.create(model, { opsLibrary: false, intraOpThreads: 1, graphOptimizationLevel: 'all' });
      expect(s.inputMetadata).toEqual([{ name: 's', type: 'float32', dims: [3] }, { name: 'x', type: 'float32', dims: [3] }]);
      expect(s.outputNames).toEqual(['s_out', 'y']);
      const out = s.run({ s: f32([2, 4, 6], [3]), x: f32([1, 1, 1], [3]) });
      expect(Array.from(out.s_out.data as Float32Array)).toEqual([2, 3, 4]);
      expect(out.y.data[0]).toBe(9);
      s.release();
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('carried state stays native across 50 runs and matches a float64 loop', async () => {
    const s = NativeSession.create(stateModel(), { opsLibrary: false });
    s.carry({ s_out: 's' });
    s.setState({ s: f32([1, -2, 3], [3]) });
    const ref = [1, -2, 3];
    for (let t = 0; t < 50; t++) {
      const x = [Math.sin(t), Math.cos(t), t / 10];
      const out = t % 2 ? await s.runAsync({ x: f32(x, [3]) }) : s.run({ x: f32(x, [3]) });
      for (let i = 0; i < 3; i++) ref[i] = 0.5 * ref[i] + Math.fround(x[i]);
      expect(Object.keys(out)).toEqual(['y']); // the carried output is not copied to JS
      expect(out.y.data[0]).toBeCloseTo(ref[0] + ref[1] + ref[2], 4);
    }
    const st = s.getState(['s']).s.data as Float32Array;
    ref.forEach((v, i) => expect(st[i]).toBeCloseTo(v, 5));
    s.setState({ s: f32([0, 0, 0], [3]) }); // reset mid-way
    expect(s.run({ x: f32([1, 2, 3], [3]) }).y.data[0]).toBe(6);
    expect(Array.from(s.getState().s.data as Float32Array)).toEqual([1, 2, 3]);
    s.release();
  });

  test('errors are clear and name what is wrong', () => {
    const s = NativeSession.create(stateModel(), { opsLibrary: false });
    expect(() => s.carry({ nope: 's' })).toThrow(/carry: the model has no output 'nope'/);
    expect(() => s.carry({ s_out: 'zz' })).toThrow(/carry: the model has no input 'zz'/);
    expect(() => s.carry({ y: 's' })).toThrow(/output 'y' \(float32\[\]\) does not match input 's' \(float32\[3\]\)/);
    s.carry({ s_out: 's' });
    expect(() => s.run({ x: f32([1, 2, 3], [3]) })).toThrow(/carried input 's' has no value: call setState/);
    expect(() => s.setState({ s: f32([1, 2], [2]) })).toThrow(/setState: 's' is float32\[2\] but the input is float32\[3\]/);
    s.setState({ s: f32([1, 2, 3], [3]) });
    expect(() => s.run({ x: f32([1, 2, 3], [3]), s: f32([1, 2, 3], [3]) })).toThrow(/input 's' holds native state \(carried\)/);
    expect(() => s.run({ x: new Tensor('float64', Float64Array.from([1, 2, 3]), [3]) })).toThrow(/input 'x' must be float32, got float64/);
    expect(() => s.run({})).toThrow(/input 'x' is missing/);
    expect(() => s.run({ x: f32([1, 2, 3], [3]) }, ['nope'])).toThrow(/no output 'nope'/);
    s.release();
    expect(() => s.run({ x: f32([1, 2, 3], [3]) })).toThrow(/session was released/);
    expect(() => NativeSession.create(new Uint8Array([1, 2, 3, 4]), { opsLibrary: false })).toThrow(/loading model from bytes/);
    expect(() => NativeSession.create('/nonexistent/model.onnx', { opsLibrary: false })).toThrow(/\/nonexistent\/model\.onnx/);
  });

  test('a model with a com.ademamix node needs the op library or its function body', () => {
    // no function body attached: only the registered kernel can run it
    const g = new GraphBuilder();
    const p = g.input('p', 'float32', [2]);
    const z = g.input('z', 'float32', [2]);
    const st = g.input('step', 'int64', []); const lr = g.input('lr', 'float32', []);
    const [po] = g.opN('AdamW', [p, p, z, z, st, lr], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0 }, { domain: 'com.ademamix', outputs: 3 });
    g.output(po, 'po');
    const bytes = encodeModel(toModelProto(g));
    expect(() => NativeSession.create(bytes, { opsLibrary: false })).toThrow(/AdamW/);
    const s = NativeSession.create(bytes);
    const out = s.run({ p: f32([1, -1], [2]), z: f32([0, 0], [2]), step: new Tensor('int64', BigInt64Array.from([1n]), []), lr: f32([0.1], []) });
    // first AdamW step with g = p: m̂ = g, v̂ = g², update = lr·sign(g)
    expect(Array.from(out.po.data as Float32Array).map((v) => +v.toFixed(5))).toEqual([0.9, -0.9]);
    s.release();
  });
});
