// The `ademamix` command line.
import { hostInfo } from './bench/host';
import { benchAllOptimizers, benchDef, benchOptimizer, type BenchShape } from './bench/optimizer';
import { OPTIMIZER_NAMES } from './optim/derive';
import { parseStates } from './optim/precision';
import { benchRunner } from './bench/runner';
import { parseCommandArgs, num, str, UsageError, type Args, type OptionKinds } from './cli/args';
import { EXPORT_ONNX_OPTIONS, EXPORT_ONNX_USAGE, exportOnnxCommand } from './cli/export-onnx';
import { exportInferenceCommand, HelpShown, INFER_USAGE, predictCommand, sampleCommand } from './cli/infer';
import { EVAL_OPTIONS, evalCommand, EXPORT_PRESET_OPTIONS, exportPresetCommand, TRAIN_OPTIONS, trainCommand, TRAIN_USAGE } from './cli/train';
import { EXPERIMENT_OPTIONS, EXPERIMENT_USAGE, experimentCommand } from './experiments';
import { opsLibraryPath } from './native/paths';
import { convertCheckpoint } from './runner/convert';
import { WEB_OPTIONS, WEB_USAGE, webCommand } from './web/command';

const USAGE = `usage: ademamix <command> [options]

commands:
${TRAIN_USAGE}
${EXPORT_ONNX_USAGE}
${INFER_USAGE}${EXPERIMENT_USAGE}${WEB_USAGE}
  convert-checkpoint --run <run dir|checkpoint> --states fp32|bf16|8bit|slot=format,… --out <dir> [--stochastic-rounding]
                                  re-store a checkpoint's optimizer states in other precisions (resume with train --resume <dir>)
  ops-path                        print the path of the com.ademamix op library
  bench optimizer [--op ${OPTIMIZER_NAMES.join('|')} | --all] [--device cpu] [--params N] [--reps N]
                  [--threads N] [--shape gpt|flat] [--no-fallback] [--torch | --no-torch] [--spin] [--no-inplace] [--json]
                  [--states fp32|bf16|8bit|slot=format,… [--stochastic-rounding]]: state bytes/param and GB/s at that precision
  bench train-step [--model gpt-tiny] [--batch N] [--seq N] [--steps N] [--threads N] [--compare-torch] [--no-fused] [--json]
  bench runner [--model gpt-tiny] [--steps N] [--batch N] [--seq N] [--threads N] [--json]
`;

/** `ademamix <cmd> --help`: the usage lines of that command (the whole list for no command). */
function helpFor(cmd: string | undefined): string {
  const blocks = USAGE.split('\n').reduce<string[][]>((acc, l) => {
    if (/^  \S/.test(l)) acc.push([l]); else if (acc.length && l.trim()) acc[acc.length - 1].push(l);
    return acc;
  }, []);
  const mine = cmd ? blocks.filter((b) => b[0].trimStart().split(/\s/)[0] === cmd) : [];
  return mine.length ? `usage: ademamix ${cmd} …\n${mine.map((b) => b.join('\n')).join('\n')}\n` : USAGE;
}

function printResult(result: Record<string, unknown>, json: boolean): void {
  if (json) { console.log(JSON.stringify(result)); return; }
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(16)} ${v}`);
}

// The options each benchmark reads (BENCH_OPTIONS is their union, for the parser): one given to a benchmark that does
// not read it is an error, not a silent default (`bench optimizer --optimizer lion` once ran AdEMAMix)
const BENCH_TAKES: Record<string, string[]> = {
  optimizer: ['op', 'all', 'device', 'params', 'reps', 'threads', 'shape', 'fallback', 'torch', 'spin', 'inplace', 'states', 'stochastic-rounding'],
  'train-step': ['model', 'batch', 'seq', 'steps', 'threads', 'optimizer', 'compare-torch', 'fused'],
  runner: ['model', 'steps', 'batch', 'seq', 'threads'],
};

async function bench(args: Args): Promise<void> {
  const what = args._[1];
  const json = args.json === true;
  const takes = what === undefined ? undefined : BENCH_TAKES[what];
  if (takes) {
    const extra = Object.keys(args).filter((k) => k !== '_' && k !== 'json' && !takes.includes(k));
    if (extra.length) {
      const hint = what === 'optimizer' && extra.includes('optimizer') ? ' (the optimizer is --op)' : '';
      throw new UsageError(`bench ${what}: ${extra.map((k) => `--${k}`).join(', ')} ${extra.length > 1 ? 'are not options' : 'is not an option'} of this benchmark${hint} (it takes ${takes.map((k) => `--${k}`).join(', ')})`);
    }
  }
  // every result says which machine it is from (a figure means little without it)
  const print = (r: Record<string, unknown>, asJson: boolean): void => printResult({ ...r, ...hostInfo() }, asJson);
  if (what === 'optimizer') {
    const device = str(args, 'device', 'cpu');
    if (device !== 'cpu') throw new UsageError(`bench optimizer: --device ${device} is not available here (cpu only in this build)`);
    const shape = str(args, 'shape', 'gpt');
    if (shape !== 'gpt' && shape !== 'flat') throw new UsageError(`bench optimizer: --shape must be gpt or flat, got '${shape}'`);
    const common = {
      params: num(args, 'params', 16_000_000), reps: num(args, 'reps', 15), threads: num(args, 'threads', 0),
      fallback: args.fallback !== false, shape: shape as BenchShape, torch: typeof args.torch === 'boolean' ? args.torch : undefined,
      states: args.states === undefined ? undefined : str(args, 'states', 'fp32'), stochasticRounding: args['stochastic-rounding'] === true,
      spin: args.spin === true, inPlace: args.inplace !== false,
    };
    if (args.all === true) {
      if (args.op !== undefined) throw new UsageError('bench optimizer: --all and --op exclude each other');
      const results = benchAllOptimizers(common);
      if (json) console.log(JSON.stringify({ bench: 'optimizer', all: true, ...hostInfo(), results }));
      else for (const r of results) { print(r, false); console.log(''); }
      return;
    }
    const op = str(args, 'op', 'ademamix');
    try { benchDef(op); } catch (e) { throw new UsageError(`bench optimizer: --op: ${(e as Error).message}`); }
    try { parseStates(benchDef(op), common.states); } catch (e) { throw new UsageError(`bench optimizer: ${(e as Error).message}`); }
    print(benchOptimizer({ ...common, op }), json);
    return;
  }
  if (what === 'runner') {
    print(await benchRunner({
      model: str(args, 'model', 'gpt-tiny'), steps: num(args, 'steps', 600), batch: num(args, 'batch', 16),
      seq: num(args, 'seq', 64), threads: num(args, 'threads', 0),
    }), json);
    return;
  }
  if (what === 'train-step') {
    const { benchTrainStep } = await import('./bench/train-step');
    const opt = (k: string): number | undefined => (args[k] === undefined ? undefined : num(args, k, 0));
    print(await benchTrainStep({
      model: str(args, 'model', 'gpt-tiny'), batch: opt('batch'), seq: opt('seq'), steps: opt('steps'), threads: opt('threads'),
      optimizer: args.optimizer === undefined ? undefined : str(args, 'optimizer', 'ademamix'), compareTorch: args['compare-torch'] === true,
      fused: args.fused !== false,
    }), json);
    return;
  }
  throw new UsageError(`bench: unknown benchmark '${what ?? ''}' (have: optimizer, train-step, runner)`);
}

const BENCH_OPTIONS: OptionKinds = {
  op: 'string', device: 'string', params: 'string', reps: 'string', threads: 'string', model: 'string', batch: 'string',
  seq: 'string', steps: 'string', optimizer: 'string', json: 'boolean', fallback: 'boolean', shape: 'string', all: 'boolean',
  torch: 'boolean', 'compare-torch': 'boolean', states: 'string', 'stochastic-rounding': 'boolean', spin: 'boolean', inplace: 'boolean', fused: 'boolean',
};

/** The options each command takes (sample, predict and export --inference parse their own). */
function optionsOf(cmd: string | undefined, argv: string[]): OptionKinds {
  switch (cmd) {
    case 'train': return TRAIN_OPTIONS();
    case 'eval': return EVAL_OPTIONS;
    case 'export': return argv.includes('--onnx') ? { ...EXPORT_PRESET_OPTIONS(), ...EXPORT_ONNX_OPTIONS } : EXPORT_PRESET_OPTIONS();
    case 'experiment': return EXPERIMENT_OPTIONS;
    case 'bench': return BENCH_OPTIONS;
    case 'web': return WEB_OPTIONS();
    case 'convert-checkpoint': return { run: 'string', states: 'string', out: 'string', 'stochastic-rounding': 'boolean' };
    default: return {};
  }
}

/** The arguments of a command line (`train --lr 0.1 …`) as its command parses them; usage errors as UsageError. */
export function parseCli(argv: string[]): Args {
  const cmd = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  return parseCommandArgs(cmd ?? 'ademamix', argv, optionsOf(cmd, argv));
}

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  // commands with their own parser (and --help) take the words after their name as they are
  const own = cmd === 'sample' || cmd === 'predict' || (cmd === 'export' && argv.includes('--inference'));
  try {
    const args: Args = own ? { _: [cmd!] } : parseCli(argv);
    if (args.help === true && !own) { process.stdout.write(helpFor(cmd)); return 0; }
    switch (cmd) {
      case 'train': return await trainCommand(args);
      case 'eval': return await evalCommand(args);
      case 'sample': return await sampleCommand(argv.slice(1));
      case 'predict': return await predictCommand(argv.slice(1));
      case 'export':
        if (own) return await exportInferenceCommand(argv.slice(1));
        if (args.onnx !== undefined) {
          await exportOnnxCommand(args);
          return 0;
        }
        return await exportPresetCommand(args);
      case 'experiment': return await experimentCommand(args);
      case 'web': return await webCommand(args);
      case 'ops-path': console.log(opsLibraryPath()); return 0;
      case 'convert-checkpoint': {
        for (const k of ['run', 'states', 'out'] as const) {
          if (typeof args[k] !== 'string') throw new UsageError(`convert-checkpoint needs --${k} <${k === 'run' ? 'run dir|checkpoint' : k === 'out' ? 'dir' : 'fp32|bf16|8bit|slot=format,…'}>`);
        }
        const r = convertCheckpoint(args.run as string, args.states as string, args.out as string,
          args['stochastic-rounding'] === true ? true : undefined);
        console.log(`wrote ${r.file}: ${r.converted} optimizer states from ${r.from} to ${r.to} (resume with: ademamix train --resume ${args.out as string})`);
        return 0;
      }
      case 'bench': await bench(args); return 0;
      case undefined: case 'help': process.stdout.write(USAGE); return cmd ? 0 : 2;
      default: throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof HelpShown) return 0;
    if (e instanceof UsageError) { process.stderr.write(`ademamix: ${e.message}\n`); return 2; }
    process.stderr.write(`ademamix ${cmd}: ${(e as Error).message}\n`);
    if (process.env.ADEMAMIX_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

if (require.main === module) main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
