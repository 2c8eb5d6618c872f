// In-place carrying (NativeSession.carry's inPlace, chosen by inPlaceCarries): the parameters and optimizer states of
// an assembled training graph are written into their own buffers. Checked against the double-buffered session bit for
// bit over several steps (every optimizer definition, one and two groups), and the graph rule refuses the pairs that
// are not safe (a value read again after its update, the NaN guard's Where, step).
import { Tensor } from 'onnxruntime-common';
import { buildGpt, gptConfig } from '../graphs/gpt';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { NativeSession, type RawTensor } from '../src/native';
import { encodeModel } from '../src/onnx/io';
import { OPTIMIZERS } from '../src/optim/derive';
import { DEFAULT_CONFIG, type OptimizerName } from '../src/runner/config';
import { optimizerSpec } from '../src/runner/trainer';
import { assembleTraining } from '../src/train/assemble';
import { inPlaceCarries } from '../src/train/in-place';

function artifacts(optimizer: string, skipNonFinite = false) {
  const m = buildGpt(gptConfig('gpt-tiny', { nLayer: 1, nEmbd: 32, nHead: 2, vocabSize: 40, blockSize: 16 }), 3);
  return assembleTraining({ forward: m.g, loss: m.loss, optimizer: optimizerSpec({ ...DEFAULT_CONFIG, optimizer: optimizer as OptimizerName }), skipNonFinite });
}

function trainStates(art: ReturnType<typeof artifacts>, inPlace: string[], steps: number) {
  const s = NativeSession.create(encodeModel(art.train), { intraOpThreads: 2 });
  try {
    s.carry(art.carry, { inPlace });
    const init: Record<string, Tensor> = {};
    for (const [k, v] of art.initialState) init[k] = new Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims);
    s.setState(init);
    let seed = 7;
    const tok = (): Tensor => new Tensor('int64', BigInt64Array.from({ length: 4 * 16 }, () => BigInt((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 40)), [4, 16]);
    for (let t = 0; t < steps; t++) s.run({ tokens: tok(), targets: tok() }, ['loss']);
    return s.getStateRaw();
  } finally { s.release(); }
}

const bits = (x: RawTensor): Buffer => { const d = x.data as ArrayBufferView; return Buffer.from(d.buffer, d.byteOffset, d.byteLength); };

describe('in-place carrying of parameters and optimizer states', () => {
  for (const d of OPTIMIZERS) {
    test(`${d.name}: every parameter and state in place, step not; states bit-identical to double-buffered after 6 steps`, () => {
      const art = artifacts(d.name);
      const carried = Object.values(art.carry);
      expect(art.inPlace).not.toContain('step');
      for (const p of art.params) expect(art.inPlace).toContain(p);
      expect(art.inPlace.length).toBe(carried.length - 1); // all but step
      const a = trainStates(art, [], 6); const b = trainStates(art, art.inPlace, 6);
      for (const k of carried) expect(bits(b[k]).equals(bits(a[k]))).toBe(true);
    });
  }
  test('the NaN guard (Where of the old and new value) keeps its pairs double-buffered', () => {
    const art = artifacts('ademamix', true);
    expect(art.inPlace).toEqual([]);
  });
  test('a value read again after its update is not carried in place', () => {
    // p is read by the optimizer node and, after it, by a node that is not the optimizer's ancestor
    const art = artifacts('adamw');
    const g = new GraphBuilder();
    const p = g.input('p', 'float32', [4]);
    const q = g.input('q', 'float32', [4]);
    g.output(g.mul(p, 2), 'p_twice'); // reads p, not an ancestor of anything the optimizer reads
    g.output(g.identity(q), 'q_copy');
    const model = toModelProto(g);
    // splice an optimizer-shaped writer: take the real optimizer node of the AdamW graph and make it read p
    const opt = art.train.graph!.node.find((n) => n.opType.startsWith('AdamW'))!;
    const fake = { ...opt, input: ['p', ...opt.input.slice(1)], output: ['p_next', ...opt.output.slice(1)] };
    model.graph!.node.push(fake as typeof opt);
    expect(inPlaceCarries(model, { p_next: 'p' })).toEqual([]);
    // without the extra reader it would be
    model.graph!.node = model.graph!.node.filter((n) => !n.output.includes('p_twice'));
    expect(inPlaceCarries(model, { p_next: 'p' })).toEqual(['p']);
  });
  test('the session refuses to carry a non-carried input in place', () => {
    const art = artifacts('adamw');
    const s = NativeSession.create(encodeModel(art.train), { intraOpThreads: 1 });
    try {
      expect(() => s.carry(art.carry, { inPlace: ['tokens'] })).toThrow(/'tokens' is not a carried input, so it cannot be carried in place/);
    } finally { s.release(); }
  });
});
