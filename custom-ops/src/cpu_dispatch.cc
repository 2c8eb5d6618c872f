// The CPU entry points of kernels.h: each calls the avx2 or the base build of cpu_kernels.cc, picked once per
// process; those of nn_kernels.h also its avx512 build. A plain flag rather than GCC's ifunc (target_clones): it
// works under the sanitizers and with any libc, and every build stays callable by name for the kernel check.
#include <cstdlib>
#include <cstring>
#include "ademamix/kernels.h"
#include "ademamix/nn_kernels.h"

namespace ademamix {
namespace cpu {
namespace {
bool UseAvx2() {
#if defined(ADEMAMIX_CPU_AVX2)
  static const bool use = [] {
    const char* force = std::getenv("ADEMAMIX_CPU");
    if (force && std::strcmp(force, "base") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return use;
#else
  return false;
#endif
}
// nn_kernels.cc's avx512 build (x86-64-v4): only where the CPU and the OS (libgcc checks XCR0) give AVX-512 F, BW,
// DQ and VL, and ADEMAMIX_CPU does not ask for avx2 or base
bool UseAvx512() {
#if defined(ADEMAMIX_CPU_AVX512)
  static const bool use = [] {
    const char* force = std::getenv("ADEMAMIX_CPU");
    if (force && (std::strcmp(force, "base") == 0 || std::strcmp(force, "avx2") == 0)) return false;
    __builtin_cpu_init();
    return UseAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }();
  return use;
#else
  return false;
#endif
}
}  // namespace

const char* isa() { return UseAvx2() ? "avx2" : "base"; }
const char* nn_isa() { return UseAvx512() ? "avx512" : isa(); }

#if defined(ADEMAMIX_CPU_AVX2)
#define ADEMAMIX_PICK(CALL) (UseAvx2() ? avx2::CALL : base::CALL)
#else
#define ADEMAMIX_PICK(CALL) (base::CALL)
#endif

void ademamix_range(const AdemamixHyper& h, const Streams& x, size_t b, size_t e) { ADEMAMIX_PICK(ademamix_range(h, x, b, e)); }
void simplified_range(const SimplifiedHyper& h, const Streams& x, size_t b, size_t e) { ADEMAMIX_PICK(simplified_range(h, x, b, e)); }
void adamw_range(const AdamWHyper& h, const Streams& x, size_t b, size_t e) { ADEMAMIX_PICK(adamw_range(h, x, b, e)); }
void ademamix_range(const AdemamixHyper& h, const StreamsBf16& x, size_t b, size_t e) { ADEMAMIX_PICK(ademamix_range(h, x, b, e)); }
void simplified_range(const SimplifiedHyper& h, const StreamsBf16& x, size_t b, size_t e) { ADEMAMIX_PICK(simplified_range(h, x, b, e)); }
void adamw_range(const AdamWHyper& h, const StreamsBf16& x, size_t b, size_t e) { ADEMAMIX_PICK(adamw_range(h, x, b, e)); }

#define ADEMAMIX_DISPATCH_GENERIC(IDX, OP, FUNCTOR)                                                       \
  void FUNCTOR##_range(const GenericHyper& h, float denom, const Streams& x, size_t b, size_t e) {       \
    ADEMAMIX_PICK(FUNCTOR##_range(h, denom, x, b, e));                                                  \
  }                                                                                                     \
  double FUNCTOR##_sumsq(const GenericHyper& h, const Streams& x, size_t b, size_t e) {                 \
    return ADEMAMIX_PICK(FUNCTOR##_sumsq(h, x, b, e));                                                  \
  }
ADEMAMIX_GENERIC_OPS(ADEMAMIX_DISPATCH_GENERIC)
#undef ADEMAMIX_DISPATCH_GENERIC

#if defined(ADEMAMIX_CPU_AVX512)
#define ADEMAMIX_PICK_NN(CALL) (UseAvx512() ? avx512::CALL : ADEMAMIX_PICK(CALL))
#else
#define ADEMAMIX_PICK_NN(CALL) ADEMAMIX_PICK(CALL)
#endif
void linear(const float* x, const float* w, const float* bias, const float* res, float* y, size_t K, size_t N, size_t m0,
            size_t m1, float* work) {
  ADEMAMIX_PICK_NN(linear(x, w, bias, res, y, K, N, m0, m1, work));
}
void weight_grad(const float* a, const float* b, float* c, float* colsum, size_t K, size_t M, size_t N, size_t t0, size_t t1,
                 size_t n0, size_t n1, float* work) {
  ADEMAMIX_PICK_NN(weight_grad(a, b, c, colsum, K, M, N, t0, t1, n0, n1, work));
}
void layernorm(const float* x, const float* scale, const float* bias, float* y, float* mean, float* inv, size_t rows,
               size_t cols, float eps) {
  ADEMAMIX_PICK_NN(layernorm(x, scale, bias, y, mean, inv, rows, cols, eps));
}
void gelu(const float* x, float* y, size_t n, bool tanh) { ADEMAMIX_PICK_NN(gelu(x, y, n, tanh)); }
void gelu_grad(const float* dy, const float* x, float* dx, size_t n, bool tanh) { ADEMAMIX_PICK_NN(gelu_grad(dy, x, dx, n, tanh)); }
float sum_squares(const float* x, size_t n) { return ADEMAMIX_PICK_NN(sum_squares(x, n)); }
void softmax_grad(const float* dy, const float* y, float* dx, size_t rows, size_t cols) {
  ADEMAMIX_PICK_NN(softmax_grad(dy, y, dx, rows, cols));
}
void softmax_xent(const float* x, const int64_t* t, float* lp, float* loss, size_t rows, size_t cols, int64_t ignore) {
  ADEMAMIX_PICK_NN(softmax_xent(x, t, lp, loss, rows, cols, ignore));
}
void softmax_xent_grad(const float* lp, const int64_t* t, const float* w, float* dx, size_t rows, size_t cols, int64_t ignore) {
  ADEMAMIX_PICK_NN(softmax_xent_grad(lp, t, w, dx, rows, cols, ignore));
}
void layernorm_grad(const float* dy, const float* x, const float* scale, const float* mean, const float* inv, const float* dres, float* dx,
                    float* dscale, float* dbias, size_t rows, size_t cols) {
  ADEMAMIX_PICK_NN(layernorm_grad(dy, x, scale, mean, inv, dres, dx, dscale, dbias, rows, cols));
}
void attention_forward(const float* q, const float* k, const float* v, size_t ld, float* y, size_t ldy, float* lse, size_t T,
                       size_t D, float scale, bool causal, float* work) {
  ADEMAMIX_PICK_NN(attention_forward(q, k, v, ld, y, ldy, lse, T, D, scale, causal, work));
}
void attention_backward(const float* dy, size_t lddy, const float* q, const float* k, const float* v, size_t ld,
                        const float* y, size_t ldy, const float* lse, float* dq, float* dk, float* dv, size_t ldd, size_t T,
                        size_t D, float scale, bool causal, float* work) {
  ADEMAMIX_PICK_NN(attention_backward(dy, lddy, q, k, v, ld, y, ldy, lse, dq, dk, dv, ldd, T, D, scale, causal, work));
}
#undef ADEMAMIX_PICK
#undef ADEMAMIX_PICK_NN

}  // namespace cpu
}  // namespace ademamix
