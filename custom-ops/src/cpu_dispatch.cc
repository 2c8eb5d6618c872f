// The CPU entry points of kernels.h: each calls the avx2 or the base build of cpu_kernels.cc, picked once per
// process. A plain flag rather than GCC's ifunc (target_clones): it works under the sanitizers and with any libc,
// and both builds stay callable by name for the kernel check.
#include <cstdlib>
#include <cstring>
#include "ademamix/kernels.h"

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
}  // namespace

const char* isa() { return UseAvx2() ? "avx2" : "base"; }

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
#undef ADEMAMIX_PICK

}  // namespace cpu
}  // namespace ademamix
