// CPU backend of the kernel skeleton: branch-free loops over restrict-qualified pointers, so the compiler
// vectorizes each optimizer's `update`. CMake builds this file twice, with ADEMAMIX_CPU_ISA = avx2 (-march=haswell)
// and = base, into namespaces of those names behind cpu_dispatch.cc; compiled alone (the fuzz harness, the GPU
// validation build) it defines the entry points of kernels.h itself.
//
// Three ways through a range, picked once per call from the pointers (never per element):
//  - in place (every output is its input's buffer: ORT's may-inplace reuse, or the session's in-place carry):
//    one pointer per stream,
//    read then written; the lines are in cache when they are stored, so plain stores are the cheapest;
//  - separate outputs, small range: the plain loop (everything stays in cache);
//  - otherwise: compute a block into L1 scratch, then copy it out, with non-temporal stores for large ranges
//    (no read-for-ownership of the destination lines, so the update moves only its 28/36 bytes per parameter,
//    as memcpy does); 256-bit stores where the build has AVX. This path is also the one that is correct for any mix
//    of aliased and separate outputs.
// Every loop is a template on the state storage type S (float, or bf16: widened on load, rounded to nearest even on
// store), so bf16 states take exactly the same paths.
#include <cstring>
#include "ademamix/kernels.h"
#include "prefetch.h"
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace ademamix {
namespace cpu {
#if defined(ADEMAMIX_CPU_ISA)
namespace ADEMAMIX_CPU_ISA {
#endif
namespace {

// Floats per stream in the L1 scratch block. Measured 2026-12-02 (2-vCPU AMD EPYC Zen 4, 16M params, 2 threads,
// against a 2-thread streaming copy of the same bytes, medians of 5 alternated runs): 128–256 at 0.89–0.92 of the
// copy, 1024 at 0.69 (the scratch plus the five input streams' lines no longer fit L1's 32 KiB).
constexpr size_t kBlock = 256;
constexpr size_t kStreamMin = size_t(1) << 14;  // ranges at least this long use non-temporal stores

#define ADEMAMIX_LOOP_INLINE __attribute__((always_inline)) inline

// Every input stream of the block [lo, hi) kPrefetchAhead elements on (prefetch.h), not past e
template <int K, class S>
ADEMAMIX_LOOP_INLINE void prefetch_inputs(const StreamsOf<S>& x, size_t lo, size_t hi, size_t e) {
  PrefetchAhead(x.param, lo, hi - lo, e);
  PrefetchAhead(x.grad, lo, hi - lo, e);
  for (int k = 0; k < K; k++) PrefetchAhead(x.state[k], lo, hi - lo, e);
}

// GCC applies `restrict` for vectorization only to function parameters, so each loop takes its streams as such.
template <class Op, class S>
ADEMAMIX_LOOP_INLINE void loop1(const Op op, const float* __restrict P, const float* __restrict G,
                                const S* __restrict S0, float* __restrict PO, S* __restrict O0, size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[1] = {load_state(S0[i])};
    PO[i] = op.update(P[i], G[i], s);
    store_state(&O0[i], s[0]);
  }
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void inplace1(const Op op, float* __restrict P, const float* __restrict G, S* __restrict S0,
                                   size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[1] = {load_state(S0[i])};
    P[i] = op.update(P[i], G[i], s);
    store_state(&S0[i], s[0]);
  }
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void loop2(const Op op, const float* __restrict P, const float* __restrict G,
                                const S* __restrict S0, const S* __restrict S1, float* __restrict PO,
                                S* __restrict O0, S* __restrict O1, size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[2] = {load_state(S0[i]), load_state(S1[i])};
    PO[i] = op.update(P[i], G[i], s);
    store_state(&O0[i], s[0]);
    store_state(&O1[i], s[1]);
  }
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void loop3(const Op op, const float* __restrict P, const float* __restrict G,
                                const S* __restrict S0, const S* __restrict S1, const S* __restrict S2,
                                float* __restrict PO, S* __restrict O0, S* __restrict O1, S* __restrict O2, size_t b,
                                size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[3] = {load_state(S0[i]), load_state(S1[i]), load_state(S2[i])};
    PO[i] = op.update(P[i], G[i], s);
    store_state(&O0[i], s[0]);
    store_state(&O1[i], s[1]);
    store_state(&O2[i], s[2]);
  }
}

// In place: each stream is one pointer, read and written through (well defined under `restrict`).
template <class Op, class S>
ADEMAMIX_LOOP_INLINE void inplace2(const Op op, float* __restrict P, const float* __restrict G, S* __restrict S0,
                                   S* __restrict S1, size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[2] = {load_state(S0[i]), load_state(S1[i])};
    P[i] = op.update(P[i], G[i], s);
    store_state(&S0[i], s[0]);
    store_state(&S1[i], s[1]);
  }
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void inplace3(const Op op, float* __restrict P, const float* __restrict G, S* __restrict S0,
                                   S* __restrict S1, S* __restrict S2, size_t b, size_t e) {
  for (size_t i = b; i < e; i++) {
    float s[3] = {load_state(S0[i]), load_state(S1[i]), load_state(S2[i])};
    P[i] = op.update(P[i], G[i], s);
    store_state(&S0[i], s[0]);
    store_state(&S1[i], s[1]);
    store_state(&S2[i], s[2]);
  }
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void plain(const Op& op, const StreamsOf<S>& x, size_t b, size_t e) {
  static_assert(Op::kStates >= 1 && Op::kStates <= 3, "the CPU loops cover 1 to 3 state streams");
  if constexpr (Op::kStates == 1) {
    loop1(op, x.param, x.grad, x.state[0], x.param_out, x.state_out[0], b, e);
  } else if constexpr (Op::kStates == 2) {
    loop2(op, x.param, x.grad, x.state[0], x.state[1], x.param_out, x.state_out[0], x.state_out[1], b, e);
  } else {
    loop3(op, x.param, x.grad, x.state[0], x.state[1], x.state[2], x.param_out, x.state_out[0], x.state_out[1],
          x.state_out[2], b, e);
  }
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void inplace(const Op& op, const StreamsOf<S>& x, size_t b, size_t e) {
  if constexpr (Op::kStates == 1) {
    inplace1(op, x.param_out, x.grad, x.state_out[0], b, e);
  } else if constexpr (Op::kStates == 2) {
    inplace2(op, x.param_out, x.grad, x.state_out[0], x.state_out[1], b, e);
  } else {
    inplace3(op, x.param_out, x.grad, x.state_out[0], x.state_out[1], x.state_out[2], b, e);
  }
}

// Copies an L1-resident block of `bytes` out: non-temporal stores when `stream`, else ordinary ones. Works in bytes
// so float and bf16 streams share it (the head up to the stores' alignment and the tail are plain copies).
inline void copy_out(void* dstv, const void* srcv, size_t bytes, bool stream) {
#if defined(__SSE2__)
  if (stream) {
    auto* dst = static_cast<char*>(dstv);
    const auto* src = static_cast<const char*>(srcv);
#if defined(__AVX__)
    constexpr uintptr_t kAlign = 32;  // the streaming stores need their width's alignment
#else
    constexpr uintptr_t kAlign = 16;
#endif
    size_t head = (kAlign - (reinterpret_cast<uintptr_t>(dst) & (kAlign - 1))) & (kAlign - 1);
    if (head > bytes) head = bytes;
    if (head) std::memcpy(dst, src, head);  // (aligned cuts: never, so no call per block)
    size_t i = head;
#if defined(__AVX__)
    for (; i + 32 <= bytes; i += 32)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
#endif
    for (; i + 16 <= bytes; i += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    if (i < bytes) std::memcpy(dst + i, src + i, bytes - i);
    return;
  }
#else
  (void)stream;
#endif
  std::memcpy(dstv, srcv, bytes);
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void blocked(const Op& op, const StreamsOf<S>& x, size_t b, size_t e) {
  constexpr int K = Op::kStates;
  const bool big = e - b >= kStreamMin;
  bool stream[K + 1];
  stream[K] = big && x.param_out != x.param;
  for (int k = 0; k < K; k++) stream[k] = big && x.state_out[k] != x.state[k];
  alignas(64) float tp[kBlock];
  alignas(64) S ts[K][kBlock];
  // blocks at multiples of kBlock within the tensor (the first one shorter): with the callers' cuts at whole cache
  // lines, every block's streaming stores then cover whole lines
  for (size_t lo = b, hi; lo < e; lo = hi) {
    hi = (lo / kBlock + 1) * kBlock < e ? (lo / kBlock + 1) * kBlock : e;
    const size_t n = hi - lo;
    // inputs from lo, outputs to the scratch block, both indexed from 0 (`tp - lo` would point outside the array:
    // undefined behaviour, reported by UBSan)
    StreamsOf<S> y = x;
    y.param = x.param + lo;
    y.grad = x.grad + lo;
    y.param_out = tp;
    for (int k = 0; k < K; k++) { y.state[k] = x.state[k] + lo; y.state_out[k] = ts[k]; }
    prefetch_inputs<K>(x, lo, hi, e);
    plain(op, y, 0, n);
    copy_out(x.param_out + lo, tp, n * sizeof(float), stream[K]);
    for (int k = 0; k < K; k++) copy_out(x.state_out[k] + lo, ts[k], n * sizeof(S), stream[k]);
  }
#if defined(__SSE2__)
  if (big) _mm_sfence();  // non-temporal stores are weakly ordered: publish them before returning
#endif
}

template <class Op, class S>
ADEMAMIX_LOOP_INLINE void run(const Op op, const StreamsOf<S>& x, size_t b, size_t e) {
  bool all = x.param_out == x.param, any = all;
  for (int k = 0; k < Op::kStates; k++) {
    const bool same = x.state_out[k] == x.state[k];
    all = all && same;
    any = any || same;
  }
  if (all) {
    for (size_t lo = b, hi; lo < e; lo = hi) {
      hi = lo + kBlock < e ? lo + kBlock : e;
      prefetch_inputs<Op::kStates>(x, lo, hi, e);
      inplace(op, x, lo, hi);
    }
  }
  else if (!any && e - b < kStreamMin) plain(op, x, b, e);
  else blocked(op, x, b, e);
}

template <class Op>
ADEMAMIX_LOOP_INLINE double sumsq(const Op& op, const Streams& x, size_t b, size_t e) {
  if constexpr (Op::kNormPass) {
    // 16 partial sums (element i into lane (i − b) mod 16), added in lane order at the end: the order is fixed by
    // the range, so the result still does not depend on the thread count, and the lanes vectorize (one running sum
    // is a chain of dependent double adds: it made MARS's norm pass ~4 cycles per element).
    constexpr size_t kLanes = 16;
    double lane[kLanes] = {};
    size_t i = b;
    for (; i + kLanes <= e; i += kLanes) {
      for (size_t j = 0; j < kLanes; j++) {
        float s[Op::kStates];
        for (int k = 0; k < Op::kStates; k++) s[k] = x.state[k][i + j];
        const double c = op.pre(x.grad[i + j], s);
        lane[j] += c * c;
      }
    }
    for (size_t j = 0; i < e; i++, j++) {
      float s[Op::kStates];
      for (int k = 0; k < Op::kStates; k++) s[k] = x.state[k][i];
      const double c = op.pre(x.grad[i], s);
      lane[j] += c * c;
    }
    double acc = 0;
    for (size_t j = 0; j < kLanes; j++) acc += lane[j];
    return acc;
  } else {
    (void)op; (void)x; (void)b; (void)e;
    return 0.0;
  }
}

}  // namespace

void ademamix_range(const AdemamixHyper& h, const Streams& x, size_t b, size_t e) {
  if (h.beta1 != 0.0) run(AdemamixOp<true>(h), x, b, e);
  else run(AdemamixOp<false>(h), x, b, e);
}
void simplified_range(const SimplifiedHyper& h, const Streams& x, size_t b, size_t e) {
  run(SimplifiedOp(h), x, b, e);
}
void adamw_range(const AdamWHyper& h, const Streams& x, size_t b, size_t e) {
  run(AdamWOp(h), x, b, e);
}
void ademamix_range(const AdemamixHyper& h, const StreamsBf16& x, size_t b, size_t e) {
  if (h.beta1 != 0.0) run(AdemamixOp<true>(h), x, b, e);
  else run(AdemamixOp<false>(h), x, b, e);
}
void simplified_range(const SimplifiedHyper& h, const StreamsBf16& x, size_t b, size_t e) {
  run(SimplifiedOp(h), x, b, e);
}
void adamw_range(const AdamWHyper& h, const StreamsBf16& x, size_t b, size_t e) {
  run(AdamWOp(h), x, b, e);
}

// The generic ops. The norm pass sums in double in a fixed order within the range (sumsq): the caller splits a
// tensor into fixed ranges and adds their sums in order, so the result does not depend on the thread count.
#define ADEMAMIX_DEFINE_GENERIC(IDX, OP, FUNCTOR)                                                                  \
  void FUNCTOR##_range(const GenericHyper& h, float denom, const Streams& x, size_t b, size_t e) { \
    FUNCTOR op(h);                                                                                               \
    op.denom = denom;                                                                                            \
    run(op, x, b, e);                                                                                            \
  }                                                                                                              \
  double FUNCTOR##_sumsq(const GenericHyper& h, const Streams& x, size_t b, size_t e) {           \
    return sumsq(FUNCTOR(h), x, b, e);                                                                           \
  }
ADEMAMIX_GENERIC_OPS(ADEMAMIX_DEFINE_GENERIC)
#undef ADEMAMIX_DEFINE_GENERIC

#if defined(ADEMAMIX_CPU_ISA)
}  // namespace ADEMAMIX_CPU_ISA
#endif
}  // namespace cpu
}  // namespace ademamix
