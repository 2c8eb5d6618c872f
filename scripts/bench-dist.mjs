// Data-parallel benchmark (docs/benchmarks.md): one run of the runner, alone or as a rank under mpirun, e.g.
//   node scripts/bench-dist.mjs --threads 2
//   mpirun -np 2 --oversubscribe --bind-to none node scripts/bench-dist.mjs --threads 1 [--shard]
// Prints one JSON line per rank: step time and tokens/s (after warm-up steps), the share of the step spent inside
// collectives (MPI calls, in-graph and out: it includes waiting for the slower rank), optimizer-state bytes per rank.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { allGather, allReduce, DEFAULT_CONFIG, encodeModel, GraphBuilder, joinWorld, NativeSession, reduceScatter, toModelProto, Trainer } from '../dist/index.js';
import { Tensor } from 'onnxruntime-common';

const { values: a } = parseArgs({ options: {
  threads: { type: 'string', default: '1' }, steps: { type: 'string', default: '300' }, warmup: { type: 'string', default: '50' },
  batch: { type: 'string', default: '16' }, seq: { type: 'string', default: '64' }, model: { type: 'string', default: 'gpt-tiny' },
  shard: { type: 'boolean', default: false },
} });
const world = joinWorld();
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dist-'));
const config = { ...DEFAULT_CONFIG, model: a.model, steps: Number(a.steps), batch: Number(a.batch), seq: Number(a.seq),
  threads: Number(a.threads), evalEvery: 0, checkpointEvery: 0, logEvery: 1000000 };
const t = Trainer.create(config, { outDir: out, quiet: true, world, shardStates: a.shard, collectTimings: true });
const warm = Number(a.warmup);
await t.train(warm);
const c0 = world.commSeconds(); const t0 = performance.now();
const r = await t.train();
const secs = (performance.now() - t0) / 1000; const comm = world.commSeconds() - c0;
const steps = r.step - warm;
const states = Object.values(t.artifacts.manifest.states).flat();
const stateBytes = states.reduce((n, k) => n + t.artifacts.initialState.get(k).data.byteLength, 0);
const params = t.artifacts.params.reduce((n, k) => n + t.artifacts.initialState.get(k).data.length, 0);
// the collective ops alone, on a bucket the size of the model's gradients (ranks in step: a barrier before each block)
const ms = {};
if (world.size > 1) {
  const k = Math.ceil(params / world.size);
  const ops = {
    allreduce: [params, (g, x) => allReduce(g, [x], 'mean')],
    reduce_scatter: [params, (g, x) => reduceScatter(g, [x], 'mean', world.size)],
    all_gather: [k, (g, x) => allGather(g, [x], [params], world.size)],
  };
  for (const [name, [n, f]] of Object.entries(ops)) {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [n]);
    g.output(f(g, x)[0], 'y');
    const s = NativeSession.create(encodeModel(toModelProto(g)), { intraOpThreads: 1 });
    const feed = { x: new Tensor('float32', new Float32Array(n).fill(1), [n]) };
    for (let i = 0; i < 10; i++) s.run(feed);
    world.barrier();
    const t1 = performance.now();
    for (let i = 0; i < 100; i++) s.run(feed);
    ms[`${name}_ms`] = (performance.now() - t1) / 100;
    s.release();
  }
}
console.log(JSON.stringify({ ...ms,
  rank: world.rank, ranks: world.size, threads: config.threads, shard: a.shard, model: a.model, params, batch: config.batch, seq: config.seq,
  steps, step_ms: (1000 * secs) / steps, tokens_per_s: (steps * config.batch * config.seq) / secs, comm_share: comm / secs,
  state_bytes_per_rank: stateBytes,
}));
t.release();
world.finalize();
fs.rmSync(out, { recursive: true, force: true });
