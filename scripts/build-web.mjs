// Bundles the training page (src/web/page/main.ts → <out>/app.js, plus app.css) for the browser with esbuild.
// onnxruntime-web is bundled from its WASM-only build that loads its .wasm at run time (served under /ort/); the
// page reuses the project's batcher, RNG and safetensors code, whose Node built-in imports are stubbed (never called).
// Usage: node scripts/build-web.mjs [out dir, default dist/web]
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildWeb(out = join(root, 'dist', 'web')) {
  const require = createRequire(join(root, 'package.json'));
  const ortWasm = join(dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm')), 'ort.wasm.min.mjs');
  const nodeStubs = {
    name: 'node-stubs',
    setup(b) {
      b.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: ortWasm }));
      b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'node-stub' }));
      b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
    },
  };
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(root, 'src/web/page/main.ts')], outfile: join(out, 'app.js'), bundle: true, format: 'esm',
    platform: 'browser', target: 'chrome110', sourcemap: true, minify: true, plugins: [nodeStubs], logLevel: 'warning',
    // onnx-buf's schema is reachable through shared modules but unused by the page
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  copyFileSync(join(root, 'src/web/page/app.css'), join(out, 'app.css'));
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await buildWeb(process.argv[2] ? resolve(process.argv[2]) : undefined);
