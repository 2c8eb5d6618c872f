// The one kernel skeleton shared by the optimizers (CPU and CUDA): each optimizer is a small struct whose `update`
// maps one element's (param, grad, states) to new values, with every per-launch scalar precomputed once on the host
// in double (bias corrections, 1 − β) and stored as float. `apply` is the per-element body; the CPU loops
// (cpu_kernels.cc) and the CUDA kernels (cuda_kernels.cu) both call `update`, so the three optimizers' math exists
// once. The per-element math stays IEEE: plain float multiply/add, sqrtf and division (no approximate reciprocals),
// compiled without -ffast-math (nvcc: its defaults -prec-div=true -prec-sqrt=true -ftz=false).
// States are stored as float32 or bfloat16 (`bf16`: loaded by widening, stored with round-to-nearest-even); the math
// is float32 either way. Usable from .cc and .cu files: ADEMAMIX_HD is __host__ __device__ under nvcc.
// The Op constructors are host code: they run once per launch.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include "ademamix/schemas.gen.h"

#if defined(__CUDACC__)
#define ADEMAMIX_HD __host__ __device__ __forceinline__
#define ADEMAMIX_UNROLL _Pragma("unroll")
#else
#define ADEMAMIX_HD inline __attribute__((always_inline))
#define ADEMAMIX_UNROLL
#endif

namespace ademamix {

constexpr int kMaxStates = 3;

// bfloat16 storage: the upper half of an IEEE float32 (8-bit exponent, 7-bit mantissa). A struct rather than a bare
// uint16_t so a bf16 state can never be mistaken for an integer tensor or silently converted.
struct bf16 { uint16_t bits; };
static_assert(sizeof(bf16) == 2, "bf16 is stored as 2 bytes");

ADEMAMIX_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
ADEMAMIX_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// float32 → bfloat16, round to nearest, ties to even: adding 0x7FFF plus the lowest kept bit carries into the kept
// half exactly when the dropped half is above one half ulp (or equal to it with an odd kept half). Overflow rounds
// to ±Inf as IEEE rounding does. NaN would carry into the exponent, so it is kept a (quiet) NaN explicitly.
// Written branch-free so the CPU loops still vectorize.
ADEMAMIX_HD bf16 f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return bf16{static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : rounded)};
}
ADEMAMIX_HD float bf16_to_f32(bf16 b) { return bits_f32(static_cast<uint32_t>(b.bits) << 16); }

// State load/store for either storage type, so loops and kernels are written once.
ADEMAMIX_HD float load_state(float x) { return x; }
ADEMAMIX_HD float load_state(bf16 x) { return bf16_to_f32(x); }
ADEMAMIX_HD void store_state(float* p, float x) { *p = x; }
ADEMAMIX_HD void store_state(bf16* p, float x) { *p = f32_to_bf16(x); }

// Pointers for one tensor: inputs and outputs, states in the op's order, of storage type S (float or bf16). An
// output may be its own input's buffer (in place: ORT's may-inplace reuse); otherwise buffers must not overlap.
template <class S>
struct StreamsOf {
  const float* param;
  const float* grad;
  const S* state[kMaxStates];
  float* param_out;
  S* state_out[kMaxStates];
};
using Streams = StreamsOf<float>;
using StreamsBf16 = StreamsOf<bf16>;

template <class Op, class S>
ADEMAMIX_HD void apply(const Op& op, const StreamsOf<S>& x, size_t i) {
  float s[Op::kStates];
ADEMAMIX_UNROLL
  for (int k = 0; k < Op::kStates; k++) s[k] = load_state(x.state[k][i]);
  x.param_out[i] = op.update(x.param[i], x.grad[i], s);
ADEMAMIX_UNROLL
  for (int k = 0; k < Op::kStates; k++) store_state(&x.state_out[k][i], s[k]);
}

// β·s + (1 − β)·x written as s + (1 − β)·(x − s): only 1 − β is rounded to float, and for β near 1 that keeps the
// effective β exact to ~1e-7·(1 − β). Storing β itself as float would be off by up to 3e-8 absolute, which for
// β3 = 0.9999 is a 3e-4 relative error in 1 − β3 and drifts m2 and ν off the exact recurrences over long runs.
ADEMAMIX_HD float ema(float s, float x, float one_minus_beta) { return s + one_minus_beta * (x - s); }

// Per-step scalars, as the host computes them (double) from the step, schedules and attributes.
struct AdemamixHyper { double beta1, beta2, eps, weight_decay, lr, alpha, beta3; int64_t step; };
struct SimplifiedHyper {
  double beta2, eps, weight_decay, lr, alpha, beta1; int64_t step;
  bool bias_correction1, bias_correction2; double s1;  // s1: the running mass after this step's update
};
struct AdamWHyper { double beta1, beta2, eps, weight_decay, lr; int64_t step; };

// AdEMAMix: states (m1, m2, nu), or (m2, nu) when beta1 = 0 (m1 is then g).
template <bool HasM1>
struct AdemamixOp {
  static constexpr int kStates = HasM1 ? 3 : 2;
  static constexpr bool kNormPass = false;  // no per-tensor norm pass (see MarsOp)
  float denom = 1.0f;
  float omb1, omb2, omb3, inv_bc1, inv_sqrt_bc2, alpha, lr, eps, lr_wd;
  explicit AdemamixOp(const AdemamixHyper& h) {
    const double t = static_cast<double>(h.step);
    omb1 = float(1.0 - h.beta1); omb2 = float(1.0 - h.beta2);
    omb3 = float(1.0 - h.beta3);  // 1−β3 ~ 1e-4: taken in double
    inv_bc1 = HasM1 ? float(1.0 / (1.0 - std::pow(h.beta1, t))) : 1.0f;
    inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(h.beta2, t)));
    alpha = float(h.alpha); lr = float(h.lr); eps = float(h.eps); lr_wd = float(h.lr * h.weight_decay);
  }
  ADEMAMIX_HD float update(float p, float g, float* s) const {
    float m1;
    int k = 0;
    if (HasM1) { m1 = ema(s[0], g, omb1); s[0] = m1; k = 1; } else { m1 = g; }
    const float m2 = ema(s[k], g, omb3);
    const float nu = ema(s[k + 1], g * g, omb2);
    s[k] = m2; s[k + 1] = nu;
    const float u = (m1 * inv_bc1 + alpha * m2) / (sqrtf(nu) * inv_sqrt_bc2 + eps);
    return p - lr * u - lr_wd * p;
  }
};

// Simplified-AdEMAMix: states (m, nu). denominator = √ν·k_nu + ε·k_eps covers both bias_correction2 forms;
// the 1/S1 factor (bias_correction1) folds into the step size.
struct SimplifiedOp {
  static constexpr int kStates = 2;
  static constexpr bool kNormPass = false;  // no per-tensor norm pass (see MarsOp)
  float denom = 1.0f;
  float b1, omb2, alpha, k_nu, k_eps, lr_u, lr_wd;
  explicit SimplifiedOp(const SimplifiedHyper& h) {
    const double s2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
    b1 = float(h.beta1); omb2 = float(1.0 - h.beta2); alpha = float(h.alpha);
    k_nu = h.bias_correction2 ? float(1.0 / std::sqrt(s2)) : 1.0f;
    k_eps = float(h.bias_correction2 ? h.eps : h.eps * std::sqrt(s2));
    lr_u = float(h.bias_correction1 ? h.lr / h.s1 : h.lr);
    lr_wd = float(h.lr * h.weight_decay);
  }
  ADEMAMIX_HD float update(float p, float g, float* s) const {
    const float m = b1 * s[0] + g;  // a sum, not an average: no (1 − β1)
    const float nu = ema(s[1], g * g, omb2);
    s[0] = m; s[1] = nu;
    return p - lr_u * ((m + alpha * g) / (sqrtf(nu) * k_nu + k_eps)) - lr_wd * p;
  }
};

// AdamW (torch.optim.AdamW): states (m, v); decoupled decay θ·(1 − lr·λ) first.
struct AdamWOp {
  static constexpr int kStates = 2;
  static constexpr bool kNormPass = false;  // no per-tensor norm pass (see MarsOp)
  float denom = 1.0f;
  float omb1, omb2, step_size, inv_sqrt_bc2, eps, decay;
  explicit AdamWOp(const AdamWHyper& h) {
    const double t = static_cast<double>(h.step);
    omb1 = float(1.0 - h.beta1); omb2 = float(1.0 - h.beta2);
    step_size = float(h.lr / (1.0 - std::pow(h.beta1, t)));
    inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(h.beta2, t)));
    eps = float(h.eps); decay = float(1.0 - h.lr * h.weight_decay);
  }
  ADEMAMIX_HD float update(float p, float g, float* s) const {
    const float m = ema(s[0], g, omb1);
    const float v = ema(s[1], g * g, omb2);
    s[0] = m; s[1] = v;
    return p * decay - step_size * m / (sqrtf(v) * inv_sqrt_bc2 + eps);
  }
};

// ---- the generic ops (definitions in src/optim/defs/; schemas in schemas.gen.h) ---------------------------------
// A functor's constructor reads the attributes and scalars by their generated index (schema::k<Op>_<name>) and
// precomputes everything per launch in double. `kNormPass` functors (MARS) also give `pre(g, s)`, the value whose
// per-tensor L2 norm the skeleton computes first; `denom` = max(‖pre‖₂, 1) is then set per tensor before `update`.
struct GenericHyper {
  double attr[schema::kMaxAttrs];
  double scalar[schema::kMaxScalars];
  int64_t step;
};

// Lion: state m. c = β1·m + (1−β1)·g; θ ← θ − lr·(sign(c) + λθ); m ← β2·m + (1−β2)·g. sign(0) = 0.
struct LionOp {
  static constexpr int kStates = 1;
  static constexpr bool kNormPass = false;
  float omb1, omb2, lr, lr_wd, denom = 1.0f;
  bool b1_zero;
  explicit LionOp(const GenericHyper& h) {
    using namespace schema;
    b1_zero = h.attr[kLion_beta1] == 0.0;  // c = g exactly (the EMA form would round)
    omb1 = float(1.0 - h.attr[kLion_beta1]); omb2 = float(1.0 - h.attr[kLion_beta2]);
    lr = float(h.scalar[kLion_scalar_lr]); lr_wd = float(h.scalar[kLion_scalar_lr] * h.attr[kLion_weight_decay]);
  }
  ADEMAMIX_HD float update(float p, float g, float* s) const {
    const float c = b1_zero ? g : ema(s[0], g, omb1);
    const float sg = float(c > 0.0f) - float(c < 0.0f);
    s[0] = ema(s[0], g, omb2);
    return p - lr * sg - lr_wd * p;
  }
};

// Schedule-Free AdamW: param y, states (z, ν). x = (y − (1−β1)z)/β1 is derived; c = the step's sf_c weight.
struct SfAdamwOp {
  static constexpr int kStates = 2;
  static constexpr bool kNormPass = false;
  float b1, omb1, omb2, inv_sqrt_bc2, eps, wd, lr, c, denom = 1.0f;
  explicit SfAdamwOp(const GenericHyper& h) {
    using namespace schema;
    const double t = static_cast<double>(h.step);
    b1 = float(h.attr[kScheduleFreeAdamW_beta1]); omb1 = float(1.0 - h.attr[kScheduleFreeAdamW_beta1]);
    omb2 = float(1.0 - h.attr[kScheduleFreeAdamW_beta2]);
    inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(h.attr[kScheduleFreeAdamW_beta2], t)));
    eps = float(h.attr[kScheduleFreeAdamW_eps]); wd = float(h.attr[kScheduleFreeAdamW_weight_decay]);
    lr = float(h.scalar[kScheduleFreeAdamW_scalar_lr]); c = float(h.scalar[kScheduleFreeAdamW_scalar_sf_c]);
  }
  ADEMAMIX_HD float update(float y, float g, float* s) const {
    const float nu = ema(s[1], g * g, omb2);
    const float u = g / (sqrtf(nu) * inv_sqrt_bc2 + eps) + wd * y;
    float x = (y - omb1 * s[0]) / b1;  // with the old z
    const float z = s[0] - lr * u;
    x = x + c * (z - x);
    s[0] = z; s[1] = nu;
    // the same b1, omb1 as x's formula above (float(β1) + float(1−β1) need not be 1): y → x → y round-trips, so no
    // drift of (1−omb1)/b1 per step
    return b1 * x + omb1 * z;
  }
};

// LAProp: states (m, ν). ν first, then m averages the normalized gradient; θ ← θ − lr·(m/(1−β1^t) + λθ).
struct LapropOp {
  static constexpr int kStates = 2;
  static constexpr bool kNormPass = false;
  float omb1, omb2, inv_sqrt_bc2, eps, step_size, lr_wd, denom = 1.0f;
  bool b1_zero;
  explicit LapropOp(const GenericHyper& h) {
    using namespace schema;
    const double t = static_cast<double>(h.step);
    const double b1 = h.attr[kLAProp_beta1], b2 = h.attr[kLAProp_beta2], lr = h.scalar[kLAProp_scalar_lr];
    b1_zero = b1 == 0.0;
    omb1 = float(1.0 - b1); omb2 = float(1.0 - b2);
    inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(b2, t)));
    eps = float(h.attr[kLAProp_eps]);
    step_size = float(lr / (1.0 - std::pow(b1, t))); lr_wd = float(lr * h.attr[kLAProp_weight_decay]);
  }
  ADEMAMIX_HD float update(float p, float g, float* s) const {
    const float nu = ema(s[1], g * g, omb2);
    const float n = g / (sqrtf(nu) * inv_sqrt_bc2 + eps);
    const float m = b1_zero ? n : ema(s[0], n, omb1);
    s[0] = m; s[1] = nu;
    return p - step_size * m - lr_wd * p;
  }
};

// MARS-AdamW (approx): states (g_prev, m, ν). pre = g + γβ1/(1−β1)·(g − g_prev) (k = 0 on step 1), divided by
// denom = max(‖pre‖₂, 1) of its tensor, then AdamW-style moments.
struct MarsOp {
  static constexpr int kStates = 3;
  static constexpr bool kNormPass = true;
  float k, omb1, omb2, inv_sqrt_bc2, eps, step_size, lr_wd, denom = 1.0f;
  bool b1_zero;
  explicit MarsOp(const GenericHyper& h) {
    using namespace schema;
    const double t = static_cast<double>(h.step);
    const double b1 = h.attr[kMARS_beta1], b2 = h.attr[kMARS_beta2], lr = h.scalar[kMARS_scalar_lr];
    k = h.step == 1 ? 0.0f : float(h.attr[kMARS_gamma] * b1 / (1.0 - b1));
    b1_zero = b1 == 0.0;
    omb1 = float(1.0 - b1); omb2 = float(1.0 - b2);
    inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(b2, t)));
    eps = float(h.attr[kMARS_eps]);
    step_size = float(lr / (1.0 - std::pow(b1, t))); lr_wd = float(lr * h.attr[kMARS_weight_decay]);
  }
  ADEMAMIX_HD float pre(float g, const float* s) const { return g + k * (g - s[0]); }
  ADEMAMIX_HD float update(float p, float g, float* s) const {
    const float c = pre(g, s) / denom;
    const float m = b1_zero ? c : ema(s[1], c, omb1);
    const float nu = ema(s[2], c * c, omb2);
    s[0] = g; s[1] = m; s[2] = nu;
    return p - step_size * m / (sqrtf(nu) * inv_sqrt_bc2 + eps) - lr_wd * p;
  }
};

namespace cpu {
// The generic ops' CPU entry points: `<Functor>_range` updates [begin, end) of one tensor with `denom` set (1 unless
// the functor has a norm pass); `<Functor>_sumsq` is the norm pass: Σ pre(g, s)² over the range, in double.
#define ADEMAMIX_DECLARE_GENERIC(IDX, OP, FUNCTOR)                                                       \
  void FUNCTOR##_range(const GenericHyper& h, float denom, const Streams& x, size_t begin, size_t end); \
  double FUNCTOR##_sumsq(const GenericHyper& h, const Streams& x, size_t begin, size_t end);

// One optimizer step over elements [begin, end) of one tensor (any sub-range: callers split tensors across
// threads). Plain C++ entry points, callable without ORT (tests, benchmarks). For AdEMAMix, beta1 = 0 selects the
// two-state form: x.state = {m2, nu}; otherwise {m1, m2, nu}. Simplified: {m, nu} (h.s1 is S1 after this step's
// update, used only with bias_correction1). AdamW: {m, v}. The bf16 overloads store the states as bfloat16.
#define ADEMAMIX_CPU_ENTRY_POINTS                                                                \
  ADEMAMIX_GENERIC_OPS(ADEMAMIX_DECLARE_GENERIC)                                                 \
  void ademamix_range(const AdemamixHyper& h, const Streams& x, size_t begin, size_t end);       \
  void simplified_range(const SimplifiedHyper& h, const Streams& x, size_t begin, size_t end);   \
  void adamw_range(const AdamWHyper& h, const Streams& x, size_t begin, size_t end);             \
  void ademamix_range(const AdemamixHyper& h, const StreamsBf16& x, size_t begin, size_t end);   \
  void simplified_range(const SimplifiedHyper& h, const StreamsBf16& x, size_t begin, size_t end); \
  void adamw_range(const AdamWHyper& h, const StreamsBf16& x, size_t begin, size_t end);
ADEMAMIX_CPU_ENTRY_POINTS

// The same entry points built twice from cpu_kernels.cc (CMake): `avx2` with -march=haswell (AVX2 + FMA; 256-bit
// loops and streaming stores) and `base` with the target's baseline flags. The ones above call one of the two,
// picked once per process from the CPU (cpu_dispatch.cc); the kernel check runs both.
namespace avx2 { ADEMAMIX_CPU_ENTRY_POINTS }
namespace base { ADEMAMIX_CPU_ENTRY_POINTS }
// "avx2" or "base": the build the entry points above use in this process (ADEMAMIX_CPU=base in the environment
// forces the baseline one).
const char* isa();
// The same for nn_kernels.h's entry points: "avx512" (AVX-512 F/BW/DQ/VL, when built), "avx2" or "base";
// ADEMAMIX_CPU=avx2 or base forces one of those.
const char* nn_isa();
}  // namespace cpu

}  // namespace ademamix
