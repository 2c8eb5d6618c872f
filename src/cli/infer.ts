// `ademamix sample`, `ademamix predict` and `ademamix export --run DIR --inference`: using a trained run.
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { inferenceModel, predict, sample, saveInferenceModel } from '../infer';
import { UsageError } from './args';

export const INFER_USAGE = `  sample --run DIR [--checkpoint F] [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]
                                  text from a GPT run's newest checkpoint, streamed as it is generated
  predict --run DIR [--checkpoint F] IMAGE|FOLDER... [--top-k K] [--json]
                                  class names and probabilities of PNG images from a ViT run
  export --run DIR --inference --out model.onnx [--checkpoint F]
                                  the forward graph (logits) with the trained weights, standard ONNX ops only
`;

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with one-line errors (exit 2) that name the flag and what the command accepts. */
function parse(cmd: string, argv: string[], options: Options, positionals = false): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  if (argv.includes('--help') || argv.includes('-h')) { process.stdout.write(`usage:\n${helpOf(cmd)}`); throw new HelpShown(); }
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: positionals, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    const flags = Object.keys(options).map((k) => `--${k}`).join(', ');
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option '(.*)'$/, "unknown option '$1'");
    throw new UsageError(`${cmd}: ${msg} (it takes ${flags})`);
  }
}

/** Thrown after --help has been printed: the command ends with exit code 0. */
export class HelpShown extends Error {}

function helpOf(cmd: string): string {
  return INFER_USAGE.split(/\n(?=  \S)/).filter((l) => l.trimStart().startsWith(cmd)).join('\n') + '\n';
}

function number(cmd: string, flag: string, v: string | boolean | undefined, dflt: number, ok: (n: number) => boolean, what: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`${cmd}: --${flag} takes ${what}, got '${String(v)}'`);
  return n;
}

const runOf = (cmd: string, v: Record<string, string | boolean | undefined>): string => {
  if (typeof v.run !== 'string') throw new UsageError(`${cmd} needs --run <run dir> (the folder train printed)`);
  return v.run;
};

export async function sampleCommand(argv: string[]): Promise<number> {
  const { values: v } = parse('sample', argv, {
    run: { type: 'string' }, checkpoint: { type: 'string' }, prompt: { type: 'string' }, tokens: { type: 'string' },
    temperature: { type: 'string' }, 'top-k': { type: 'string' }, seed: { type: 'string' },
  });
  const m = inferenceModel(runOf('sample', v), v.checkpoint as string | undefined);
  if (!m.text) throw new Error(`${m.checkpoint}: ${m.config.model} is an image model; use predict`);
  if (typeof v.prompt === 'string') process.stdout.write(v.prompt);
  const r = await sample(m, {
    prompt: v.prompt as string | undefined,
    tokens: number('sample', 'tokens', v.tokens, 200, (n) => Number.isInteger(n) && n >= 1, 'a whole number ≥ 1'),
    temperature: number('sample', 'temperature', v.temperature, 0.8, (n) => n >= 0, 'a number ≥ 0 (0: the most likely token each time)'),
    topK: number('sample', 'top-k', v['top-k'], 0, (n) => Number.isInteger(n) && n >= 0, 'a whole number ≥ 0 (0: all tokens)'),
    seed: number('sample', 'seed', v.seed, 0, Number.isInteger, 'a whole number'),
    onText: (s) => process.stdout.write(s),
  });
  process.stdout.write('\n');
  process.stderr.write(`${r.ids.length} tokens at ${r.tokensPerSecond.toFixed(0)} tokens/s from ${m.checkpoint} (step ${m.step})\n`);
  return 0;
}

export async function predictCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse('predict', argv, {
    run: { type: 'string' }, checkpoint: { type: 'string' }, 'top-k': { type: 'string' }, json: { type: 'boolean' },
  }, true);
  if (!positionals.length) throw new UsageError('predict needs one or more PNG images or folders of them');
  const m = inferenceModel(runOf('predict', v), v.checkpoint as string | undefined);
  const k = number('predict', 'top-k', v['top-k'], 3, (n) => Number.isInteger(n) && n >= 1, 'a whole number ≥ 1');
  const preds = await predict(m, positionals, k);
  if (v.json) { console.log(JSON.stringify(preds)); return 0; }
  for (const p of preds) console.log(`${p.file}: ${p.top.map((t) => `${t.label} ${(100 * t.p).toFixed(1)}%`).join(', ')}`);
  return 0;
}

export async function exportInferenceCommand(argv: string[]): Promise<number> {
  const { values: v } = parse('export', argv, {
    run: { type: 'string' }, checkpoint: { type: 'string' }, inference: { type: 'boolean' }, out: { type: 'string' },
  });
  if (typeof v.out !== 'string') throw new UsageError('export --inference needs --out model.onnx');
  const m = inferenceModel(runOf('export --inference', v), v.checkpoint as string | undefined);
  saveInferenceModel(m, v.out);
  console.log(`wrote ${v.out}: ${m.config.model} forward pass (input ${m.text ? 'tokens int64 [batch, seq ≤ ' + m.blockSize + ']' : `images float32 [batch, ${m.image!.channels}, ${m.image!.size}, ${m.image!.size}]`} → logits), ` +
    `weights of step ${m.step} (${path.basename(m.checkpoint)})`);
  return 0;
}
