// Where the native pieces live: the package root (found by walking up, since this code runs from src/ under jest
// and bundled from dist/), onnxruntime-node's runtime library, the session addon and the op library.
import * as fs from 'node:fs';
import * as path from 'node:path';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  for (let d = __dirname; ; d = path.dirname(d)) {
    const pj = path.join(d, 'package.json');
    if (fs.existsSync(pj)) {
      try { if (JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'ort-ademamix') return (root = d); } catch { /* keep looking */ }
    }
    if (path.dirname(d) === d) throw new Error(`cannot find the ort-ademamix package root above ${__dirname}`);
  }
}

const built = (rel: string, what: string): string => {
  const p = path.join(packageRoot(), rel);
  if (!fs.existsSync(p)) throw new Error(`${what} not found at ${p}: run \`npm run build:native\``);
  return p;
};

export const addonPath = (): string => built('build/session-addon/ademamix_session.node', 'the session addon');
export const opsLibraryPath = (): string => built('build/custom-ops/libademamix_ops.so', 'the com.ademamix op library');
export const hasOpsLibrary = (): boolean => fs.existsSync(path.join(packageRoot(), 'build/custom-ops/libademamix_ops.so'));

/** The libonnxruntime shipped inside onnxruntime-node (the same runtime its InferenceSession uses). */
export function ortLibraryPath(): string {
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json', { paths: [packageRoot()] }));
  const bin = path.join(pkg, 'bin');
  const napi = fs.existsSync(bin) ? fs.readdirSync(bin).filter((d) => d.startsWith('napi-v')).sort() : [];
  const lib = process.platform === 'darwin' ? 'libonnxruntime.1.dylib' : 'libonnxruntime.so.1';
  for (const v of napi.reverse()) {
    const p = path.join(bin, v, process.platform, process.arch, lib);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`onnxruntime-node has no ${lib} for ${process.platform}/${process.arch} under ${bin}`);
}
