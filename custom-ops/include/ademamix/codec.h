// Coded optimizer states (the `<Op>Coded` ops; src/optim/precision.ts): each state slot is stored as float32,
// bfloat16 or 8-bit blockwise, and the per-element math of kernels.h runs unchanged in float32 between a per-slot
// load (decode) and store (encode). 8-bit follows bitsandbytes' blockwise optimizers: blocks of kQuantBlock (256)
// elements, one float32 absmax per block (max |x| of the block's new values), codes of a 256-value dynamic map
// (signed for momenta, unsigned for second moments) by nearest value of x / absmax (ties upwards, decided by the
// generated thresholds). Stochastic rounding (optional): bf16 adds 16 random bits below the kept half; 8-bit picks
// the upper of the two neighbouring map values with probability (x − lo) / (hi − lo). Random bits come from a
// counter-based hash of (seed, step, slot, tensor, element), so results do not depend on threads or launch order
// and a resumed run is bit-exact. Shared by the CPU loops (ops.cc) and the CUDA kernel (cuda_kernels.cu).
#pragma once
#include <cstdint>
#include <cstring>
#include "ademamix/kernels.h"

namespace ademamix {

enum : int { kFmtF32 = 0, kFmtBf16 = 1, kFmt8bit = 2 };
constexpr int kQuantBlock = schema::kQuantBlock;
static_assert(kQuantBlock == 256, "the CUDA kernel runs one 256-thread block per quantization block");

// What a coded launch needs besides the tensors: per active slot its format and map, and the rounding mode.
struct CodedConfig {
  int n_states;                  // active slots (AdEMAMix at beta1 = 0: m2, nu)
  int fmt[kMaxStates];           // kFmt* per active slot
  int is_signed[kMaxStates];     // 8-bit map per active slot (1 signed, 0 unsigned)
  int slot_id[kMaxStates];       // the slot's index in the definition (for the random stream)
  int stochastic;                // 1: stochastic rounding of bf16 and 8-bit stores
  uint32_t seed;
  int64_t step;
};

// One tensor of a coded launch. state/state_out point to float, bf16 or uint8 by the slot's format; absmax/absmax_out
// (8-bit slots) hold ceil(n / 256) floats.
struct CodedTensor {
  const float* param;
  const float* grad;
  float* param_out;
  const void* state[kMaxStates];
  void* state_out[kMaxStates];
  const float* absmax[kMaxStates];
  float* absmax_out[kMaxStates];
  int64_t n;
};

// murmur3's 32-bit finalizer: full avalanche, so consecutive counters give independent-looking bits.
ADEMAMIX_HD uint32_t mix32(uint32_t h) {
  h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
  return h;
}
ADEMAMIX_HD uint32_t rand_bits(uint32_t seed, int64_t step, int slot, uint32_t tensor, int64_t i) {
  uint32_t h = mix32(seed ^ 0x9E3779B9u);
  h = mix32(h ^ static_cast<uint32_t>(step)) ^ static_cast<uint32_t>(static_cast<uint64_t>(step) >> 32);
  h = mix32(h ^ (static_cast<uint32_t>(slot) * 0x27D4EB2Fu) ^ (tensor * 0x165667B1u));
  h = mix32(h ^ static_cast<uint32_t>(i)) ^ static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32);
  return mix32(h);
}

// bf16 with stochastic rounding: the dropped 16 bits round up with probability (their value) / 2^16. Inf and NaN
// take the nearest-even path (which keeps them).
ADEMAMIX_HD bf16 f32_to_bf16_sr(float f, uint32_t r) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7F800000u) == 0x7F800000u) return f32_to_bf16(f);
  return bf16{static_cast<uint16_t>((u + (r & 0xFFFFu)) >> 16)};
}

// Nearest map code of a normalized value: the largest k with x >= thr[k], by 8 steps of binary search (thr[0] is
// never read). NaN compares false everywhere: code 0. Branch-free (a mask, not a jump): the comparisons are data-
// dependent coin flips that a branch predictor gets wrong half the time.
ADEMAMIX_HD int quant_nearest(float x, const float* thr) {
  int c = 0;
ADEMAMIX_UNROLL
  for (int b = 128; b >= 1; b >>= 1) c += b & -static_cast<int>(x >= thr[c + b]);
  return c;
}

// Stochastic: between the two map values around x, the upper one with probability (x − lo) / (hi − lo); outside
// the map's range, its end value.
ADEMAMIX_HD int quant_stochastic(float x, const float* map, uint32_t r) {
  int c = 0;
ADEMAMIX_UNROLL
  for (int b = 128; b >= 1; b >>= 1) c += b & -static_cast<int>(x >= map[c + b]);
  if (c == 255 || !(x >= map[c])) return c;  // at/above the top, or below the bottom (or NaN)
  const float lo = map[c], hi = map[c + 1];
  const float p = (x - lo) / (hi - lo);
  const float u = static_cast<float>(r >> 8) * (1.0f / 16777216.0f);  // 24 random bits in [0, 1)
  return u < p ? c + 1 : c;
}

// Element loads for each format (8-bit: the map value times the block's absmax).
ADEMAMIX_HD float load_coded(int fmt, const void* p, int64_t i, const float* map, float absmax) {
  if (fmt == kFmtF32) return static_cast<const float*>(p)[i];
  if (fmt == kFmtBf16) return bf16_to_f32(static_cast<const bf16*>(p)[i]);
  return map[static_cast<const uint8_t*>(p)[i]] * absmax;
}

// Stores of fp32 and bf16 elements (8-bit stores need the block's absmax first: see the callers).
ADEMAMIX_HD void store_wide(int fmt, void* p, int64_t i, float x, bool stochastic, uint32_t r) {
  if (fmt == kFmtF32) static_cast<float*>(p)[i] = x;
  else static_cast<bf16*>(p)[i] = stochastic ? f32_to_bf16_sr(x, r) : f32_to_bf16(x);
}

// The 8-bit code of x in a block of absmax a (a = 0: every value of the block is 0; store the map's zero).
ADEMAMIX_HD uint8_t code_of(float x, float a, const float* map, const float* thr, int zero_code, bool stochastic, uint32_t r) {
  if (a == 0.0f) return static_cast<uint8_t>(zero_code);
  const float v = x / a;
  return static_cast<uint8_t>(stochastic ? quant_stochastic(v, map, r) : quant_nearest(v, thr));
}

// The functor of op `op_index` (schema::kOps) built from the generic hyperparameters, handed to `f`: the three
// original optimizers' functors take their own Hyper structs, filled here from the schema's attribute and scalar
// indices, so one coded skeleton serves every definition. Host code. Returns false for an unknown index.
template <class F>
bool with_functor(int op_index, const GenericHyper& h, F&& f) {
  using namespace schema;
  switch (op_index) {
    case 0: {  // AdEMAMix
      const AdemamixHyper a{h.attr[kAdEMAMix_beta1], h.attr[kAdEMAMix_beta2], h.attr[kAdEMAMix_eps], h.attr[kAdEMAMix_weight_decay],
                            h.scalar[kAdEMAMix_scalar_lr], h.scalar[kAdEMAMix_scalar_alpha], h.scalar[kAdEMAMix_scalar_beta3], h.step};
      if (a.beta1 != 0.0) f(AdemamixOp<true>(a));
      else f(AdemamixOp<false>(a));
      return true;
    }
    case 1: {  // Simplified-AdEMAMix without S1 (the coded op refuses bias_correction1)
      const SimplifiedHyper s{h.attr[kSimplifiedAdEMAMix_beta2], h.attr[kSimplifiedAdEMAMix_eps], h.attr[kSimplifiedAdEMAMix_weight_decay],
                              h.scalar[kSimplifiedAdEMAMix_scalar_lr], h.scalar[kSimplifiedAdEMAMix_scalar_alpha],
                              h.scalar[kSimplifiedAdEMAMix_scalar_beta1], h.step, false,
                              h.attr[kSimplifiedAdEMAMix_bias_correction2] != 0.0, 1.0};
      f(SimplifiedOp(s));
      return true;
    }
    case 2: {  // AdamW
      const AdamWHyper a{h.attr[kAdamW_beta1], h.attr[kAdamW_beta2], h.attr[kAdamW_eps], h.attr[kAdamW_weight_decay],
                         h.scalar[kAdamW_scalar_lr], h.step};
      f(AdamWOp(a));
      return true;
    }
#define ADEMAMIX_CODED_CASE(IDX, OP, FUNCTOR) \
  case IDX: f(FUNCTOR(h)); return true;
    ADEMAMIX_GENERIC_OPS(ADEMAMIX_CODED_CASE)
#undef ADEMAMIX_CODED_CASE
    default: return false;
  }
}
namespace cpu {
// One quantization block [b·256, min(n, (b+1)·256)) of one tensor: decode every slot, run the functor, encode. The
// whole block is read before anything is written, so outputs may alias their inputs. `denom`: the functor's
// per-tensor norm (1 unless it has a norm pass). Formats are dispatched per slot outside the element loops, and
// codes go to a local buffer first: a store through a uint8_t pointer may alias anything, which would make the
// compiler reload every pointer and table after each code.
// The CPU's nearest-code search starts from a table indexed by the top 13 bits of the float (sign, exponent, 4
// mantissa bits): for every such bucket the codes of its two end values bound the code of anything inside it (codes
// are monotone in x), so one to three steps of the same threshold search finish it. Exactly quant_nearest's result;
// built once from quant_nearest itself.
struct NearestTable {
  uint8_t lo[1 << 13], top[1 << 13];  // first code; highest power of two <= the bucket's code span (0: one code)
  explicit NearestTable(const float* thr) {
    for (uint32_t k = 0; k < (1u << 13); k++) {
      const int a = quant_nearest(bits_f32(k << 19), thr), b = quant_nearest(bits_f32((k << 19) | 0x7FFFFu), thr);
      const int l = a < b ? a : b, span = (a < b ? b : a) - l;
      int t = 0;
      while (t * 2 <= span && span) t = t ? t * 2 : 1;
      lo[k] = static_cast<uint8_t>(l);
      top[k] = static_cast<uint8_t>(t);
    }
  }
  int code(float x, const float* __restrict thr) const {
    const uint32_t k = f32_bits(x) >> 19;
    int c = lo[k];
    const int hi = c + 2 * top[k] - (top[k] ? 1 : 0) > 255 ? 255 : c + 2 * top[k] - (top[k] ? 1 : 0);
    for (int b = top[k]; b >= 1; b >>= 1) {
      const int n = c + b;
      c += b & -static_cast<int>(n <= hi && x >= thr[n <= 255 ? n : 255]);
    }
    return c;
  }
};
inline const NearestTable& nearest_table(bool is_signed) {
  static const NearestTable s(schema::kQuantThrSigned), u(schema::kQuantThrUnsigned);
  return is_signed ? s : u;
}

template <class Op>
inline void coded_block(const Op& op0, float denom, const CodedConfig& cfg, const CodedTensor& t, uint32_t tensor, int64_t b) {
  constexpr int K = Op::kStates;
  Op op = op0;
  op.denom = denom;
  const int64_t lo = b * kQuantBlock, hi = lo + kQuantBlock < t.n ? lo + kQuantBlock : t.n;
  const int len = static_cast<int>(hi - lo);
  alignas(64) float s[K][kQuantBlock];
  const bool sr = cfg.stochastic != 0;
  for (int k = 0; k < K; k++) {
    float* __restrict dst = s[k];
    if (cfg.fmt[k] == kFmtF32) {
      std::memcpy(dst, static_cast<const float*>(t.state[k]) + lo, sizeof(float) * len);
    } else if (cfg.fmt[k] == kFmtBf16) {
      const bf16* __restrict src = static_cast<const bf16*>(t.state[k]) + lo;
      for (int i = 0; i < len; i++) dst[i] = bf16_to_f32(src[i]);
    } else {
      const uint8_t* __restrict src = static_cast<const uint8_t*>(t.state[k]) + lo;
      const float* __restrict map = cfg.is_signed[k] ? schema::kQuantMapSigned : schema::kQuantMapUnsigned;
      const float a = t.absmax[k][b];
      for (int i = 0; i < len; i++) dst[i] = map[src[i]] * a;
    }
  }
  {
    const float* __restrict P = t.param + lo;
    const float* __restrict G = t.grad + lo;
    alignas(64) float po[kQuantBlock];
    for (int i = 0; i < len; i++) {
      float e[K];
      for (int k = 0; k < K; k++) e[k] = s[k][i];
      po[i] = op.update(P[i], G[i], e);
      for (int k = 0; k < K; k++) s[k][i] = e[k];
    }
    std::memcpy(t.param_out + lo, po, sizeof(float) * len);
  }
  for (int k = 0; k < K; k++) {
    const float* __restrict src = s[k];
    if (cfg.fmt[k] == kFmtF32) { std::memcpy(static_cast<float*>(t.state_out[k]) + lo, src, sizeof(float) * len); continue; }
    if (cfg.fmt[k] == kFmtBf16) {
      alignas(64) bf16 out[kQuantBlock];
      if (sr) for (int i = 0; i < len; i++) out[i] = f32_to_bf16_sr(src[i], rand_bits(cfg.seed, cfg.step, cfg.slot_id[k], tensor, lo + i));
      else for (int i = 0; i < len; i++) out[i] = f32_to_bf16(src[i]);
      std::memcpy(static_cast<bf16*>(t.state_out[k]) + lo, out, sizeof(bf16) * len);
      continue;
    }
    const float* __restrict map = cfg.is_signed[k] ? schema::kQuantMapSigned : schema::kQuantMapUnsigned;
    const float* __restrict thr = cfg.is_signed[k] ? schema::kQuantThrSigned : schema::kQuantThrUnsigned;
    float a = 0.0f;
    for (int i = 0; i < len; i++) { const float m = src[i] < 0 ? -src[i] : src[i]; a = m > a ? m : a; }
    t.absmax_out[k][b] = a;
    alignas(64) uint8_t codes[kQuantBlock];
    if (a == 0.0f) {
      std::memset(codes, quant_nearest(0.0f, thr), len);
    } else if (sr) {
      for (int i = 0; i < len; i++) codes[i] = static_cast<uint8_t>(quant_stochastic(src[i] / a, map, rand_bits(cfg.seed, cfg.step, cfg.slot_id[k], tensor, lo + i)));
    } else {
      const NearestTable& tab = nearest_table(cfg.is_signed[k] != 0);
      for (int i = 0; i < len; i++) codes[i] = static_cast<uint8_t>(tab.code(src[i] / a, thr));
    }
    std::memcpy(static_cast<uint8_t*>(t.state_out[k]) + lo, codes, len);
  }
}

// The norm pass of a functor that has one (MARS): Σ pre(g, s)² over one block, states decoded, in double.
template <class Op>
inline double coded_sumsq(const Op& op, const CodedConfig& cfg, const CodedTensor& t, int64_t b) {
  if constexpr (Op::kNormPass) {
    constexpr int K = Op::kStates;
    const int64_t lo = b * kQuantBlock, hi = lo + kQuantBlock < t.n ? lo + kQuantBlock : t.n;
    double acc = 0;
    for (int64_t i = lo; i < hi; i++) {
      float e[K];
      for (int k = 0; k < K; k++) {
        const float* map = cfg.is_signed[k] ? schema::kQuantMapSigned : schema::kQuantMapUnsigned;
        e[k] = load_coded(cfg.fmt[k], t.state[k], i, map, cfg.fmt[k] == kFmt8bit ? t.absmax[k][b] : 0.0f);
      }
      const double c = op.pre(t.grad[i], e);
      acc += c * c;
    }
    return acc;
  } else {
    (void)op; (void)cfg; (void)t; (void)b;
    return 0.0;
  }
}
}  // namespace cpu

}  // namespace ademamix
