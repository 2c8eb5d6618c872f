// `ademamix experiment …`: the small-scale reproduction of the AdEMAMix paper's claims (issue 7).
//   compare --task gpt|vit   AdamW vs AdEMAMix (β3 0.999 and 0.9999) vs Simplified-AdEMAMix, several seeds
//   family                   the optimizer family of Morwani et al. at two batch sizes (issue 19)
//   rosenbrock               the Figure 2 toy, run through the com.ademamix ops in a native session
// Results (JSON, markdown, SVG) go to --out; docs/results.md holds the numbers measured for this project.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { num, str, UsageError, type Args, type OptionKinds } from '../cli/args';
import { compareCommand } from './compare';
import { familyCommand, familyPlan } from './family';
import type { TaskName } from './plans';
import { workerLoop } from './pool';
import { rosenbrockCommand } from './rosenbrock-report';

export const EXPERIMENT_USAGE = `  experiment compare --task gpt|vit [--seeds N] [--steps N] [--sweep [--sweep-steps N]] [--out dir]
                     [--jobs N] [--threads N] [--variants id,id] [--no-reuse]
                                  AdamW vs AdEMAMix vs Simplified-AdEMAMix at an equal step budget (docs/results.md);
                                  --sweep first picks each optimizer's lr on one extra seed
  experiment family [--quick] [--jobs N] [--threads N] [--tokens N] [--seeds N] [--variants id,id] [--out dir]
                    [--docs] [--no-reuse]
                                  AdamW, Schedule-Free AdamW, LAProp, AdEMAMix (β1 0.9 and 0), Simplified-AdEMAMix,
                                  Lion, MARS at two batch sizes, lr swept, several seeds (resumable; docs/results.md)
  experiment rosenbrock [--steps N] [--lr X] [--out dir]
                                  the paper's Rosenbrock toy (Figure 2) through the com.ademamix ops
`;

const USAGE = `usage: ademamix experiment <compare|family|rosenbrock> [options]

${EXPERIMENT_USAGE}
compare options:
  --task gpt|vit    gpt: gpt-tiny on Moby-Dick (char level), 1500 steps of 32×64 tokens;
                    vit: vit-tiny on MNIST, 1000 steps of 64 images
  --seeds N         seeds 0..N-1 per optimizer (default 3)
  --steps N         steps per comparison run (default: the task's); sweep runs take a third of it
  --sweep           tune each optimizer's lr first (without it: the lrs picked by the recorded sweep)
  --sweep-steps N   length of the sweep runs (default: gpt a third of --steps, vit all of it)
  --jobs N          runs at a time, each in its own process (default 2); 1 runs them in this process
  --threads N       ORT intra-op threads per run (default 1)
  --variants ids    subset of adamw, ademamix-0.999, ademamix-0.9999, simplified
  --no-reuse        retrain runs whose run directory already holds a finished result for the same config
  --out dir         default runs/experiments/<task>
family options:
  --quick           gpt-tiny, 2-point lr grids, 2 seeds, a few steps: tests the machinery in about a minute
  --tokens N        training tokens per run at both batch sizes (default 196608: 768 steps of 4×64, 96 of 32×64;
                    a multiple of 16384)
  --seeds N         seeds per optimizer × batch (default 3; the lr is swept on the first)
  --variants ids    subset of adamw, sf-adamw, laprop, ademamix, ademamix-b0, simplified, lion, mars
  --jobs N          runs at a time, each in its own process (default 2); --threads N ORT threads per run (default 1)
  --out dir         default runs/experiments/family (cache/<config hash>/ per run, results.jsonl, summary.md, SVGs)
  --docs            also copy results.jsonl, summary.md and the SVGs into docs/results/family/ and fill the
                    <!-- family:… --> blocks of docs/results.md (verdicts, table, runs)
  --no-reuse        retrain runs whose cache entry holds a finished result for the same config
rosenbrock options:
  --steps N         default 100000; --lr X default 0.003; --out dir default runs/experiments/rosenbrock
`;

const positiveInt = (args: Args, key: string, dflt: number): number => {
  const v = num(args, key, dflt);
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${key} must be a positive integer, got ${v}`);
  return v;
};

export const EXPERIMENT_OPTIONS: OptionKinds = {
  task: 'string', variants: 'string', out: 'string', seeds: 'string', steps: 'string', 'sweep-steps': 'string', jobs: 'string',
  threads: 'string', lr: 'string', sweep: 'boolean', reuse: 'boolean', quick: 'boolean', tokens: 'string', docs: 'boolean',
};

export async function experimentCommand(args: Args): Promise<number> {
  // accept both `experiment compare …` (from the CLI, words as parsed) and `compare …`
  const words = args._[0] === 'experiment' ? args._.slice(1) : args._;
  const sub = words[0];
  const log = (s: string): void => { process.stderr.write(`${s}\n`); };
  switch (sub) {
    case '_worker': return workerLoop();
    case 'compare': {
      const task = str(args, 'task', '');
      if (task !== 'gpt' && task !== 'vit') throw new UsageError(`experiment compare: --task gpt or --task vit is required${task ? ` (got '${task}')` : ''}`);
      const variants = args.variants === undefined ? undefined : str(args, 'variants', '').split(',').map((s) => s.trim()).filter(Boolean);
      const out = path.resolve(str(args, 'out', path.join('runs', 'experiments', task)));
      const r = await compareCommand({
        task: task as TaskName, seeds: positiveInt(args, 'seeds', 3), steps: args.steps === undefined ? undefined : positiveInt(args, 'steps', 1),
        sweepSteps: args['sweep-steps'] === undefined ? undefined : positiveInt(args, 'sweep-steps', 1),
        sweep: args.sweep === true, out, jobs: positiveInt(args, 'jobs', 2), threads: num(args, 'threads', 1),
        reuse: args.reuse !== false, variants, log,
      });
      const failed = r.runs.filter((x) => x.status !== 'done').length;
      log(`[${task}] results: ${out}/results.json, summary.md, ${task}-val-loss.svg, ${task}-forgetting.svg` +
        `${r.sweep ? `, ${task}-sweep.svg` : ''}; wall ${r.wallS.total.toFixed(0)} s`);
      process.stdout.write(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'));
      return failed ? 1 : 0;
    }
    case 'family': {
      const variants = args.variants === undefined ? undefined : str(args, 'variants', '').split(',').map((s) => s.trim()).filter(Boolean);
      let plan;
      try {
        plan = familyPlan({
          quick: args.quick === true, tokens: args.tokens === undefined ? undefined : positiveInt(args, 'tokens', 1),
          seeds: args.seeds === undefined ? undefined : positiveInt(args, 'seeds', 1), threads: positiveInt(args, 'threads', 1), variants,
        });
      } catch (e) { if (e instanceof UsageError) throw e; throw new UsageError(`experiment family: ${(e as Error).message}`); }
      if (!plan.variants.some((v) => v.id === plan.baseline)) throw new UsageError(`experiment family: --variants must include ${plan.baseline} (the reference of the table)`);
      const out = path.resolve(str(args, 'out', path.join('runs', 'experiments', 'family')));
      const docs = args.docs === true ? path.resolve('docs', 'results', 'family') : undefined;
      const fill = docs ? path.resolve('docs', 'results.md') : undefined;
      const r = await familyCommand({ plan, out, jobs: positiveInt(args, 'jobs', 2), reuse: args.reuse !== false, docs, fill, log });
      log(`[family] ${r.rows.length} runs: ${r.newRuns} trained now, ${r.reused} from the cache, ${r.failed} failed; ` +
        `outputs in ${out}${docs ? ` and ${docs}` : ''} (${r.files.join(', ')}); wall ${r.wallS.toFixed(0)} s`);
      process.stdout.write(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'));
      return r.failed ? 1 : 0;
    }
    case 'rosenbrock': {
      const out = path.resolve(str(args, 'out', path.join('runs', 'experiments', 'rosenbrock')));
      const r = rosenbrockCommand({ out, steps: positiveInt(args, 'steps', 100_000), lr: num(args, 'lr', 0.003), log });
      log(`rosenbrock: ${out}/rosenbrock.json, rosenbrock-paths.svg, rosenbrock-paths-zoom.svg, rosenbrock-objective.svg; wall ${r.wallS.toFixed(1)} s`);
      return 0;
    }
    case undefined: case 'help': process.stdout.write(USAGE); return sub ? 0 : 2;
    default: throw new UsageError(`experiment: unknown subcommand '${sub}' (have: compare, family, rosenbrock)\n\n${USAGE}`);
  }
}
