// Conversions between JS tensors ({type, data: TypedArray, dims}) and OrtValues.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "ort.h"

namespace ademamix {

struct TypeName { ONNXTensorElementDataType type; const char* name; size_t size; };
ONNXTensorElementDataType ParseType(Napi::Env env, const std::string& name, const std::string& what);
const char* TypeToName(ONNXTensorElementDataType t);
size_t TypeSize(ONNXTensorElementDataType t);

// A host tensor owned by C++ (copied from JS), for async runs and state.
struct HostTensor {
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;
};

// Reads {type, data, dims}; `what` names the tensor in errors. With copy=false, `view` points into JS memory.
struct JsTensor {
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
  void* data;
  size_t byteLength;
};
JsTensor ReadJsTensor(Napi::Env env, Napi::Value v, const std::string& what);

// OrtValue over memory we do not own (valid while that memory lives).
OrtValue* WrapCpu(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, void* data, size_t bytes,
                  const std::string& what);
// OrtValue owning a copy, allocated by ORT's default CPU allocator.
OrtValue* NewCpuTensor(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, const std::string& what);
void* TensorData(Napi::Env env, OrtValue* v);
void TensorShape(Napi::Env env, const OrtValue* v, ONNXTensorElementDataType* type, std::vector<int64_t>* dims);
// Copies an OrtValue into a new JS {type, data, dims}.
Napi::Object ToJs(Napi::Env env, OrtValue* v, const std::string& what);
size_t NumElements(const std::vector<int64_t>& dims);
std::string DimsString(const std::vector<int64_t>& dims);

}  // namespace ademamix
