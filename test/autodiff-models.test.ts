// gradients() on the project's GPT and ViT graphs: the backward graph builds, stays small, and runs in ORT at two
// batch/sequence sizes (symbolic dims) with finite gradients for every parameter.
import * as ort from 'onnxruntime-node';
import { buildGpt, gptConfig } from '../graphs/gpt';
import { buildVit, vitConfig } from '../graphs/vit';
import { gradients } from '../src/autodiff';
import { toModelProto } from '../src/graph/serialize';
import { encodeModel } from '../src/onnx/io';

type Built = ReturnType<typeof buildGpt>;

async function check(m: Built, feeds: Record<string, ort.Tensor>[]): Promise<void> {
  const params = [...m.g.initializers.keys()];
  const fwd = m.g.nodes.length;
  const grads = gradients(m.g, m.loss, params);
  // a size budget, not an error bound: measured 2026-12-02: backward nodes 2.99× the forward's (gpt-tiny, 99 forward
  // nodes), 3.58× (vit-tiny, 83), so the bound is 2.2× the larger
  expect(m.g.nodes.length - fwd).toBeLessThan(8 * fwd);
  for (const node of m.g.nodes.slice(fwd)) expect(node.opType).not.toMatch(/Grad$/);
  m.g.output(m.loss, 'loss_value');
  grads.forEach((d, i) => m.g.output(d, `grad_${i}`));
  const s = await ort.InferenceSession.create(encodeModel(toModelProto(m.g)));
  for (const f of feeds) {
    const out = await s.run(f);
    expect(Number.isFinite((out.loss_value.data as Float32Array)[0])).toBe(true);
    params.forEach((p, i) => {
      const d = out[`grad_${i}`];
      expect(d.dims).toEqual(p.shape);
      expect(Array.from(d.data as Float32Array).every(Number.isFinite)).toBe(true);
    });
  }
}

const ints = (dims: number[], mod: number): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => BigInt((i * 7) % mod)), dims);

test('GPT (gpt-tiny): backward graph runs at two batch/sequence sizes', async () => {
  await check(buildGpt(gptConfig('gpt-tiny')), [[2, 16], [3, 64]].map(([b, t]) => ({ tokens: ints([b, t], 128), targets: ints([b, t], 128) })));
});

test('ViT (vit-tiny): backward graph runs at two batch sizes', async () => {
  const img = (b: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from({ length: b * 28 * 28 }, (_, i) => Math.sin(i)), [b, 1, 28, 28]);
  await check(buildVit(vitConfig('vit-tiny')), [2, 5].map((b) => ({ images: img(b), labels: ints([b], 10) })));
});
