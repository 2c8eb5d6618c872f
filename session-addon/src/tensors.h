// Conversions between JS tensors ({type, data: TypedArray, dims}) and CPU OrtValues.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "ort.h"

namespace ademamix {

ONNXTensorElementDataType ParseType(Napi::Env env, const std::string& name, const std::string& what);
const char* TypeToName(ONNXTensorElementDataType t);  // "float32", ...; "unsupported" otherwise
size_t TypeSize(ONNXTensorElementDataType t);         // 0 when unsupported
std::string DimsString(const std::vector<int64_t>& dims);

// A JS tensor read in place: `data` points into the JS ArrayBuffer (valid while the JS object lives and the
// JS thread does not run).
struct JsTensor {
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
  void* data;
  size_t byteLength;
};
// Validates type name, dims and that the data length matches; `what` names the tensor in errors.
JsTensor ReadJsTensor(Napi::Env env, Napi::Value v, const std::string& what);

// OrtValue over memory it does not own (the caller keeps the memory alive until the value is released).
OrtValue* WrapCpu(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, void* data, size_t bytes,
                  const std::string& what);
// OrtValue owning uninitialized memory from ORT's default CPU allocator.
OrtValue* NewCpuTensor(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, const std::string& what);
void* TensorData(Napi::Env env, OrtValue* v);
void TensorShape(Napi::Env env, const OrtValue* v, ONNXTensorElementDataType* type, std::vector<int64_t>* dims);
// Copies a CPU OrtValue into a new JS {type, data, dims}.
Napi::Object ToJs(Napi::Env env, OrtValue* v, const std::string& what);

}  // namespace ademamix
