// Host stand-ins for the CUDA launch entry points (ademamix/cuda_launch.h), for building the GPU harness without a GPU
// (scripts/gpu/build.sh --host-shim): each "launch" runs the CPU kernels over the list. A null state_out is honoured
// as the CUDA kernel does (the state is computed and dropped). Checks the harness, not the CUDA code.
#include <algorithm>
#include <cmath>
#include <vector>
#include "ademamix/cuda_launch.h"

using namespace ademamix;

namespace {

template <class S, class Range>
int Run(const ademamix_cuda_tensor* t, size_t count, Range range) {
  for (size_t i = 0; i < count; i++) {
    if (t[i].n <= 0) continue;
    const size_t n = static_cast<size_t>(t[i].n);
    StreamsOf<S> x{};
    x.param = t[i].param;
    x.grad = t[i].grad;
    x.param_out = t[i].param_out;
    std::vector<std::vector<S>> drop;
    for (int k = 0; k < kMaxStates; k++) {
      x.state[k] = static_cast<const S*>(t[i].state[k]);
      x.state_out[k] = static_cast<S*>(t[i].state_out[k]);
      if (!x.state_out[k] && x.state[k]) {
        drop.emplace_back(n);
        x.state_out[k] = drop.back().data();
      }
    }
    range(x, n);
  }
  return 0;
}

}  // namespace

extern "C" int ademamix_cuda_ademamix(const AdemamixHyper* h, const ademamix_cuda_tensor* t, size_t count, int bf16,
                                      void*) {
  if (bf16) return Run<ademamix::bf16>(t, count, [&](const StreamsBf16& x, size_t n) { cpu::ademamix_range(*h, x, 0, n); });
  return Run<float>(t, count, [&](const Streams& x, size_t n) { cpu::ademamix_range(*h, x, 0, n); });
}
extern "C" int ademamix_cuda_simplified(const SimplifiedHyper* h, const ademamix_cuda_tensor* t, size_t count, int bf16,
                                        float* s1_out, float s1_value, void*) {
  if (s1_out) *s1_out = s1_value;
  if (bf16) return Run<ademamix::bf16>(t, count, [&](const StreamsBf16& x, size_t n) { cpu::simplified_range(*h, x, 0, n); });
  return Run<float>(t, count, [&](const Streams& x, size_t n) { cpu::simplified_range(*h, x, 0, n); });
}
extern "C" int ademamix_cuda_adamw(const AdamWHyper* h, const ademamix_cuda_tensor* t, size_t count, int bf16, void*) {
  if (bf16) return Run<ademamix::bf16>(t, count, [&](const StreamsBf16& x, size_t n) { cpu::adamw_range(*h, x, 0, n); });
  return Run<float>(t, count, [&](const Streams& x, size_t n) { cpu::adamw_range(*h, x, 0, n); });
}
// The generic ops: the CPU kernels per tensor, with the norm pass where the functor has one.
extern "C" int ademamix_cuda_generic(int op, const GenericHyper* h, const ademamix_cuda_tensor* t, size_t count, void*) {
  switch (op) {
#define ADEMAMIX_SHIM(IDX, OP, FUNCTOR)                                                                          \
  case IDX:                                                                                                      \
    return Run<float>(t, count, [&](const Streams& x, size_t n) {                                                \
      float denom = 1.0f;                                                                                        \
      if (schema::kOps[IDX].norm_pass) {                                                                         \
        double sum = 0;                                                                                          \
        for (size_t b = 0; b < n; b += size_t(1) << 15) sum += cpu::FUNCTOR##_sumsq(*h, x, b, std::min(n, b + (size_t(1) << 15))); \
        denom = std::max(static_cast<float>(std::sqrt(sum)), 1.0f);                                              \
      }                                                                                                          \
      cpu::FUNCTOR##_range(*h, denom, x, 0, n);                                                                  \
    });
    ADEMAMIX_GENERIC_OPS(ADEMAMIX_SHIM)
#undef ADEMAMIX_SHIM
  }
  return 1;
}

extern "C" int ademamix_cuda_copy(void*, const void*, size_t, void*) { return 0; }
extern "C" const char* ademamix_cuda_error_string(int) { return "host shim"; }
