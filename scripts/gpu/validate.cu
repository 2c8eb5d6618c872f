// GPU validation harness (standalone: CUDA runtime + the op library's kernel sources, no ONNX Runtime).
//
// Every CUDA kernel (AdEMAMix with/without m1, Simplified-AdEMAMix in its three bias-correction forms, AdamW; float32
// and bfloat16 states) runs step after step on a non-blocking stream, and each step is checked three ways:
//  - against the CPU kernel (cpu_kernels.cc) run on the same inputs: within 1e-6 of the tensor's scale for float32
//    values (the two may contract a·b+c into FMA in different places), at most 1 bf16 step for bf16 states;
//  - against a float64 step from the same inputs (parameters) and, for float32 states, against float64 state
//    trajectories over all steps (catches drift such as a β rounded to float): 1e-5 relative, as the CPU kernel check;
//  - for memory safety: outputs are poisoned (all bytes 0xFF, a NaN in both float32 and bf16) so an element the kernel
//    skips is caught, and every buffer carries 64 guard elements after its end that must stay poisoned (overruns of the
//    vector path or the tails).
// Sizes cover 1..2^20+3 with odd lengths and every tail length; pointers are offset by 0..3 (float32) or 0..5 (bf16)
// elements so the vector path and the misaligned scalar path both run; steps rotate separate / in-place / mixed
// outputs; one case drops a state output (null: computed, not stored); a list of 100 tensors of random sizes (some
// empty) goes through one call (several grids of up to kAdemamixCudaMaxTensors). Exit code 1 on any failure.
//
// Build and run: scripts/gpu/build.sh && build/gpu/validate   (scripts/gpu/run.sh does both and the benchmarks).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>
#include "device.h"

using namespace ademamix;

namespace {

constexpr size_t kPad = 64;  // guard elements after every buffer
constexpr double kTol64 = 1e-5, kTolCpu = 1e-6;

enum Kind { kAdemamix, kAdemamixNoM1, kSimplifiedBc, kSimplifiedBc2Only, kSimplifiedNoBc, kAdamW, kKinds };
const char* const kNames[kKinds] = {"AdEMAMix", "AdEMAMix(beta1=0)", "Simplified(bc1,bc2)", "Simplified(bc2)",
                                    "Simplified(no bc)", "AdamW"};
int States(Kind k) { return k == kAdemamix ? 3 : 2; }
bool IsSimplified(Kind k) { return k == kSimplifiedBc || k == kSimplifiedBc2Only || k == kSimplifiedNoBc; }

struct Scalars { double lr, alpha, beta3, beta1; };
Scalars ScalarsAt(Kind kind, int t) {
  Scalars s;
  s.lr = 1e-2 * (1.0 + 0.5 * std::cos(t / 7.0));
  if (kind == kSimplifiedBc2Only || kind == kSimplifiedNoBc) s.lr *= 0.02;  // m = Σβ1^k·g: keep steps small
  s.alpha = 8.0 * std::fmin(t / 20.0, 1.0);
  s.beta3 = 1.0 - 1e-4 * (1.0 + 0.5 * std::sin(t / 5.0));
  s.beta1 = 0.99 - 0.09 * std::exp(-t / 30.0);
  return s;
}

// One optimizer step's host-side description, shared by the GPU launch, the CPU kernel and the float64 step.
struct StepDef {
  Kind kind;
  int t;
  Scalars sc;
  float s1New;  // Simplified: S1 after this step
  AdemamixHyper a;
  SimplifiedHyper s;
  AdamWHyper w;
};
StepDef MakeStep(Kind kind, int t, float s1Prev) {
  StepDef d{};
  d.kind = kind;
  d.t = t;
  d.sc = ScalarsAt(kind, t);
  const double b1 = kind == kAdemamixNoM1 ? 0.0 : 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  const bool bc1 = kind == kSimplifiedBc, bc2 = kind == kSimplifiedBc || kind == kSimplifiedBc2Only;
  d.s1New = float(d.sc.beta1) * s1Prev + 1.0f;
  d.a = AdemamixHyper{b1, b2, eps, wd, d.sc.lr, d.sc.alpha, d.sc.beta3, t};
  d.s = SimplifiedHyper{b2, eps, wd, d.sc.lr, d.sc.alpha, d.sc.beta1, t, bc1, bc2, d.s1New};
  d.w = AdamWHyper{b1, b2, eps, wd, d.sc.lr, t};
  return d;
}

int Launch(const StepDef& d, const std::vector<ademamix_cuda_tensor>& list, bool bf16, float* s1Out, dev::Stream st) {
  switch (d.kind) {
    case kAdemamix:
    case kAdemamixNoM1: return ademamix_cuda_ademamix(&d.a, list.data(), list.size(), bf16, st);
    case kAdamW: return ademamix_cuda_adamw(&d.w, list.data(), list.size(), bf16, st);
    default: return ademamix_cuda_simplified(&d.s, list.data(), list.size(), bf16, s1Out, d.s1New, st);
  }
}

template <class S>
void CpuStep(const StepDef& d, const StreamsOf<S>& x, size_t n) {
  switch (d.kind) {
    case kAdemamix:
    case kAdemamixNoM1: cpu::ademamix_range(d.a, x, 0, n); break;
    case kAdamW: cpu::adamw_range(d.w, x, 0, n); break;
    default: cpu::simplified_range(d.s, x, 0, n); break;
  }
}

// float64 step of element i from the contract (states in the op's order); returns the new parameter.
double RefStep(const StepDef& d, double p, double g, double* s) {
  const double b1 = d.a.beta1, b2 = 0.999, eps = 1e-8, wd = 0.1, t = d.t;
  const double bc2 = 1 - std::pow(b2, t);
  const Scalars& sc = d.sc;
  if (d.kind == kAdemamix || d.kind == kAdemamixNoM1) {
    const double bc1 = b1 == 0 ? 1 : 1 - std::pow(b1, t);
    double m1 = g;
    int k = 0;
    if (b1 != 0) { m1 = s[0] = b1 * s[0] + (1 - b1) * g; k = 1; }
    const double m2 = s[k] = sc.beta3 * s[k] + (1 - sc.beta3) * g;
    const double nu = s[k + 1] = b2 * s[k + 1] + (1 - b2) * g * g;
    return p - sc.lr * ((m1 / bc1 + sc.alpha * m2) / (std::sqrt(nu / bc2) + eps) + wd * p);
  }
  if (d.kind == kAdamW) {
    const double bc1 = 1 - std::pow(0.9, t);
    p *= 1 - sc.lr * wd;
    const double m = s[0] = 0.9 * s[0] + 0.1 * g;
    const double v = s[1] = b2 * s[1] + (1 - b2) * g * g;
    return p - sc.lr * (m / bc1) / (std::sqrt(v / bc2) + eps);
  }
  const double m = s[0] = sc.beta1 * s[0] + g;
  const double nu = s[1] = b2 * s[1] + (1 - b2) * g * g;
  double u = d.s.bias_correction2 ? (m + sc.alpha * g) / (std::sqrt(nu / bc2) + eps)
                                  : (m + sc.alpha * g) / (std::sqrt(nu) + eps * std::sqrt(bc2));
  if (d.s.bias_correction1) u /= double(d.s1New);
  return p - sc.lr * (u + wd * p);
}

int Bf16Steps(bf16 a, bf16 b) {
  if ((a.bits ^ b.bits) & 0x8000) return (a.bits & 0x7FFF) + (b.bits & 0x7FFF);
  return std::abs(int(a.bits) - int(b.bits));
}

struct Report {
  int cases = 0, failed = 0;
  double worstCpu = 0, worst64 = 0;
  int worstBf16 = 0;
  bool Fail(const std::string& what) {
    std::printf("FAIL %s\n", what.c_str());
    return false;
  }
};

// One tensor's buffers: host copies and device allocations (offset `off` elements into each allocation, kPad guard
// elements after the end).
template <class S>
struct Tensor {
  Tensor() = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  size_t n = 0, off = 0;
  std::vector<float> p, g;
  std::vector<S> s[kMaxStates];
  std::vector<double> rs[kMaxStates];  // float64 state trajectories (float32 states)
  double scale[kMaxStates] = {1e-30, 1e-30, 1e-30};
  float* dp = nullptr;
  float* dg = nullptr;
  float* dpo = nullptr;
  S* ds[kMaxStates] = {};
  S* dso[kMaxStates] = {};
  std::vector<void*> allocs;

  template <class T>
  T* Alloc() {
    const size_t bytes = (off + n + kPad) * sizeof(T);
    void* b = dev::Alloc(bytes);
    dev::Fill(b, 0xFF, bytes);
    allocs.push_back(b);
    return static_cast<T*>(b) + off;
  }
  void Init(size_t n_, size_t off_, int K, std::mt19937& rng) {
    n = n_;
    off = off_;
    std::normal_distribution<float> nd;
    p.resize(n);
    g.resize(n);
    for (auto& x : p) x = nd(rng);
    for (int k = 0; k < K; k++) {
      s[k].assign(n, S{});
      rs[k].assign(n, 0.0);
    }
    dp = Alloc<float>();
    dg = Alloc<float>();
    dpo = Alloc<float>();
    for (int k = 0; k < K; k++) { ds[k] = Alloc<S>(); dso[k] = Alloc<S>(); }
  }
  ~Tensor() {
    for (void* a : allocs) dev::Free(a);
  }
};

// Guard elements after a device buffer must still be poison (0xFF bytes).
template <class T>
bool GuardIntact(const T* d, size_t n) {
  std::vector<unsigned char> pad(kPad * sizeof(T));
  dev::ToHost(pad.data(), d + n, pad.size());
  return std::all_of(pad.begin(), pad.end(), [](unsigned char c) { return c == 0xFF; });
}

// Runs `steps` steps over the list of tensors. mode: -1 rotates separate / in place / mixed; `dropLast`: the last
// state's output is null (single step, compared with a normal run).
template <class S>
bool RunCase(Kind kind, std::vector<Tensor<S>>& ts, int steps, std::mt19937& rng, dev::Stream stream, Report* rep,
             const std::string& label, bool dropLast = false) {
  constexpr bool kBf16 = std::is_same<S, bf16>::value;
  const int K = States(kind);
  std::normal_distribution<float> nd;
  float s1 = 0.f;
  float* dS1 = static_cast<float*>(dev::Alloc(sizeof(float)));
  for (int t = 1; t <= steps; t++) {
    const StepDef d = MakeStep(kind, t, s1);
    const int mode = dropLast ? 0 : t % 3;  // 0 separate, 1 in place, 2 mixed (param and state 0 in place)
    std::vector<ademamix_cuda_tensor> list;
    for (auto& x : ts) {
      for (size_t i = 0; i < x.n; i++) x.g[i] = 0.3f * nd(rng) + 0.5f * float(x.p[i] - std::sin(double(i) + t / 50.0));
      // inputs: upload; outputs: re-poison
      dev::ToDevice(x.dp, x.p.data(), x.n * sizeof(float));
      dev::ToDevice(x.dg, x.g.data(), x.n * sizeof(float));
      dev::Fill(x.dpo, 0xFF, (x.n + kPad) * sizeof(float));
      for (int k = 0; k < K; k++) {
        dev::ToDevice(x.ds[k], x.s[k].data(), x.n * sizeof(S));
        dev::Fill(x.dso[k], 0xFF, (x.n + kPad) * sizeof(S));
      }
      ademamix_cuda_tensor e{};
      e.param = x.dp;
      e.grad = x.dg;
      e.param_out = mode == 0 ? x.dpo : x.dp;
      for (int k = 0; k < K; k++) {
        e.state[k] = x.ds[k];
        const bool inPlace = mode == 1 || (mode == 2 && k == 0);
        e.state_out[k] = inPlace ? static_cast<void*>(x.ds[k]) : static_cast<void*>(x.dso[k]);
      }
      if (dropLast) e.state_out[K - 1] = nullptr;
      e.n = static_cast<int64_t>(x.n);
      list.push_back(e);
    }
    dev::Fill(dS1, 0xFF, sizeof(float));
    if (int err = Launch(d, list, kBf16, IsSimplified(kind) ? dS1 : nullptr, stream))
      return rep->Fail(label + ": launch failed: " + ademamix_cuda_error_string(err));
    dev::Sync(stream);
    if (IsSimplified(kind)) {
      float got = 0;
      dev::ToHost(&got, dS1, sizeof got);
      if (got != d.s1New) return rep->Fail(label + ": s1_out " + std::to_string(got) + " != " + std::to_string(d.s1New));
    }
    for (size_t ti = 0; ti < ts.size(); ti++) {
      Tensor<S>& x = ts[ti];
      const ademamix_cuda_tensor& e = list[ti];
      const std::string where = label + " tensor " + std::to_string(ti) + " (n=" + std::to_string(x.n) + ", offset " +
                                std::to_string(x.off) + ") step " + std::to_string(t);
      // download the outputs
      std::vector<float> po(x.n);
      std::vector<S> so[kMaxStates];
      dev::ToHost(po.data(), e.param_out, x.n * sizeof(float));
      if (!GuardIntact(static_cast<const float*>(e.param_out), x.n)) return rep->Fail(where + ": param_out guard overwritten");
      for (int k = 0; k < K; k++) {
        if (!e.state_out[k]) continue;
        so[k].resize(x.n);
        dev::ToHost(so[k].data(), e.state_out[k], x.n * sizeof(S));
        if (!GuardIntact(static_cast<const S*>(e.state_out[k]), x.n)) return rep->Fail(where + ": state guard overwritten");
      }
      if (!GuardIntact(x.dg, x.n)) return rep->Fail(where + ": grad guard overwritten");
      if (dropLast) {  // the dropped state's separate output buffer must be untouched (still all poison)
        std::vector<unsigned char> b((x.n + kPad) * sizeof(S));
        dev::ToHost(b.data(), x.dso[K - 1], b.size());
        if (!std::all_of(b.begin(), b.end(), [](unsigned char c) { return c == 0xFF; }))
          return rep->Fail(where + ": a dropped (null) state output was written somewhere");
      }
      // the CPU kernel on the same inputs
      std::vector<float> cpo(x.n);
      std::vector<S> cso[kMaxStates];
      StreamsOf<S> cx{};
      cx.param = x.p.data();
      cx.grad = x.g.data();
      cx.param_out = cpo.data();
      for (int k = 0; k < K; k++) {
        cso[k].resize(x.n);
        cx.state[k] = x.s[k].data();
        cx.state_out[k] = cso[k].data();
      }
      CpuStep(d, cx, x.n);
      // float64: one step from the same inputs (params; bf16 states), or the running trajectory (float32 states)
      double pscale = 1e-30, perr64 = 0, perrCpu = 0;
      for (size_t i = 0; i < x.n; i++) {
        if (!std::isfinite(po[i])) return rep->Fail(where + ": param_out[" + std::to_string(i) + "] not written");
        double st[kMaxStates];
        for (int k = 0; k < K; k++) st[k] = kBf16 ? double(load_state(x.s[k][i])) : x.rs[k][i];
        const double rp = RefStep(d, x.p[i], x.g[i], st);
        for (int k = 0; k < K; k++) {
          if (!kBf16) x.rs[k][i] = st[k];
          x.scale[k] = std::fmax(x.scale[k], std::fabs(st[k]));
        }
        pscale = std::fmax(pscale, std::fabs(rp));
        perr64 = std::fmax(perr64, std::fabs(po[i] - rp));
        perrCpu = std::fmax(perrCpu, std::fabs(double(po[i]) - double(cpo[i])));
        for (int k = 0; k < K; k++) {
          if (!e.state_out[k]) continue;
          const float gv = load_state(so[k][i]);
          if (!std::isfinite(gv)) return rep->Fail(where + ": state " + std::to_string(k) + "[" + std::to_string(i) + "] not written");
          if constexpr (kBf16) {
            const int steps = Bf16Steps(so[k][i], cso[k][i]);
            rep->worstBf16 = std::max(rep->worstBf16, steps);
            const bool nearTie = std::fabs(double(gv) - st[k]) <= kTol64 * x.scale[k];
            if (steps > 1 && !nearTie) return rep->Fail(where + ": bf16 state " + std::to_string(k) + " is " + std::to_string(steps) + " bf16 steps from the CPU kernel's");
          } else {
            const double dc = std::fabs(double(gv) - double(load_state(cso[k][i]))) / std::fmax(x.scale[k], 1e-30);
            const double d64 = std::fabs(double(gv) - st[k]) / std::fmax(x.scale[k], 1e-30);
            rep->worstCpu = std::max(rep->worstCpu, dc);
            rep->worst64 = std::max(rep->worst64, d64);
            if (dc > kTolCpu) return rep->Fail(where + ": state " + std::to_string(k) + " differs from the CPU kernel by " + std::to_string(dc));
            if (d64 > kTol64) return rep->Fail(where + ": state " + std::to_string(k) + " differs from float64 by " + std::to_string(d64));
          }
        }
      }
      const double p64 = perr64 / std::fmax(pscale, 1.0), pcpu = perrCpu / std::fmax(pscale, 1.0);
      rep->worst64 = std::max(rep->worst64, p64);
      rep->worstCpu = std::max(rep->worstCpu, pcpu);
      if (p64 > kTol64) return rep->Fail(where + ": params differ from float64 by " + std::to_string(p64));
      if (pcpu > kTolCpu) return rep->Fail(where + ": params differ from the CPU kernel by " + std::to_string(pcpu));
      // outputs become the next step's inputs
      x.p = po;
      for (int k = 0; k < K; k++)
        if (e.state_out[k]) x.s[k] = so[k];
    }
    s1 = d.s1New;
  }
  dev::Free(dS1);
  return true;
}

template <class S>
void Suite(Report* rep, dev::Stream stream, std::mt19937& rng) {
  constexpr bool kBf16 = std::is_same<S, bf16>::value;
  const char* type = kBf16 ? "bf16 states" : "float32 states";
  const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 1000, 1023, 1025,
                          4095, 4096, 4097, 8191, 8192, 8193, 65537, (size_t(1) << 20) + 3};
  const size_t offsets[] = {0, 1, 2, kBf16 ? size_t(5) : size_t(3)};
  for (int kind = 0; kind < kKinds; kind++) {
    const int casesBefore = rep->cases, failedBefore = rep->failed;
    for (size_t n : sizes) {
      for (size_t off : offsets) {
        if (n > 100000 && off > 1) continue;
        std::vector<Tensor<S>> ts(1);
        ts[0].Init(n, off, States(Kind(kind)), rng);
        const std::string label = std::string(kNames[kind]) + ", " + type;
        rep->cases++;
        if (!RunCase(Kind(kind), ts, n > 100000 ? 6 : 24, rng, stream, rep, label)) rep->failed++;
      }
    }
    {  // float64 state trajectories over many steps (drift), one mid-size tensor
      std::vector<Tensor<S>> ts(1);
      ts[0].Init(4097, 0, States(Kind(kind)), rng);
      rep->cases++;
      if (!RunCase(Kind(kind), ts, 300, rng, stream, rep, std::string(kNames[kind]) + ", " + type + ", 300 steps")) rep->failed++;
    }
    {  // a dropped (null) state output: the others are unaffected and nothing is written for it
      std::vector<Tensor<S>> ts(1);
      ts[0].Init(3001, 1, States(Kind(kind)), rng);
      rep->cases++;
      if (!RunCase(Kind(kind), ts, 1, rng, stream, rep, std::string(kNames[kind]) + ", " + type + ", null state output", true))
        rep->failed++;
    }
    {  // one call over 100 tensors of random sizes and offsets (several grids)
      std::uniform_int_distribution<size_t> size(0, 20000), small(0, 40), off(0, 7);
      std::vector<Tensor<S>> ts(100);
      for (size_t i = 0; i < ts.size(); i++) ts[i].Init(i % 3 == 0 ? small(rng) : size(rng), off(rng), States(Kind(kind)), rng);
      rep->cases++;
      if (!RunCase(Kind(kind), ts, 8, rng, stream, rep, std::string(kNames[kind]) + ", " + type + ", 100-tensor list")) rep->failed++;
    }
    std::printf("%-22s %-15s %3d cases, %d failed\n", kNames[kind], type, rep->cases - casesBefore, rep->failed - failedBefore);
  }
}

}  // namespace

int main() {
  std::printf("device: %s\n", dev::Name());
  dev::Stream stream = dev::NewStream();
  std::mt19937 rng(20240901);
  Report rep;
  Suite<float>(&rep, stream, rng);
  Suite<bf16>(&rep, stream, rng);
  std::printf("worst: vs CPU kernel %.3g (of scale), vs float64 %.3g, bf16 states %d bf16 step(s) from the CPU kernel\n",
              rep.worstCpu, rep.worst64, rep.worstBf16);
  std::printf("validate: %d cases, %d failed\n", rep.cases, rep.failed);
  return rep.failed ? 1 : 0;
}
