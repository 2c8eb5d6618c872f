// `bench optimizer` end to end at a tiny size (fields only: speed goals live in benchmarks, never in unit tests), the
// GPT-shaped parameter list, and the BenchCopy kernel it is measured against really copying (output = input, lists
// of mixed sizes that straddle the pool's chunks, on 2 threads).
import { Tensor } from 'onnxruntime-common';
import { benchAllOptimizers, benchOptimizer, benchSizes, copyModel, copySizes, gptSmallSizes, patternModel, torchPython } from '../src/bench/optimizer';
import { NativeSession } from '../src/native';
import { opsLibraryPath } from '../src/native/paths';
import { getOptimizer, OPTIMIZERS } from '../src/optim/derive';

describe('GPT-shaped parameter lists', () => {
  test('gpt-small layout: 148 tensors, GPT-2 124M', () => {
    const s = gptSmallSizes();
    expect(s.length).toBe(148);
    expect(s.reduce((a, b) => a + b, 0)).toBe(124_439_808);
  });
  test('scaled to --params exactly, every tensor non-empty; flat is one tensor', () => {
    for (const n of [5000, 123_457, 16_000_000]) {
      const s = benchSizes('gpt', n);
      expect(s.length).toBe(148);
      expect(s.reduce((a, b) => a + b, 0)).toBe(n);
      expect(Math.min(...s)).toBeGreaterThanOrEqual(1);
    }
    expect(benchSizes('flat', 1000)).toEqual([1000]);
  });
  test('the copy moves bytes_per_param × params bytes (read + write)', () => {
    const s = benchSizes('gpt', 1_000_000);
    const c = copySizes(s, 36);
    expect(Math.abs(8 * c.reduce((a, b) => a + b, 0) - 36 * 1_000_000)).toBeLessThan(8 * s.length);
  });
});

describe('BenchCopy kernel', () => {
  for (const stream of [true, false]) {
    test(`output equals input (${stream ? 'non-temporal stores' : 'memcpy'})`, () => {
      const sizes = [1, 3, 70_001, 17, 100_000, 64, 65, 33_000];
      const s = NativeSession.create(copyModel(sizes, stream), { opsLibrary: opsLibraryPath(), intraOpThreads: 2 });
      try {
        const feeds: Record<string, Tensor> = {};
        sizes.forEach((n, i) => { feeds[`x_${i}`] = new Tensor('float32', Float32Array.from({ length: n }, (_, j) => i * 1e6 + j * 0.5 - 3), [n]); });
        const out = s.run(feeds, sizes.map((_, i) => `x_${i}_out`));
        sizes.forEach((n, i) => {
          const y = out[`x_${i}_out`];
          expect(y.dims).toEqual([n]);
          expect(Buffer.from((y.data as Float32Array).buffer, (y.data as Float32Array).byteOffset, 4 * n)
            .equals(Buffer.from((feeds[`x_${i}`].data as Float32Array).buffer))).toBe(true);
        });
      } finally { s.release(); }
    });
  }
});

describe('BenchCopy pattern mode (an optimizer\'s streams with trivial arithmetic)', () => {
  // reads R, writes W: output w = input w + the sum of inputs W..R-1, exactly (float32 sums of at most 4 terms,
  // checked against the same sums done in float32 here)
  for (const [reads, writes, blocked] of [[5, 4, true], [5, 4, false], [3, 2, true], [3, 2, false], [2, 1, true]] as const) {
    test(`reads ${reads}, writes ${writes}, ${blocked ? 'blocked' : 'interleaved'} stores`, () => {
      const sizes = [1, 3, 70_001, 17, 100_000, 64, 65, 33_000];
      const s = NativeSession.create(patternModel(sizes, reads, writes, blocked), { opsLibrary: opsLibraryPath(), intraOpThreads: 2 });
      try {
        const feeds: Record<string, Tensor> = {};
        for (let r = 0; r < reads; r++) sizes.forEach((n, i) => { feeds[`p${r}_${i}`] = new Tensor('float32', Float32Array.from({ length: n }, (_, j) => (r + 1) * 0.25 + i + j * 0.5), [n]); });
        const names = Array.from({ length: writes }, (_, w) => sizes.map((_, i) => `p${w}_${i}_out`)).flat();
        const out = s.run(feeds, names);
        for (let w = 0; w < writes; w++) {
          sizes.forEach((n, i) => {
            const y = out[`p${w}_${i}_out`].data as Float32Array;
            expect(y.length).toBe(n);
            const want = new Float32Array(n);
            for (let j = 0; j < n; j++) {
              let extra = Math.fround(0);
              for (let r = writes; r < reads; r++) extra = Math.fround(extra + (feeds[`p${r}_${i}`].data as Float32Array)[j]);
              want[j] = Math.fround((feeds[`p${w}_${i}`].data as Float32Array)[j] + extra);
            }
            let bad = 0;
            for (let j = 0; j < n; j++) if (y[j] !== want[j]) bad++;
            expect(bad).toBe(0);
          });
        }
      } finally { s.release(); }
    });
  }
});

describe('bench optimizer end to end', () => {
  const fields = ['op_ms', 'op_gbps', 'copy_gbps', 'copy_stream_gbps', 'copy_memcpy_gbps', 'op_vs_copy', 'bytes_per_param', 'tensors'];
  test('one optimizer, GPT shape, with the function body and (when the venv has torch) torch AdamW', () => {
    const r = benchOptimizer({ op: 'AdEMAMix', params: 4000, reps: 1, threads: 2, fallback: true });
    expect(r).toMatchObject({ bench: 'optimizer', optimizer: 'ademamix', shape: 'gpt', tensors: 148, params: 4000, threads: 2 });
    for (const f of [...fields, 'fallback_ms']) expect(typeof r[f]).toBe('number');
    expect(r.op_vs_copy as number).toBeGreaterThan(0);
    // the op's own streams: param, grad, m1, m2, nu read; param, m1, m2, nu written
    expect(r).toMatchObject({ pattern_reads: 5, pattern_writes: 4, pattern_bytes_per_param: 36, spinning: false });
    expect(r.op_vs_pattern as number).toBeGreaterThan(0);
    if (torchPython()) for (const f of ['torch_adamw_foreach_ms', 'torch_adamw_single_ms', 'op_vs_torch_foreach']) expect(typeof r[f]).toBe('number');
  });
  test('--all: every definition, flat shape', () => {
    const rs = benchAllOptimizers({ params: 3000, reps: 1, threads: 2, fallback: false, shape: 'flat', torch: false });
    expect(rs.map((r) => r.optimizer)).toEqual(OPTIMIZERS.map((d) => d.name));
    for (const r of rs) {
      expect(r.tensors).toBe(1);
      for (const f of fields) expect(typeof r[f]).toBe('number');
      expect(r.torch_adamw_foreach_ms).toBeUndefined();
    }
  });
  test('--states: bytes of state per parameter (AdEMAMix 12 → 6 → 3.05, AdamW 8 → 4 → 2.03) and the coded op timed', () => {
    // AdEMAMix all three slots 8-bit (a blanket --states 8bit keeps its m2 in fp32: 6.03)
    const want: Record<string, Record<string, number>> = {
      ademamix: { fp32: 12, bf16: 6, 'm1=8bit,m2=8bit,nu=8bit': 3.046875, '8bit': 6.03125 }, adamw: { fp32: 8, bf16: 4, '8bit': 2.03125 },
    };
    for (const [opt, byFormat] of Object.entries(want)) {
      for (const [states, bytes] of Object.entries(byFormat)) {
        const r = benchOptimizer({ op: opt, params: 3000, reps: 1, threads: 2, fallback: states.includes('8bit'), shape: 'flat', torch: false, states });
        expect(r.state_bytes_per_param).toBeCloseTo(bytes, 4);
        expect(r.op).toBe(states === 'fp32' ? getOptimizer(opt).op : `${getOptimizer(opt).op}Coded`);
        // bytes one step moves: param r/w + grad + each state read and written at its stored size
        expect(r.bytes_per_param).toBeCloseTo(12 + 2 * bytes, 4);
        for (const f of fields) expect(typeof r[f]).toBe('number');
      }
    }
  });
});
