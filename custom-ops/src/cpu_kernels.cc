// CPU backend of the kernel skeleton: a branch-free loop over restrict-qualified local pointers, so the
// compiler vectorizes each optimizer's `update` (built for AVX2+FMA with a baseline fallback).
#include "ademamix/kernels.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ademamix {
namespace cpu {

// GCC applies `restrict` for vectorization only to function parameters, so the loops take their streams as such.
template <class Op>
__attribute__((always_inline)) inline void loop2(const Op op, const float* __restrict P, const float* __restrict G,
                                                 const float* __restrict S0, const float* __restrict S1,
                                                 float* __restrict PO, float* __restrict O0, float* __restrict O1,
                                                 size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[2] = {S0[i], S1[i]};
    PO[i] = op.update(P[i], G[i], s);
    O0[i] = s[0];
    O1[i] = s[1];
  }
}

template <class Op>
__attribute__((always_inline)) inline void loop3(const Op op, const float* __restrict P, const float* __restrict G,
                                                 const float* __restrict S0, const float* __restrict S1,
                                                 const float* __restrict S2, float* __restrict PO, float* __restrict O0,
                                                 float* __restrict O1, float* __restrict O2, size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[3] = {S0[i], S1[i], S2[i]};
    PO[i] = op.update(P[i], G[i], s);
    O0[i] = s[0];
    O1[i] = s[1];
    O2[i] = s[2];
  }
}

template <class Op>
__attribute__((always_inline)) inline void plain(const Op& op, const Streams& x, size_t b, size_t e) {
  if constexpr (Op::kStates == 2) {
    loop2(op, x.param, x.grad, x.state[0], x.state[1], x.param_out, x.state_out[0], x.state_out[1], b, e);
  } else {
    loop3(op, x.param, x.grad, x.state[0], x.state[1], x.state[2], x.param_out, x.state_out[0], x.state_out[1],
          x.state_out[2], b, e);
  }
}

#if defined(__SSE2__)
// Copies an L1-resident block to memory with non-temporal stores: the destination lines are not read first
// (no read-for-ownership), so a large update moves exactly its 28/36 bytes per parameter, like memcpy does.
inline void stream_copy(float* dst, const float* src, size_t n) {
  size_t i = 0;
  while (i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15)) { dst[i] = src[i]; i++; }
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; i++) dst[i] = src[i];
}
#endif

// Large ranges: compute a block into L1 scratch, then stream it out. Small ones: the plain loop (caches help).
template <class Op>
__attribute__((always_inline)) inline void run(const Op op, const Streams& x, size_t b, size_t e) {
#if defined(__SSE2__)
  constexpr size_t kBlock = 1024, kStreamMin = size_t(1) << 14;
  if (e - b >= kStreamMin) {
    alignas(64) float tp[kBlock];
    alignas(64) float ts[Op::kStates][kBlock];
    for (size_t lo = b; lo < e; lo += kBlock) {
      const size_t hi = lo + kBlock < e ? lo + kBlock : e, n = hi - lo;
      Streams y = x;  // outputs redirected to the scratch block (indexed from lo)
      y.param_out = tp - lo;
      for (int k = 0; k < Op::kStates; k++) y.state_out[k] = ts[k] - lo;
      plain(op, y, lo, hi);
      stream_copy(x.param_out + lo, tp, n);
      for (int k = 0; k < Op::kStates; k++) stream_copy(x.state_out[k] + lo, ts[k], n);
    }
    _mm_sfence();
    return;
  }
#endif
  plain(op, x, b, e);
}

// Each entry point is cloned for AVX2+FMA and a baseline x86-64 (picked at load time); `run` inlines into both.
#if defined(__x86_64__)
#define ADEMAMIX_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define ADEMAMIX_CLONES
#endif

ADEMAMIX_CLONES void ademamix_range(const AdemamixHyper& h, const Streams& x, size_t b, size_t e) {
  if (h.beta1 != 0.0) run(AdemamixOp<true>(h), x, b, e);
  else run(AdemamixOp<false>(h), x, b, e);
}
ADEMAMIX_CLONES void simplified_range(const SimplifiedHyper& h, const Streams& x, size_t b, size_t e) {
  run(SimplifiedOp(h), x, b, e);
}
ADEMAMIX_CLONES void adamw_range(const AdamWHyper& h, const Streams& x, size_t b, size_t e) { run(AdamWOp(h), x, b, e); }

}  // namespace cpu
}  // namespace ademamix
