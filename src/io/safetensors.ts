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
  if (bytes.length < 8) throw new SafetensorsError(`${source}: too short to be a safetensors file`);
  const hlen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (hlen > bytes.length - 8 || hlen > 100_000_000) throw new SafetensorsError(`${source}: corrupt header length ${hlen}`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
  } catch (e) {
    throw new SafetensorsError(`${source}: corrupt header (${(e as Error).message})`);
  }
  const base = 8 + hlen;
  const tensors = new Map<string, TensorData>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') { metadata = info as Record<string, string>; continue; }
    const { dtype: st, shape, data_offsets: [b, e] } = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const dtype = FROM_ST.get(st);
    if (!dtype) throw new SafetensorsError(`${source}: tensor '${name}' has unsupported dtype ${st}`);
    const n = numel(shape);
    if (e - b !== n * bytesPerElement(dtype) || base + e > bytes.length) {
      throw new SafetensorsError(`${source}: tensor '${name}' has bad data offsets [${b}, ${e}] (file is truncated or corrupt)`);
    }
    const data = typedArrayFor(dtype, n);
    new Uint8Array(data.buffer).set(bytes.subarray(base + b, base + e));
    tensors.set(name, { dtype, dims: shape, data });
  }
  return { tensors, metadata };
}

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
