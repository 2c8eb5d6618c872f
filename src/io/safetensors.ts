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

interface Laid { header: Uint8Array; entries: [string, TensorData][]; dataBytes: number }

/** The header (8-byte length + JSON, padded so the data stays 8-byte aligned) and where each tensor's bytes go. */
function layOut(tensors: Map<string, TensorData> | Record<string, TensorData>, metadata: Record<string, string>): Laid {
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
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  return { header: out, entries, dataBytes: offset };
}

const bytesOf = (t: TensorData): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

export function encodeSafetensors(tensors: Map<string, TensorData> | Record<string, TensorData>, metadata: Record<string, string> = {}): Uint8Array {
  const { header, entries, dataBytes } = layOut(tensors, metadata);
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header, 0);
  let pos = header.length;
  for (const [, t] of entries) { out.set(bytesOf(t), pos); pos += t.data.byteLength; }
  return out;
}

export interface Safetensors { tensors: Map<string, TensorData>; metadata: Record<string, string> }

interface Entry { name: string; dtype: DType; dims: number[]; begin: number; end: number }

/** Checks a header against the bytes the file holds after it, before anything is allocated. */
function parseHeader(bytes: Uint8Array, dataLength: number, source: string): { entries: Entry[]; metadata: Record<string, string> } {
  const bad = (what: string): SafetensorsError => new SafetensorsError(`${source}: ${what}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw bad('corrupt header (not valid JSON)'); // JSON.parse's message quotes the bytes: not for a terminal
  }
  if (!isObject(header)) throw bad('corrupt header (not a JSON object)');
  const entries: Entry[] = [];
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
    const [begin, end] = offsets as [number, number];
    // the byte range must be the shape's size and lie inside the file
    if (end - begin !== numel(shape as number[]) * bytesPerElement(dtype) || end > dataLength) {
      throw bad(`${t} has bad data offsets [${begin}, ${end}] for ${dtype}[${(shape as number[]).join(',')}] (file is truncated or corrupt)`);
    }
    entries.push({ name, dtype, dims: shape as number[], begin, end });
  }
  return { entries, metadata };
}

function headerLength(first8: Uint8Array, fileLength: number, source: string): number {
  if (fileLength < 8) throw new SafetensorsError(`${source}: too short to be a safetensors file`);
  const hlen = Number(new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true));
  if (hlen > fileLength - 8 || hlen > 100_000_000) throw new SafetensorsError(`${source}: corrupt header length ${hlen} (the file has ${fileLength} bytes)`);
  return hlen;
}

export function decodeSafetensors(bytes: Uint8Array, source = '<bytes>'): Safetensors {
  const hlen = headerLength(bytes, bytes.length, source);
  const base = 8 + hlen;
  const { entries, metadata } = parseHeader(bytes.subarray(8, base), bytes.length - base, source);
  const tensors = new Map<string, TensorData>();
  for (const e of entries) {
    const data = typedArrayFor(e.dtype, numel(e.dims));
    new Uint8Array(data.buffer).set(bytes.subarray(base + e.begin, base + e.end));
    tensors.set(e.name, { dtype: e.dtype, dims: e.dims, data });
  }
  return { tensors, metadata };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A name from a file, safe to print on one line. */
const printable = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s).slice(1, -1);

/** Written atomically, tensor by tensor (no copy of the whole file in memory: checkpoints can pass 2 GiB). */
export function saveSafetensors(file: string, tensors: Map<string, TensorData> | Record<string, TensorData>, metadata: Record<string, string> = {}): void {
  const { header, entries } = layOut(tensors, metadata);
  writeFileAtomic(file, [header, ...entries.map(([, t]) => bytesOf(t))]);
}

/** Read tensor by tensor into their arrays (Node reads at most 2 GiB into one buffer per call, and no file past 2 GiB whole). */
export function loadSafetensors(file: string): Safetensors {
  let fd: number;
  try { fd = fs.openSync(file, 'r'); } catch (e) {
    throw new SafetensorsError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const read = (into: Uint8Array, at: number): void => {
      for (let done = 0; done < into.length;) {
        const n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), at + done);
        if (n === 0) throw new SafetensorsError(`${file}: truncated while reading (the file changed?)`);
        done += n;
      }
    };
    const first = new Uint8Array(8);
    if (size >= 8) read(first, 0);
    const hlen = headerLength(first, size, file);
    const hbytes = new Uint8Array(hlen);
    read(hbytes, 8);
    const base = 8 + hlen;
    const { entries, metadata } = parseHeader(hbytes, size - base, file);
    const tensors = new Map<string, TensorData>();
    for (const e of entries) {
      const data = typedArrayFor(e.dtype, numel(e.dims));
      read(new Uint8Array(data.buffer, 0, e.end - e.begin), base + e.begin);
      tensors.set(e.name, { dtype: e.dtype, dims: e.dims, data });
    }
    return { tensors, metadata };
  } finally { fs.closeSync(fd); }
}
