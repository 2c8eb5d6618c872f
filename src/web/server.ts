// `ademamix web`: a localhost-only HTTP server for the training page. Fixed routes (no path from a URL reaches the file
// system), GET/HEAD only, Host header checked (no DNS rebinding), and cross-origin isolation headers (COOP/COEP/CORP)
// so the page may use SharedArrayBuffer and thus onnxruntime-web's multi-threaded WASM.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { packageRoot } from '../native/paths';
import type { WebArtifacts } from './artifacts';

export const HOST = '127.0.0.1';
/** onnxruntime-web's threaded SIMD build: the loader the page imports at run time and its module. */
const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

export interface WebServerOptions {
  artifacts: WebArtifacts;
  /** 0: any free port. */
  port?: number;
  /** Folder holding the page bundle app.js (default: dist/web of the package, built by `npm run build:ts`). */
  bundleDir?: string;
}

export interface WebServer { url: string; port: number; close(): Promise<void> }

/** The folder of onnxruntime-web's WASM files. */
export function ortWebDir(): string {
  try {
    return path.dirname(require.resolve(`onnxruntime-web/${ORT_FILES[1]}`, { paths: [packageRoot()] }));
  } catch {
    throw new Error(`onnxruntime-web is not installed under ${packageRoot()}: run \`npm install\``);
  }
}

export const defaultBundleDir = (): string => path.join(packageRoot(), 'dist', 'web');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AdEMAMix in the browser · ort-ademamix</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
</head>
<body>
<div id="app"><p id="status">loading…</p></div>
<script type="module" src="/app.js"></script>
</body>
</html>
`;

interface Route { type: string; body: () => Uint8Array | string }

export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const a = o.artifacts;
  const bundleDir = o.bundleDir ?? defaultBundleDir();
  const app = path.join(bundleDir, 'app.js');
  if (!fs.existsSync(app)) throw new Error(`the page bundle ${app} is missing; run \`npm run build:ts\``);
  const ortDir = ortWebDir();
  const file = (p: string) => (): Uint8Array => fs.readFileSync(p);
  const bin = 'application/octet-stream';
  const routes = new Map<string, Route>([
    ['/', { type: 'text/html; charset=utf-8', body: () => PAGE }],
    ['/app.js', { type: 'text/javascript; charset=utf-8', body: file(app) }],
    ['/app.css', { type: 'text/css; charset=utf-8', body: file(path.join(bundleDir, 'app.css')) }],
    ['/api/manifest.json', { type: 'application/json', body: () => JSON.stringify(a.manifest) }],
    ['/api/train.onnx', { type: bin, body: () => a.train }],
    ['/api/eval.onnx', { type: bin, body: () => a.eval }],
    ['/api/forward.onnx', { type: bin, body: () => a.forward }],
    ['/api/state.safetensors', { type: bin, body: () => a.state }],
    ['/api/train-ids.bin', { type: bin, body: () => a.trainIds }],
    ['/api/val.bin', { type: bin, body: () => a.val }],
  ]);
  if (fs.existsSync(`${app}.map`)) routes.set('/app.js.map', { type: 'application/json', body: file(`${app}.map`) });
  routes.set('/ort/ort-wasm-simd-threaded.mjs', { type: 'text/javascript; charset=utf-8', body: file(path.join(ortDir, ORT_FILES[0])) });
  routes.set('/ort/ort-wasm-simd-threaded.wasm', { type: 'application/wasm', body: file(path.join(ortDir, ORT_FILES[1])) });

  let port = 0;
  const server = http.createServer((req, res) => {
    const headers: http.OutgoingHttpHeaders = {
      'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin', 'x-content-type-options': 'nosniff', 'cache-control': 'no-store',
    };
    const host = req.headers.host ?? '';
    if (host !== `${HOST}:${port}` && host !== `localhost:${port}`) {
      res.writeHead(421, { ...headers, 'content-type': 'text/plain' }); res.end(`unexpected Host '${host}'\n`); return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, allow: 'GET, HEAD', 'content-type': 'text/plain' }); res.end('method not allowed\n'); return;
    }
    const route = routes.get(new URL(req.url ?? '/', `http://${HOST}`).pathname);
    if (!route) { res.writeHead(404, { ...headers, 'content-type': 'text/plain' }); res.end('not found\n'); return; }
    let body: Uint8Array | string;
    try { body = route.body(); } catch (e) {
      res.writeHead(500, { ...headers, 'content-type': 'text/plain' }); res.end(`${(e as Error).message}\n`); return;
    }
    res.writeHead(200, { ...headers, 'content-type': route.type, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, HOST, () => { server.off('error', reject); resolve(); });
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://${HOST}:${port}/`, port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
