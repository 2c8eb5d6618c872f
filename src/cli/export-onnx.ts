// `ademamix export --onnx model.onnx --loss <output|ce:labels[@logits]> --out dir [--params names|file]
// [--freeze pattern] [--optimizer NAME] [optimizer flags as for train] [--grads]`
// Training artifacts from a forward graph exported by PyTorch (docs/interop.md).
import * as path from 'node:path';
import { exportTrainingFromOnnx } from '../interop/export';
import { validateConfig } from '../runner/config';
import { optimizerSpec, statePrecision } from '../runner/trainer';
import { UsageError, type Args, type OptionKinds } from './args';
import { configFromArgs, OPTIMIZER_FLAGS as HYPER_FLAGS } from './train';
import { OPTIMIZER_NAMES } from '../optim/derive';

const OWN = new Set(['_', 'onnx', 'loss', 'out', 'params', 'freeze', 'grads', 'quiet', 'allow-untrained', 'verbose', 'torch-state']);
export const EXPORT_ONNX_OPTIONS: OptionKinds = {
  onnx: 'string', loss: 'string', out: 'string', params: 'string', freeze: 'string', 'torch-state': 'string',
  grads: 'boolean', quiet: 'boolean', 'allow-untrained': 'boolean', verbose: 'boolean',
  states: 'string', 'stochastic-rounding': 'boolean', seed: 'string',
};
// the optimizer and schedule flags of `train` (their defaults too; --steps sets the schedules' length)
const OPTIMIZER_FLAGS = new Set(['optimizer', 'lr', 'warmup', 'decay', 'min-lr-ratio', 'grad-clip', 'steps', 'states', 'stochastic-rounding', 'seed', ...HYPER_FLAGS.keys()]);

export const EXPORT_ONNX_USAGE = `  export --onnx model.onnx --loss <output|ce:labels[@logits]> --out dir [--params names|file] [--freeze regex]
         [--optimizer ${OPTIMIZER_NAMES.join('|')}] [--lr --warmup --decay --steps --grad-clip]
         [--${[...HYPER_FLAGS.keys()].join(' --')}: the optimizer's flags, as for train] [--grads]
         [--states fp32|bf16|8bit|slot=format,… [--stochastic-rounding] [--seed N]: optimizer state storage, as for train]
         [--torch-state sd.safetensors] [--allow-untrained] [--verbose]
         training artifacts of a PyTorch-exported forward graph (docs/interop.md)`;

export async function exportOnnxCommand(args: Args): Promise<void> {
  const bad = Object.keys(args).filter((k) => !OWN.has(k) && !OPTIMIZER_FLAGS.has(k));
  if (bad.length) throw new UsageError(`export --onnx: unknown option${bad.length > 1 ? 's' : ''} ${bad.map((b) => `--${b}`).join(', ')}`);
  const need = (k: string): string => {
    const v = args[k];
    if (typeof v !== 'string') throw new UsageError(`export --onnx needs --${k} <${k === 'loss' ? 'output|ce:labels' : k === 'out' ? 'dir' : 'value'}>`);
    return v;
  };
  const onnx = need('onnx'); const loss = need('loss'); const out = need('out');
  const opt = (k: string): string | undefined => {
    const v = args[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new UsageError(`--${k} needs a value`);
    return v;
  };
  const { config } = configFromArgs(args);
  validateConfig(config);
  let freeze: RegExp | undefined;
  const f = opt('freeze');
  if (f !== undefined) {
    try { freeze = new RegExp(f); } catch (e) { throw new UsageError(`--freeze: '${f}' is not a regular expression (${(e as Error).message})`); }
  }
  const quiet = args.quiet === true;
  const r = exportTrainingFromOnnx({
    onnx, loss, out, params: opt('params'), freeze, optimizer: optimizerSpec(config), gradClip: config.gradClip,
    states: statePrecision(config), seed: config.seed,
    emitGradients: args.grads === true, allowUntrained: args['allow-untrained'] === true, torchState: opt('torch-state'), verbose: args.verbose === true, log: quiet ? undefined : (s) => console.log(s),
  });
  const files = ['train.onnx', 'eval.onnx', 'forward.onnx', 'initial_state.safetensors', 'frozen.safetensors', 'manifest.json'];
  console.log(`wrote ${files.map((x) => path.join(out, x)).join(', ')} (${r.manifest.params.length} parameter tensors; ` +
    `feed ${r.manifest.batchInputs.join(', ')}; carry ${Object.keys(r.manifest.carry).length} values from x.next to x each step)`);
}
