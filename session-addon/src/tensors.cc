#include "tensors.h"
#include <cstring>
#include <limits>

namespace ademamix {

namespace {
struct TypeName { ONNXTensorElementDataType type; const char* name; size_t size; };
// Names follow onnxruntime-common's Tensor types.
const TypeName kTypes[] = {
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "float32", 4},   {ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, "float64", 8},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, "float16", 2}, {ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, "bfloat16", 2},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "int8", 1},       {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16, "int16", 2},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "int32", 4},     {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, "int64", 8},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "uint8", 1},     {ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16, "uint16", 2},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32, "uint32", 4},   {ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64, "uint64", 8},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, "bool", 1},
};

// Element count, or SIZE_MAX when the product overflows.
size_t CheckedCount(const std::vector<int64_t>& dims) {
  size_t n = 1;
  for (int64_t d : dims) {
    size_t u = static_cast<size_t>(d);
    if (u && n > std::numeric_limits<size_t>::max() / u) return std::numeric_limits<size_t>::max();
    n *= u;
  }
  return n;
}

OrtMemoryInfo* CpuInfo(Napi::Env env) {
  static OrtMemoryInfo* info = nullptr;  // process lifetime; created on the JS thread
  if (!info) Check(env, ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &info), "CPU memory info");
  return info;
}
}  // namespace

ONNXTensorElementDataType ParseType(Napi::Env env, const std::string& name, const std::string& what) {
  for (const auto& t : kTypes)
    if (name == t.name) return t.type;
  throw Napi::TypeError::New(env, what + ": unsupported tensor type '" + name + "'");
}

const char* TypeToName(ONNXTensorElementDataType type) {
  for (const auto& t : kTypes)
    if (type == t.type) return t.name;
  return "unsupported";
}

size_t TypeSize(ONNXTensorElementDataType type) {
  for (const auto& t : kTypes)
    if (type == t.type) return t.size;
  return 0;
}

std::string DimsString(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); i++) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

JsTensor ReadJsTensor(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, what + ": expected a tensor {type, data, dims}");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value type = o.Get("type"), data = o.Get("data"), dims = o.Get("dims");
  if (!type.IsString() || !data.IsTypedArray() || !dims.IsArray())
    throw Napi::TypeError::New(env, what + ": expected a tensor {type: string, data: TypedArray, dims: number[]}");
  JsTensor t;
  t.type = ParseType(env, type.As<Napi::String>(), what);
  Napi::Array d = dims.As<Napi::Array>();
  for (uint32_t i = 0; i < d.Length(); i++) {
    Napi::Value dv = d.Get(i);
    double x = dv.IsNumber() ? dv.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0 && x <= 9007199254740991.0) || x != static_cast<double>(static_cast<int64_t>(x)))
      throw Napi::TypeError::New(env, what + ": dims must be non-negative integers");
    t.dims.push_back(static_cast<int64_t>(x));
  }
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  if (ta.ElementSize() != TypeSize(t.type))
    throw Napi::TypeError::New(env, what + ": " + TypeToName(t.type) + " data must have " + std::to_string(TypeSize(t.type)) +
                                        "-byte elements, got a typed array of " + std::to_string(ta.ElementSize()) + "-byte ones");
  t.data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  t.byteLength = ta.ByteLength();
  size_t n = CheckedCount(t.dims);
  if (n == std::numeric_limits<size_t>::max() || n * TypeSize(t.type) != t.byteLength)
    throw Napi::RangeError::New(env, what + ": " + TypeToName(t.type) + DimsString(t.dims) + " does not match its data (" +
                                         std::to_string(t.byteLength / TypeSize(t.type)) + " elements)");
  return t;
}

OrtValue* WrapCpu(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, void* data, size_t bytes,
                  const std::string& what) {
  // ORT wants a non-null pointer even for empty tensors (a detached or zero-length ArrayBuffer has none).
  static uint8_t empty[16];
  OrtValue* v = nullptr;
  Check(env, ort->CreateTensorWithDataAsOrtValue(CpuInfo(env), bytes ? data : empty, bytes, dims.data(), dims.size(), type, &v),
        what);
  return v;
}

OrtValue* NewCpuTensor(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, const std::string& what) {
  OrtAllocator* alloc = nullptr;
  Check(env, ort->GetAllocatorWithDefaultOptions(&alloc), "default allocator");
  OrtValue* v = nullptr;
  Check(env, ort->CreateTensorAsOrtValue(alloc, dims.data(), dims.size(), type, &v), what);
  return v;
}

void* TensorData(Napi::Env env, OrtValue* v) {
  void* p = nullptr;
  Check(env, ort->GetTensorMutableData(v, &p), "tensor data");
  return p;
}

void TensorShape(Napi::Env env, const OrtValue* v, ONNXTensorElementDataType* type, std::vector<int64_t>* dims) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  Check(env, ort->GetTensorTypeAndShape(v, &info), "tensor shape");
  size_t n = 0;
  OrtStatus* st = ort->GetDimensionsCount(info, &n);
  if (!st) {
    dims->assign(n, 0);
    st = ort->GetDimensions(info, dims->data(), n);
  }
  if (!st) st = ort->GetTensorElementType(info, type);
  ort->ReleaseTensorTypeAndShapeInfo(info);
  Check(env, st, "tensor shape");
}

Napi::Object ToJs(Napi::Env env, OrtValue* v, const std::string& what) {
  int isTensor = 0;
  Check(env, ort->IsTensor(v, &isTensor), what);
  if (!isTensor) throw Napi::TypeError::New(env, "'" + what + "' is not a tensor (sequences and maps are not supported)");
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
  TensorShape(env, v, &type, &dims);
  size_t size = TypeSize(type);
  if (!size) throw Napi::TypeError::New(env, "'" + what + "': its element type is not supported by this addon");
  size_t n = CheckedCount(dims), bytes = n * size;
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), TensorData(env, v), bytes);
  Napi::Value data;
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: data = Napi::Float32Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: data = Napi::Float64Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: data = Napi::Int8Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: data = Napi::Int16Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: data = Napi::Int32Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: data = Napi::BigInt64Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: data = Napi::BigUint64Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: data = Napi::Uint32Array::New(env, n, buf, 0); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:   // raw half bits, as onnxruntime-common keeps them
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: data = Napi::Uint16Array::New(env, n, buf, 0); break;
    default: data = Napi::Uint8Array::New(env, n, buf, 0); break;  // uint8, bool
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", TypeToName(type));
  o.Set("data", data);
  Napi::Array d = Napi::Array::New(env, dims.size());
  for (size_t i = 0; i < dims.size(); i++) d.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(dims[i])));
  o.Set("dims", d);
  return o;
}

}  // namespace ademamix
