// A checkpoint over 2 GiB (a model of half a billion parameters' worth of carried state): written by the runner's
// saveCheckpoint (tensor by tensor, atomically), read back whole by Python's safetensors package — the reader a
// PyTorch user has — and by loadCheckpoint (which reads tensor by tensor: Node reads no file past 2 GiB whole).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-common';
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint } from '../src/runner/checkpoint';
import { runPython } from './support/python';

const N = 545_000_000; // 2.18e9 bytes of float32: past 2^31
const MOD = 4093;      // values i mod 4093 are exact in float32 and differ between neighbours

test('a 2.2 GB checkpoint round-trips through Python safetensors and loadCheckpoint', () => {
  // in memory where the machine has a tmpfs: the test is about the format and the readers, not about the disk
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'ademamix-big-'));
  try {
    const big = new Float32Array(N);
    for (let i = 0, v = 0; i < N; i++, v = v + 1 === MOD ? 0 : v + 1) big[i] = v;
    const state = {
      big: new Tensor('float32', big, [N]), w: new Tensor('float32', Float32Array.from([1.5, -2, 3.25]), [3]),
      step: new Tensor('int64', BigInt64Array.from([7n]), [1]),
    };
    const info = { step: 7, config: { model: 'gpt-tiny' }, dataPosition: [1, 2, 3, 4], fingerprint: 'f', counters: { skipped: 0 } };
    const file = saveCheckpoint(dir, state, info, 1);
    expect(fs.statSync(file).size).toBeGreaterThan(2 ** 31);

    const py = JSON.parse(runPython('test/fixtures/check_large_checkpoint.py', [file, String(N), String(MOD)]));
    expect(py.metadata.format).toBe(CHECKPOINT_FORMAT);
    expect(py.metadata.step).toBe('7');
    expect(py.tensors).toEqual({ big: { dtype: 'float32', shape: [N] }, w: { dtype: 'float32', shape: [3] }, step: { dtype: 'int64', shape: [1] } });
    expect(py.mismatches).toBe(0);
    expect(py.small).toEqual([1.5, -2, 3.25]);

    const back = loadCheckpoint(file);
    expect(back.info.step).toBe(7);
    expect(back.info.dataPosition).toEqual([1, 2, 3, 4]);
    const got = back.state.big.data as Float32Array;
    expect(got.length).toBe(N);
    let bad = 0;
    for (let i = 0; i < N; i++) if (got[i] !== big[i]) bad++;
    expect(bad).toBe(0);
    expect(Array.from(back.state.w.data as Float32Array)).toEqual([1.5, -2, 3.25]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
