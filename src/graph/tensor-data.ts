// Host tensors used for initializers and constants: a dtype, dims and a typed array.
import { create, TensorProtoSchema, type TensorProto } from '../onnx/proto';
import { bytesPerElement, fromOnnxType, toOnnxType, typedArrayFor, type DType, type TypedArray } from './dtype';

export interface TensorData { dtype: DType; dims: number[]; data: TypedArray }

export const numel = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** A 2-D tensor transposed (the caller checks the rank). */
export function transpose2d(t: TensorData): TensorData {
  const [r, c] = t.dims;
  const src = t.data;
  const out = typedArrayFor(t.dtype, src.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) (out as Float32Array)[j * r + i] = (src as Float32Array)[i * c + j];
  return { dtype: t.dtype, dims: [c, r], data: out };
}

export function tensorData(dtype: DType, dims: number[], data?: ArrayLike<number> | ArrayLike<bigint> | TypedArray): TensorData {
  const n = numel(dims);
  const arr = typedArrayFor(dtype, n);
  if (data) {
    if (data.length !== n) throw new Error(`tensor of shape [${dims}] needs ${n} values, got ${data.length}`);
    if (arr instanceof BigInt64Array || arr instanceof BigUint64Array) {
      for (let i = 0; i < n; i++) (arr as BigInt64Array)[i] = BigInt((data as ArrayLike<number | bigint>)[i]);
    } else {
      for (let i = 0; i < n; i++) (arr as Float32Array)[i] = Number((data as ArrayLike<number | bigint>)[i]);
    }
  }
  return { dtype, dims, data: arr };
}

export function toTensorProto(name: string, t: TensorData): TensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
  return create(TensorProtoSchema, {
    name, dims: t.dims.map(BigInt), dataType: toOnnxType(t.dtype), rawData: bytes,
  });
}

/** Decodes an in-memory TensorProto (raw_data or the typed fields). */
export function fromTensorProto(p: TensorProto): TensorData {
  const dtype = fromOnnxType(p.dataType, `tensor '${p.name}'`);
  const dims = p.dims.map(Number);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new Error(`tensor '${p.name}': bad shape [${dims}]`);
  const n = numel(dims);
  // sizes are checked against the bytes present before anything is allocated (a shape field is no allocation order)
  if (p.rawData.length > 0) {
    if (p.rawData.length !== n * bytesPerElement(dtype)) {
      throw new Error(`tensor '${p.name}': raw_data has ${p.rawData.length} bytes, shape [${dims}] needs ${n * bytesPerElement(dtype)}`);
    }
    const out = typedArrayFor(dtype, n);
    new Uint8Array(out.buffer).set(p.rawData);
    return { dtype, dims, data: out };
  }
  const src: ArrayLike<number | bigint> =
    dtype === 'float32' ? p.floatData : dtype === 'float64' ? p.doubleData : dtype === 'int64' ? p.int64Data
      : dtype === 'uint64' || dtype === 'uint32' ? p.uint64Data : p.int32Data;
  if (src.length !== n) throw new Error(`tensor '${p.name}': has ${src.length} values, shape [${dims}] needs ${n}`);
  const out = typedArrayFor(dtype, n);
  for (let i = 0; i < n; i++) {
    if (out instanceof BigInt64Array || out instanceof BigUint64Array) (out as BigInt64Array)[i] = BigInt(src[i]);
    else (out as Float32Array)[i] = Number(src[i]);
  }
  return { dtype, dims, data: out };
}
