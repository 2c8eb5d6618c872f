// The generic ops' CUDA kernels (every entry of ADEMAMIX_GENERIC_OPS in schemas.gen.h) step by
// step against their CPU kernels: lists of 1, 5 and 40 tensors (40 > one grid's kAdemamixCudaMaxTensors), sizes 1 …
// 2²⁰+3 with odd tails, pointers offset by 0–3 elements, separate and in-place outputs, 12 steps each. The norm pass
// (functors with kNormPass) is summed on the host in the op library's order. Each step's outputs must agree within 1e-6 of the tensor's
// scale; the GPU's values then feed both sides, so a mismatch never compounds. Guard elements after each buffer must
// stay untouched. Last line: `validate_generic: N cases, M failed`; exit 1 on any failure.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>
#include "device.h"

using namespace ademamix;

namespace {

constexpr int kGuard = 64;
constexpr size_t kPiece = size_t(1) << 15;  // the op library's norm-pass ranges (ops.cc GenericKernel::Cpu)

struct Functors {
  void (*range)(const GenericHyper&, float, const Streams&, size_t, size_t);
  double (*sumsq)(const GenericHyper&, const Streams&, size_t, size_t);
};
Functors FunctorsOf(int op) {
  switch (op) {
#define ADEMAMIX_F(IDX, OP, FUNCTOR) \
  case IDX: return Functors{cpu::FUNCTOR##_range, cpu::FUNCTOR##_sumsq};
    ADEMAMIX_GENERIC_OPS(ADEMAMIX_F)
#undef ADEMAMIX_F
  }
  return Functors{nullptr, nullptr};
}

float Rand(uint32_t* s) {
  *s = *s * 1664525u + 1013904223u;
  return (static_cast<float>(*s >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

struct Tensor {
  size_t n, off;
  std::vector<float> param, grad;
  std::vector<std::vector<float>> state;
};

int Case(int op, const std::vector<size_t>& sizes, bool inplace, uint32_t seed, double* worst) {
  const schema::Op& s = schema::kOps[op];
  const Functors f = FunctorsOf(op);
  const int K = s.n_states;
  std::vector<Tensor> ts(sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) {
    Tensor& t = ts[i];
    t.n = sizes[i]; t.off = (seed + i) % 4;
    t.param.resize(t.n); t.grad.resize(t.n); t.state.assign(K, std::vector<float>(t.n, 0.0f));
    for (size_t j = 0; j < t.n; j++) t.param[j] = Rand(&seed);
  }
  dev::Stream st = dev::NewStream();
  // device buffers: [off pad | n values | guard], inputs and (unless in place) separate outputs
  auto alloc = [&](size_t n) { float* p = static_cast<float*>(dev::Alloc((n + 4 + kGuard) * sizeof(float))); dev::Fill(p, 0x7F, (n + 4 + kGuard) * sizeof(float)); return p; };
  struct Dev { float* p; float* g; float* s[kMaxStates]; float* po; float* so[kMaxStates]; };
  std::vector<Dev> d(ts.size());
  for (size_t i = 0; i < ts.size(); i++) {
    d[i].p = alloc(ts[i].n); d[i].g = alloc(ts[i].n);
    d[i].po = inplace ? d[i].p : alloc(ts[i].n);
    for (int k = 0; k < K; k++) { d[i].s[k] = alloc(ts[i].n); d[i].so[k] = inplace ? d[i].s[k] : alloc(ts[i].n); }
  }
  int failed = 0;
  for (int t = 1; t <= 12 && !failed; t++) {
    GenericHyper h{};
    for (int k = 0; k < s.n_attrs; k++) h.attr[k] = std::strcmp(s.attrs[k].name, "weight_decay") == 0 ? 0.1 : s.attrs[k].dflt;
    h.scalar[0] = 1e-2 * (1.0 + 0.5 * std::cos(t / 3.0));  // lr
    for (int k = 1; k < s.n_scalars; k++) h.scalar[k] = 1.0 / t;  // further scalars: 1/t (a running weight)
    h.step = t;
    std::vector<ademamix_cuda_tensor> list(ts.size());
    for (size_t i = 0; i < ts.size(); i++) {
      Tensor& x = ts[i];
      for (size_t j = 0; j < x.n; j++) x.grad[j] = Rand(&seed) * (j % 7 == 0 ? 3.0f : 0.3f);
      dev::ToDevice(d[i].p + x.off, x.param.data(), x.n * sizeof(float));
      dev::ToDevice(d[i].g + x.off, x.grad.data(), x.n * sizeof(float));
      for (int k = 0; k < K; k++) dev::ToDevice(d[i].s[k] + x.off, x.state[k].data(), x.n * sizeof(float));
      ademamix_cuda_tensor& e = list[i];
      e = ademamix_cuda_tensor{};
      e.param = d[i].p + x.off; e.grad = d[i].g + x.off; e.param_out = d[i].po + x.off; e.n = static_cast<int64_t>(x.n);
      for (int k = 0; k < K; k++) { e.state[k] = d[i].s[k] + x.off; e.state_out[k] = d[i].so[k] + x.off; }
    }
    if (int err = ademamix_cuda_generic(op, &h, list.data(), list.size(), st)) {
      std::printf("FAIL %s: launch: %s\n", s.name, ademamix_cuda_error_string(err));
      return 1;
    }
    dev::Sync(st);
    for (size_t i = 0; i < ts.size() && !failed; i++) {
      Tensor& x = ts[i];
      // CPU side
      std::vector<float> po(x.n);
      std::vector<std::vector<float>> so(K, std::vector<float>(x.n));
      Streams str{};
      str.param = x.param.data(); str.grad = x.grad.data(); str.param_out = po.data();
      for (int k = 0; k < K; k++) { str.state[k] = x.state[k].data(); str.state_out[k] = so[k].data(); }
      float denom = 1.0f;
      if (s.norm_pass) {
        double sum = 0;
        for (size_t b = 0; b < x.n; b += kPiece) sum += f.sumsq(h, str, b, std::min(x.n, b + kPiece));
        denom = std::max(static_cast<float>(std::sqrt(sum)), 1.0f);
      }
      f.range(h, denom, str, 0, x.n);
      // GPU side, with the guards
      std::vector<float> gp(x.n + kGuard);
      std::vector<std::vector<float>> gs(K, std::vector<float>(x.n + kGuard));
      dev::ToHost(gp.data(), d[i].po + x.off, (x.n + kGuard) * sizeof(float));
      for (int k = 0; k < K; k++) dev::ToHost(gs[k].data(), d[i].so[k] + x.off, (x.n + kGuard) * sizeof(float));
      auto cmp = [&](const std::vector<float>& cpu, const std::vector<float>& gpu, const char* what) {
        double scale = 0, err = 0;
        for (size_t j = 0; j < x.n; j++) { scale = std::max(scale, std::fabs(double(cpu[j]))); err = std::max(err, std::fabs(double(cpu[j]) - gpu[j])); }
        uint32_t guard;
        for (int j = 0; j < kGuard; j++) {
          std::memcpy(&guard, &gpu[x.n + j], 4);
          if (guard != 0x7F7F7F7Fu) { std::printf("FAIL %s step %d tensor %zu: %s wrote past its end\n", s.name, t, i, what); failed = 1; return; }
        }
        const double rel = scale > 0 ? err / scale : err;
        *worst = std::max(*worst, rel);
        if (!(rel <= 1e-6)) { std::printf("FAIL %s step %d tensor %zu (n %zu): %s off by %.3g of its scale\n", s.name, t, i, x.n, what, rel); failed = 1; }
      };
      cmp(po, gp, "param");
      for (int k = 0; k < K && !failed; k++) cmp(so[k], gs[k], s.states[k]);
      // the GPU's values carry on for both
      std::copy(gp.begin(), gp.begin() + x.n, x.param.begin());
      for (int k = 0; k < K; k++) std::copy(gs[k].begin(), gs[k].begin() + x.n, x.state[k].begin());
    }
  }
  for (Dev& b : d) {
    dev::Free(b.p); dev::Free(b.g);
    if (!inplace) dev::Free(b.po);
    for (int k = 0; k < K; k++) { dev::Free(b.s[k]); if (!inplace) dev::Free(b.so[k]); }
  }
  return failed;
}

}  // namespace

int main() {
  std::printf("device: %s\n", dev::Name());
  const std::vector<std::vector<size_t>> lists = {
      {1}, {3}, {4096}, {4097}, {(size_t(1) << 20) + 3},
      {5, 4099, 1, 70000, 33},
      std::vector<size_t>(40, 1031),
  };
  int cases = 0, failed = 0;
  double worst = 0;
  const int ops[] = {
#define ADEMAMIX_I(IDX, OP, FUNCTOR) IDX,
      ADEMAMIX_GENERIC_OPS(ADEMAMIX_I)
#undef ADEMAMIX_I
  };
  for (int op : ops) {
    for (const auto& l : lists) {
      for (bool inplace : {false, true}) {
        cases++;
        if (Case(op, l, inplace, 1234u + cases, &worst)) failed++;
      }
    }
  }
  std::printf("worst: vs CPU kernel %.3g (of scale)\n", worst);
  std::printf("validate_generic: %d cases, %d failed\n", cases, failed);
  return failed ? 1 : 0;
}
