// ORT glue shared by the op library's sources (ops.cc: the optimizers; nn_ops.cc: the fused backward ops): the API
// pointer, element types, errors that name the op and input, attribute reading, ORT's intra-op pool, shape inference.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "onnxruntime_c_api.h"

namespace ademamix {
namespace glue {

inline const OrtApi* api = nullptr;  // set by RegisterCustomOps

using Dims = std::vector<int64_t>;
constexpr auto F32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
constexpr auto BF16 = ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
constexpr auto I64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
constexpr auto ANY = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // float or double scalars; bf16 multi-tensor lists
constexpr auto REQ = INPUT_OUTPUT_REQUIRED;
constexpr auto OPT = INPUT_OUTPUT_OPTIONAL;
constexpr auto VAR = INPUT_OUTPUT_VARIADIC;

inline OrtStatus* Fail(const std::string& msg) { return api->CreateStatus(ORT_INVALID_ARGUMENT, msg.c_str()); }

// Elements of a tensor of these dims.
inline size_t Numel(const Dims& d) {
  size_t n = 1;
  for (int64_t x : d) n *= static_cast<size_t>(x);
  return n;
}

// What every kernel class of the library is to ORT's KernelCompute/KernelDestroy callbacks.
struct Kernel {
  virtual ~Kernel() = default;
  virtual OrtStatus* Compute(OrtKernelContext* ctx) = 0;
};

inline std::string DimsStr(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); i++) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

inline const char* TypeName(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    default: return "another type";
  }
}

#define RETURN_IF(expr)                      \
  do {                                       \
    if (OrtStatus* _st = (expr)) return _st; \
  } while (0)

// "Op 'node name'", for errors that say which node failed.
inline std::string NodeLabel(const OrtKernelInfo* info, const char* op) {
  size_t n = 0;
  std::string label = op;
  if (OrtStatus* st = api->KernelInfo_GetNodeName(info, nullptr, &n)) { api->ReleaseStatus(st); return label; }
  std::string name(n, '\0');
  if (OrtStatus* st = api->KernelInfo_GetNodeName(info, name.data(), &n)) { api->ReleaseStatus(st); return label; }
  name.resize(std::strlen(name.c_str()));
  return name.empty() ? label : label + " '" + name + "'";
}

// One node's view of its context, for reading inputs with errors that name the op and the input.
struct Ctx {
  OrtKernelContext* ctx;
  const char* op;

  std::string Err(const std::string& what) const { return std::string(op) + ": " + what; }
  OrtStatus* Counts(size_t* in, size_t* out) const {
    RETURN_IF(api->KernelContext_GetInputCount(ctx, in));
    return api->KernelContext_GetOutputCount(ctx, out);
  }
  OrtStatus* Input(size_t i, const OrtValue** v) const {
    size_t n = 0;
    RETURN_IF(api->KernelContext_GetInputCount(ctx, &n));
    *v = nullptr;
    if (i < n) RETURN_IF(api->KernelContext_GetInput(ctx, i, v));
    return nullptr;
  }
  static OrtStatus* Shape(const OrtValue* v, Dims* dims, ONNXTensorElementDataType* type) {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    RETURN_IF(api->GetTensorTypeAndShape(v, &info));
    size_t n = 0;
    OrtStatus* st = api->GetDimensionsCount(info, &n);
    if (!st) { dims->assign(n, 0); st = api->GetDimensions(info, dims->data(), n); }
    if (!st) st = api->GetTensorElementType(info, type);
    api->ReleaseTensorTypeAndShapeInfo(info);
    return st;
  }
  // A tensor input of element type `want`, shaped like `like` (or, with like == null, defining the shape: `param`).
  // Null (and ok) when optional and absent.
  OrtStatus* Tensor(size_t i, const std::string& name, ONNXTensorElementDataType want, const Dims* like,
                    const std::string& likeName, Dims* dims, const void** out, bool optional = false) const {
    const OrtValue* v = nullptr;
    RETURN_IF(Input(i, &v));
    *out = nullptr;
    if (!v) return optional ? nullptr : Fail(Err("input '" + name + "' is required"));
    ONNXTensorElementDataType t;
    RETURN_IF(Shape(v, dims, &t));
    if (t != want) return Fail(Err("input '" + name + "' must be " + TypeName(want) + ", got " + TypeName(t)));
    if (like && *dims != *like)
      return Fail(Err("input '" + name + "' has shape " + DimsStr(*dims) + " but '" + likeName + "' has " + DimsStr(*like)));
    void* p = nullptr;
    RETURN_IF(api->GetTensorMutableData(const_cast<OrtValue*>(v), &p));
    *out = p;
    return nullptr;
  }
  // A one-element float/double/int64 input, read as double. On CUDA these inputs are declared CPU-resident.
  OrtStatus* Scalar(size_t i, const char* name, double* out, bool optional = false, bool* present = nullptr) const {
    const OrtValue* v = nullptr;
    RETURN_IF(Input(i, &v));
    if (present) *present = v != nullptr;
    if (!v) return optional ? nullptr : Fail(Err(std::string("input '") + name + "' is required"));
    Dims d;
    ONNXTensorElementDataType t;
    RETURN_IF(Shape(v, &d, &t));
    if (Numel(d) != 1) return Fail(Err(std::string("input '") + name + "' must be a scalar, got shape " + DimsStr(d)));
    void* p = nullptr;
    RETURN_IF(api->GetTensorMutableData(const_cast<OrtValue*>(v), &p));
    switch (t) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: *out = *static_cast<const float*>(p); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: *out = *static_cast<const double*>(p); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: *out = static_cast<double>(*static_cast<const int64_t*>(p)); break;
      default: return Fail(Err(std::string("input '") + name + "' must be float or double"));
    }
    return nullptr;
  }
  OrtStatus* Output(size_t i, const Dims& dims, void** out) const {
    OrtValue* v = nullptr;
    RETURN_IF(api->KernelContext_GetOutput(ctx, i, dims.data(), dims.size(), &v));
    *out = nullptr;
    if (!v) return nullptr;
    return api->GetTensorMutableData(v, out);
  }
};

// ONNX float attributes are float32, but hyperparameters are written as decimals (0.999, 1e-8). The shortest decimal
// that rounds to the stored float, read as double, is exactly what the author wrote: (1 − β2) is then 1e-3 as in
// the float64 references and PyTorch, not 0.99999871e-3 (float32 0.999's own complement, 1.3e-5 off).
inline double DecimalOf(float f) {
  char buf[40];
  for (int digits = 1; digits <= 9; digits++) {  // 9 significant digits always round-trip a float
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return f;  // NaN
}

// A float attribute (an int one is taken too: `beta1=0` written as an int must not fall back to the default).
inline double AttrF(const OrtKernelInfo* info, const char* name, double dflt) {
  float v = 0;
  OrtStatus* st = api->KernelInfoGetAttribute_float(info, name, &v);
  if (!st) return DecimalOf(v);
  api->ReleaseStatus(st);
  int64_t i = 0;
  st = api->KernelInfoGetAttribute_int64(info, name, &i);
  if (!st) return static_cast<double>(i);
  api->ReleaseStatus(st);
  return dflt;
}
inline int64_t AttrI(const OrtKernelInfo* info, const char* name, int64_t dflt) {
  int64_t v = dflt;
  if (OrtStatus* st = api->KernelInfoGetAttribute_int64(info, name, &v)) { api->ReleaseStatus(st); v = dflt; }
  return v;
}
// A string attribute, or `dflt` where the node has none (the text up to its first NUL)
inline OrtStatus* AttrS(const OrtKernelInfo* info, const char* name, const char* dflt, std::string* out) {
  size_t n = 0;
  if (OrtStatus* st = api->KernelInfoGetAttribute_string(info, name, nullptr, &n)) {
    api->ReleaseStatus(st);
    *out = dflt;
    return nullptr;
  }
  out->assign(n, '\0');
  RETURN_IF(api->KernelInfoGetAttribute_string(info, name, out->data(), &n));
  out->resize(std::strlen(out->c_str()));
  return nullptr;
}

// Splits [0, n) into chunks run on ORT's intra-op pool (inline when small).
template <class Fn>
inline OrtStatus* ParallelRange(OrtKernelContext* ctx, size_t n, Fn fn, size_t kChunk = size_t(1) << 15) {
  const size_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) { if (n) fn(size_t(0), n); return nullptr; }
  struct Job { Fn* fn; size_t n; size_t chunk; } job{&fn, n, kChunk};
  auto body = [](void* data, size_t c) {
    Job* j = static_cast<Job*>(data);
    const size_t b = c * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n;
    (*j->fn)(b, e);
  };
  return api->KernelContext_ParallelFor(ctx, body, chunks, 0, &job);
}

// Input i's dims and their symbols ("" where a dim has none). False when the shape is not usable (no shape, rank 0,
// or an unknown dim without a name).
inline bool InputShape(OrtShapeInferContext* ctx, size_t i, Dims* dims, std::vector<std::string>* syms) {
  OrtTensorTypeAndShapeInfo* in = nullptr;  // owned by the context
  if (OrtStatus* st = api->ShapeInferContext_GetInputTypeShape(ctx, i, &in)) { api->ReleaseStatus(st); return false; }
  size_t rank = 0;
  if (OrtStatus* st = api->GetDimensionsCount(in, &rank)) { api->ReleaseStatus(st); return false; }
  if (rank == 0) return false;
  dims->assign(rank, 0);
  std::vector<const char*> names(rank, nullptr);
  OrtStatus* st = api->GetDimensions(in, dims->data(), rank);
  if (!st) st = api->GetSymbolicDimensions(in, names.data(), rank);
  if (st) { api->ReleaseStatus(st); return false; }
  syms->assign(rank, "");
  for (size_t k = 0; k < rank; k++) {
    if (names[k]) (*syms)[k] = names[k];
    if ((*dims)[k] < 0 && (*syms)[k].empty()) return false;  // unnamed unknown dim: leave the outputs unknown
  }
  return true;
}

// Sets output o to element type `type` and these dims (a dim < 0 takes its symbol). False when ORT refused it.
inline bool SetOutputShape(OrtShapeInferContext* ctx, size_t o, const Dims& dims, const std::vector<std::string>& syms,
                           ONNXTensorElementDataType type) {
  std::vector<const char*> names(dims.size());
  for (size_t k = 0; k < dims.size(); k++) names[k] = syms[k].c_str();
  OrtTensorTypeAndShapeInfo* out = nullptr;
  OrtStatus* st = api->CreateTensorTypeAndShapeInfo(&out);
  if (!st) st = api->SetDimensions(out, dims.data(), dims.size());
  if (!st) st = api->SetSymbolicDimensions(out, names.data(), names.size());
  if (!st) st = api->SetTensorElementType(out, type);
  if (!st) st = api->ShapeInferContext_SetOutputTypeShape(ctx, o, out);
  if (out) api->ReleaseTensorTypeAndShapeInfo(out);
  if (st) { api->ReleaseStatus(st); return false; }
  return true;
}

// Copies input `from`'s dims (with their symbols) to each output in `to`, with element type `types[i]` (ORT 1.30
// takes the type from the info too, and the bf16 multi-tensor lists need it: their variadic outputs mix float32
// params and bfloat16 states). False when the shape is not usable.
inline bool SameShape(OrtShapeInferContext* ctx, size_t from, const std::vector<size_t>& to,
               const std::vector<ONNXTensorElementDataType>& types) {
  Dims dims;
  std::vector<std::string> syms;
  if (!InputShape(ctx, from, &dims, &syms)) return false;
  for (size_t i = 0; i < to.size(); i++)
    if (!SetOutputShape(ctx, to[i], dims, syms, types[i])) return false;
  return true;
}

// OrtCustomOp::GetMayInplace: output Pairs[2i+1] may reuse input Pairs[2i]'s buffer when ORT allows (the input's
// last use, ORT-owned); the kernel must then handle the alias. Arrays are new[]'d here, delete[]'d by ReleaseInplace.
template <int... Pairs>
size_t ORT_API_CALL MayInplace(int** in, int** out) {
  constexpr int p[] = {Pairs...};
  constexpr size_t n = sizeof(p) / sizeof(p[0]) / 2;
  *in = new int[n];
  *out = new int[n];
  for (size_t i = 0; i < n; i++) { (*in)[i] = p[2 * i]; (*out)[i] = p[2 * i + 1]; }
  return n;
}
inline void ORT_API_CALL ReleaseInplace(int* in, int* out) { delete[] in; delete[] out; }

// A CPU op over a variadic list of float32 inputs (at least one), its kernel made by `make`: one output (a fixed
// one) or a variadic list of them, the shapes from `infer`. BenchCopy and SumSquares.
struct FloatListOp : OrtCustomOp {
  const char* name;
  Kernel* (*make)(const OrtKernelInfo*);
  bool listOut;
  FloatListOp(const char* opName, Kernel* (*makeKernel)(const OrtKernelInfo*), bool outputList,
              OrtStatusPtr(ORT_API_CALL* infer)(const OrtCustomOp*, OrtShapeInferContext*))
      : OrtCustomOp{}, name(opName), make(makeKernel), listOut(outputList) {
    version = ORT_API_VERSION;
    GetName = [](const OrtCustomOp* op) { return static_cast<const FloatListOp*>(op)->name; };
    GetExecutionProviderType = [](const OrtCustomOp*) -> const char* { return "CPUExecutionProvider"; };
    GetInputType = [](const OrtCustomOp*, size_t) { return F32; };
    GetInputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
    GetOutputType = [](const OrtCustomOp*, size_t) { return F32; };
    GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
    GetInputCharacteristic = [](const OrtCustomOp*, size_t) { return VAR; };
    GetOutputCharacteristic = [](const OrtCustomOp* op, size_t) { return static_cast<const FloatListOp*>(op)->listOut ? VAR : REQ; };
    GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
    GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicInputHomogeneity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputHomogeneity = [](const OrtCustomOp*) { return 1; };
    KernelDestroy = [](void* k) { delete static_cast<Kernel*>(k); };
    CreateKernelV2 = [](const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo* info, void** kernel) -> OrtStatusPtr {
      *kernel = static_cast<const FloatListOp*>(op)->make(info);
      return nullptr;
    };
    KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatusPtr { return static_cast<Kernel*>(k)->Compute(ctx); };
    InferOutputShapeFn = infer;
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 1 << 30; };
  }
};

}  // namespace glue
}  // namespace ademamix
