#!/usr/bin/env node
// The collective ops' CUDA path (custom-ops/src/collective.cc: the bucket staged through host memory on ORT's compute
// stream) in a world of one process: AllReduce (sum and mean), ReduceScatter and AllGather over odd-sized tensors, run
// on the CPU and on ONNX Runtime's CUDA execution provider with the op library's CUDA kernels (fallback to the CPU
// off, so a kernel that is not taken fails); the outputs must be equal bit for bit. The CPU kernels are checked first,
// exactly, against the ops' definition (float32 sums in rank order), alone or under `mpirun -np N`
// (test/dist.test.ts runs it with 2 ranks: odd sizes exercise ReduceScatter's zero padding and AllGather's cut).
//   node scripts/gpu/collective-ep.js --provider <libonnxruntime_providers_cuda.so>     (without: the CPU side alone)
'use strict';
const path = require('node:path');
const root = path.resolve(__dirname, '../..');
const lib = require(path.join(root, 'dist/index.js'));
const { Tensor } = require('onnxruntime-common');

const provider = process.argv[process.argv.indexOf('--provider') + 1];
const hasProvider = process.argv.includes('--provider');
const world = lib.joinWorld();
const sizes = [1, 7, 1000, 65537];
const g = new lib.GraphBuilder();
const xs = sizes.map((n, i) => g.input(`x${i}`, 'float32', [n]));
const sum = lib.allReduce(g, xs, 'sum', 'ar_sum');
const mean = lib.allReduce(g, xs, 'mean', 'ar_mean');
const slices = lib.reduceScatter(g, xs, 'mean', world.size, 'rs');
const whole = lib.allGather(g, slices, sizes, world.size, 'ag');
[...sum, ...mean, ...slices, ...whole].forEach((v, i) => g.output(v, `y${i}`));
const bytes = lib.encodeModel(lib.toModelProto(g));
const feeds = Object.fromEntries(sizes.map((n, i) => [`x${i}`,
  new Tensor('float32', Float32Array.from({ length: n }, (_, j) => Math.sin(j + 17 * i + 101 * world.rank)), [n])]));
const run = (executionProvider) => {
  const s = lib.NativeSession.create(bytes, { executionProvider, intraOpThreads: 1 });
  try { return s.run(feeds); } finally { s.release(); }
};
const cpu = run('cpu');
// the CPU kernels against the definition, exactly: in float32, x summed over the ranks in rank order
const x = (i, j, r) => Math.fround(Math.sin(j + 17 * i + 101 * r));
const n = sizes.length; let bad = 0;
const expect = (k, got, want) => { if (!Object.is(got, want) && bad++ < 5) console.error(`y${k}: got ${got}, want ${want}`); };
sizes.forEach((len, i) => {
  const k = Math.ceil(len / world.size);
  for (let j = 0; j < len; j++) {
    let s = 0;
    for (let r = 0; r < world.size; r++) s = Math.fround(s + x(i, j, r));
    const m = Math.fround(s * Math.fround(1 / world.size));
    expect(i, cpu[`y${i}`].data[j], s);
    expect(n + i, cpu[`y${n + i}`].data[j], m);
    expect(3 * n + i, cpu[`y${3 * n + i}`].data[j], m);
  }
  for (let j = 0; j < k; j++) {
    const idx = world.rank * k + j;
    let s = 0;
    for (let r = 0; r < world.size; r++) s = Math.fround(s + (idx < len ? x(i, idx, r) : 0));
    expect(2 * n + i, cpu[`y${2 * n + i}`].data[j], idx < len ? Math.fround(s * Math.fround(1 / world.size)) : 0);
  }
});
const out = { rank: world.rank, ranks: world.size, outputs: Object.keys(cpu).length, cpu_exact: bad === 0 };
let status = bad ? 1 : 0;
if (hasProvider) {
  try {
    const gpu = run({ cuda: { providerLibrary: provider, disableCpuFallback: true } });
    let worst = 0;
    for (const [k, t] of Object.entries(cpu)) {
      const a = t.data; const b = gpu[k].data;
      if (a.length !== b.length) throw new Error(`${k}: ${a.length} elements on the CPU, ${b.length} on CUDA`);
      for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) worst = Math.max(worst, Math.abs(a[i] - b[i]) || Infinity);
    }
    out.cuda = { worst_abs_diff: worst, equal: worst === 0 };
    if (worst !== 0) status = 1;
  } catch (e) { out.cuda = { error: e.message }; status = 1; }
}
console.log(JSON.stringify(out));
world.finalize();
process.exitCode = status;
