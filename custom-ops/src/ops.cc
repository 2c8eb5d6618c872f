// ORT glue for the com.ademamix ops: schemas (types, optional inputs/outputs), attribute reading, input checks
// with clear errors, and the threaded CPU launch of the shared kernel skeleton.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include "ademamix/kernels.h"
#include "onnxruntime_c_api.h"

namespace ademamix {
namespace {

const OrtApi* api = nullptr;

using Dims = std::vector<int64_t>;
constexpr auto F32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
constexpr auto I64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
constexpr auto ANY = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // float or double scalars
constexpr auto REQ = INPUT_OUTPUT_REQUIRED;
constexpr auto OPT = INPUT_OUTPUT_OPTIONAL;

OrtStatus* Fail(const std::string& msg) { return api->CreateStatus(ORT_INVALID_ARGUMENT, msg.c_str()); }

std::string DimsStr(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); i++) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

#define RETURN_IF(expr)                 \
  do {                                  \
    if (OrtStatus* _st = (expr)) return _st; \
  } while (0)

// One node's view of its inputs/outputs with the op name and formal names, for errors.
struct Ctx {
  OrtKernelContext* ctx;
  const char* op;
  const std::vector<const char*>& inNames;

  OrtStatus* Input(size_t i, const OrtValue** v) const {
    size_t n = 0;
    RETURN_IF(api->KernelContext_GetInputCount(ctx, &n));
    *v = nullptr;
    if (i < n) RETURN_IF(api->KernelContext_GetInput(ctx, i, v));
    return nullptr;
  }
  OrtStatus* Shape(const OrtValue* v, Dims* dims, ONNXTensorElementDataType* type) const {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    RETURN_IF(api->GetTensorTypeAndShape(v, &info));
    size_t n = 0;
    OrtStatus* st = api->GetDimensionsCount(info, &n);
    if (!st) { dims->assign(n, 0); st = api->GetDimensions(info, dims->data(), n); }
    if (!st) st = api->GetTensorElementType(info, type);
    api->ReleaseTensorTypeAndShapeInfo(info);
    return st;
  }
  // A float32 tensor input shaped like `param`; null (and ok) when optional and absent.
  OrtStatus* Tensor(size_t i, const Dims& like, const float** out, bool optional = false) const {
    const OrtValue* v = nullptr;
    RETURN_IF(Input(i, &v));
    *out = nullptr;
    if (!v) return optional ? nullptr : Fail(std::string(op) + ": input '" + inNames[i] + "' is required");
    Dims d;
    ONNXTensorElementDataType t;
    RETURN_IF(Shape(v, &d, &t));
    if (t != F32) return Fail(std::string(op) + ": input '" + inNames[i] + "' must be float32");
    if (d != like)
      return Fail(std::string(op) + ": input '" + inNames[i] + "' has shape " + DimsStr(d) + " but 'param' has " + DimsStr(like));
    void* p = nullptr;
    RETURN_IF(api->GetTensorMutableData(const_cast<OrtValue*>(v), &p));
    *out = static_cast<const float*>(p);
    return nullptr;
  }
  // A one-element float/double/int64 input, read as double.
  OrtStatus* Scalar(size_t i, double* out, bool optional = false, bool* present = nullptr) const {
    const OrtValue* v = nullptr;
    RETURN_IF(Input(i, &v));
    if (present) *present = v != nullptr;
    if (!v) return optional ? nullptr : Fail(std::string(op) + ": input '" + inNames[i] + "' is required");
    Dims d;
    ONNXTensorElementDataType t;
    RETURN_IF(Shape(v, &d, &t));
    size_t n = 1;
    for (int64_t x : d) n *= static_cast<size_t>(x);
    if (n != 1) return Fail(std::string(op) + ": input '" + inNames[i] + "' must be a scalar, got shape " + DimsStr(d));
    void* p = nullptr;
    RETURN_IF(api->GetTensorMutableData(const_cast<OrtValue*>(v), &p));
    switch (t) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: *out = *static_cast<const float*>(p); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: *out = *static_cast<const double*>(p); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: *out = static_cast<double>(*static_cast<const int64_t*>(p)); break;
      default: return Fail(std::string(op) + ": input '" + inNames[i] + "' must be float or double");
    }
    return nullptr;
  }
  OrtStatus* Output(size_t i, const Dims& dims, float** out) const {
    OrtValue* v = nullptr;
    RETURN_IF(api->KernelContext_GetOutput(ctx, i, dims.data(), dims.size(), &v));
    *out = nullptr;
    if (!v) return nullptr;
    void* p = nullptr;
    RETURN_IF(api->GetTensorMutableData(v, &p));
    *out = static_cast<float*>(p);
    return nullptr;
  }
};

OrtStatus* Step(const Ctx& c, size_t i, int64_t* step) {
  double s = 0;
  RETURN_IF(c.Scalar(i, &s));
  if (s < 1) return Fail(std::string(c.op) + ": 'step' is 1-based and must be >= 1, got " + std::to_string(static_cast<int64_t>(s)));
  *step = static_cast<int64_t>(s);
  return nullptr;
}

// Splits [0, n) into chunks run on ORT's intra-op pool (inline when small).
template <class Fn>
OrtStatus* ParallelRange(OrtKernelContext* ctx, size_t n, Fn fn) {
  constexpr size_t kChunk = size_t(1) << 15;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) { fn(size_t(0), n); return nullptr; }
  struct Job { Fn* fn; size_t n; } job{&fn, n};
  auto body = [](void* data, size_t c) {
    Job* j = static_cast<Job*>(data);
    const size_t b = c * kChunk, e = b + kChunk < j->n ? b + kChunk : j->n;
    (*j->fn)(b, e);
  };
  return api->KernelContext_ParallelFor(ctx, body, chunks, 0, &job);
}

// ONNX float attributes are float32, but hyperparameters are written as decimals (0.999, 1e-8). The shortest decimal
// that rounds to the stored float, read as double, is exactly what the author wrote: (1 − β2) is then 1e-3 as in
// the float64 references and PyTorch, not 0.99999871e-3 (float32 0.999's own complement, 1.3e-5 off).
double DecimalOf(float f) {
  char buf[40];
  for (int digits = 1; digits <= 9; digits++) {  // 9 significant digits always round-trip a float
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return f;  // NaN
}

// A float attribute (an int one is taken too: `beta1=0` written as an int must not fall back to the default).
double AttrF(const OrtKernelInfo* info, const char* name, double dflt) {
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
int64_t AttrI(const OrtKernelInfo* info, const char* name, int64_t dflt) {
  int64_t v = dflt;
  if (OrtStatus* st = api->KernelInfoGetAttribute_int64(info, name, &v)) { api->ReleaseStatus(st); v = dflt; }
  return v;
}

// A state output that the node does not produce still needs somewhere to go.
struct Scratch {
  std::vector<float> buf;
  float* Or(float* p, size_t n) { if (p) return p; buf.resize(n); return buf.data(); }
};

// ---------------------------------------------------------------------------------------------------------------
struct Kernel { virtual ~Kernel() = default; virtual OrtStatus* Compute(OrtKernelContext* ctx) = 0; };

const std::vector<const char*> kAdemamixIn = {"param", "grad", "m1", "m2", "nu", "step", "lr", "alpha", "beta3"};
struct AdemamixKernel : Kernel {
  double beta1, beta2, eps, wd;
  explicit AdemamixKernel(const OrtKernelInfo* info)
      : beta1(AttrF(info, "beta1", 0.9)), beta2(AttrF(info, "beta2", 0.999)), eps(AttrF(info, "eps", 1e-8)),
        wd(AttrF(info, "weight_decay", 0.0)) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    Ctx c{ctx, "AdEMAMix", kAdemamixIn};
    const OrtValue* pv = nullptr;
    RETURN_IF(c.Input(0, &pv));
    Dims dims;
    ONNXTensorElementDataType t;
    RETURN_IF(c.Shape(pv, &dims, &t));
    Streams x{};
    const float* m1 = nullptr;
    RETURN_IF(c.Tensor(0, dims, &x.param));
    RETURN_IF(c.Tensor(1, dims, &x.grad));
    RETURN_IF(c.Tensor(2, dims, &m1, /*optional=*/true));
    const bool hasM1 = beta1 != 0.0;
    if (hasM1 && !m1) return Fail("AdEMAMix: input 'm1' is required when beta1 != 0");
    AdemamixHyper h{beta1, beta2, eps, wd, 0, 0, 0, 0};
    RETURN_IF(Step(c, 5, &h.step));
    RETURN_IF(c.Scalar(6, &h.lr));
    RETURN_IF(c.Scalar(7, &h.alpha));
    RETURN_IF(c.Scalar(8, &h.beta3));
    size_t n = 1;
    for (int64_t d : dims) n *= size_t(d);
    float *po, *m1o, *m2o, *nuo;
    RETURN_IF(c.Output(0, dims, &po));
    RETURN_IF(c.Output(1, dims, &m1o));
    RETURN_IF(c.Output(2, dims, &m2o));
    RETURN_IF(c.Output(3, dims, &nuo));
    // beta1 = 0 keeps no m1 (m1 = g); an m1_out the node still names gets that value
    if (!hasM1 && m1o && m1o != x.grad && n) std::memcpy(m1o, x.grad, n * sizeof(float));
    Scratch s1, s2, s3;
    x.param_out = s1.Or(po, n);
    int k = 0;
    if (hasM1) { x.state[0] = m1; x.state_out[0] = s2.Or(m1o, n); k = 1; }
    RETURN_IF(c.Tensor(3, dims, &x.state[k]));
    RETURN_IF(c.Tensor(4, dims, &x.state[k + 1]));
    x.state_out[k] = s3.Or(m2o, n);
    Scratch s4;
    x.state_out[k + 1] = s4.Or(nuo, n);
    return ParallelRange(ctx, n, [&](size_t b, size_t e) { cpu::ademamix_range(h, x, b, e); });
  }
};

const std::vector<const char*> kSimplifiedIn = {"param", "grad", "m", "nu", "step", "lr", "alpha", "beta1", "s1"};
struct SimplifiedKernel : Kernel {
  double beta2, eps, wd;
  bool bc1, bc2;
  explicit SimplifiedKernel(const OrtKernelInfo* info)
      : beta2(AttrF(info, "beta2", 0.999)), eps(AttrF(info, "eps", 1e-8)), wd(AttrF(info, "weight_decay", 0.0)),
        bc1(AttrI(info, "bias_correction1", 0) != 0), bc2(AttrI(info, "bias_correction2", 1) != 0) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    Ctx c{ctx, "SimplifiedAdEMAMix", kSimplifiedIn};
    const OrtValue* pv = nullptr;
    RETURN_IF(c.Input(0, &pv));
    Dims dims;
    ONNXTensorElementDataType t;
    RETURN_IF(c.Shape(pv, &dims, &t));
    Streams x{};
    RETURN_IF(c.Tensor(0, dims, &x.param));
    RETURN_IF(c.Tensor(1, dims, &x.grad));
    RETURN_IF(c.Tensor(2, dims, &x.state[0]));
    RETURN_IF(c.Tensor(3, dims, &x.state[1]));
    SimplifiedHyper h{beta2, eps, wd, 0, 0, 0, 0, bc1, bc2, 1.0};
    RETURN_IF(Step(c, 4, &h.step));
    RETURN_IF(c.Scalar(5, &h.lr));
    RETURN_IF(c.Scalar(6, &h.alpha));
    RETURN_IF(c.Scalar(7, &h.beta1));
    double s1 = 0;
    bool hasS1 = false;
    RETURN_IF(c.Scalar(8, &s1, /*optional=*/true, &hasS1));
    if (bc1 && !hasS1) return Fail("SimplifiedAdEMAMix: bias_correction1 needs the scalar state input 's1'");
    // S1 ← β1·S1 + 1, in the precision of the stored state (float32) so every runtime agrees
    const float s1New = static_cast<float>(h.beta1) * static_cast<float>(s1) + 1.0f;
    h.s1 = s1New;
    size_t n = 1;
    for (int64_t d : dims) n *= size_t(d);
    float *po, *mo, *nuo, *s1o;
    RETURN_IF(c.Output(0, dims, &po));
    RETURN_IF(c.Output(1, dims, &mo));
    RETURN_IF(c.Output(2, dims, &nuo));
    RETURN_IF(c.Output(3, Dims{}, &s1o));
    if (s1o && !hasS1) return Fail("SimplifiedAdEMAMix: output 's1_out' needs the scalar state input 's1'");
    if (s1o) *s1o = s1New;
    Scratch a, b, d;
    x.param_out = a.Or(po, n);
    x.state_out[0] = b.Or(mo, n);
    x.state_out[1] = d.Or(nuo, n);
    return ParallelRange(ctx, n, [&](size_t lo, size_t hi) { cpu::simplified_range(h, x, lo, hi); });
  }
};

const std::vector<const char*> kAdamWIn = {"param", "grad", "m", "v", "step", "lr"};
struct AdamWKernel : Kernel {
  double beta1, beta2, eps, wd;
  explicit AdamWKernel(const OrtKernelInfo* info)
      : beta1(AttrF(info, "beta1", 0.9)), beta2(AttrF(info, "beta2", 0.999)), eps(AttrF(info, "eps", 1e-8)),
        wd(AttrF(info, "weight_decay", 0.01)) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    Ctx c{ctx, "AdamW", kAdamWIn};
    const OrtValue* pv = nullptr;
    RETURN_IF(c.Input(0, &pv));
    Dims dims;
    ONNXTensorElementDataType t;
    RETURN_IF(c.Shape(pv, &dims, &t));
    Streams x{};
    RETURN_IF(c.Tensor(0, dims, &x.param));
    RETURN_IF(c.Tensor(1, dims, &x.grad));
    RETURN_IF(c.Tensor(2, dims, &x.state[0]));
    RETURN_IF(c.Tensor(3, dims, &x.state[1]));
    AdamWHyper h{beta1, beta2, eps, wd, 0, 0};
    RETURN_IF(Step(c, 4, &h.step));
    RETURN_IF(c.Scalar(5, &h.lr));
    size_t n = 1;
    for (int64_t d : dims) n *= size_t(d);
    float *po, *mo, *vo;
    RETURN_IF(c.Output(0, dims, &po));
    RETURN_IF(c.Output(1, dims, &mo));
    RETURN_IF(c.Output(2, dims, &vo));
    Scratch a, b, d;
    x.param_out = a.Or(po, n);
    x.state_out[0] = b.Or(mo, n);
    x.state_out[1] = d.Or(vo, n);
    return ParallelRange(ctx, n, [&](size_t lo, size_t hi) { cpu::adamw_range(h, x, lo, hi); });
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Shape inference: param_out and the state outputs have param's shape. ORT's allocation planner only lets an output
// reuse an input's buffer (may-inplace) when both shapes are known, so this is what makes in-place updates possible.
// A rank-0 `param` is left alone: this API cannot tell a scalar from an unknown shape, and a wrong guess would clash
// with a declared output shape. The status is not read by ORT: failures just leave the shapes unknown.
OrtStatusPtr ORT_API_CALL InferShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx);

// ---------------------------------------------------------------------------------------------------------------
// An OrtCustomOp built from a table: name, input/output types and optionality, and a kernel factory.
struct OpDef : OrtCustomOp {
  const char* name;
  std::vector<ONNXTensorElementDataType> inTypes, outTypes;
  std::vector<OrtCustomOpInputOutputCharacteristic> inChar, outChar;
  Kernel* (*make)(const OrtKernelInfo*);
  size_t tensorOutputs;  // leading outputs shaped like `param` (the rest: scalar state)

  OpDef(const char* n, std::vector<ONNXTensorElementDataType> it, std::vector<OrtCustomOpInputOutputCharacteristic> ic,
        std::vector<ONNXTensorElementDataType> ot, std::vector<OrtCustomOpInputOutputCharacteristic> oc,
        Kernel* (*mk)(const OrtKernelInfo*), size_t nTensorOut)
      : OrtCustomOp{}, name(n), inTypes(std::move(it)), outTypes(std::move(ot)), inChar(std::move(ic)), outChar(std::move(oc)), make(mk),
        tensorOutputs(nTensorOut) {
    version = ORT_API_VERSION;
    GetName = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->name; };
    GetExecutionProviderType = [](const OrtCustomOp*) -> const char* { return "CPUExecutionProvider"; };
    GetInputType = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->inTypes[i]; };
    GetInputTypeCount = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->inTypes.size(); };
    GetOutputType = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->outTypes[i]; };
    GetOutputTypeCount = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->outTypes.size(); };
    GetInputCharacteristic = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->inChar[i]; };
    GetOutputCharacteristic = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->outChar[i]; };
    GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
    GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicInputHomogeneity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputHomogeneity = [](const OrtCustomOp*) { return 1; };
    CreateKernel = nullptr;
    KernelCompute = nullptr;
    KernelDestroy = [](void* k) { delete static_cast<Kernel*>(k); };
    CreateKernelV2 = [](const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo* info, void** kernel) -> OrtStatusPtr {
      *kernel = static_cast<const OpDef*>(op)->make(info);
      return nullptr;
    };
    KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatusPtr { return static_cast<Kernel*>(k)->Compute(ctx); };
    InferOutputShapeFn = InferShapes;
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 1 << 30; };
    GetMayInplace = nullptr;  // set per op (the callback gets no op pointer)
    ReleaseMayInplace = nullptr;
    GetAliasMap = nullptr;
    ReleaseAliasMap = nullptr;
  }
};

// Output i may reuse input kInplace...[i]'s buffer when ORT allows (the input's last use, ORT-owned): the kernel
// handles outputs that alias their inputs (see cpu_kernels.cc). Arrays are new[]'d here, delete[]'d on release.
template <int... Pairs>
size_t ORT_API_CALL MayInplace(int** in, int** out) {
  constexpr int p[] = {Pairs...};
  constexpr size_t n = sizeof(p) / sizeof(p[0]) / 2;
  *in = new int[n];
  *out = new int[n];
  for (size_t i = 0; i < n; i++) { (*in)[i] = p[2 * i]; (*out)[i] = p[2 * i + 1]; }
  return n;
}
void ORT_API_CALL ReleaseInplace(int* in, int* out) { delete[] in; delete[] out; }

OpDef* WithInplace(OpDef* op, size_t (ORT_API_CALL* fn)(int**, int**)) {
  op->GetMayInplace = fn;
  op->ReleaseMayInplace = ReleaseInplace;
  return op;
}

OrtStatusPtr ORT_API_CALL InferShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx) {
  size_t nIn = 0;
  if (OrtStatus* st = api->ShapeInferContext_GetInputCount(ctx, &nIn)) { api->ReleaseStatus(st); return nullptr; }
  OrtTensorTypeAndShapeInfo* in = nullptr;  // owned by the context
  if (nIn == 0) return nullptr;
  if (OrtStatus* st = api->ShapeInferContext_GetInputTypeShape(ctx, 0, &in)) { api->ReleaseStatus(st); return nullptr; }
  size_t rank = 0;
  if (OrtStatus* st = api->GetDimensionsCount(in, &rank)) { api->ReleaseStatus(st); return nullptr; }
  if (rank == 0) return nullptr;
  Dims dims(rank);
  std::vector<const char*> syms(rank, nullptr);
  OrtTensorTypeAndShapeInfo* out = nullptr;
  OrtStatus* st = api->GetDimensions(in, dims.data(), rank);
  if (!st) st = api->GetSymbolicDimensions(in, syms.data(), rank);
  if (!st) st = api->CreateTensorTypeAndShapeInfo(&out);
  if (!st) st = api->SetTensorElementType(out, F32);
  if (!st) st = api->SetDimensions(out, dims.data(), rank);
  if (!st) {
    for (size_t i = 0; i < rank; i++) {
      if (!syms[i]) syms[i] = "";
      if (dims[i] < 0 && !*syms[i]) { api->ReleaseTensorTypeAndShapeInfo(out); return nullptr; }  // unnamed unknown dim
    }
    st = api->SetSymbolicDimensions(out, syms.data(), rank);
  }
  const size_t nOut = static_cast<const OpDef*>(op)->tensorOutputs;
  for (size_t i = 0; !st && i < nOut; i++) st = api->ShapeInferContext_SetOutputTypeShape(ctx, i, out);
  if (st) api->ReleaseStatus(st);
  if (out) api->ReleaseTensorTypeAndShapeInfo(out);
  return nullptr;
}

std::vector<std::unique_ptr<OpDef>>& Ops() {
  static std::vector<std::unique_ptr<OpDef>> ops;
  if (ops.empty()) {
    // (input, output) pairs: param→param_out and each state→its output
    ops.emplace_back(WithInplace(
        new OpDef("AdEMAMix", {F32, F32, F32, F32, F32, I64, ANY, ANY, ANY}, {REQ, REQ, OPT, REQ, REQ, REQ, REQ, REQ, REQ},
                  {F32, F32, F32, F32}, {REQ, OPT, REQ, REQ},
                  [](const OrtKernelInfo* i) -> Kernel* { return new AdemamixKernel(i); }, 4),
        MayInplace<0, 0, 2, 1, 3, 2, 4, 3>));
    ops.emplace_back(WithInplace(
        new OpDef("SimplifiedAdEMAMix", {F32, F32, F32, F32, I64, ANY, ANY, ANY, F32},
                  {REQ, REQ, REQ, REQ, REQ, REQ, REQ, REQ, OPT}, {F32, F32, F32, F32}, {REQ, REQ, REQ, OPT},
                  [](const OrtKernelInfo* i) -> Kernel* { return new SimplifiedKernel(i); }, 3),
        MayInplace<0, 0, 2, 1, 3, 2>));
    ops.emplace_back(WithInplace(
        new OpDef("AdamW", {F32, F32, F32, F32, I64, ANY}, {REQ, REQ, REQ, REQ, REQ, REQ}, {F32, F32, F32}, {REQ, REQ, REQ},
                  [](const OrtKernelInfo* i) -> Kernel* { return new AdamWKernel(i); }, 3),
        MayInplace<0, 0, 2, 1, 3, 2>));
  }
  return ops;
}

}  // namespace
}  // namespace ademamix

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                                           const OrtApiBase* base) {
  using namespace ademamix;
  const OrtApi* a = base->GetApi(ORT_API_VERSION);
  if (!a) {  // the runtime predates the API these headers describe: say so with the oldest API it must have
    const OrtApi* v1 = base->GetApi(1);
    const std::string msg = std::string("libademamix_ops needs ONNX Runtime C API version ") +
                            std::to_string(ORT_API_VERSION) + " or newer; this runtime is " + base->GetVersionString();
    return v1 ? v1->CreateStatus(ORT_FAIL, msg.c_str()) : nullptr;
  }
  api = a;
  OrtCustomOpDomain* domain = nullptr;
  RETURN_IF(api->CreateCustomOpDomain("com.ademamix", &domain));
  for (auto& op : Ops()) RETURN_IF(api->CustomOpDomain_Add(domain, op.get()));
  // The domain must outlive every session that uses it: keep it for the life of the process.
  return api->AddCustomOpDomain(options, domain);
}
