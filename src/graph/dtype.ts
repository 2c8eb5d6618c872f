// Element types: the names onnxruntime-common uses, mapped to ONNX TensorProto.DataType.
import { TensorProto_DataType as DT } from '../onnx/proto';

export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64'
  | 'bool' | 'string';

const TO_ONNX: Record<DType, DT> = {
  float32: DT.FLOAT, float64: DT.DOUBLE, float16: DT.FLOAT16, bfloat16: DT.BFLOAT16,
  int8: DT.INT8, int16: DT.INT16, int32: DT.INT32, int64: DT.INT64,
  uint8: DT.UINT8, uint16: DT.UINT16, uint32: DT.UINT32, uint64: DT.UINT64, bool: DT.BOOL, string: DT.STRING,
};
const FROM_ONNX = new Map<number, DType>(Object.entries(TO_ONNX).map(([k, v]) => [v as number, k as DType]));

export function toOnnxType(d: DType): DT { return TO_ONNX[d]; }

export function fromOnnxType(t: number, what = 'tensor'): DType {
  const d = FROM_ONNX.get(t);
  if (!d) throw new Error(`${what}: unsupported ONNX element type ${t}`);
  return d;
}

export const isFloat = (d: DType | null): boolean =>
  d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';

export const isInteger = (d: DType | null): boolean => d !== null && /^u?int/.test(d);

export function bytesPerElement(d: DType): number {
  switch (d) {
    case 'float64': case 'int64': case 'uint64': return 8;
    case 'float32': case 'int32': case 'uint32': return 4;
    case 'float16': case 'bfloat16': case 'int16': case 'uint16': return 2;
    case 'int8': case 'uint8': case 'bool': return 1;
    case 'string': throw new Error('string tensors have no fixed element size');
  }
}

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

export function typedArrayFor(d: DType, n: number): TypedArray {
  switch (d) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int8': return new Int8Array(n);
    case 'int16': return new Int16Array(n);
    case 'int32': return new Int32Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'uint8': case 'bool': return new Uint8Array(n);
    case 'uint16': case 'float16': case 'bfloat16': return new Uint16Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'uint64': return new BigUint64Array(n);
    case 'string': throw new Error('string tensors are not typed arrays');
  }
}
