// `ademamix train | eval | export --model`: flags → TrainConfig, run directories, resume, Ctrl-C.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addModelToReport } from '../infer';
import { readJsonFile } from '../io/json';
import { configTypeError, DEFAULT_CONFIG, isVision, OPTIMIZER_FIELDS, RESUMABLE_KEYS, validateConfig, type TrainConfig } from '../runner/config';
import { getOptimizer, OPTIMIZER_NAMES, OPTIMIZERS } from '../optim/derive';
import { loadCheckpoint, resolveCheckpoint } from '../runner/checkpoint';
import { optimizerSpec, statePrecision, Trainer } from '../runner/trainer';
import { buildTask } from '../runner/task';
import { assembleTraining } from '../train/assemble';
import { saveModel } from '../onnx/io';
import { saveSafetensors } from '../io/safetensors';
import { UsageError, type Args, type OptionKinds } from './args';
import { launchWorld, LaunchError, parseWorldFlag, withoutWorldFlag } from '../parallel/launch';
import { joinWorld, worldEnv, type World } from '../parallel/world';
import { checkShardable, ShardError } from '../parallel/shard';
import { SHARDABLE_OPTIMIZERS } from '../train/data-parallel';

// flag → config key, and how to parse it (the optimizers' own flags come from their definitions: OPTIMIZER_FLAGS)
const FLAGS: Record<string, [keyof TrainConfig, 'num' | 'str']> = {
  model: ['model', 'str'], data: ['data', 'str'], level: ['level', 'str'], 'val-fraction': ['valFraction', 'num'],
  optimizer: ['optimizer', 'str'], lr: ['lr', 'num'], warmup: ['warmup', 'num'], decay: ['decay', 'str'],
  'min-lr-ratio': ['minLrRatio', 'num'],
  'grad-clip': ['gradClip', 'num'], steps: ['steps', 'num'], batch: ['batch', 'num'], seq: ['seq', 'num'], seed: ['seed', 'num'],
  threads: ['threads', 'num'], 'eval-every': ['evalEvery', 'num'], 'eval-batches': ['evalBatches', 'num'], 'log-every': ['logEvery', 'num'],
  'checkpoint-every': ['checkpointEvery', 'num'], keep: ['keepCheckpoints', 'num'], 'nan-policy': ['nanPolicy', 'str'],
  'track-batches': ['trackBatches', 'num'], 'track-every': ['trackEvery', 'num'], states: ['states', 'str'],
};
/** Boolean config flags (no value). */
const BOOL_FLAGS: Record<string, keyof TrainConfig> = { 'stochastic-rounding': 'stochasticRounding' };
const OTHER = new Set(['_', 'out', 'resume', 'stop-after', 'quiet', 'config', 'override', 'world', 'shard-states']);

/** What each command takes (node:util parseArgs declarations; src/cli/args.ts). */
const CONFIG_OPTIONS = (): OptionKinds => ({
  ...Object.fromEntries([...Object.keys(FLAGS), ...OPTIMIZER_FLAGS.keys(), 'config', 'override'].map((k) => [k, 'string' as const])),
  ...Object.fromEntries(Object.keys(BOOL_FLAGS).map((k) => [k, 'boolean' as const])),
});
export const TRAIN_OPTIONS = (): OptionKinds => ({
  ...CONFIG_OPTIONS(), out: 'string', resume: 'string', 'stop-after': 'string', quiet: 'boolean', world: 'string', 'shard-states': 'boolean',
});
export const EVAL_OPTIONS: OptionKinds = { run: 'string', 'eval-batches': 'string', json: 'boolean' };
export const EXPORT_PRESET_OPTIONS = (): OptionKinds => ({ ...CONFIG_OPTIONS(), out: 'string', grads: 'boolean' });

/** Every optimizer hyperparameter flag: flag → its config key, and the optimizers that take it. */
export const OPTIMIZER_FLAGS = new Map<string, { config: string; key: string; optimizers: string[] }>();
for (const d of OPTIMIZERS) {
  for (const h of d.hyper) {
    if (!h.flag) continue;
    const f = OPTIMIZER_FLAGS.get(h.flag) ?? { config: h.config ?? h.key, key: h.key, optimizers: [] };
    f.optimizers.push(d.name);
    OPTIMIZER_FLAGS.set(h.flag, f);
  }
}

/** One help line: each optimizer's state slots (what `--states slot=format` names), from the definitions. */
export function statesHelp(indent: string): string {
  return `${indent}--states fp32|bf16|8bit (every slot) or slot=format,… per slot (8bit: blocks of 256, a float32 absmax each); ` +
    `--stochastic-rounding (bf16/8bit stores)\n${indent}  slots: ${OPTIMIZERS.map((d) => `${d.name} ${d.states.map((x) => x.name + (x.eightBitAs ? ` (8bit: ${x.eightBitAs} unless named)` : '')).join(',')}`).join('; ')}`;
}

/** One help line per optimizer: its flags with their defaults. */
export function optimizerHelp(indent: string): string {
  return OPTIMIZERS.map((d) => `${indent}${d.name}: ${d.title}; lr ${d.lr}` +
    d.hyper.filter((h) => h.flag).map((h) => ` --${h.flag} ${h.runLength ? 'steps' : String(h.default)}`).join('')).join('\n');
}

export const TRAIN_USAGE = `  train [options]                 train a preset model (default: gpt-tiny, char-level Moby-Dick, AdEMAMix)
      --model gpt-tiny|gpt-mini|gpt-small|vit-tiny|vit-mini|vit-s   --data moby-dick|<text file>|mnist
      --optimizer ${OPTIMIZER_NAMES.join('|')}   --lr --warmup --decay cosine|linear|constant
      optimizer flags (defaults of the method; the run's defaults: lr 2e-3, weight-decay 0.1, alpha 5, beta3 0.999):
${optimizerHelp('        ')}
${statesHelp('      ')}
      --grad-clip   --steps --batch --seq --seed --threads
      --eval-every --checkpoint-every --keep N --nan-policy stop|skip --track-batches K --track-every N
      --override key=value,...  (model fields, e.g. nLayer=4)   --config file.json   --out <run dir>
      --resume <run dir|checkpoint>   --stop-after N   --quiet
      --world N  N data-parallel ranks on this machine (starts mpirun; or run \`mpirun -np N ademamix train …\`)
      --shard-states  optimizer states split over the ranks (ZeRO stage 1; same trajectory)
  eval --run <run dir|checkpoint>     validation loss of a checkpoint
  export --model <preset> --out dir   write train.onnx, eval.onnx and initial_state.safetensors`;

function checkFlags(args: Args, allowed: Set<string>, cmd: string): void {
  const bad = Object.keys(args).filter((k) => !allowed.has(k) && !(k in FLAGS) && !(k in BOOL_FLAGS) && !OPTIMIZER_FLAGS.has(k));
  if (bad.length) throw new UsageError(`${cmd}: unknown option${bad.length > 1 ? 's' : ''} ${bad.map((b) => `--${b}`).join(', ')}`);
}

/** Config from defaults ← --config file ← flags. */
export function configFromArgs(args: Args, base: TrainConfig = DEFAULT_CONFIG): { config: TrainConfig; given: Set<keyof TrainConfig> } {
  let c: TrainConfig = { ...base, modelOverrides: { ...base.modelOverrides } };
  const given = new Set<keyof TrainConfig>();
  if (typeof args.config === 'string') {
    let fromFile: Partial<TrainConfig>;
    try { fromFile = readJsonFile(args.config) as Partial<TrainConfig>; } catch (e) { throw new UsageError(`--config ${(e as Error).message}`); }
    const typeError = configTypeError(fromFile);
    if (typeError) throw new UsageError(`--config ${args.config}: ${typeError}`);
    for (const k of Object.keys(fromFile)) if (!(k in DEFAULT_CONFIG) && ![...OPTIMIZER_FIELDS, 'hyper', 'gradClip', 'states', 'stochasticRounding'].includes(k)) {
      throw new UsageError(`--config ${args.config}: unknown setting '${k}'`);
    }
    c = { ...c, ...fromFile };
    for (const k of Object.keys(fromFile)) given.add(k as keyof TrainConfig);
  }
  for (const [flag, [key, kind]] of Object.entries(FLAGS)) {
    const v = args[flag];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new UsageError(`--${flag} needs a value`);
    if (kind === 'num') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new UsageError(`--${flag} needs a number, got '${v}'`);
      (c as unknown as Record<string, unknown>)[key] = n;
    } else (c as unknown as Record<string, unknown>)[key] = v;
    given.add(key);
  }
  for (const [flag, key] of Object.entries(BOOL_FLAGS)) {
    const v = args[flag];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw new UsageError(`--${flag} takes no value`);
    (c as unknown as Record<string, unknown>)[key] = v;
    given.add(key);
  }
  for (const [flag, f] of OPTIMIZER_FLAGS) {
    const v = args[flag];
    if (v === undefined) continue;
    const n = Number(v);
    if (typeof v !== 'string' || !Number.isFinite(n)) throw new UsageError(`--${flag} needs a number, got '${String(v)}'`);
    if (OPTIMIZER_FIELDS.includes(f.config)) { (c as unknown as Record<string, unknown>)[f.config] = n; given.add(f.config as keyof TrainConfig); }
    else { c.hyper = { ...c.hyper, [f.config]: n }; given.add('hyper'); }
  }
  const unused = [...OPTIMIZER_FLAGS].filter(([flag, f]) => args[flag] !== undefined && !f.optimizers.includes(c.optimizer));
  if (unused.length) {
    throw new UsageError(`${unused.map(([flag]) => `--${flag}`).join(', ')}: not ${unused.length > 1 ? 'hyperparameters' : 'a hyperparameter'} of ` +
      `--optimizer ${c.optimizer} (${unused.map(([flag, f]) => `--${flag}: ${f.optimizers.join(', ')}`).join('; ')})`);
  }
  if (typeof args.override === 'string') {
    for (const kv of args.override.split(',')) {
      const [k, v] = kv.split('=');
      if (!k || v === undefined || !Number.isFinite(Number(v))) throw new UsageError(`--override expects key=number pairs, got '${kv}'`);
      c.modelOverrides[k] = Number(v);
    }
    given.add('modelOverrides');
  }
  if (isVision(c) && !given.has('data')) c.data = 'mnist'; // the one bundled image set
  return { config: c, given };
}

function defaultRunDir(c: TrainConfig): string {
  const ts = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return path.resolve('runs', `${ts}-${c.model}-${c.optimizer}`);
}

export async function trainCommand(args: Args): Promise<number> {
  checkFlags(args, OTHER, 'train');
  let config: TrainConfig; let outDir: string; let resumeFrom: string | undefined;
  if (args.resume !== undefined) {
    if (typeof args.resume !== 'string') throw new UsageError('--resume needs a run directory or a checkpoint file');
    resumeFrom = resolveCheckpoint(args.resume);
    const ck = loadCheckpoint(resumeFrom);
    const saved = ck.info.config as unknown as TrainConfig;
    const { config: asked, given } = configFromArgs(args, saved);
    for (const k of given) {
      if (RESUMABLE_KEYS.includes(k) || k === 'steps') continue;
      if (JSON.stringify(asked[k]) !== JSON.stringify(saved[k])) {
        throw new UsageError(`--resume: checkpoint ${resumeFrom} was trained with ${k} = ${JSON.stringify(saved[k])}; ` +
          `it cannot continue with ${JSON.stringify(asked[k])} (only ${[...RESUMABLE_KEYS, 'steps'].join(', ')} may change)`);
      }
    }
    if (asked.steps !== saved.steps) process.stderr.write(`note: --steps ${asked.steps} changes the schedules' length (was ${saved.steps}); the continuation is not the original run's\n`);
    config = asked;
    const ckDir = path.dirname(resumeFrom);
    outDir = typeof args.out === 'string' ? path.resolve(args.out) : path.basename(ckDir) === 'checkpoints' ? path.dirname(ckDir) : ckDir;
  } else {
    config = configFromArgs(args).config;
    outDir = typeof args.out === 'string' ? path.resolve(args.out) : defaultRunDir(config);
  }
  validateConfig(config);
  const parallel = await parallelStart(args, config, outDir, resumeFrom);
  if (typeof parallel === 'number') return parallel; // this process was the --world launcher
  if (getOptimizer(config.optimizer).noLrDecay && config.decay !== 'constant') {
    process.stderr.write(`note: ${config.optimizer} keeps the lr warmup but no decay schedule (--decay ${config.decay} is not applied)\n`);
  }
  const stopAfter = args['stop-after'] === undefined ? undefined : Number(args['stop-after']);
  if (stopAfter !== undefined && !(Number.isInteger(stopAfter) && stopAfter > 0)) throw new UsageError(`--stop-after needs a positive integer`);
  const world = parallel;
  // one rank failing alone would leave the others waiting in a collective: end them all (mpirun reports it)
  const abortOthers = (e: unknown): void => {
    if (world.size > 1) { process.stderr.write(`ademamix train (rank ${world.rank}): ${(e as Error).message}\n`); world.abort(1); }
  };
  let trainer: Trainer;
  try {
    trainer = Trainer.create(config, { outDir, resumeFrom, stopAfter, quiet: args.quiet === true, world, shardStates: args['shard-states'] === true });
  } catch (e) { abortOthers(e); throw e; }
  let interrupts = 0;
  const onSigint = (): void => {
    if (++interrupts > 1) { process.stderr.write('\nsecond Ctrl-C: exiting without a checkpoint\n'); process.exit(130); }
    if (world.lead) process.stderr.write('\nCtrl-C: finishing this step and saving a checkpoint (Ctrl-C again to quit at once)\n');
    trainer.requestStop();
  };
  process.on('SIGINT', onSigint);
  // several ranks: `train --world` (or `kill -USR1 <mpirun>`) asks for the stop through SIGUSR1, which mpirun forwards
  if (world.size > 1) process.on('SIGUSR1', onSigint);
  let ok = false;
  try {
    const r = await trainer.train();
    ok = true;
    if (r.status === 'stopped-nonfinite') { if (world.lead) process.stderr.write(`ademamix train: ${r.message}\n`); return 1; }
    // the report shows what the trained model does (a text sample, or held-out accuracy)
    if (r.status === 'done' && world.lead) await addModelToReport(r.runDir);
    return r.status === 'interrupted' ? 130 : 0;
  } catch (e) {
    abortOthers(e);
    throw e;
  } finally {
    process.off('SIGINT', onSigint); process.off('SIGUSR1', onSigint);
    trainer.release();
    if (ok) world.finalize();
  }
}

/**
 * Multi-process runs. Under mpirun: joins the world (after checking it splits the batch; every rank needs the same
 * run directory, so --out is required unless resuming). With --world N outside mpirun: starts N ranks through mpirun
 * and returns its exit code.
 */
async function parallelStart(args: Args, config: TrainConfig, outDir: string, resumeFrom: string | undefined): Promise<World | number> {
  let asked: number | undefined;
  const env = worldEnv();
  try {
    asked = parseWorldFlag(args.world);
    if (asked !== undefined || env.size > 1) checkShardable(config.batch, asked ?? env.size);
  } catch (e) {
    if (e instanceof LaunchError || e instanceof ShardError) throw new UsageError(`train: ${e.message}`);
    throw e;
  }
  if (args['shard-states'] === true && !SHARDABLE_OPTIMIZERS.includes(getOptimizer(config.optimizer).name)) {
    throw new UsageError(`train: --shard-states works with --optimizer ${SHARDABLE_OPTIMIZERS.join(', ')} (elementwise updates), not ${config.optimizer}`);
  }
  if (env.size > 1 && asked !== undefined && asked !== env.size) {
    throw new UsageError(`train: --world ${asked} but mpirun started ${env.size} ranks (give one or the other)`);
  }
  if (env.size > 1 && resumeFrom === undefined && typeof args.out !== 'string') {
    throw new UsageError(`train: with ${env.size} ranks, give --out <run dir> (every rank must write to, and resume from, one directory)`);
  }
  if (asked === undefined || asked === 1 || env.size > 1) return joinWorld();
  const i = process.argv.indexOf('train');
  const rest = withoutWorldFlag(process.argv.slice(i + 1));
  if (typeof args.out !== 'string') rest.push('--out', outDir);
  let r;
  try {
    r = await launchWorld(asked, [process.execPath, process.argv[1], 'train', ...rest], (why) => {
      const dir = path.join(outDir, 'checkpoints');
      const all = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^step-\d+\.safetensors$/.test(f)).sort() : [];
      return `${why}; mpirun stopped the other ranks. ` +
        (all.length ? `Last checkpoint: ${path.join(dir, all[all.length - 1])} (continue with --resume ${outDir})` : 'No checkpoint was written.');
    });
  } catch (e) {
    if (e instanceof LaunchError) throw new UsageError(`train: ${e.message}`);
    throw e;
  }
  if (r.message) process.stderr.write(`ademamix train --world ${asked}: ${r.message}\n`);
  return r.code;
}

export async function evalCommand(args: Args): Promise<number> {
  checkFlags(args, new Set(['_', 'run', 'json', 'eval-batches']), 'eval');
  if (typeof args.run !== 'string') throw new UsageError('eval needs --run <run dir|checkpoint>');
  const file = resolveCheckpoint(args.run);
  const ck = loadCheckpoint(file);
  const config = { ...(ck.info.config as unknown as TrainConfig) };
  if (typeof args['eval-batches'] === 'string') config.evalBatches = Number(args['eval-batches']);
  const tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ademamix-eval-'));
  const trainer = Trainer.create(config, { outDir: tmp, resumeFrom: file, quiet: true });
  try {
    const losses = trainer.evaluate(trainer.task.val);
    const loss = losses.reduce((a, b) => a + b, 0) / losses.length;
    const r = { checkpoint: file, step: ck.info.step, model: config.model, eval_loss: loss, batches: losses.length };
    if (args.json === true) console.log(JSON.stringify(r));
    else console.log(`${file}: step ${r.step}, validation loss ${loss.toFixed(4)} over ${losses.length} batches`);
    return 0;
  } finally { trainer.release(); fs.rmSync(tmp, { recursive: true, force: true }); }
}

export async function exportPresetCommand(args: Args): Promise<number> {
  checkFlags(args, new Set(['_', 'out', 'config', 'override', 'grads']), 'export');
  if (typeof args.out !== 'string') throw new UsageError('export needs --out <dir>');
  const { config } = configFromArgs(args);
  validateConfig(config);
  const task = buildTask(config);
  const art = assembleTraining({
    forward: task.model.g, loss: task.model.loss, optimizer: optimizerSpec(config), gradClip: config.gradClip,
    emitGradients: args.grads === true, metadata: { 'ademamix.model': config.model }, states: statePrecision(config), seed: config.seed,
  });
  fs.mkdirSync(args.out, { recursive: true });
  saveModel(art.train, path.join(args.out, 'train.onnx'));
  saveModel(art.eval, path.join(args.out, 'eval.onnx'));
  saveSafetensors(path.join(args.out, 'initial_state.safetensors'), art.initialState);
  const manifest = { config, carry: art.carry, batchInputs: art.batchInputs, params: art.params, metrics: art.metrics, optimizer: art.manifest };
  fs.writeFileSync(path.join(args.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wrote ${args.out}/train.onnx, eval.onnx, initial_state.safetensors, manifest.json ` +
    `(${art.params.length} parameter tensors; carry ${Object.keys(art.carry).length} values from x.next to x each step)`);
  return 0;
}
