// The ONNX importer and the training export on small hand-written models: what exporters emit (Constant forms,
// de-duplicated initializers, initializers listed as inputs, SplitToSequence/SequenceAt, model-local functions,
// opset-13 reductions, constant shape subgraphs) must compute what the original computes in ORT; the parameter
// choice; one error listing every unsupported node; loss errors; the CLI handler; the state_dict without a map.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-common';
import { exportOnnxCommand } from '../src/cli/export-onnx';
import { parseCli as parseArgs } from '../src/cli';
import { toModelProto, typeProto } from '../src/graph/serialize';
import { tensorData, toTensorProto, type TensorData } from '../src/graph/tensor-data';
import { exportTorchCheckpoint, torchStateDict } from '../src/interop/checkpoint';
import { exportTrainingFromOnnx } from '../src/interop/export';
import { importOnnx } from '../src/interop/import';
import { loadSafetensors } from '../src/io/safetensors';
import { encodeModel, saveModel } from '../src/onnx/io';
import {
  AttributeProto_AttributeType as AT, AttributeProtoSchema, create, FunctionProtoSchema, GraphProtoSchema, ModelProtoSchema,
  NodeProtoSchema, OperatorSetIdProtoSchema, ValueInfoProtoSchema, type AttributeProto, type FunctionProto, type ModelProto,
  type NodeProto, type TensorProto,
} from '../src/onnx/proto';
import { adamw } from '../src/train/optimizers';
import { gradCheck } from './support/gradcheck';
import { randn } from './support/rng';

// ---- a few lines of ONNX construction, as an exporter would write it ----
type A = number | number[] | string | TensorData | { ref: string; type: 'int' | 'float' };
function attribute(name: string, v: A): AttributeProto {
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.map(BigInt) });
  if (typeof v === 'number') {
    return Number.isInteger(v) && !name.startsWith('value_float') && name !== 'epsilon' && name !== 'alpha'
      ? create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) }) : create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v });
  }
  if ('ref' in v) return create(AttributeProtoSchema, { name, type: v.type === 'int' ? AT.INT : AT.FLOAT, refAttrName: v.ref });
  return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: toTensorProto('', v) });
}
const node = (opType: string, input: string[], output: string[], attrs: Record<string, A> = {}, domain = '', name = ''): NodeProto =>
  create(NodeProtoSchema, { opType, input, output, domain, name, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
const vi = (name: string, dtype: 'float32' | 'int64', shape: (number | string)[]) => create(ValueInfoProtoSchema, { name, type: typeProto(dtype, shape) });
const f32 = (dims: number[], seed: number, scale = 0.5): TensorData => tensorData('float32', dims, randn(dims.reduce((a, b) => a * b, 1), seed, scale));
const i64 = (xs: number[], dims = [xs.length]): TensorData => tensorData('int64', dims, xs);

function model(o: {
  nodes: NodeProto[]; inputs: ReturnType<typeof vi>[]; outputs: ReturnType<typeof vi>[]; inits?: Record<string, TensorData>;
  opset?: number; functions?: FunctionProto[]; extraDomains?: string[]; initsAsInputs?: boolean;
}): ModelProto {
  const inits: TensorProto[] = Object.entries(o.inits ?? {}).map(([k, t]) => toTensorProto(k, t));
  const inputs = [...o.inputs, ...(o.initsAsInputs ? inits.map((t) => vi(t.name, t.dataType === 7 ? 'int64' : 'float32', t.dims.map(Number))) : [])];
  return create(ModelProtoSchema, {
    irVersion: 8n, producerName: 'test',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(o.opset ?? 18) }),
      ...(o.extraDomains ?? []).map((d) => create(OperatorSetIdProtoSchema, { domain: d, version: 1n }))],
    functions: o.functions ?? [],
    graph: create(GraphProtoSchema, { name: 'g', node: o.nodes, input: inputs, output: o.outputs, initializer: inits }),
  });
}

const t32 = (t: TensorData): Tensor => new Tensor('float32', t.data as Float32Array, t.dims);
async function runModel(m: ModelProto, feeds: Record<string, Tensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(encodeModel(m));
  const out = await s.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}
/** The original model and its import (re-serialized by the builder) give the same outputs in ORT. */
async function sameAsOriginal(m: ModelProto, feeds: Record<string, Tensor>): Promise<void> {
  const imp = importOnnx(m, { source: 'm.onnx' });
  for (const [k, v] of imp.outputs) imp.g.output(v, k);
  const a = await runModel(m, feeds); const b = await runModel(toModelProto(imp.g), feeds);
  for (const k of Object.keys(a)) expect(Array.from(b[k])).toEqual(Array.from(a[k]));
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i])));

describe('importing what exporters emit', () => {
  const x = f32([2, 3, 6], 1);

  test('Constant forms, Reshape/Concat/Cast of constants (folded), Split via SplitToSequence + SequenceAt', async () => {
    const m = model({
      inputs: [vi('x', 'float32', ['b', 3, 6])], outputs: [vi('y', 'float32', ['b', 3, 2])],
      nodes: [
        node('Constant', [], ['two'], { value_int: 2 }),
        node('Constant', [], ['sc'], { value_float: 1.5 }),
        node('Constant', [], ['ax'], { value_ints: [2] }),
        node('Reshape', ['two', 'one_shape'], ['two_1d']),           // [2], as dynamo builds split sizes
        node('SplitToSequence', ['x', 'two'], ['seq'], { axis: 2 }),  // scalar split: three parts of 2
        node('SequenceAt', ['seq', 'pos0'], ['p0']),
        node('SequenceAt', ['seq', 'neg1'], ['p2']),
        node('Mul', ['p0', 'sc'], ['p0s']),
        node('Concat', ['two_1d', 'two_1d'], ['sizes'], { axis: 0 }),
        node('Split', ['p2', 'one_one'], ['q0', 'q1'], { axis: 2 }),
        node('Concat', ['q1', 'q0'], ['p2r'], { axis: 2 }),
        node('Add', ['p0s', 'p2r'], ['y']),
      ],
      inits: { one_shape: i64([1]), pos0: i64([0], []), neg1: i64([-1], []), one_one: i64([1, 1]) },
    });
    await sameAsOriginal(m, { x: t32(x) });
    const imp = importOnnx(m);
    expect(imp.g.nodes.some((n) => n.opType === 'SplitToSequence')).toBe(false);
    expect(imp.outputs.get('y')!.shape).toEqual(['b', 3, 2]);
  });

  test('model-local functions are inlined (attribute references resolved); opset-13 ReduceMean axes attribute', async () => {
    const fn = create(FunctionProtoSchema, {
      name: 'ScaledMean', domain: 'local', input: ['a'], output: ['r'], attribute: ['k'],
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
      node: [node('ReduceMean', ['a'], ['mean'], { axes: { ref: 'k', type: 'int' } as unknown as A, keepdims: 1 }),
        node('Sub', ['a', 'mean'], ['r'])],
    });
    // axes as an ints attribute inside the function: resolve the reference to the caller's ints
    fn.node[0].attribute[0] = create(AttributeProtoSchema, { name: 'axes', type: AT.INTS, refAttrName: 'k' });
    const m = model({
      opset: 13, extraDomains: ['local'], functions: [fn],
      inputs: [vi('x', 'float32', ['b', 3, 6])], outputs: [vi('y', 'float32', ['b', 3, 6])],
      nodes: [node('ScaledMean', ['x'], ['c'], { k: [-1] }, 'local'), node('ReduceMean', ['c'], ['m2'], { axes: [1], keepdims: 1 }), node('Add', ['c', 'm2'], ['y'])],
    });
    await sameAsOriginal(m, { x: t32(x) });
    expect(importOnnx(m).g.opset).toBeGreaterThanOrEqual(18);
  });

  test('TorchScript de-duplication (Identity of an initializer) is undone; initializers listed as inputs are initializers', () => {
    const m = model({
      initsAsInputs: true,
      inputs: [vi('x', 'float32', ['b', 4])], outputs: [vi('y', 'float32', ['b', 4])],
      inits: { 'ln1.weight': tensorData('float32', [4], [1, 1, 1, 1]), 'ln1.bias': tensorData('float32', [4], [0, 0, 0, 0]) },
      nodes: [
        node('Identity', ['ln1.weight'], ['ln2.weight']), node('Identity', ['ln1.bias'], ['ln2.bias']),
        node('LayerNormalization', ['x', 'ln1.weight', 'ln1.bias'], ['h'], { axis: -1, epsilon: 1e-5 }),
        node('LayerNormalization', ['h', 'ln2.weight', 'ln2.bias'], ['y'], { axis: -1, epsilon: 1e-5 }),
      ],
    });
    const r = exportTrainingFromOnnx({ onnx: m, loss: 'ce:labels', optimizer: adamw() });
    expect(r.manifest.params.sort()).toEqual(['ln1.bias', 'ln1.weight', 'ln2.bias', 'ln2.weight']);
    expect(r.manifest.notes.join('\n')).toMatch(/'ln2.weight' was de-duplicated by the exporter into 'ln1.weight'/);
    expect(r.manifest.batchInputs).toEqual(['x', 'labels']);
  });
});

test('CastLike (dynamo emits it) has a gradient rule: float64 → float32 → float64 vs central differences', async () => {
  // the float32 leg rounds the function: measured 2026-12-02: max |Δ| 7.4e-4, max relative 3.8e-5; worst 0.14 of the
  // bounds below (0.036 of the old rtol 1e-3, atol 1e-4)
  const r = await gradCheck([{ name: 'a', dims: [5], runs: [{ dims: [5], data: randn(5, 21) }] }], (g, [a]) => {
    const like32 = g.constant(tensorData('float32', [], [0]));
    const y32 = g.op('CastLike', [g.mul(a, 3), like32]);
    return g.op('CastLike', [g.mul(y32, y32), a]);
  }, { dtype: 'float64', h: 1e-3, rtol: 2.5e-4, atol: 2.5e-5 });
  expect(r.worst).toBeLessThanOrEqual(1);
});

describe('training export of an imported graph', () => {
  // y = Gemm(x, W, b) with W also used transposed later (a tie), a float buffer that is only a mask, an exporter
  // constant, a rotary-style buffer by name
  const W = f32([4, 4], 3); const b = f32([4], 4, 0.1);
  const tied = model({
    inputs: [vi('x', 'float32', ['n', 4])], outputs: [vi('logits', 'float32', ['n', 4])],
    inits: {
      'lin.weight': W, 'lin.bias': b, 'attn.bias': tensorData('float32', [4], [1, 0, 1, 1]), val_7: tensorData('float32', [], [0]),
      'rope.inv_freq': tensorData('float32', [4], [1, 0.5, 0.25, 0.125]),
    },
    nodes: [
      node('Gemm', ['x', 'lin.weight', 'lin.bias'], ['h'], { transB: 1 }),
      node('Mul', ['h', 'rope.inv_freq'], ['hr']),
      node('Cast', ['attn.bias'], ['keep'], { to: 9 }),
      node('Where', ['keep', 'hr', 'val_7'], ['hm']),
      node('MatMul', ['hm', 'lin.weight'], ['logits']),
    ],
  });
  const xs = f32([3, 4], 5, 1); const labels = new Tensor('int64', BigInt64Array.from([0n, 3n, 1n]), [3]);

  test('default choice: parameters only; a tied weight gets one summed gradient (vs central differences)', async () => {
    const logs: string[] = [];
    const r = exportTrainingFromOnnx({ onnx: tied, loss: 'ce:labels', optimizer: adamw(), emitGradients: true, log: (s) => logs.push(s) });
    expect(r.manifest.params).toEqual(['lin.weight', 'lin.bias']);
    expect(Object.fromEntries(r.manifest.frozen.map((f) => [f.name, f.reason]))).toEqual({
      'attn.bias': expect.stringMatching(/does not depend on it through differentiable ops/),
      val_7: 'a constant the exporter computed', 'rope.inv_freq': 'a buffer (by its name)',
    });
    expect(logs.join('\n')).toMatch(/^trains 2 tensors \(20 params\)\nnot trained: 2 buffers, 1 exporter constant$/m);
    const s = await ort.InferenceSession.create(encodeModel(r.artifacts.train));
    const state = Object.fromEntries([...r.artifacts.initialState].map(([k, v]) => [k, new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims)]));
    const out = await s.run({ x: t32(xs), labels, ...state });
    const g = out['lin.weight.grad'].data as Float32Array;
    // central differences of the eval model in float32 along each coordinate of W
    const ev = await ort.InferenceSession.create(encodeModel(r.artifacts.eval));
    const lossAt = async (w: Float32Array): Promise<number> =>
      (await ev.run({ x: t32(xs), labels, 'lin.weight': new Tensor('float32', w, [4, 4]), 'lin.bias': state['lin.bias'] })).loss.data[0] as number;
    const h = 1e-2; const w0 = W.data as Float32Array;
    for (let i = 0; i < 16; i++) {
      const up = Float32Array.from(w0); up[i] += h; const dn = Float32Array.from(w0); dn[i] -= h;
      const fd = ((await lossAt(up)) - (await lossAt(dn))) / (2 * h);
      expect(Math.abs(fd - g[i])).toBeLessThan(1e-4); // float32 differences, h = 1e-2: measured 2026-12-02: 1.6e-5 (|g| ≤ 0.4)
    }
    // frozen.safetensors keeps what is not an exporter constant
    expect([...r.frozenState.keys()].sort()).toEqual(['attn.bias', 'rope.inv_freq']);
  });

  test('--params names set the choice exactly; --freeze removes matches; unknown names are one error', () => {
    expect(exportTrainingFromOnnx({ onnx: tied, loss: 'ce:labels', params: ['lin.weight', 'rope.inv_freq'] }).manifest.params)
      .toEqual(['lin.weight', 'rope.inv_freq']);
    expect(exportTrainingFromOnnx({ onnx: tied, loss: 'ce:labels', freeze: /bias$/ }).manifest.params).toEqual(['lin.weight']);
    expect(() => exportTrainingFromOnnx({ onnx: tied, loss: 'ce:labels', params: 'lin.weight,nope,nope2' }))
      .toThrow(/--params names 2 tensor\(s\) that are not float initializers of the graph: nope, nope2 \(the graph has: lin.weight, lin.bias/);
  });

  test('a scalar output is the loss as it is (a model that returns its own loss)', async () => {
    const m = model({
      inputs: [vi('x', 'float32', ['n', 4]), vi('t', 'float32', ['n', 4])], outputs: [vi('mse', 'float32', [])],
      inits: { w: W },
      nodes: [node('MatMul', ['x', 'w'], ['y']), node('Sub', ['y', 't'], ['e']), node('Mul', ['e', 'e'], ['e2']),
        node('ReduceMean', ['e2'], ['mse'], { keepdims: 0 })],
    });
    const r = exportTrainingFromOnnx({ onnx: m, loss: 'mse', optimizer: adamw(), emitGradients: true });
    expect(r.manifest.batchInputs).toEqual(['x', 't']);
    const s = await ort.InferenceSession.create(encodeModel(r.artifacts.train));
    const tt = f32([3, 4], 8, 1);
    const out = await s.run({ x: t32(xs), t: t32(tt), w: t32(W), ...Object.fromEntries([...r.artifacts.initialState]
      .filter(([k]) => k !== 'w').map(([k, v]) => [k, new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims)])) });
    // d mean((xW − t)²)/dW = 2/N · xᵀ(xW − t), N = 12
    const X = xs.data as Float32Array; const Wd = W.data as Float32Array; const T = tt.data as Float32Array;
    const expected = new Float64Array(16); let loss = 0;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) {
      let y = 0; for (let k = 0; k < 4; k++) y += X[i * 4 + k] * Wd[k * 4 + j];
      const e = y - T[i * 4 + j]; loss += (e * e) / 12;
      for (let k = 0; k < 4; k++) expected[k * 4 + j] += (2 / 12) * X[i * 4 + k] * e;
    }
    // float32 graph vs this float64 loop: measured 2026-12-02: loss 4.2e-8, gradient 5.2e-8
    expect(Math.abs((out.loss.data[0] as number) - loss)).toBeLessThan(3e-7);
    expect(maxDiff(out['w.grad'].data as Float32Array, expected)).toBeLessThan(4e-7);
  });

  test('loss errors name the output and the fix', () => {
    expect(() => exportTrainingFromOnnx({ onnx: tied, loss: 'logits' }))
      .toThrow(/<model>: output 'logits' has shape \[n,4\], not a scalar loss; use --loss ce:<labels>@logits/);
    expect(() => exportTrainingFromOnnx({ onnx: tied, loss: 'lossy' })).toThrow(/'lossy' is not an output of the model \(outputs: logits\)/);
    expect(() => exportTrainingFromOnnx({ onnx: tied, loss: 'ce:x' })).toThrow(/already has an input 'x'/);
  });

  test('unsupported ops: one error listing every such node; ops without a gradient rule on the path: one error', () => {
    const m = model({
      extraDomains: ['com.microsoft'],
      inputs: [vi('x', 'float32', ['n', 4])], outputs: [vi('y', 'float32', ['n', 4])],
      inits: { w: W },
      nodes: [
        node('FusedMatMul', ['x', 'w'], ['a'], {}, 'com.microsoft', 'fmm'),
        node('Hardmax', ['a'], ['b'], {}, '', 'hm'),
        node('Add', ['b', 'x'], ['y']),
      ],
    });
    expect(() => exportTrainingFromOnnx({ onnx: m, loss: 'ce:labels' })).toThrow(
      /<model>: 2 node\(s\) use ops the importer does not support: FusedMatMul node 'fmm' \(op com\.microsoft::FusedMatMul\); Hardmax node 'hm' \(op Hardmax\)/);
    const noRule = model({
      inputs: [vi('x', 'float32', ['n', 4])], outputs: [vi('y', 'float32', ['n', 4])], inits: { w: W },
      nodes: [node('MatMul', ['x', 'w'], ['a']), node('ReduceProd', ['a', 'ax'], ['p'], { keepdims: 1 }, '', 'prod'),
        node('Unsqueeze', ['a', 'ax2'], ['a4']), node('ConvTranspose', ['a4', 'k'], ['c'], {}, '', 'ct'),
        node('Mul', ['a', 'p'], ['y0']), node('ReduceSum', ['c'], ['cs'], { keepdims: 0 }), node('Add', ['y0', 'cs'], ['y'])],
    });
    noRule.graph!.initializer.push(toTensorProto('ax', i64([1])), toTensorProto('ax2', i64([0, 1])), toTensorProto('k', f32([1, 1, 1, 1], 9)));
    expect(() => exportTrainingFromOnnx({ onnx: noRule, loss: 'ce:labels' }))
      .toThrow(/no gradient rule for 2 node\(s\).*ReduceProd node 'prod'.*ConvTranspose node 'ct'/);
  });

  test('the CLI handler writes the artifacts; the state_dict without a map uses the initializer names', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-cli-'));
    try {
      saveModel(tied, path.join(dir, 'm.onnx'));
      const logs: string[] = []; const orig = console.log;
      console.log = (s: string) => { logs.push(s); };
      try {
        await exportOnnxCommand(parseArgs(['export', '--onnx', path.join(dir, 'm.onnx'), '--loss', 'ce:labels', '--out', path.join(dir, 'art'),
          '--optimizer', 'adamw', '--lr', '0.01', '--freeze', '^lin\\.bias$']));
      } finally { console.log = orig; }
      expect(logs.join('\n')).toMatch(/trains 1 tensor \(16 params\)\nnot trained: 2 buffers, 1 exporter constant, 1 frozen[\s\S]*matches --freeze \^lin\\.bias\$: lin\.bias[\s\S]*wrote .*train\.onnx/);
      const man = JSON.parse(fs.readFileSync(path.join(dir, 'art/manifest.json'), 'utf8'));
      expect(man).toMatchObject({ params: ['lin.weight'], batchInputs: ['x', 'labels'], optimizer: { kind: 'adamw' }, outputs: ['logits'] });
      const sd = exportTorchCheckpoint(path.join(dir, 'art'), path.join(dir, 'art/initial_state.safetensors'), path.join(dir, 'sd.safetensors'));
      expect([...sd.tensors.keys()].sort()).toEqual(['attn.bias', 'lin.bias', 'lin.weight', 'rope.inv_freq']);
      expect(maxDiff(loadSafetensors(path.join(dir, 'sd.safetensors')).tensors.get('lin.weight')!.data as Float32Array, W.data as Float32Array)).toBe(0);
      await expect(exportOnnxCommand(parseArgs(['export', '--onnx', 'm.onnx', '--out', dir]))).rejects.toThrow(/needs --loss/);
      await expect(exportOnnxCommand(parseArgs(['export', '--onnx', 'm.onnx', '--loss', 'l', '--out', dir, '--model', 'x'])))
        .rejects.toThrow(/unknown option --model/);
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });
});

test('state_dict from a map: tied keys share the tensor, folded weight.T is transposed back, buffers from the frozen state', () => {
  const w = tensorData('float32', [2, 3], [1, 2, 3, 4, 5, 6]);
  const wt = tensorData('float32', [3, 2], [1, 4, 2, 5, 3, 6]);
  const manifest = {
    params: ['emb', 'val_8'], torch: {
      format: 'ademamix.torch-params/1' as const, missing: [],
      params: [{ onnx: 'emb', torch: ['wte.weight', 'lm_head.weight'] }, { onnx: 'val_8', torch: ['fc.weight'], transpose: true }],
      buffers: [{ onnx: 'mask', torch: ['attn.bias'] }],
    },
  } as unknown as Parameters<typeof torchStateDict>[0];
  const sd = torchStateDict(manifest, { emb: w, val_8: wt }, new Map([['mask', i64([1, 0])]]));
  expect([...sd.tensors.keys()]).toEqual(['wte.weight', 'lm_head.weight', 'fc.weight', 'attn.bias']);
  expect(sd.tensors.get('lm_head.weight')).toBe(sd.tensors.get('wte.weight'));
  expect(sd.tensors.get('fc.weight')).toMatchObject({ dims: [2, 3], data: w.data });
  expect(() => torchStateDict(manifest, { emb: w }, new Map())).toThrow(/no value for 'val_8'/);
});
