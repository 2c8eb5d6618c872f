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

namespace cpu {
// One optimizer step over elements [begin, end) of one tensor (any sub-range: callers split tensors across
// threads). Plain C++ entry points, callable without ORT (tests, benchmarks). For AdEMAMix, beta1 = 0 selects the
// two-state form: x.state = {m2, nu}; otherwise {m1, m2, nu}. Simplified: {m, nu} (h.s1 is S1 after this step's
// update, used only with bias_correction1). AdamW: {m, v}. The bf16 overloads store the states as bfloat16.
void ademamix_range(const AdemamixHyper& h, const Streams& x, size_t begin, size_t end);
void simplified_range(const SimplifiedHyper& h, const Streams& x, size_t begin, size_t end);
void adamw_range(const AdamWHyper& h, const Streams& x, size_t begin, size_t end);
void ademamix_range(const AdemamixHyper& h, const StreamsBf16& x, size_t begin, size_t end);
void simplified_range(const SimplifiedHyper& h, const StreamsBf16& x, size_t begin, size_t end);
void adamw_range(const AdamWHyper& h, const StreamsBf16& x, size_t begin, size_t end);
}  // namespace cpu

}  // namespace ademamix
