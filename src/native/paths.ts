// Where the native pieces live: the package root (found by walking up, since this code runs from src/ under jest and
// bundled from dist/), onnxruntime-node's runtime library, the session addon and the op library.
import * as fs from 'node:fs';
import * as path from 'node:path';

const PACKAGE_NAME = 'ort-ademamix';
let root: string | undefined;

/** The directory holding ort-ademamix's package.json. */
export function packageRoot(): string {
  if (root) return root;
  for (let d = __dirname; ; d = path.dirname(d)) {
    const pj = path.join(d, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if (JSON.parse(fs.readFileSync(pj, 'utf8')).name === PACKAGE_NAME) return (root = d);
      } catch { /* unreadable package.json: keep looking */ }
    }
    if (path.dirname(d) === d) throw new Error(`cannot find the ${PACKAGE_NAME} package root above ${__dirname}`);
  }
}

const ADDON = 'session-addon/ademamix_session.node';
const OPS = 'custom-ops/libademamix_ops.so';

/** The native build folder: build/ under the package root, or ADEMAMIX_BUILD_DIR (scripts/sanitize.sh: build-asan/). */
export function buildDir(): string {
  const env = process.env.ADEMAMIX_BUILD_DIR;
  return env ? path.resolve(packageRoot(), env) : path.join(packageRoot(), 'build');
}

function built(rel: string, what: string): string {
  const p = path.join(buildDir(), rel);
  if (!fs.existsSync(p)) {
    throw new Error(`${what} not found: ${p} is missing; run \`npm run build:native\`` +
      (process.env.ADEMAMIX_BUILD_DIR ? ` (or unset ADEMAMIX_BUILD_DIR=${process.env.ADEMAMIX_BUILD_DIR})` : ''));
  }
  return p;
}

/** The N-API session addon (build/session-addon/ademamix_session.node). */
export const addonPath = (): string => built(ADDON, 'the native session addon');
/** The com.ademamix op library (build/custom-ops/libademamix_ops.so). */
export const opsLibraryPath = (): string => built(OPS, 'the com.ademamix op library');
export const hasOpsLibrary = (): boolean => fs.existsSync(path.join(buildDir(), OPS));

/** The libonnxruntime shipped inside onnxruntime-node: the same runtime its InferenceSession uses. */
export function ortLibraryPath(): string {
  let pkg: string;
  try {
    pkg = path.dirname(require.resolve('onnxruntime-node/package.json', { paths: [packageRoot()] }));
  } catch {
    throw new Error(`onnxruntime-node is not installed under ${packageRoot()}: run \`npm install\``);
  }
  const bin = path.join(pkg, 'bin');
  const lib = process.platform === 'darwin' ? 'libonnxruntime.1.dylib'
    : process.platform === 'win32' ? 'onnxruntime.dll' : 'libonnxruntime.so.1';
  // bin/napi-v<N>/<platform>/<arch>/: take the newest N present.
  const napi = fs.existsSync(bin) ? fs.readdirSync(bin).filter((d) => /^napi-v\d+$/.test(d)) : [];
  napi.sort((a, b) => Number(b.slice(6)) - Number(a.slice(6)));
  for (const v of napi) {
    const p = path.join(bin, v, process.platform, process.arch, lib);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`ONNX Runtime library not found: no ${path.join(bin, 'napi-v*', process.platform, process.arch, lib)} ` +
    `(reinstall onnxruntime-node, then \`npm run build:native\`)`);
}
