// NativeSession's CUDA execution provider option where no GPU can be used: every failure names what is missing (the
// provider library, a usable provider library, a GPU). Running on a GPU is covered by scripts/gpu/ on a GPU machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-common';
import { GraphBuilder } from '../src/graph/builder';
import { toModelProto } from '../src/graph/serialize';
import { NativeSession } from '../src/native';
import { opsLibraryPath, packageRoot } from '../src/native/paths';
import { encodeModel } from '../src/onnx/io';

function model(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [3]);
  g.output(g.mul(x, x), 'y');
  return encodeModel(toModelProto(g));
}
// A provider library that loads and registers a CUDAExecutionProvider factory which finds no GPU (session-addon/test).
const noGpuEp = path.join(packageRoot(), 'build/session-addon/libademamix_test_no_gpu_ep.so');

describe('executionProvider', () => {
  test("'cpu' (and leaving it out) runs on the CPU as before", () => {
    for (const executionProvider of ['cpu' as const, undefined]) {
      const s = NativeSession.create(model(), { executionProvider });
      expect(Array.from(s.run({ x: new Tensor('float32', Float32Array.from([1, 2, 3]), [3]) }).y.data as Float32Array)).toEqual([1, 4, 9]);
      s.release();
    }
  });

  test('a missing CUDA provider library is named', () => {
    expect(() => NativeSession.create(model(), { executionProvider: { cuda: { providerLibrary: '/nonexistent/libonnxruntime_providers_cuda.so' } } }))
      .toThrow(/CUDA execution provider: provider library not found: \/nonexistent\/libonnxruntime_providers_cuda\.so/);
  });

  test('a library that is not an execution provider is refused, naming it and the ORT reason', () => {
    const lib = opsLibraryPath();
    let msg = '';
    try { NativeSession.create(model(), { executionProvider: { cuda: { providerLibrary: lib } } }); } catch (e) { msg = (e as Error).message; }
    expect(msg).toContain(`CUDA execution provider: loading provider library ${lib}`);
    expect(msg.length).toBeGreaterThan(`CUDA execution provider: loading provider library ${lib}`.length + 5);
  });

  test('a provider that finds no GPU gives a clear error listing what ONNX Runtime offers', () => {
    expect(fs.existsSync(noGpuEp)).toBe(true);
    expect(() => NativeSession.create(model(), { executionProvider: { cuda: { providerLibrary: noGpuEp } } }))
      .toThrow(/CUDA execution provider: no GPU: .*libademamix_test_no_gpu_ep\.so loaded, but ONNX Runtime offers no CUDA device \(it offers: .*CPUExecutionProvider on CPU.*\)/);
    // registered once per process: a second session gets the same answer, not a re-registration error
    expect(() => NativeSession.create(model(), { executionProvider: { cuda: { providerLibrary: noGpuEp, deviceIndex: 1 } } }))
      .toThrow(/no GPU/);
    // a relative path means relative to the caller's working directory (ORT alone would look beside itself)
    const rel = path.relative(process.cwd(), noGpuEp);
    expect(path.isAbsolute(rel)).toBe(false);
    expect(() => NativeSession.create(model(), { executionProvider: { cuda: { providerLibrary: rel } } })).toThrow(/no GPU: /);
  });

  test('malformed options are TypeErrors with the expected shape', () => {
    expect(() => NativeSession.create(model(), { executionProvider: 'tpu' as never })).toThrow(/executionProvider must be 'cpu' or \{cuda: \{providerLibrary/);
    expect(() => NativeSession.create(model(), { executionProvider: { cuda: {} } as never })).toThrow(/providerLibrary must be the path/);
  });
});
