// User image data for the ViT: a folder with one subfolder of PNG files per class, or arrays in a safetensors file
// (`images` [N, C, H, W] or [N, H, W], float32 in [0, 1] or uint8; `labels` [N] integer). Images are normalized
// per channel with the set's own mean and std and split train/test with a seeded shuffle.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inflateSync } from 'node:zlib';
import { loadSafetensors } from '../io/safetensors';
import { Rng } from '../util/rng';
import type { ImageSet } from './mnist';

export interface LabeledImages { images: Float32Array; labels: Int32Array; count: number; channels: number; size: number; classes: string[] }

export function isImageSource(source: string): boolean {
  return source === 'mnist' || source.endsWith('.safetensors') || (fs.existsSync(source) && fs.statSync(source).isDirectory());
}

/** Largest side accepted: a header's width and height are checked before anything is allocated or inflated. */
const MAX_SIDE = 2048;

/** Decodes an 8-bit, non-interlaced PNG (gray, gray+alpha, RGB, RGBA) to channel-planar floats in [0, 1]; alpha dropped. */
export function decodePng(bytes: Uint8Array, name: string): { width: number; height: number; channels: number; data: Float32Array } {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || sig.some((b, i) => bytes[i] !== b)) throw new Error(`${name}: not a PNG file`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8; let width = 0; let height = 0; let depth = 0; let ctype = 0; let interlace = 0; let header = false;
  const idat: Uint8Array[] = [];
  while (pos + 8 <= bytes.length) {
    const len = dv.getUint32(pos); const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 8 + len > bytes.length) throw new Error(`${name}: truncated PNG (chunk ${JSON.stringify(type)} runs past the end)`);
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      if (len !== 13) throw new Error(`${name}: corrupt PNG header (IHDR of ${len} bytes)`);
      width = dv.getUint32(pos + 8); height = dv.getUint32(pos + 12); depth = body[8]; ctype = body[9]; interlace = body[12]; header = true;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  if (!header) throw new Error(`${name}: not a PNG image (no IHDR chunk)`);
  const chans = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[ctype];
  if (!chans || depth !== 8 || interlace) {
    throw new Error(`${name}: unsupported PNG (bit depth ${depth}, color type ${ctype}${interlace ? ', interlaced' : ''}); use 8-bit gray/RGB/RGBA`);
  }
  if (!width || !height || width > MAX_SIDE || height > MAX_SIDE) throw new Error(`${name}: PNG of ${width}×${height} pixels (sides from 1 to ${MAX_SIDE} are read)`);
  if (!idat.length) throw new Error(`${name}: PNG without image data (no IDAT chunk)`);
  const stride = width * chans;
  let raw: Buffer;
  // inflating stops at the size the header promises: a compressed bomb cannot make it allocate more
  try { raw = inflateSync(Buffer.concat(idat), { maxOutputLength: height * (stride + 1) }); } catch (e) {
    throw new Error(`${name}: corrupt PNG image data (${(e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'more pixels than the header says' : (e as Error).message})`);
  }
  if (raw.length < height * (stride + 1)) throw new Error(`${name}: truncated image data`);
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]; const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= chans ? px[y * stride + x - chans] : 0; const b = y ? px[(y - 1) * stride + x] : 0;
      const c = x >= chans && y ? px[(y - 1) * stride + x - chans] : 0;
      let pred = 0;
      if (f === 1) pred = a; else if (f === 2) pred = b; else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) { const p = a + b - c; const pa = Math.abs(p - a); const pb = Math.abs(p - b); const pc = Math.abs(p - c); pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      else if (f !== 0) throw new Error(`${name}: bad PNG filter ${f} on row ${y}`);
      px[y * stride + x] = (line[x] + pred) & 255;
    }
  }
  const out = chans >= 3 ? 3 : 1;
  const data = new Float32Array(out * width * height);
  for (let i = 0; i < width * height; i++) for (let k = 0; k < out; k++) data[k * width * height + i] = px[i * chans + k] / 255;
  return { width, height, channels: out, data };
}

export function loadImageFolder(dir: string): LabeledImages {
  const classes = fs.readdirSync(dir).filter((d) => fs.statSync(path.join(dir, d)).isDirectory()).sort();
  if (classes.length < 2) throw new Error(`image folder ${dir}: needs one subfolder per class (found ${classes.length})`);
  const imgs: Float32Array[] = []; const labels: number[] = [];
  let shape: [number, number, number] | undefined;
  classes.forEach((cls, label) => {
    for (const f of fs.readdirSync(path.join(dir, cls)).filter((n) => n.toLowerCase().endsWith('.png')).sort()) {
      const file = path.join(dir, cls, f);
      const im = decodePng(fs.readFileSync(file), file);
      if (im.width !== im.height) throw new Error(`${file}: images must be square, got ${im.width}×${im.height}`);
      if (!shape) shape = [im.channels, im.height, im.width];
      else if (shape[0] !== im.channels || shape[1] !== im.height) {
        throw new Error(`${file}: ${im.channels}×${im.height}×${im.width} differs from the first image's ${shape.join('×')}`);
      }
      imgs.push(im.data); labels.push(label);
    }
  });
  if (!shape) throw new Error(`image folder ${dir}: no .png files in its class subfolders`);
  const n = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(imgs.length * n);
  imgs.forEach((d, i) => images.set(d, i * n));
  return { images, labels: Int32Array.from(labels), count: imgs.length, channels: shape[0], size: shape[1], classes };
}

/** More classes than any image set this tool trains on has: a label beyond is a corrupt file, not a class list to allocate. */
const MAX_CLASSES = 100_000;

export function loadImageArrays(file: string): LabeledImages {
  const { tensors } = loadSafetensors(file);
  const im = tensors.get('images'); const lb = tensors.get('labels');
  if (!im || !lb) throw new Error(`${file}: needs tensors 'images' and 'labels' (has ${[...tensors.keys()].join(', ') || 'none'})`);
  const dims = im.dims.length === 3 ? [im.dims[0], 1, im.dims[1], im.dims[2]] : im.dims;
  if (dims.length !== 4 || dims[2] !== dims[3]) throw new Error(`${file}: 'images' must be [N, C, H, W] or [N, H, W] with H = W, got [${im.dims}]`);
  if (lb.dims.length !== 1 || lb.dims[0] !== dims[0]) throw new Error(`${file}: 'labels' must be [${dims[0]}], got [${lb.dims}]`);
  let images: Float32Array;
  if (im.dtype === 'uint8') images = Float32Array.from(im.data as Uint8Array, (v) => v / 255);
  else if (im.dtype === 'float32') images = im.data as Float32Array;
  else throw new Error(`${file}: 'images' must be float32 or uint8, got ${im.dtype}`);
  if (!['int64', 'int32', 'uint8', 'int16', 'uint16', 'int8'].includes(lb.dtype)) throw new Error(`${file}: 'labels' must be integers, got ${lb.dtype}`);
  const wide = Array.from(lb.data as ArrayLike<number | bigint>, Number);
  if (wide.some((l) => !(l >= 0 && l < MAX_CLASSES))) throw new Error(`${file}: 'labels' must be class indices from 0 to ${MAX_CLASSES - 1}`);
  const labels = Int32Array.from(wide);
  const k = labels.reduce((a, b) => Math.max(a, b), 0) + 1;
  return { images, labels, count: dims[0], channels: dims[1], size: dims[2], classes: Array.from({ length: k }, (_, i) => String(i)) };
}

/** Per-channel standardization and a seeded train/test split. */
export function splitImages(d: LabeledImages, testFraction: number, seed: number): { train: ImageSet; test: ImageSet } {
  const hw = d.size * d.size; const px = d.channels * hw;
  const images = Float32Array.from(d.images);
  for (let c = 0; c < d.channels; c++) {
    let s = 0; let s2 = 0;
    for (let i = 0; i < d.count; i++) for (let j = 0; j < hw; j++) { const v = images[i * px + c * hw + j]; s += v; s2 += v * v; }
    const n = d.count * hw; const mean = s / n; const std = Math.sqrt(Math.max(s2 / n - mean * mean, 1e-12));
    for (let i = 0; i < d.count; i++) for (let j = 0; j < hw; j++) images[i * px + c * hw + j] = (images[i * px + c * hw + j] - mean) / std;
  }
  const order = new Rng(seed).shuffle(Array.from({ length: d.count }, (_, i) => i));
  const nTest = Math.max(1, Math.floor(d.count * testFraction));
  if (d.count - nTest < 1) throw new Error(`image data: ${d.count} images are too few for a train/test split`);
  const take = (idx: number[]): ImageSet => {
    const out = new Float32Array(idx.length * px); const labels = new Int32Array(idx.length);
    idx.forEach((i, k) => { out.set(images.subarray(i * px, (i + 1) * px), k * px); labels[k] = d.labels[i]; });
    return { images: out, labels, count: idx.length, channels: d.channels, size: d.size };
  };
  return { train: take(order.slice(nTest)), test: take(order.slice(0, nTest)) };
}
