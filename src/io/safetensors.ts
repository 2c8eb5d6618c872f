// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the
// bytes. Used for initial states, checkpoints and hand-off to PyTorch (`safetensors.torch.load_file`).
import * as fs from 'node:fs';
import { writeFileAtomic } from '../onnx/io';
import type { DType } from '../graph/dtype';
import { bytesPerElement, typedArrayFor } from '../graph/dtype';
import { numel, type TensorData } from '../graph/tensor-data';

const ST_DTYPE: Partial<Record<DType, string>> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16',
  int8: 'I8', uint8: 'U8', uint16: 'U16', uint32: 'U32', uint64: 'U64', bool: 'BOOL',
};
const FROM_ST = new Map(Object.entries(ST_DTYPE).map(([k, v]) => [v, k as DType]));

export class SafetensorsError extends Error {
  constructor(message: string) { super(message); this.name = 'SafetensorsError'; }
}

export function encodeSafetensors(tensors: Map<string, TensorData> | Record<string, TensorData>, metadata: Record<string, string> = {}): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const st = ST_DTYPE[t.dtype];
    if (!st) throw new SafetensorsError(`tensor '${name}': dtype ${t.dtype} has no safetensors type`);
    const len = t.data.byteLength;
    if (len !== numel(t.dims) * bytesPerElement(t.dtype)) throw new SafetensorsError(`tensor '${name}': data does not match shape [${t.dims}]`);
    header[name] = { dtype: st, shape: t.dims, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // keeps the data 8-byte aligned
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let pos = 8 + hbytes.length;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export interface Safetensors { tensors: Map<string, TensorData>; metadata: Record<string, string> }

export function decodeSafetensors(bytes: Uint8Array, source = '<bytes>'): Safetensors {
  const bad = (what: string): SafetensorsError => new SafetensorsError(`${source}: ${what}`);
  if (bytes.length < 8) throw bad('too short to be a safetensors file');
  const hlen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (hlen > bytes.length - 8 || hlen > 100_000_000) throw bad(`corrupt header length ${hlen} (the file has ${bytes.length} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
  } catch {
    throw bad('corrupt header (not valid JSON)'); // JSON.parse's message quotes the bytes: not for a terminal
  }
  if (!isObject(header)) throw bad('corrupt header (not a JSON object)');
  const base = 8 + hlen;
  const dataLength = bytes.length - base;
  const tensors = new Map<string, TensorData>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(info) || Object.values(info).some((v) => typeof v !== 'string')) throw bad('__metadata__ must map names to strings');
      metadata = info as Record<string, string>;
      continue;
    }
    const t = `tensor '${printable(name)}'`;
    if (!isObject(info)) throw bad(`${t}: expected {dtype, shape, data_offsets}`);
    const { dtype: st, shape, data_offsets: offsets } = info as { dtype: unknown; shape: unknown; data_offsets: unknown };
    const dtype = typeof st === 'string' ? FROM_ST.get(st) : undefined;
    if (!dtype) throw bad(`${t} has ${typeof st === 'string' ? `unsupported dtype ${printable(st)}` : 'no dtype'}`);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`${t}: shape must be a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0) || offsets[0] > offsets[1]) {
      throw bad(`${t}: data_offsets must be [begin, end] with 0 ≤ begin ≤ end`);
    }
    const [b, e] = offsets as [number, number];
    const n = numel(shape as number[]);
    // checked before allocating: the byte range must be the shape's size and lie inside the file
    if (e - b !== n * bytesPerElement(dtype) || e > dataLength) {
      throw bad(`${t} has bad data offsets [${b}, ${e}] for ${dtype}[${(shape as number[]).join(',')}] (file is truncated or corrupt)`);
    }
    const data = typedArrayFor(dtype, n);
    new Uint8Array(data.buffer).set(bytes.subarray(base + b, base + e));
    tensors.set(name, { dtype, dims: shape as number[], data });
  }
  return { tensors, metadata };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A name from a file, safe to print on one line. */
const printable = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s).slice(1, -1);

export function saveSafetensors(file: string, tensors: Map<string, TensorData> | Record<string, TensorData>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

export function loadSafetensors(file: string): Safetensors {
  let bytes: Uint8Array;
  try { bytes = fs.readFileSync(file); } catch (e) {
    throw new SafetensorsError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeSafetensors(bytes, file);
}
