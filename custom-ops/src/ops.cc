// ORT glue for the com.ademamix ops: schemas (types, optional and variadic inputs/outputs), attribute reading, input
// checks with clear errors, and the launch of the shared kernel skeleton on the CPU (ORT's intra-op pool) or on CUDA
// (ORT's compute stream).
//
// Every op is one row of a table (OpSpec): the algorithm (AdEMAMix, Simplified, AdamW), the layout (one tensor, or
// a variadic list of tensors: the multi-tensor form), the state storage type (float32 or bfloat16) and the device.
// One kernel class serves all rows: it reads the schedule scalars into the algorithm's Hyper struct, gathers the
// node's tensors into a list (a per-tensor op is a list of one), and hands the list to the CPU loops or to the CUDA
// launcher. So the per-tensor and multi-tensor ops, on either device, run the same per-element code.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include "ademamix/collective.h"
#include "ademamix/kernels.h"
#include "ademamix/codec.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "onnxruntime_c_api.h"
#include "glue.h"
#include "ademamix/nn_ops.h"
#if defined(ADEMAMIX_WITH_CUDA)
#include "ademamix/cuda_launch.h"
#endif

namespace ademamix {
namespace {

using namespace glue;  // the ORT helpers shared with nn_ops.cc (glue.h)


// ---------------------------------------------------------------------------------------------------------------
// The op table.
enum class Algo { kAdemamix, kSimplified, kAdamW };

struct OpSpec {
  const char* name;
  Algo algo;
  bool multi;  // variadic tensor lists (scalars first, since only the last formal input may be variadic)
  bool bf16;   // states stored as bfloat16
  bool cuda;   // registered for CUDAExecutionProvider (else CPUExecutionProvider)
  const schema::Op* sch = nullptr;  // the generated schema of the base op (schemas.gen.h)
  int generic = -1;                 // index in schema::kOps of a generic op (its own kernel), else -1
  int coded = -1;                   // index in schema::kOps of a coded-state op (`<Op>Coded`), else -1
};

// The generated schema of an op, by its ONNX name; null when the definitions do not have it.
const schema::Op* SchemaOf(const char* op) {
  for (const schema::Op& o : schema::kOps)
    if (std::string(o.name) == op) return &o;
  return nullptr;
}
const char* AlgoOp(Algo a) {
  switch (a) {
    case Algo::kAdemamix: return "AdEMAMix";
    case Algo::kSimplified: return "SimplifiedAdEMAMix";
    case Algo::kAdamW: return "AdamW";
  }
  return "";
}


// Where things are, per algorithm and layout.
struct Layout {
  int step;        // index of `step`; the schedule scalars follow it
  int scalars;     // schedule scalars after step (AdEMAMix lr, alpha, beta3; Simplified lr, alpha, beta1; AdamW lr)
  int s1In, s1Out; // Simplified's optional scalar state, -1 elsewhere
  int tensorIn;    // multi: first variadic input
  int tensorOut;   // multi: first variadic output
};
// Per-tensor: param, grad, the states, step, the scalars[, the optional scalar state]; outputs param_out, the states'
// outs[, its out]. Multi-tensor: step, the scalars[, the scalar state], then the variadic list; outputs[the scalar
// state's out,] the variadic list. All from the generated schema.
Layout LayoutOf(const schema::Op& o, bool multi) {
  const int g = o.n_globals;
  if (multi) return Layout{0, o.n_scalars, g ? 1 + o.n_scalars : -1, g ? 0 : -1, 1 + o.n_scalars + g, g};
  const int step = 2 + o.n_states;
  return Layout{step, o.n_scalars, g ? step + 1 + o.n_scalars : -1, g ? 1 + o.n_states : -1, 0, 0};
}

// ---------------------------------------------------------------------------------------------------------------

OrtStatus* Step(const Ctx& c, size_t i, int64_t* step) {
  double s = 0;
  RETURN_IF(c.Scalar(i, "step", &s));
  // read as double: an int64 near 2^63 rounds up to 2^63, which (like NaN) does not convert back to int64
  if (!(s >= 1) || s >= 9223372036854775808.0) {
    char got[32];
    std::snprintf(got, sizeof got, s >= 1 ? "%.6g" : "%.0f", s);
    return Fail(c.Err(std::string(s >= 1 ? "'step' must be below 2^63" : "'step' is 1-based and must be >= 1") +
                      ", got " + got));
  }
  *step = static_cast<int64_t>(s);
  return nullptr;
}


// ---------------------------------------------------------------------------------------------------------------
// The launch-ready form of one tensor, for either backend: states untyped (float or bf16 by the op's row).
struct TensorIO {
  const float* param = nullptr;
  const float* grad = nullptr;
  const void* state[kMaxStates] = {};
  float* param_out = nullptr;
  void* state_out[kMaxStates] = {};
  size_t n = 0;
};

template <class S>
StreamsOf<S> StreamsFor(const TensorIO& t) {
  StreamsOf<S> x{};
  x.param = t.param;
  x.grad = t.grad;
  x.param_out = t.param_out;
  for (int k = 0; k < kMaxStates; k++) {
    x.state[k] = static_cast<const S*>(t.state[k]);
    x.state_out[k] = static_cast<S*>(t.state_out[k]);
  }
  return x;
}

#if defined(ADEMAMIX_WITH_CUDA)
// The list as the CUDA launch functions take it (one entry per tensor, device pointers).
std::vector<ademamix_cuda_tensor> CudaTensors(const std::vector<TensorIO>& list) {
  std::vector<ademamix_cuda_tensor> t(list.size());
  for (size_t i = 0; i < list.size(); i++) {
    t[i].param = list[i].param;
    t[i].grad = list[i].grad;
    t[i].param_out = list[i].param_out;
    for (int k = 0; k < kMaxStates; k++) { t[i].state[k] = list[i].state[k]; t[i].state_out[k] = list[i].state_out[k]; }
    t[i].n = static_cast<int64_t>(list[i].n);
  }
  return t;
}
#endif


// One pass over `count` tensors of `size(i)` elements laid end to end: the whole length is cut into the pool's chunks, so a chunk may cover the tail of one tensor and the head of the next, and threads stay
// busy whatever the mix of sizes (a list of one is exactly the per-tensor split). `fn(i, lo, hi)` gets tensor i's
// elements [lo, hi). Each chunk's ends are snapped to a multiple of kLineElems within their tensor: buffers are
// 64-byte aligned, so two threads never write into the same cache line and the kernels' streaming stores cover whole
// lines (a line stored partly by each side of a cut made the stores 2-3x slower on GPT-shaped lists).
constexpr size_t kLineElems = 64;  // a multiple of the 16 floats (32 bf16) of a 64-byte line
template <class Size, class Fn>
OrtStatus* ForEachPiece(OrtKernelContext* ctx, size_t nt, Size size, Fn fn) {
  std::vector<size_t> start(nt + 1, 0);  // each tensor's first element, then the total
  for (size_t i = 0; i < nt; i++) start[i + 1] = start[i] + size(i);
  // the first element of tensor i at or after global index x, at a multiple of kLineElems within it
  auto snap = [&](size_t x, size_t i) {
    const size_t off = (x - start[i] + kLineElems - 1) / kLineElems * kLineElems;
    return std::min(start[i] + off, start[i + 1]);
  };
  return ParallelRange(ctx, start.back(), [&](size_t b, size_t e) {
    size_t i = static_cast<size_t>(std::upper_bound(start.begin(), start.end(), b) - start.begin()) - 1;
    for (; i < nt && start[i] < e; i++) {
      const size_t lo = snap(std::max(b, start[i]), i) - start[i];
      const size_t hi = (e >= start[i + 1] ? start[i + 1] : snap(e, i)) - start[i];
      if (lo < hi) fn(i, lo, hi);
    }
  });
}

// A per-tensor norm pass, then the update, in groups of whole tensors of up to `group` units (elements, or quantized
// blocks; kNormGroupElems elements) each: the update then finds the streams the norm pass just read still in the
// last-level cache (MARS: g and g_prev, 8 MB a group). A norm pass over every tensor before any update read them from
// DRAM twice, 44 bytes a parameter instead of 36. norm(i, b, e): Σ of squares over tensor i's units [b, e), for
// fixed pieces of `piece` units summed in order (the same result for any thread count); update(g0, g1, denom, alone):
// tensors [g0, g1) with their denominators max(‖c‖₂, 1), denom[i − g0]; `alone`: one tensor larger than a group, to
// update with LastPieceFirst.
constexpr size_t kNormGroupElems = size_t(1) << 20;
template <class Size, class Norm, class Update>
OrtStatus* InNormGroups(OrtKernelContext* ctx, size_t nt, size_t piece, size_t group, Size size, Norm norm, Update update) {
  struct Piece { size_t tensor, b, e; };
  std::vector<Piece> pieces;
  std::vector<double> partial, total;
  std::vector<float> denom;
  for (size_t g0 = 0, g1; g0 < nt; g0 = g1) {
    size_t n = size(g0);
    for (g1 = g0 + 1; g1 < nt && n + size(g1) <= group; g1++) n += size(g1);
    pieces.clear();
    for (size_t i = g0; i < g1; i++)
      for (size_t b = 0; b < size(i); b += piece) pieces.push_back({i, b, std::min(size(i), b + piece)});
    partial.assign(pieces.size(), 0.0);
    RETURN_IF(ParallelRange(ctx, pieces.size(), [&](size_t b, size_t e) {
      for (size_t k = b; k < e; k++) partial[k] = norm(pieces[k].tensor, pieces[k].b, pieces[k].e);
    }, 1));
    total.assign(g1 - g0, 0.0);
    for (size_t k = 0; k < pieces.size(); k++) total[pieces[k].tensor - g0] += partial[k];
    denom.resize(g1 - g0);
    for (size_t j = 0; j < g1 - g0; j++) denom[j] = std::max(static_cast<float>(std::sqrt(total[j])), 1.0f);
    RETURN_IF(update(g0, g1, denom, n > group));
  }
  return nullptr;
}

// [0, n) in pieces of `piece` units run on the pool last piece first: a tensor larger than InNormGroups' group is
// updated from where its norm pass read last (and is still cached). An elementwise update: the order changes no bit.
template <class Fn>
OrtStatus* LastPieceFirst(OrtKernelContext* ctx, size_t n, size_t piece, Fn fn) {
  const size_t count = (n + piece - 1) / piece;
  return ParallelRange(ctx, count, [&](size_t b, size_t e) {
    for (size_t k = b; k < e; k++) {
      const size_t lo = (count - 1 - k) * piece;
      fn(lo, std::min(n, lo + piece));
    }
  }, 1);
}

template <class S, class Range>
OrtStatus* CpuLaunch(OrtKernelContext* ctx, const std::vector<TensorIO>& list, Range range) {
  return ForEachPiece(ctx, list.size(), [&](size_t i) { return list[i].n; },
                      [&](size_t i, size_t lo, size_t hi) { range(StreamsFor<S>(list[i]), lo, hi); });
}

// ---------------------------------------------------------------------------------------------------------------

class OptimizerKernel : public Kernel {
 public:
  OptimizerKernel(const OpSpec& spec, const OrtKernelInfo* info)
      : spec_(spec), sch_(*spec.sch), lay_(LayoutOf(*spec.sch, spec.multi)), label_(NodeLabel(info, spec.name)) {
    // every attribute from the schema, with the schema's default when the node does not set it
    auto f = [&](const char* name) {
      for (int k = 0; k < sch_.n_attrs; k++)
        if (std::strcmp(sch_.attrs[k].name, name) == 0)
          return sch_.attrs[k].is_int ? static_cast<double>(AttrI(info, name, static_cast<int64_t>(sch_.attrs[k].dflt)))
                                      : AttrF(info, name, sch_.attrs[k].dflt);
      std::fprintf(stderr, "libademamix_ops: %s has no attribute '%s' in schemas.gen.h\n", spec_.name, name);
      std::abort();  // a schema/kernel mismatch is a build error, caught by the first test that runs the op
    };
    switch (spec.algo) {
      case Algo::kAdemamix:
        beta1_ = f("beta1"); beta2_ = f("beta2"); eps_ = f("eps"); wd_ = f("weight_decay");
        break;
      case Algo::kSimplified:
        beta2_ = f("beta2"); eps_ = f("eps"); wd_ = f("weight_decay");
        bc1_ = f("bias_correction1") != 0; bc2_ = f("bias_correction2") != 0;
        break;
      case Algo::kAdamW:
        beta1_ = f("beta1"); beta2_ = f("beta2"); eps_ = f("eps"); wd_ = f("weight_decay");
        break;
    }
    // the state slots this node keeps: the schema's, less the one its drop attribute turns off (AdEMAMix's m1 at 0)
    for (int k = 0; k < sch_.n_states; k++) {
      const bool dropped = k == sch_.drop_state && f(sch_.drop_attr) == 0.0;
      if (!dropped) names_.push_back(sch_.states[k]);
      slotKept_.push_back(!dropped);
    }
  }

  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Call call;  // per call, never in the kernel object: one session may run the same node from several threads
    RETURN_IF(ReadScalars(c, &call));
    RETURN_IF(spec_.multi ? GatherMulti(c, &call) : GatherOne(c, &call));
    return Launch(c, call);
  }

 private:
  int States() const { return static_cast<int>(names_.size()); }
  const char* const* StateNames() const { return names_.data(); }
  const char* ScalarName(int k) const { return sch_.scalars[k]; }  // k-th schedule scalar after step
  ONNXTensorElementDataType StateType() const { return spec_.bf16 ? BF16 : F32; }

  // Everything one Compute reads and launches.
  struct Call {
    AdemamixHyper ademamix{};
    SimplifiedHyper simplified{};
    AdamWHyper adamw{};
    bool hasS1 = false;
    float s1New = 1.0f;      // Simplified: S1 after this step
    float* s1Out = nullptr;  // Simplified: where it goes (device memory on CUDA)
    std::vector<TensorIO> list;
    std::vector<std::vector<float>> scratch;  // CPU: state outputs the node does not produce still need a target
  };

  // step and the schedule scalars → the algorithm's Hyper struct; Simplified also advances S1.
  OrtStatus* ReadScalars(const Ctx& c, Call* call) const {
    int64_t step = 0;
    RETURN_IF(Step(c, lay_.step, &step));
    double v[3] = {0, 0, 0};
    for (int k = 0; k < lay_.scalars; k++) RETURN_IF(c.Scalar(lay_.step + 1 + k, ScalarName(k), &v[k]));
    switch (spec_.algo) {
      case Algo::kAdemamix: call->ademamix = AdemamixHyper{beta1_, beta2_, eps_, wd_, v[0], v[1], v[2], step}; break;
      case Algo::kAdamW: call->adamw = AdamWHyper{beta1_, beta2_, eps_, wd_, v[0], step}; break;
      case Algo::kSimplified: {
        call->simplified = SimplifiedHyper{beta2_, eps_, wd_, v[0], v[1], v[2], step, bc1_, bc2_, 1.0};
        double s1 = 0;
        RETURN_IF(c.Scalar(lay_.s1In, "s1", &s1, /*optional=*/true, &call->hasS1));
        if (bc1_ && !call->hasS1) return Fail(c.Err("bias_correction1 needs the scalar state input 's1'"));
        // S1 ← β1·S1 + 1, in the precision of the stored state (float32) so every runtime agrees
        call->s1New = static_cast<float>(call->simplified.beta1) * static_cast<float>(s1) + 1.0f;
        call->simplified.s1 = call->s1New;
        break;
      }
    }
    return nullptr;
  }

  // Simplified's s1_out: a float32 scalar, on the op's device.
  OrtStatus* ScalarStateOut(const Ctx& c, Call* call) const {
    if (spec_.algo != Algo::kSimplified) return nullptr;
    void* p = nullptr;
    RETURN_IF(c.Output(lay_.s1Out, Dims{}, &p));
    if (p && !call->hasS1) return Fail(c.Err("output 's1_out' needs the scalar state input 's1'"));
    call->s1Out = static_cast<float*>(p);
    if (call->s1Out && !spec_.cuda) *call->s1Out = call->s1New;  // CUDA: written by the kernel, on the stream
    return nullptr;
  }

  // Per-tensor layout: param, grad, states…, then outputs param_out, states_out… A dropped slot (AdEMAMix's m1 at
  // beta1 = 0) is an optional input that is not read; its output, when named, receives the gradient.
  OrtStatus* GatherOne(const Ctx& c, Call* call) const {
    TensorIO t;
    Dims dims, d;
    const void* p = nullptr;
    RETURN_IF(c.Tensor(0, "param", F32, nullptr, "", &dims, &p));
    t.param = static_cast<const float*>(p);
    RETURN_IF(c.Tensor(1, "grad", F32, &dims, "param", &d, &p));
    t.grad = static_cast<const float*>(p);
    t.n = Numel(dims);
    const int slots = sch_.n_states;
    int k = 0;
    for (int slot = 0; slot < slots; slot++) {
      const bool optional = slot == sch_.drop_state;
      RETURN_IF(c.Tensor(2 + slot, sch_.states[slot], StateType(), &dims, "param", &d, &p, optional));
      if (!slotKept_[slot]) continue;  // dropped: an input given anyway is not read
      if (optional && !p)
        return Fail(c.Err(std::string("input '") + sch_.states[slot] + "' is required when " + sch_.drop_attr + " != 0"));
      t.state[k++] = p;
    }
    void* o = nullptr;
    RETURN_IF(c.Output(0, dims, &o));
    // a zero-size tensor has no data (null): only a non-empty output can be missing
    if (!o && t.n) return Fail(c.Err("output 'param_out' is required"));
    t.param_out = static_cast<float*>(o);
    k = 0;
    for (int slot = 0; slot < slots; slot++) {
      RETURN_IF(c.Output(1 + slot, dims, &o));
      if (!slotKept_[slot]) {
        if (o) RETURN_IF(CopyGradTo(c, o, t));
        continue;
      }
      t.state_out[k++] = o;
    }
    RETURN_IF(ScalarStateOut(c, call));
    if (!spec_.cuda) {  // the CPU loops write every state; the CUDA kernel skips null outputs instead
      const size_t floats = spec_.bf16 ? (t.n + 1) / 2 : t.n;  // room for n states of the storage type
      for (int s = 0; s < States(); s++) {
        if (t.state_out[s]) continue;
        call->scratch.emplace_back(floats);
        t.state_out[s] = call->scratch.back().data();
      }
    }
    call->list.push_back(t);
    return nullptr;
  }

  OrtStatus* CopyGradTo(const Ctx& c, void* dst, const TensorIO& t) const {
    if (dst == t.grad || t.n == 0) return nullptr;
    if (spec_.bf16) {  // m1_out has the states' storage type
      if (spec_.cuda) return Fail(c.Err("output 'm1_out' with beta1 = 0 and bf16 states is not supported on CUDA"));
      bf16* out = static_cast<bf16*>(dst);
      for (size_t i = 0; i < t.n; i++) out[i] = f32_to_bf16(t.grad[i]);
      return nullptr;
    }
#if defined(ADEMAMIX_WITH_CUDA)
    if (spec_.cuda) {
      void* stream = nullptr;
      RETURN_IF(api->KernelContext_GetGPUComputeStream(c.ctx, &stream));
      if (int err = ademamix_cuda_copy(dst, t.grad, t.n * sizeof(float), stream))
        return Fail(c.Err(std::string("CUDA copy failed: ") + ademamix_cuda_error_string(err)));
      return nullptr;
    }
#endif
    std::memcpy(dst, t.grad, t.n * sizeof(float));
    return nullptr;
  }

  // Multi-tensor layout: scalars first, then N params, N grads, N of each state; outputs (Simplified: s1_out first)
  // N params_out, then N of each state_out. Tensor i's shape is param i's; shapes may differ between tensors.
  OrtStatus* GatherMulti(const Ctx& c, Call* call) const {
    std::vector<TensorIO>* list = &call->list;
    size_t nIn = 0, nOut = 0;
    RETURN_IF(c.Counts(&nIn, &nOut));
    const int K = States();
    const size_t per = 2 + static_cast<size_t>(K);
    const size_t tensors = nIn > size_t(lay_.tensorIn) ? nIn - lay_.tensorIn : 0;
    const char* const* names = StateNames();
    std::string groups = "params, grads";
    for (int k = 0; k < K; k++) groups += std::string(", ") + names[k];
    if (tensors == 0 || tensors % per != 0)
      return Fail(c.Err("expects the scalar inputs, then N tensors of each of (" + groups + "): a multiple of " +
                        std::to_string(per) + " tensor inputs, got " + std::to_string(tensors)));
    const size_t N = tensors / per;
    const size_t outTensors = nOut > size_t(lay_.tensorOut) ? nOut - lay_.tensorOut : 0;
    if (outTensors != N * (1 + K))
      return Fail(c.Err("with " + std::to_string(N) + " tensors per group it has " + std::to_string(N * (1 + K)) +
                        " tensor outputs (params_out and each state's out), got " + std::to_string(outTensors)));
    list->resize(N);
    auto nm = [&](const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; };
    Dims dims, d;
    for (size_t i = 0; i < N; i++) {
      TensorIO& t = (*list)[i];
      const void* p = nullptr;
      const size_t base = lay_.tensorIn + i;
      RETURN_IF(c.Tensor(base, nm("param", i), F32, nullptr, "", &dims, &p));
      t.param = static_cast<const float*>(p);
      const std::string pn = nm("param", i);
      RETURN_IF(c.Tensor(base + N, nm("grad", i), F32, &dims, pn, &d, &p));
      t.grad = static_cast<const float*>(p);
      for (int k = 0; k < K; k++) {
        RETURN_IF(c.Tensor(base + (2 + k) * N, nm(names[k], i), StateType(), &dims, pn, &d, &p));
        t.state[k] = p;
      }
      t.n = Numel(dims);
      void* o = nullptr;
      RETURN_IF(c.Output(lay_.tensorOut + i, dims, &o));
      if (!o && t.n) return Fail(c.Err("output '" + nm("param_out", i) + "' is required"));
      t.param_out = static_cast<float*>(o);
      for (int k = 0; k < K; k++) {
        RETURN_IF(c.Output(lay_.tensorOut + (1 + k) * N + i, dims, &o));
        if (!o && t.n && !spec_.cuda) {  // an omitted state output: scratch on the CPU, as GatherOne does
          call->scratch.emplace_back(spec_.bf16 ? (t.n + 1) / 2 : t.n);
          o = call->scratch.back().data();
        }
        t.state_out[k] = o;
      }
    }
    return ScalarStateOut(c, call);
  }

  OrtStatus* Launch(const Ctx& c, const Call& call) const {
    if (spec_.cuda) return CudaLaunch(c, call);
    return spec_.bf16 ? CpuRun<bf16>(c, call) : CpuRun<float>(c, call);
  }

  template <class S>
  OrtStatus* CpuRun(const Ctx& c, const Call& call) const {
    const std::vector<TensorIO>& list = call.list;
    switch (spec_.algo) {
      case Algo::kAdemamix: {
        const AdemamixHyper h = call.ademamix;
        return CpuLaunch<S>(c.ctx, list, [&h](const StreamsOf<S>& x, size_t b, size_t e) { cpu::ademamix_range(h, x, b, e); });
      }
      case Algo::kSimplified: {
        const SimplifiedHyper h = call.simplified;
        return CpuLaunch<S>(c.ctx, list, [&h](const StreamsOf<S>& x, size_t b, size_t e) { cpu::simplified_range(h, x, b, e); });
      }
      case Algo::kAdamW: {
        const AdamWHyper h = call.adamw;
        return CpuLaunch<S>(c.ctx, list, [&h](const StreamsOf<S>& x, size_t b, size_t e) { cpu::adamw_range(h, x, b, e); });
      }
    }
    return nullptr;
  }

  OrtStatus* CudaLaunch(const Ctx& c, const Call& call) const {
#if defined(ADEMAMIX_WITH_CUDA)
    const std::vector<TensorIO>& list = call.list;
    void* stream = nullptr;
    RETURN_IF(api->KernelContext_GetGPUComputeStream(c.ctx, &stream));
    std::vector<ademamix_cuda_tensor> t = CudaTensors(list);
    const int bf = spec_.bf16 ? 1 : 0;
    int err = 0;
    switch (spec_.algo) {
      case Algo::kAdemamix: err = ademamix_cuda_ademamix(&call.ademamix, t.data(), t.size(), bf, stream); break;
      case Algo::kSimplified:
        err = ademamix_cuda_simplified(&call.simplified, t.data(), t.size(), bf, call.s1Out, call.s1New, stream);
        break;
      case Algo::kAdamW: err = ademamix_cuda_adamw(&call.adamw, t.data(), t.size(), bf, stream); break;
    }
    if (err) return Fail(c.Err(std::string("CUDA kernel launch failed: ") + ademamix_cuda_error_string(err)));
    return nullptr;
#else
    (void)call;
    return Fail(c.Err("this op library was built without CUDA"));
#endif
  }

  const OpSpec spec_;
  const schema::Op& sch_;
  const Layout lay_;
  const std::string label_;
  std::vector<const char*> names_;  // kept state slots, in order
  std::vector<bool> slotKept_;      // per schema slot
  double beta1_ = 0, beta2_ = 0, eps_ = 0, wd_ = 0;
  bool bc1_ = false, bc2_ = true;
};

// ---------------------------------------------------------------------------------------------------------------
// The generic ops (the definitions without hand-written nodes; ADEMAMIX_GENERIC_OPS in schemas.gen.h): one
// kernel for all, driven by the generated schema. Inputs step, the scalars, then N params, N grads and N of each
// state; outputs N params_out, then N of each state's out. The per-element math is the op's functor (kernels.h).
class GenericKernel : public Kernel {
 public:
  GenericKernel(const OpSpec& spec, const OrtKernelInfo* info)
      : spec_(spec), sch_(*spec.sch), label_(NodeLabel(info, spec.name)) {
    for (int k = 0; k < sch_.n_attrs; k++) {
      const schema::Attr& a = sch_.attrs[k];
      attr_[k] = a.is_int ? static_cast<double>(AttrI(info, a.name, static_cast<int64_t>(a.dflt))) : AttrF(info, a.name, a.dflt);
    }
  }

  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    GenericHyper h{};
    for (int k = 0; k < sch_.n_attrs; k++) h.attr[k] = attr_[k];
    RETURN_IF(Step(c, 0, &h.step));
    for (int k = 0; k < sch_.n_scalars; k++) RETURN_IF(c.Scalar(1 + k, sch_.scalars[k], &h.scalar[k]));
    std::vector<TensorIO> list;
    RETURN_IF(Gather(c, &list));
    if (spec_.cuda) return Cuda(c, h, list);
    switch (spec_.generic) {
#define ADEMAMIX_CPU_CASE(IDX, OP, FUNCTOR) \
  case IDX: return Cpu(c, h, list, cpu::FUNCTOR##_range, cpu::FUNCTOR##_sumsq);
      ADEMAMIX_GENERIC_OPS(ADEMAMIX_CPU_CASE)
#undef ADEMAMIX_CPU_CASE
    }
    return Fail(c.Err("no kernel functor for this op in this build"));
  }

 private:
  using RangeFn = void (*)(const GenericHyper&, float, const Streams&, size_t, size_t);
  using SumFn = double (*)(const GenericHyper&, const Streams&, size_t, size_t);

  OrtStatus* Gather(const Ctx& c, std::vector<TensorIO>* list) const {
    size_t nIn = 0, nOut = 0;
    RETURN_IF(c.Counts(&nIn, &nOut));
    const size_t K = static_cast<size_t>(sch_.n_states), first = 1 + static_cast<size_t>(sch_.n_scalars);
    std::string groups = "params, grads";
    for (size_t k = 0; k < K; k++) groups += std::string(", ") + sch_.states[k];
    const size_t tensors = nIn > first ? nIn - first : 0;
    if (tensors == 0 || tensors % (2 + K) != 0)
      return Fail(c.Err("expects step and " + std::to_string(sch_.n_scalars) + " scalar inputs, then N tensors of each of (" +
                        groups + "): a multiple of " + std::to_string(2 + K) + " tensor inputs, got " + std::to_string(tensors)));
    const size_t N = tensors / (2 + K);
    if (nOut != N * (1 + K))
      return Fail(c.Err("with " + std::to_string(N) + " tensors it has " + std::to_string(N * (1 + K)) +
                        " outputs (params_out and each state's out), got " + std::to_string(nOut)));
    list->resize(N);
    auto nm = [](const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; };
    Dims dims, d;
    for (size_t i = 0; i < N; i++) {
      TensorIO& t = (*list)[i];
      const void* p = nullptr;
      const std::string pn = nm("param", i);
      RETURN_IF(c.Tensor(first + i, pn, F32, nullptr, "", &dims, &p));
      t.param = static_cast<const float*>(p);
      RETURN_IF(c.Tensor(first + N + i, nm("grad", i), F32, &dims, pn, &d, &p));
      t.grad = static_cast<const float*>(p);
      for (size_t k = 0; k < K; k++) {
        RETURN_IF(c.Tensor(first + (2 + k) * N + i, nm(sch_.states[k], i), F32, &dims, pn, &d, &p));
        t.state[k] = p;
      }
      t.n = Numel(dims);
      void* o = nullptr;
      RETURN_IF(c.Output(i, dims, &o));
      // a zero-size tensor has no data (null): only a non-empty output can be missing
      if (!o && t.n) return Fail(c.Err("output '" + nm("param_out", i) + "' is required"));
      t.param_out = static_cast<float*>(o);
      for (size_t k = 0; k < K; k++) {
        RETURN_IF(c.Output((1 + k) * N + i, dims, &o));
        if (!o && t.n) return Fail(c.Err("output '" + nm(sch_.states[k], i) + "_out' is required"));
        t.state_out[k] = o;
      }
    }
    return nullptr;
  }

  // CPU: one pass over every tensor laid end to end (CpuLaunch); with a norm pass, in InNormGroups' groups, over pieces
  // of 2^15 elements, each tensor with its denominator.
  OrtStatus* Cpu(const Ctx& c, const GenericHyper& h, const std::vector<TensorIO>& list, RangeFn range, SumFn sum) const {
    if (!sch_.norm_pass) return CpuLaunch<float>(c.ctx, list, [&](const Streams& x, size_t lo, size_t hi) { range(h, 1.0f, x, lo, hi); });
    constexpr size_t kPiece = size_t(1) << 15;
    static_assert(kPiece % kLineElems == 0, "pieces start on whole lines");
    return InNormGroups(c.ctx, list.size(), kPiece, kNormGroupElems, [&](size_t i) { return list[i].n; },
      [&](size_t i, size_t b, size_t e) { return sum(h, StreamsFor<float>(list[i]), b, e); },
      [&](size_t g0, size_t g1, const std::vector<float>& denom, bool alone) {
        if (alone)
          return LastPieceFirst(c.ctx, list[g0].n, kPiece, [&](size_t lo, size_t hi) { range(h, denom[0], StreamsFor<float>(list[g0]), lo, hi); });
        return ForEachPiece(c.ctx, g1 - g0, [&](size_t i) { return list[g0 + i].n; },
                            [&](size_t i, size_t lo, size_t hi) { range(h, denom[i], StreamsFor<float>(list[g0 + i]), lo, hi); });
      });
  }

  OrtStatus* Cuda(const Ctx& c, const GenericHyper& h, const std::vector<TensorIO>& list) const {
#if defined(ADEMAMIX_WITH_CUDA)
    void* stream = nullptr;
    RETURN_IF(api->KernelContext_GetGPUComputeStream(c.ctx, &stream));
    std::vector<ademamix_cuda_tensor> t = CudaTensors(list);
    if (int err = ademamix_cuda_generic(spec_.generic, &h, t.data(), t.size(), stream))
      return Fail(c.Err(std::string("CUDA kernel launch failed: ") + ademamix_cuda_error_string(err)));
    return nullptr;
#else
    (void)h; (void)list;
    return Fail(c.Err("this op library was built without CUDA"));
#endif
  }

  const OpSpec spec_;
  const schema::Op& sch_;
  const std::string label_;
  double attr_[schema::kMaxAttrs] = {};
};


// ---------------------------------------------------------------------------------------------------------------
// The coded-state ops (`<Op>Coded`, every definition; codec.h): a storage format per state slot (attribute
// `formats`: one code per slot of the definition, 0 fp32, 1 bf16, 2 8-bit), stochastic rounding on request. Inputs
// step, the scalars, then N params, N grads, N of each active slot, N absmax of each 8-bit slot; outputs N params_out,
// N of each slot's out, N absmax_out of each 8-bit slot. Work is cut in whole 256-element quantization blocks, so a
// thread always owns every element of the blocks it quantizes.
class CodedKernel : public Kernel {
 public:
  CodedKernel(const OpSpec& spec, const OrtKernelInfo* info)
      : spec_(spec), sch_(*spec.sch), label_(NodeLabel(info, spec.name)) {
    for (int k = 0; k < sch_.n_attrs; k++) {
      const schema::Attr& a = sch_.attrs[k];
      attr_[k] = a.is_int ? static_cast<double>(AttrI(info, a.name, static_cast<int64_t>(a.dflt))) : AttrF(info, a.name, a.dflt);
    }
    std::vector<int64_t> formats(static_cast<size_t>(sch_.n_states), kFmtF32);
    size_t n = 0;
    if (OrtStatus* st = api->KernelInfoGetAttributeArray_int64(info, "formats", nullptr, &n)) {
      api->ReleaseStatus(st);
    } else if (n != formats.size()) {
      error_ = "attribute 'formats' needs " + std::to_string(formats.size()) + " codes, got " + std::to_string(n);
    } else if (OrtStatus* st2 = api->KernelInfoGetAttributeArray_int64(info, "formats", formats.data(), &n)) {
      api->ReleaseStatus(st2);
    }
    cfg_.stochastic = AttrI(info, "stochastic_rounding", 0) != 0;
    cfg_.seed = static_cast<uint32_t>(AttrI(info, "seed", 0));
    cfg_.n_states = 0;
    for (int k = 0; k < sch_.n_states; k++) {
      if (k == sch_.drop_state) {
        double v = 0;
        for (int j = 0; j < sch_.n_attrs; j++) if (std::strcmp(sch_.attrs[j].name, sch_.drop_attr) == 0) v = attr_[j];
        if (v == 0.0) continue;  // the slot is dropped (AdEMAMix's m1 at beta1 = 0)
      }
      if (formats[k] < kFmtF32 || formats[k] > kFmt8bit) error_ = "attribute 'formats': unknown code " + std::to_string(formats[k]) + " (0 fp32, 1 bf16, 2 8-bit)";
      const int j = cfg_.n_states++;
      cfg_.fmt[j] = static_cast<int>(formats[k]);
      cfg_.is_signed[j] = sch_.unsigned_states[k] ? 0 : 1;
      cfg_.slot_id[j] = k;
      names_.push_back(sch_.states[k]);
    }
    for (int j = 0; j < cfg_.n_states; j++) if (cfg_.fmt[j] == kFmt8bit) q_.push_back(j);
    if (sch_.n_globals && sch_.n_attrs) {
      for (int j = 0; j < sch_.n_attrs; j++)
        if (std::strcmp(sch_.attrs[j].name, "bias_correction1") == 0 && attr_[j] != 0.0)
          error_ = "bias_correction1 (the scalar state s1) is not supported with coded states";
    }
  }

  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    if (!error_.empty()) return Fail(c.Err(error_));
    GenericHyper h{};
    for (int k = 0; k < sch_.n_attrs; k++) h.attr[k] = attr_[k];
    RETURN_IF(Step(c, 0, &h.step));
    for (int k = 0; k < sch_.n_scalars; k++) RETURN_IF(c.Scalar(1 + k, sch_.scalars[k], &h.scalar[k]));
    CodedConfig cfg = cfg_;
    cfg.step = h.step;
    std::vector<CodedTensor> list;
    RETURN_IF(Gather(c, &list));
    if (spec_.cuda) return Cuda(c, h, cfg, list);
    OrtStatus* st = nullptr;
    const bool known = with_functor(spec_.coded, h, [&](auto op) { st = Cpu(c, op, cfg, list); });
    if (!known) return Fail(c.Err("no kernel functor for this op in this build"));
    return st;
  }

 private:
  static ONNXTensorElementDataType TypeOf(int fmt) { return fmt == kFmtF32 ? F32 : fmt == kFmtBf16 ? BF16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8; }

  OrtStatus* Gather(const Ctx& c, std::vector<CodedTensor>* list) const {
    size_t nIn = 0, nOut = 0;
    RETURN_IF(c.Counts(&nIn, &nOut));
    const size_t K = names_.size(), Q = q_.size(), first = 1 + static_cast<size_t>(sch_.n_scalars);
    const size_t per = 2 + K + Q;
    std::string groups = "params, grads";
    for (size_t k = 0; k < K; k++) groups += std::string(", ") + names_[k];
    for (int j : q_) groups += std::string(", ") + names_[j] + " absmax";
    const size_t tensors = nIn > first ? nIn - first : 0;
    if (tensors == 0 || tensors % per != 0)
      return Fail(c.Err("expects step and " + std::to_string(sch_.n_scalars) + " scalar inputs, then N tensors of each of (" +
                        groups + "): a multiple of " + std::to_string(per) + " tensor inputs, got " + std::to_string(tensors)));
    const size_t N = tensors / per;
    if (nOut != N * (1 + K + Q))
      return Fail(c.Err("with " + std::to_string(N) + " tensors it has " + std::to_string(N * (1 + K + Q)) +
                        " outputs (params_out, each state's out, each 8-bit state's absmax out), got " + std::to_string(nOut)));
    list->resize(N);
    auto nm = [](const std::string& what, size_t i) { return what + "[" + std::to_string(i) + "]"; };
    Dims dims, d;
    for (size_t i = 0; i < N; i++) {
      CodedTensor& t = (*list)[i];
      t = CodedTensor{};
      const void* p = nullptr;
      const std::string pn = nm("param", i);
      RETURN_IF(c.Tensor(first + i, pn, F32, nullptr, "", &dims, &p));
      t.param = static_cast<const float*>(p);
      RETURN_IF(c.Tensor(first + N + i, nm("grad", i), F32, &dims, pn, &d, &p));
      t.grad = static_cast<const float*>(p);
      t.n = 1;
      for (int64_t x : dims) t.n *= x;
      const Dims blocks{(t.n + kQuantBlock - 1) / kQuantBlock};
      for (size_t k = 0; k < K; k++) {
        RETURN_IF(c.Tensor(first + (2 + k) * N + i, nm(names_[k], i), TypeOf(cfg_.fmt[k]), &dims, pn, &d, &p));
        t.state[k] = p;
      }
      for (size_t j = 0; j < Q; j++) {
        const int k = q_[j];
        RETURN_IF(c.Tensor(first + (2 + K + j) * N + i, nm(std::string(names_[k]) + ".absmax", i), F32, &blocks,
                           "ceil(numel(" + pn + ") / 256)", &d, &p));
        t.absmax[k] = static_cast<const float*>(p);
      }
      void* o = nullptr;
      RETURN_IF(c.Output(i, dims, &o));
      if (!o && t.n) return Fail(c.Err("output '" + nm("param_out", i) + "' is required"));
      t.param_out = static_cast<float*>(o);
      for (size_t k = 0; k < K; k++) {
        RETURN_IF(c.Output((1 + k) * N + i, dims, &o));
        if (!o && t.n) return Fail(c.Err("output '" + nm(names_[k], i) + "_out' is required"));
        t.state_out[k] = o;
      }
      for (size_t j = 0; j < Q; j++) {
        const int k = q_[j];
        RETURN_IF(c.Output((1 + K + j) * N + i, blocks, &o));
        if (!o && t.n) return Fail(c.Err("output '" + nm(std::string(names_[k]) + ".absmax", i) + "_out' is required"));
        t.absmax_out[k] = static_cast<float*>(o);
      }
    }
    return nullptr;
  }

  // CPU: every tensor's blocks laid end to end and cut into chunks of whole blocks; with a norm pass, in
  // InNormGroups' groups (of whole blocks), over pieces of 128.
  template <class Op>
  OrtStatus* Cpu(const Ctx& c, const Op& op, const CodedConfig& cfg, const std::vector<CodedTensor>& list) const {
    std::vector<size_t> start(list.size() + 1, 0);
    for (size_t i = 0; i < list.size(); i++) start[i + 1] = start[i] + static_cast<size_t>((list[i].n + kQuantBlock - 1) / kQuantBlock);
    const size_t kBlocksPerChunk = 128;  // 32768 elements, the other kernels' chunk
    // tensors [g0, g1)'s blocks, denom[i − g0] each
    const auto blocks = [&](size_t g0, size_t g1, const float* denom) {
      return ParallelRange(c.ctx, start[g1] - start[g0], [&](size_t b, size_t e) {
        size_t i = static_cast<size_t>(std::upper_bound(start.begin(), start.end(), start[g0] + b) - start.begin()) - 1;
        for (size_t blk = start[g0] + b; blk < start[g0] + e; blk++) {
          while (blk >= start[i + 1]) i++;
          cpu::coded_block(op, denom[i - g0], cfg, list[i], static_cast<uint32_t>(i), static_cast<int64_t>(blk - start[i]));
        }
      }, kBlocksPerChunk);
    };
    if constexpr (!Op::kNormPass) {
      const std::vector<float> one(list.size(), 1.0f);
      return blocks(0, list.size(), one.data());
    } else {
      return InNormGroups(c.ctx, list.size(), kBlocksPerChunk, kNormGroupElems / kQuantBlock, [&](size_t i) { return start[i + 1] - start[i]; },
        [&](size_t i, size_t b, size_t e) {
          double acc = 0;
          for (size_t blk = b; blk < e; blk++) acc += cpu::coded_sumsq(op, cfg, list[i], static_cast<int64_t>(blk));
          return acc;
        },
        [&](size_t g0, size_t g1, const std::vector<float>& denom, bool alone) {
          if (!alone) return blocks(g0, g1, denom.data());
          return LastPieceFirst(c.ctx, start[g0 + 1] - start[g0], kBlocksPerChunk, [&](size_t lo, size_t hi) {
            for (size_t blk = lo; blk < hi; blk++) cpu::coded_block(op, denom[0], cfg, list[g0], static_cast<uint32_t>(g0), static_cast<int64_t>(blk));
          });
        });
    }
  }

  OrtStatus* Cuda(const Ctx& c, const GenericHyper& h, const CodedConfig& cfg, const std::vector<CodedTensor>& list) const {
#if defined(ADEMAMIX_WITH_CUDA)
    void* stream = nullptr;
    RETURN_IF(api->KernelContext_GetGPUComputeStream(c.ctx, &stream));
    if (int err = ademamix_cuda_coded(spec_.coded, &h, &cfg, list.data(), list.size(), stream))
      return Fail(c.Err(std::string("CUDA kernel launch failed: ") + ademamix_cuda_error_string(err)));
    return nullptr;
#else
    (void)h; (void)cfg; (void)list;
    return Fail(c.Err("this op library was built without CUDA"));
#endif
  }

  const OpSpec spec_;
  const schema::Op& sch_;
  const std::string label_;
  double attr_[schema::kMaxAttrs] = {};
  CodedConfig cfg_{};
  std::vector<const char*> names_;  // active slots
  std::vector<int> q_;              // active slots stored in 8 bits
  std::string error_;
};

// ---------------------------------------------------------------------------------------------------------------
// Shape inference: each tensor output takes its param's shape. ORT's allocation planner only lets an output reuse an
// input's buffer (may-inplace) when both shapes are known, so this is what makes in-place updates possible. A rank-0
// `param` is left alone: this API cannot tell a scalar from an unknown shape, and a wrong guess would clash with a
// declared output shape. The status is not read by ORT: failures just leave the shapes unknown.
OrtStatusPtr ORT_API_CALL InferShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx);
OrtStatusPtr ORT_API_CALL InferCodedShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx);

// ---------------------------------------------------------------------------------------------------------------
// An OrtCustomOp built from an OpSpec: input/output types and characteristics follow from the algorithm, layout,
// state type and device.
struct OpDef : OrtCustomOp {
  OpSpec spec;
  std::vector<ONNXTensorElementDataType> inTypes, outTypes;
  std::vector<OrtCustomOpInputOutputCharacteristic> inChar, outChar;
  std::vector<OrtMemType> inMem;
  bool homogeneous = true;  // the variadic lists: float32 only, or (bf16 states) float32 and bfloat16 mixed

  explicit OpDef(const OpSpec& s) : OrtCustomOp{}, spec(s) {
    const auto st = s.bf16 ? BF16 : F32;
    const Layout lay = LayoutOf(*s.sch, s.multi);
    if (s.coded >= 0) {
      // step, the scalars, then one variadic list of mixed element types (float32 params, coded states, absmax)
      inTypes = {I64};
      inChar = {REQ};
      for (int k = 0; k < lay.scalars; k++) { inTypes.push_back(ANY); inChar.push_back(REQ); }
      inTypes.push_back(ANY); inChar.push_back(VAR);
      outTypes = {ANY}; outChar = {VAR};
      homogeneous = false;
    } else if (s.generic >= 0) {
      // step, the scalars, then one variadic float32 list in and out (generic ops are multi-tensor only)
      inTypes = {I64};
      inChar = {REQ};
      for (int k = 0; k < lay.scalars; k++) { inTypes.push_back(ANY); inChar.push_back(REQ); }
      inTypes.push_back(F32); inChar.push_back(VAR);
      outTypes = {F32}; outChar = {VAR};
    } else if (!s.multi) {
      // param, grad, the states (the droppable one optional), step, the scalars[, the optional scalar state]
      inTypes = {F32, F32}; inChar = {REQ, REQ};
      outTypes = {F32}; outChar = {REQ};
      for (int k = 0; k < s.sch->n_states; k++) {
        const auto ch = k == s.sch->drop_state ? OPT : REQ;
        inTypes.push_back(st); inChar.push_back(ch);
        outTypes.push_back(st); outChar.push_back(ch);
      }
      inTypes.push_back(I64); inChar.push_back(REQ);
      for (int k = 0; k < lay.scalars; k++) { inTypes.push_back(ANY); inChar.push_back(REQ); }
      for (int k = 0; k < s.sch->n_globals; k++) {
        inTypes.push_back(F32); inChar.push_back(OPT);
        outTypes.push_back(F32); outChar.push_back(OPT);
      }
    } else {
      // scalars (step, schedule values[, s1]) then one variadic list; bf16 lists mix float32 and bfloat16, so their
      // element type is left open (checked by the kernel) and the list is heterogeneous
      const auto list = s.bf16 ? ANY : F32;
      homogeneous = !s.bf16;
      inTypes = {I64};
      inChar = {REQ};
      for (int k = 0; k < lay.scalars; k++) { inTypes.push_back(ANY); inChar.push_back(REQ); }
      if (lay.s1In >= 0) { inTypes.push_back(F32); inChar.push_back(OPT); }
      inTypes.push_back(list); inChar.push_back(VAR);
      if (lay.s1Out >= 0) { outTypes.push_back(F32); outChar.push_back(OPT); }
      outTypes.push_back(list); outChar.push_back(VAR);
    }
    // On CUDA the schedule scalars are read on the host once per launch: ORT hands them over in CPU memory.
    inMem.assign(inTypes.size(), OrtMemTypeDefault);
    if (s.cuda) {
      for (int k = 0; k <= lay.scalars; k++) inMem[lay.step + k] = OrtMemTypeCPUInput;
      if (lay.s1In >= 0 && s.coded < 0) inMem[lay.s1In] = OrtMemTypeCPUInput;  // coded ops have no scalar state input
    }

    version = ORT_API_VERSION;
    GetName = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->spec.name; };
    GetExecutionProviderType = [](const OrtCustomOp* op) -> const char* {
      return static_cast<const OpDef*>(op)->spec.cuda ? "CUDAExecutionProvider" : "CPUExecutionProvider";
    };
    GetInputType = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->inTypes[i]; };
    GetInputTypeCount = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->inTypes.size(); };
    GetOutputType = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->outTypes[i]; };
    GetOutputTypeCount = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->outTypes.size(); };
    GetInputCharacteristic = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->inChar[i]; };
    GetOutputCharacteristic = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->outChar[i]; };
    GetInputMemoryType = [](const OrtCustomOp* op, size_t i) { return static_cast<const OpDef*>(op)->inMem[i]; };
    // the kernel checks the list lengths and names what is missing; ORT only needs "at least one"
    GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicInputHomogeneity = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->homogeneous ? 1 : 0; };
    GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputHomogeneity = [](const OrtCustomOp* op) { return static_cast<const OpDef*>(op)->homogeneous ? 1 : 0; };
    CreateKernel = nullptr;
    KernelCompute = nullptr;
    KernelDestroy = [](void* k) { delete static_cast<Kernel*>(k); };
    CreateKernelV2 = [](const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo* info, void** kernel) -> OrtStatusPtr {
      const OpSpec& spec = static_cast<const OpDef*>(op)->spec;
      if (spec.coded >= 0) *kernel = new CodedKernel(spec, info);
      else if (spec.generic >= 0) *kernel = new GenericKernel(spec, info);
      else *kernel = new OptimizerKernel(spec, info);
      return nullptr;
    };
    KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatusPtr { return static_cast<Kernel*>(k)->Compute(ctx); };
    InferOutputShapeFn = s.coded >= 0 ? InferCodedShapes : InferShapes;
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 1 << 30; };
    GetMayInplace = nullptr;  // set per op below (the callback gets no op pointer)
    ReleaseMayInplace = nullptr;
    GetAliasMap = nullptr;
    ReleaseAliasMap = nullptr;
  }
};

// (MayInplace, glue.h: the kernels handle outputs that alias their inputs, see cpu_kernels.cc. Only the per-tensor ops
// declare it: the pairs are a fixed list, which cannot describe a variadic one.)

// Reads a float attribute at shape-inference time (an int is taken too), else `dflt`.
double InferAttrF(OrtShapeInferContext* ctx, const char* name, double dflt) {
  const OrtOpAttr* a = nullptr;
  if (OrtStatus* st = api->ShapeInferContext_GetAttribute(ctx, name, &a)) { api->ReleaseStatus(st); return dflt; }
  float f = 0;
  size_t len = 0;
  if (OrtStatus* st = api->ReadOpAttr(a, ORT_OP_ATTR_FLOAT, &f, sizeof f, &len)) {
    api->ReleaseStatus(st);
    int64_t i = 0;
    if (OrtStatus* st2 = api->ReadOpAttr(a, ORT_OP_ATTR_INT, &i, sizeof i, &len)) { api->ReleaseStatus(st2); return dflt; }
    return static_cast<double>(i);
  }
  return f;
}


OrtStatusPtr ORT_API_CALL InferShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx) {
  const OpSpec& s = static_cast<const OpDef*>(op)->spec;
  const ONNXTensorElementDataType st = s.bf16 ? BF16 : F32;
  size_t nIn = 0;
  if (OrtStatus* st = api->ShapeInferContext_GetInputCount(ctx, &nIn)) { api->ReleaseStatus(st); return nullptr; }
  if (!s.multi) {
    if (nIn == 0) return nullptr;
    const size_t tensorOutputs = 1 + static_cast<size_t>(s.sch->n_states);  // a scalar state's out is not a tensor
    std::vector<size_t> to;
    std::vector<ONNXTensorElementDataType> types;
    for (size_t i = 0; i < tensorOutputs; i++) { to.push_back(i); types.push_back(i ? st : F32); }
    SameShape(ctx, 0, to, types);
    return nullptr;
  }
  const Layout lay = LayoutOf(*s.sch, true);
  size_t K = static_cast<size_t>(s.sch->n_states);
  if (s.sch->drop_state >= 0) {
    double dflt = 0;
    for (int k = 0; k < s.sch->n_attrs; k++)
      if (std::strcmp(s.sch->attrs[k].name, s.sch->drop_attr) == 0) dflt = s.sch->attrs[k].dflt;
    if (InferAttrF(ctx, s.sch->drop_attr, dflt) == 0.0) K--;
  }
  if (nIn <= size_t(lay.tensorIn) || (nIn - lay.tensorIn) % (2 + K)) return nullptr;  // the kernel reports it
  const size_t N = (nIn - lay.tensorIn) / (2 + K);
  for (size_t i = 0; i < N; i++) {
    std::vector<size_t> to;
    std::vector<ONNXTensorElementDataType> types;
    for (size_t k = 0; k <= K; k++) { to.push_back(lay.tensorOut + k * N + i); types.push_back(k ? st : F32); }
    SameShape(ctx, lay.tensorIn + i, to, types);
  }
  return nullptr;
}

// The coded ops: param i → param_out i (float32), each active slot's state i → its out (the slot's element type, the
// param's shape), each absmax i → its out (the input's shape). The formats come from the node's attribute.
OrtStatusPtr ORT_API_CALL InferCodedShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx) {
  const OpSpec& s = static_cast<const OpDef*>(op)->spec;
  const schema::Op& sch = *s.sch;
  size_t nIn = 0;
  if (OrtStatus* st = api->ShapeInferContext_GetInputCount(ctx, &nIn)) { api->ReleaseStatus(st); return nullptr; }
  std::vector<int64_t> formats(static_cast<size_t>(sch.n_states), kFmtF32);
  const OrtOpAttr* a = nullptr;
  if (OrtStatus* st = api->ShapeInferContext_GetAttribute(ctx, "formats", &a)) { api->ReleaseStatus(st); a = nullptr; }
  if (a) {
    size_t len = 0;
    if (OrtStatus* st = api->ReadOpAttr(a, ORT_OP_ATTR_INTS, formats.data(), formats.size() * sizeof(int64_t), &len)) {
      api->ReleaseStatus(st);
      return nullptr;
    }
  }
  std::vector<ONNXTensorElementDataType> types;
  for (int k = 0; k < sch.n_states; k++) {
    if (k == sch.drop_state) {
      double dflt = 0;
      for (int j = 0; j < sch.n_attrs; j++)
        if (std::strcmp(sch.attrs[j].name, sch.drop_attr) == 0) dflt = sch.attrs[j].dflt;
      if (InferAttrF(ctx, sch.drop_attr, dflt) == 0.0) continue;
    }
    types.push_back(formats[k] == kFmtBf16 ? BF16 : formats[k] == kFmt8bit ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : F32);
  }
  size_t Q = 0;
  for (auto t : types) Q += t == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  const size_t K = types.size(), first = 1 + static_cast<size_t>(sch.n_scalars);
  if (nIn <= first || (nIn - first) % (2 + K + Q)) return nullptr;  // the kernel reports it
  const size_t N = (nIn - first) / (2 + K + Q);
  for (size_t i = 0; i < N; i++) {
    std::vector<size_t> to{i};
    std::vector<ONNXTensorElementDataType> ty{F32};
    for (size_t k = 0; k < K; k++) { to.push_back((1 + k) * N + i); ty.push_back(types[k]); }
    SameShape(ctx, first + i, to, ty);
    for (size_t j = 0; j < Q; j++) SameShape(ctx, first + (2 + K + j) * N + i, {(1 + K + j) * N + i}, {F32});
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------------------------
// BenchCopy (com.ademamix, CPU, not an optimizer and not in the generated schema): output i = input i, for a variadic
// float32 list. It is the bandwidth baseline of `bench optimizer`: the list is laid end to end and cut into the same
// chunks on the same intra-op pool as the optimizer kernels (ForEachPiece), so a copy of the same bytes with the
// same threads and the same chunking is what the op is compared against. Attribute `stream` (int, default 1): 1 =
// non-temporal stores (what the kernels' large separate-output path uses: no read-for-ownership of the destination),
// 0 = memcpy.
// Attributes `reads` R and `writes` W (default 1, 1: the copy) give the optimizer's own access pattern instead: R
// groups of N input tensors, W groups of N outputs, output w = input w + the sum of inputs W..R−1 (every input read
// once, every output written once, streaming stores): the same streams as an optimizer with R − 2 states and no
// arithmetic to speak of, i.e. the bandwidth that access pattern itself gets. `blocked` (default 1): 256 floats of
// one output stream after the other (as the kernels' copy-out), 0: all streams 16 bytes at a time. Which is faster
// depends on the stream count (measured: interleaved for 3 reads/2 writes, blocked for 5/4), so the bench runs both.
class CopyKernel : public Kernel {
 public:
  explicit CopyKernel(const OrtKernelInfo* info)
      : stream_(AttrI(info, "stream", 1) != 0), blocked_(AttrI(info, "blocked", 1) != 0), reads_(AttrI(info, "reads", 1)),
        writes_(AttrI(info, "writes", 1)) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, "BenchCopy"};
    size_t nIn = 0, nOut = 0;
    RETURN_IF(c.Counts(&nIn, &nOut));
    if (reads_ != 1 || writes_ != 1) return Pattern(c, nIn, nOut);
    if (nIn != nOut) return Fail(c.Err("needs as many outputs as inputs, got " + std::to_string(nIn) + " and " + std::to_string(nOut)));
    struct Piece { const float* src; float* dst; size_t n; };
    std::vector<Piece> list(nIn);
    for (size_t i = 0; i < nIn; i++) {
      Dims d;
      const void* p = nullptr;
      RETURN_IF(c.Tensor(i, "input " + std::to_string(i), F32, nullptr, "", &d, &p));
      const size_t n = Numel(d);
      void* o = nullptr;
      RETURN_IF(c.Output(i, d, &o));
      list[i] = Piece{static_cast<const float*>(p), static_cast<float*>(o), n};
    }
    const bool stream = stream_;
    return ForEachPiece(ctx, nIn, [&](size_t i) { return list[i].n; }, [&](size_t i, size_t lo, size_t hi) {
      if (list[i].dst) Copy(list[i].src + lo, list[i].dst + lo, hi - lo, stream);
    });
  }

 private:
  static constexpr int64_t kMaxStreams = 8;
  OrtStatus* Pattern(const Ctx& c, size_t nIn, size_t nOut) const {
    const int64_t R = reads_, W = writes_;
    if (R < 1 || W < 1 || W > R || R > kMaxStreams)
      return Fail(c.Err("needs 1 <= writes <= reads <= " + std::to_string(kMaxStreams) + ", got reads " + std::to_string(R) +
                        ", writes " + std::to_string(W)));
    if (nIn % static_cast<size_t>(R) || nOut * static_cast<size_t>(R) != nIn * static_cast<size_t>(W))
      return Fail(c.Err(std::to_string(nIn) + " inputs and " + std::to_string(nOut) + " outputs are not " + std::to_string(R) +
                        " and " + std::to_string(W) + " groups of the same N tensors"));
    const size_t N = nIn / static_cast<size_t>(R);
    struct Tensor { const float* in[kMaxStreams]; float* out[kMaxStreams]; size_t n; };
    std::vector<Tensor> list(N);
    for (size_t i = 0; i < N; i++) {
      Dims d, d2;
      const void* p = nullptr;
      for (int64_t r = 0; r < R; r++) {
        RETURN_IF(c.Tensor(static_cast<size_t>(r) * N + i, "input " + std::to_string(static_cast<size_t>(r) * N + i), F32,
                           r ? &d : nullptr, "input " + std::to_string(i), r ? &d2 : &d, &p));
        list[i].in[r] = static_cast<const float*>(p);
      }
      list[i].n = Numel(d);
      for (int64_t w = 0; w < W; w++) {
        void* o = nullptr;
        RETURN_IF(c.Output(static_cast<size_t>(w) * N + i, d, &o));
        list[i].out[w] = static_cast<float*>(o);
      }
    }
    return ForEachPiece(c.ctx, N, [&](size_t i) { return list[i].n; }, [&](size_t i, size_t lo, size_t hi) {
      const Tensor& t = list[i];
      auto scalar = [&](size_t j) {
        float extra = 0.0f;
        for (int64_t r = W; r < R; r++) extra += t.in[r][j];
        for (int64_t w = 0; w < W; w++) if (t.out[w]) t.out[w][j] = t.in[w][j] + extra;
      };
      size_t j = lo;
#if defined(__SSE2__)
      // scalar up to where every output is there and 16-byte aligned (a missing output: to the end), then streaming
      for (; j < hi; j++) {
        bool aligned = true;
        for (int64_t w = 0; w < W; w++) aligned = aligned && t.out[w] && (reinterpret_cast<uintptr_t>(t.out[w] + j) & 15) == 0;
        if (aligned) break;
        scalar(j);
      }
      if (!blocked_) {
        for (; j + 4 <= hi; j += 4) {  // every stream each 16 bytes: the fewest instructions
          __m128 extra = _mm_setzero_ps();
          for (int64_t r = W; r < R; r++) extra = _mm_add_ps(extra, _mm_loadu_ps(t.in[r] + j));
          for (int64_t w = 0; w < W; w++) _mm_stream_ps(t.out[w] + j, _mm_add_ps(_mm_loadu_ps(t.in[w] + j), extra));
        }
        _mm_sfence();
      } else {
        // a block at a time, one output stream after the other (as the kernels' copy-out does): streaming stores
        // interleaved over 4+ streams at 16 bytes each leave partly filled write-combining buffers and ran at half speed
        constexpr size_t kBlk = 256;
        alignas(64) float extra[kBlk];
        for (; j + 4 <= hi;) {
          const size_t n = std::min(kBlk, (hi - j) & ~size_t(3));
          for (size_t k = 0; k < n; k++) extra[k] = 0.0f;
          for (int64_t r = W; r < R; r++) {
            const float* in = t.in[r] + j;
            for (size_t k = 0; k < n; k++) extra[k] += in[k];
          }
          for (int64_t w = 0; w < W; w++) {
            const float* in = t.in[w] + j;
            float* out = t.out[w] + j;
            for (size_t k = 0; k < n; k += 4) _mm_stream_ps(out + k, _mm_add_ps(_mm_loadu_ps(in + k), _mm_load_ps(extra + k)));
          }
          j += n;
        }
        _mm_sfence();
      }
#endif
      for (; j < hi; j++) scalar(j);
    });
  }

  static void Copy(const float* src, float* dst, size_t n, bool stream) {
#if defined(__SSE2__)
    if (stream && n >= 64) {
      size_t h = 0;  // head up to a 16-byte aligned destination
      while (h < n && (reinterpret_cast<uintptr_t>(dst + h) & 15)) { dst[h] = src[h]; h++; }
      size_t i = h;
      for (; i + 16 <= n; i += 16) {
        const __m128 a = _mm_loadu_ps(src + i), b = _mm_loadu_ps(src + i + 4);
        const __m128 x = _mm_loadu_ps(src + i + 8), y = _mm_loadu_ps(src + i + 12);
        _mm_stream_ps(dst + i, a); _mm_stream_ps(dst + i + 4, b);
        _mm_stream_ps(dst + i + 8, x); _mm_stream_ps(dst + i + 12, y);
      }
      for (; i < n; i++) dst[i] = src[i];
      _mm_sfence();
      return;
    }
#endif
    (void)stream;
    std::memcpy(dst, src, n * sizeof(float));
  }
  const bool stream_, blocked_;
  const int64_t reads_, writes_;
};

OrtStatusPtr ORT_API_CALL InferCopyShapes(const OrtCustomOp*, OrtShapeInferContext* ctx) {
  size_t nIn = 0;
  if (OrtStatus* st = api->ShapeInferContext_GetInputCount(ctx, &nIn)) { api->ReleaseStatus(st); return nullptr; }
  for (size_t i = 0; i < nIn; i++) SameShape(ctx, i, {i}, {F32});
  return nullptr;
}

FloatListOp& CopyOp() {
  static FloatListOp op("BenchCopy", [](const OrtKernelInfo* info) -> Kernel* { return new CopyKernel(info); }, true, InferCopyShapes);
  return op;
}

// The table: per-tensor and multi-tensor, float32 and bfloat16 states, for each algorithm; on the CPU always and on
// CUDA when the library was built with it.
std::string& OpsError() {
  static std::string e;
  return e;
}

std::vector<std::unique_ptr<OpDef>>& Ops() {
  static std::vector<std::unique_ptr<OpDef>> ops;
  if (!ops.empty()) return ops;
  struct Row { const char* name; Algo algo; bool multi; bool bf16; };
  const Row rows[] = {
      {"AdEMAMix", Algo::kAdemamix, false, false},
      {"AdEMAMixBf16", Algo::kAdemamix, false, true},
      {"AdEMAMixMulti", Algo::kAdemamix, true, false},
      {"AdEMAMixMultiBf16", Algo::kAdemamix, true, true},
      {"SimplifiedAdEMAMix", Algo::kSimplified, false, false},
      {"SimplifiedAdEMAMixBf16", Algo::kSimplified, false, true},
      {"SimplifiedAdEMAMixMulti", Algo::kSimplified, true, false},
      {"SimplifiedAdEMAMixMultiBf16", Algo::kSimplified, true, true},
      {"AdamW", Algo::kAdamW, false, false},
      {"AdamWBf16", Algo::kAdamW, false, true},
      {"AdamWMulti", Algo::kAdamW, true, false},
      {"AdamWMultiBf16", Algo::kAdamW, true, true},
  };
#if defined(ADEMAMIX_WITH_CUDA)
  const bool devices[] = {false, true};
#else
  const bool devices[] = {false};
#endif
  for (bool cuda : devices) {
    for (const Row& r : rows) {
      const schema::Op* sch = SchemaOf(AlgoOp(r.algo));
      if (!sch) { OpsError() = std::string("schemas.gen.h has no op ") + AlgoOp(r.algo); return ops; }
      auto* op = new OpDef(OpSpec{r.name, r.algo, r.multi, r.bf16, cuda, sch, -1});
      if (!r.multi) {  // (input, output) pairs: param→param_out and each state→its output
        if (sch->n_states == 3) op->GetMayInplace = MayInplace<0, 0, 2, 1, 3, 2, 4, 3>;
        else if (sch->n_states == 2) op->GetMayInplace = MayInplace<0, 0, 2, 1, 3, 2>;
        if (op->GetMayInplace) op->ReleaseMayInplace = ReleaseInplace;
      }
      ops.emplace_back(op);
    }
    // the generic ops: multi-tensor only, float32 states
#define ADEMAMIX_GENERIC_ROW(IDX, OP, FUNCTOR) \
  ops.emplace_back(new OpDef(OpSpec{schema::kOps[IDX].name, Algo::kAdamW, true, false, cuda, &schema::kOps[IDX], IDX}));
    ADEMAMIX_GENERIC_OPS(ADEMAMIX_GENERIC_ROW)
#undef ADEMAMIX_GENERIC_ROW
    // the coded-state ops: every definition, multi-tensor, a format per slot (codec.h's with_functor maps the first
    // three schema rows to the original functors)
    static std::vector<std::string> codedNames;
    if (codedNames.empty()) for (const schema::Op& o : schema::kOps) codedNames.push_back(std::string(o.name) + "Coded");
    if (std::strcmp(schema::kOps[0].name, "AdEMAMix") || std::strcmp(schema::kOps[1].name, "SimplifiedAdEMAMix") ||
        std::strcmp(schema::kOps[2].name, "AdamW")) {
      OpsError() = "schemas.gen.h must list AdEMAMix, SimplifiedAdEMAMix, AdamW first (codec.h with_functor)";
      return ops;
    }
    for (int i = 0; i < schema::kNumOps; i++) {
      OpSpec sp{codedNames[i].c_str(), Algo::kAdamW, true, false, cuda, &schema::kOps[i], -1};
      sp.coded = i;
      ops.emplace_back(new OpDef(sp));
    }
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
  auto& ops = Ops();
  if (!OpsError().empty()) return api->CreateStatus(ORT_FAIL, ("libademamix_ops: " + OpsError()).c_str());
  for (auto& op : ops) RETURN_IF(api->CustomOpDomain_Add(domain, op.get()));
  RETURN_IF(api->CustomOpDomain_Add(domain, &CopyOp()));  // the bench's bandwidth baseline
  RETURN_IF(AddCollectiveOps(api, domain));                 // AllReduce, ReduceScatter, AllGather (src/collective.cc)
  RETURN_IF(AddNnOps(domain));  // the fused ops: GeluGrad … Linear, LayerNormalization (src/nn_ops.cc)
  // The domain must outlive every session that uses it: keep it for the life of the process.
  return api->AddCustomOpDomain(options, domain);
}
