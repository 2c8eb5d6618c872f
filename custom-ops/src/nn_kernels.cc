// CPU loops of the fused backward ops (include/ademamix/nn_kernels.h). Branch-free loops over restrict-qualified
// pointers so GCC vectorizes them without -ffast-math: exp and erfc are written out (below) instead of calling libm,
// and every sum over a row runs in kLanes independent partial sums added in a fixed order at the end (strict IEEE
// float math cannot be reordered by the compiler; the fixed lanes make the order independent of the vector width and
// of how rows are split between threads). The avx2 build contracts a·b + c into FMAs, so the two builds can differ
// in the last bits.
// Compiled per ISA like cpu_kernels.cc (namespace ADEMAMIX_CPU_ISA); compiled alone it defines the entry points itself.
#include <cstdint>
#include <cmath>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "ademamix/nn_kernels.h"
#include "prefetch.h"

namespace ademamix {
namespace cpu {
#if defined(ADEMAMIX_CPU_ISA)
namespace ADEMAMIX_CPU_ISA {
#endif
namespace {

constexpr size_t kLanes = 16;  // two 8-float vectors: lane k sums the elements at k mod 16

// GCC's generic vectors (SSE pairs on the base build, AVX registers on avx2): the compiler turned plain lane arrays
// into scalar adds; these keep each lane in a register
typedef float V8 __attribute__((vector_size(32)));
// internal inline helpers only: the 32-byte vector argument ABI GCC warns about on the base build never crosses a call
// (its note on template instances ignores this pragma: CMakeLists.txt also passes -Wno-psabi for this file)
#pragma GCC diagnostic ignored "-Wpsabi"
inline V8 Load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// The widest vector of the build: V8, or on avx512 16 floats (Tile's registers, GeluGrad's blocks)
#if defined(__AVX512F__)
typedef float VT __attribute__((vector_size(64)));
#else
typedef V8 VT;
#endif
constexpr size_t kTv = sizeof(VT) / sizeof(float);
inline VT LoadT(const float* p) {
  VT v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void StoreT(float* p, VT v) { std::memcpy(p, &v, sizeof v); }
inline float Sum16(V8 a, V8 b) {  // the 16 lanes, in lane order
  float s = 0.0f;
  for (int k = 0; k < 8; k++) s += a[k];
  for (int k = 0; k < 8; k++) s += b[k];
  return s;
}
// a·b + c as one FMA where the build has FMA (avx2 contracts it anyway), else rounded twice. Spelled out in the scalar
// tails of row sums: on avx512 GCC vectorizes such a tail as an in-order reduction of separately rounded products,
// which would differ from avx2 in the last bit.
inline float MulAdd(float a, float b, float c) {
#if defined(__FMA__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}
// Σ a ⊙ b over n: whole blocks of kLanes in the lanes, then the tail after them in order (a fixed order whatever n)
inline float Dot16(const float* a, const float* b, size_t n) {
  V8 l0 = {}, l1 = {};
  const size_t body = n / kLanes * kLanes;
  for (size_t j = 0; j < body; j += kLanes) {
    l0 += Load8(a + j) * Load8(b + j);
    l1 += Load8(a + j + 8) * Load8(b + j + 8);
  }
  float s = Sum16(l0, l1);
  for (size_t j = body; j < n; j++) s = MulAdd(a[j], b[j], s);
  return s;
}

// e^x for x in [-80, 88] (clamped there: e^-80 ≈ 2e-35 stands in for anything smaller and keeps the products
// below normal, where denormals would be slow): Cody–Waite reduction by ln 2 (Cephes' two-part constant), Cephes'
// degree-5 minimax polynomial for e^r on |r| ≤ ln2/2 (about 1 ulp), and 2^n put into the exponent bits. Rounds to
// nearest by the 1.5·2^23 trick (needs the default rounding mode, no fast-math).
// Written once for a float and for 8 lanes (F = float or V8: the same operations, so the same bits lane by lane; GCC
// does not vectorize a loop whose body also reduces, such as softmax's fused exp-and-sum, so those loops take V8).
typedef int32_t V8i __attribute__((vector_size(32)));
inline int32_t ToInt32(float n) { return static_cast<int32_t>(n); }
inline V8i ToInt32(V8 n) { return __builtin_convertvector(n, V8i); }
inline float ToFloat(int32_t n) { return static_cast<float>(n); }
inline V8 ToFloat(V8i n) { return __builtin_convertvector(n, V8); }
#if defined(__AVX512F__)
typedef int32_t VTi __attribute__((vector_size(64)));
inline VTi ToInt32(VT n) { return __builtin_convertvector(n, VTi); }
inline VT ToFloat(VTi n) { return __builtin_convertvector(n, VT); }
#endif
// e^x: x clamped to [kLo, kHi], n = round(x·log₂e) (by the 1.5·2^23 shift), r = x − n·ln 2 in two parts, a
// degree-5 polynomial (Cephes' expf) for (e^r − 1 − r)/r², then 2^n put into the exponent. One set of constants for
// the generic form and the avx512 one below.
struct ExpK {
  static constexpr float kLo = -80.0f, kHi = 88.0f, kLog2e = 1.44269504088896341f, kShift = 12582912.0f;
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = 2.12194440e-4f;  // r = x − n·kLn2Hi + n·kLn2Lo
  static constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                                  1.6666665459e-1f, 5.0000001201e-1f};
};
template <class F>
inline F Exp(F in) {
  // NaN takes the path of 0 (a NaN converted to int is undefined behaviour: the fuzzer found it) and comes back out
  // at the end
  const F zero{};
  F x = in == in ? in : zero;
  x = x < ExpK::kLo ? zero + ExpK::kLo : x;
  x = x > ExpK::kHi ? zero + ExpK::kHi : x;
  const F n = (x * ExpK::kLog2e + ExpK::kShift) - ExpK::kShift;
  F r = x - n * ExpK::kLn2Hi;
  r = r + n * ExpK::kLn2Lo;
  F p = zero + ExpK::kP[0];
  for (int i = 1; i < 6; i++) p = p * r + ExpK::kP[i];
  p = p * (r * r) + r + 1.0f;
  decltype(ToInt32(n)) bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += ToInt32(n) * (1 << 23);
  std::memcpy(&p, &bits, sizeof p);
  return in == in ? p : in;
}
#if defined(__AVX512F__)
// The same steps for a 16-float register, with AVX-512's own instructions where GCC makes two of a generic select:
// vmaxps/vminps with the bound first clamp and keep a NaN (they return the second operand when either is NaN, and
// the NaN then runs through to the final select instead of being zeroed first), and vscalefps multiplies by 2^n in
// one instruction instead of a convert, a shift and an integer add (exact here: n ≥ −116, so p·2^n is normal).
// Bit-identical to the template on all 2^32 inputs (checked 2026-12-04) at 15 cycles a vector instead of 17.5 (Zen 4).
inline VT Exp(VT in) {
  const auto k = [](float c) { return _mm512_set1_ps(c); };
  __m512 v;
  std::memcpy(&v, &in, sizeof v);
  // (the maskz forms with every lane set: the plain ones pass an "undefined" register GCC 12 warns about)
  constexpr __mmask16 all = 0xffff;
  __m512 x = _mm512_maskz_max_ps(all, k(ExpK::kLo), v);
  x = _mm512_maskz_min_ps(all, k(ExpK::kHi), x);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, k(ExpK::kLog2e), k(ExpK::kShift)), k(ExpK::kShift));
  __m512 r = _mm512_fnmadd_ps(n, k(ExpK::kLn2Hi), x);
  r = _mm512_fmadd_ps(n, k(ExpK::kLn2Lo), r);
  __m512 p = k(ExpK::kP[0]);
  for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, r, k(ExpK::kP[i]));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), k(1.0f));
  p = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_maskz_scalef_ps(all, p, n));
  VT out;
  std::memcpy(&out, &p, sizeof out);
  return out;
}
#endif

// erfc(z) for z ≥ 0 within 1.5e-7 (absolute; Abramowitz & Stegun 7.1.26), from e2 = e^(−z²), which the caller has:
// one division and a degree-5 polynomial, no second exp. F = float or V8, as Exp.
template <class F>
inline F ErfcPos(F z, F e2) {
  const F t = 1.0f / (1.0f + 0.3275911f * z);
  F q = F{} + 1.061405429f;
  q = q * t - 1.453152027f;
  q = q * t + 1.421413741f;
  q = q * t - 0.284496736f;
  q = q * t + 0.254829592f;
  return q * t * e2;
}
// Φ(v) = ½erfc(−v/√2) from e2 = e^(−v²/2) (½erfc of |v|/√2, mirrored for v ≥ 0), F = float, V8 or VT
template <class F>
inline F Cdf(F v, F e2) {
  const F h = 0.5f * ErfcPos((v < 0.0f ? -v : v) * 0.70710678118654752f, e2);
  return v < 0.0f ? h : 1.0f - h;
}
// dy·GELU'(v) of the erf form, F = float, V8 or VT (see gelu_grad)
template <class F>
inline F GeluGradAt(F dy, F v) {
  const F e2 = Exp(-0.5f * v * v);
  return dy * (Cdf(v, e2) + v * (0.39894228040143268f * e2));
}
// GELU(v) = v·Φ(v) of the erf form (the Φ of GeluGradAt). A NaN comes out as it went in (the product of two NaNs
// would take either operand's, which the two builds' instruction orders pick differently).
template <class F>
inline F GeluAt(F v) {
  const F y = v * Cdf(v, Exp(-0.5f * v * v));
  return v == v ? y : v;
}
// ½v(1 + tanh u), u = √(2/π)(v + 0.044715v³), with tanh u = 1 − 2/(e^(2u) + 1) (the tanh of gelu_grad's tanh form)
template <class F>
inline F GeluTanhAt(F v) {
  const F u = 0.79788456080286536f * (v + 0.044715f * (v * v) * v);
  const F y = 0.5f * v * (2.0f - 2.0f / (Exp(2.0f * u) + 1.0f));
  return v == v ? y : v;
}
inline void Store8(float* p, V8 v) { std::memcpy(p, &v, sizeof v); }

// Streaming loops run in blocks of kStreamBlock floats (or row by row), each requesting the lines kPrefetchAhead
// floats past it (PrefetchAhead, prefetch.h)
constexpr size_t kStreamBlock = 256;
// y[i] = f(in[i]...) over n floats of one or more input streams: blocks of whole vectors with the inputs prefetched,
// then a vector of each width, then single floats. f is generic (float, V8, VT: the same operations, so the same
// bits lane by lane whatever the width).
template <class F, class... In>
void MapStreams(float* __restrict y, size_t n, F f, const In*... in) {
  size_t i = 0;
  for (; i + kStreamBlock <= n; i += kStreamBlock) {
    (PrefetchAhead(in, i, kStreamBlock, n), ...);
    for (size_t j = i; j < i + kStreamBlock; j += kTv) StoreT(y + j, f(LoadT(in + j)...));
  }
  for (; i + kTv <= n; i += kTv) StoreT(y + i, f(LoadT(in + i)...));
  for (; i + 8 <= n; i += 8) Store8(y + i, f(Load8(in + i)...));
  for (; i < n; i++) y[i] = f(in[i]...);
}

}  // namespace

void gelu(const float* __restrict x, float* __restrict y, size_t n, bool tanh) {
  if (tanh) MapStreams(y, n, [](auto v) { return GeluTanhAt(v); }, x);
  else MapStreams(y, n, [](auto v) { return GeluAt(v); }, x);
}

void gelu_grad(const float* __restrict dy, const float* __restrict x, float* __restrict dx, size_t n, bool tanh) {
  if (tanh) {
    // y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³): y' = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)
    const float s = 0.79788456080286536f, c = 0.044715f;
    for (size_t i = 0; i < n; i++) {
      const float v = x[i], v2 = v * v;
      const float u = s * (v + c * v2 * v);
      const float t = 1.0f - 2.0f / (Exp(2.0f * u) + 1.0f);
      const float d = 0.5f * (1.0f + t) + 0.5f * v * ((1.0f - t * t) * (s * (1.0f + 3.0f * c * v2)));
      dx[i] = dy[i] * d;
    }
    return;
  }
  // y = xΦ(x): y' = Φ(x) + xφ(x), φ(x) = e^(−x²/2)/√(2π), Φ(x) = ½erfc(−x/√2) (from |x| and the sign). 8 lanes at
  // a time (the same operations as the scalar tail, so the same bits; GCC's own vectorization of the scalar loop
  // ran 1.44 ms per million elements on one thread, this 1.16, 2026-12-03)
  // (both inputs prefetched: x was written in the forward, long ago)
  MapStreams(dx, n, [](auto d, auto v) { return GeluGradAt(d, v); }, dy, x);
}

float sum_squares(const float* x, size_t n) { return Dot16(x, x, n); }

void softmax_grad(const float* dy, const float* __restrict y, float* dx, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; r++) {
    const float* a = dy + r * cols;
    const float* __restrict b = y + r * cols;
    float* o = dx + r * cols;
    PrefetchAhead(dy, r * cols, cols, rows * cols);
    PrefetchAhead(y, r * cols, cols, rows * cols);
    const float s = Dot16(a, b, cols);
    for (size_t c = 0; c < cols; c++) o[c] = b[c] * (a[c] - s);
  }
}

void layernorm(const float* __restrict x, const float* __restrict scale, const float* __restrict bias, float* __restrict y,
               float* __restrict mean, float* __restrict inv, size_t rows, size_t cols, float eps) {
  const float invCols = 1.0f / static_cast<float>(cols);
  for (size_t r = 0; r < rows; r++) {
    const float* __restrict v = x + r * cols;
    float* __restrict o = y + r * cols;
    PrefetchAhead(x, r * cols, cols, rows * cols);
    // ONNX's definition: mean, then the mean of squared deviations (two passes over the row, 16 fixed lanes each)
    V8 a0 = {}, a1 = {};
    const size_t body = cols / kLanes * kLanes;
    for (size_t j = 0; j < body; j += kLanes) { a0 += Load8(v + j); a1 += Load8(v + j + 8); }
    float s1 = Sum16(a0, a1);
    for (size_t j = body; j < cols; j++) s1 += v[j];
    const float mu = s1 * invCols;
    V8 b0 = {}, b1 = {};
    for (size_t j = 0; j < body; j += kLanes) {
      const V8 d0 = Load8(v + j) - mu, d1 = Load8(v + j + 8) - mu;
      b0 += d0 * d0; b1 += d1 * d1;
    }
    float s2 = Sum16(b0, b1);
    for (size_t j = body; j < cols; j++) s2 = MulAdd(v[j] - mu, v[j] - mu, s2);
    const float is = 1.0f / std::sqrt(s2 * invCols + eps);
    for (size_t c = 0; c < cols; c++) o[c] = (v[c] - mu) * is * scale[c] + bias[c];
    if (mean) mean[r] = mu;
    if (inv) inv[r] = is;
  }
}

void layernorm_grad(const float* dy, const float* __restrict x, const float* __restrict scale,
                    const float* __restrict mean, const float* __restrict inv, const float* __restrict dres,
                    float* dx, float* __restrict dscale, float* __restrict dbias, size_t rows, size_t cols) {
  const float invCols = 1.0f / static_cast<float>(cols);
  for (size_t r = 0; r < rows; r++) {
    const float* d = dy + r * cols;
    const float* __restrict v = x + r * cols;
    float* o = dx + r * cols;
    const float mu = mean[r], is = inv[r];
    PrefetchAhead(dy, r * cols, cols, rows * cols);
    PrefetchAhead(x, r * cols, cols, rows * cols);
    if (dres) PrefetchAhead(dres, r * cols, cols, rows * cols);
    V8 a0 = {}, a1 = {}, b0 = {}, b1 = {};  // Σ dx̂ and Σ dx̂·x̂, 16 lanes each
    const size_t body = cols / kLanes * kLanes;
    for (size_t j = 0; j < body; j += kLanes) {
      const V8 x0 = (Load8(v + j) - mu) * is, x1 = (Load8(v + j + 8) - mu) * is;
      const V8 g0 = Load8(d + j) * Load8(scale + j), g1 = Load8(d + j + 8) * Load8(scale + j + 8);
      a0 += g0; a1 += g1;
      b0 += g0 * x0; b1 += g1 * x1;
    }
    float s1 = Sum16(a0, a1), s2 = Sum16(b0, b1);
    for (size_t j = body; j < cols; j++) {
      const float xh = (v[j] - mu) * is, g = d[j] * scale[j];
      s1 += g;
      s2 = MulAdd(g, xh, s2);
    }
    const float m1 = s1 * invCols, m2 = s2 * invCols;
    for (size_t c = 0; c < cols; c++) {  // (d[c] read once: o may be d)
      const float xh = (v[c] - mu) * is, dc = d[c];
      o[c] = is * (dc * scale[c] - m1 - xh * m2);
      dscale[c] += dc * xh;
      dbias[c] += dc;
    }
    // dR added to the row just written (in L1): a pass of its own so the sum is rounded as the separate Add's (in
    // the loop above the avx2 build would contract it into the multiply's FMA)
    if (dres)
      for (size_t c = 0; c < cols; c++) o[c] = dres[r * cols + c] + o[c];
  }
}

namespace {
constexpr size_t kKc = kWeightGradKc;  // k per block: a tile's slices of packed A and B (6 KB + 16 KB, 32 KB on avx512) stay in L1
constexpr size_t kMr = kWeightGradTileRows;

// A(k, i) for a tile's rows: packed (weight_grad's block layout, kc × S) or strided (i < kMr) views of any matrix
// (rows past the tile's last valid one read that row again; their sums are never stored).
template <size_t S>
struct PackedA {
  const float* p;
  float operator()(size_t k, size_t i) const { return p[k * S + i]; }
};
template <size_t R>
struct StridedA {
  const float* p;
  size_t ak;
  size_t off[R];
  float operator()(size_t k, size_t i) const { return p[k * ak + off[i]]; }
};

// The register block of Tile: a row of kNr columns in two vectors VT (above). 16 columns of two V8s on the avx2 and
// base builds; on avx512 two 16-float registers, 32 columns (the same 12 accumulators, twice the work per FMA). Each
// C element is the same k-ordered chain of FMAs whatever the width, so avx512 and avx2 agree bit for bit.
constexpr size_t kNr = 2 * kTv;
static_assert(kWeightGradPanel % kNr == 0, "weight_grad's column splits must fall on Tile's panels");

// `rows` rows of kNr columns of a row-major matrix (rows ld floats apart, the first `cols` ≤ kNr of them valid) into
// dst as contiguous rows of kNr, zero past `cols`: the B operand of Tile.
inline void PackPanel(const float* src, size_t ld, size_t rows, size_t cols, float* __restrict dst) {
  if (cols == kNr) {
    for (size_t k = 0; k < rows; k++) {
      StoreT(dst + k * kNr, LoadT(src + k * ld));
      StoreT(dst + k * kNr + kTv, LoadT(src + k * ld + kTv));
    }
  } else {
    for (size_t k = 0; k < rows; k++)
      for (size_t j = 0; j < kNr; j++) dst[k * kNr + j] = j < cols ? src[k * ld + j] : 0.0f;
  }
}

// C[m0 .. m0+rows, n0 .. n0+kNr] (+)= Σ_{k < kc} A(k, m)·B(k, n) for R rows (rows ≤ R valid) with B's kNr columns
// packed at bp + kNr·k: 2R vector accumulators in registers, per k two loads of B and R broadcasts of A.
// `cols` < kNr: the panel past the last whole one (B's slice zero-padded): only those columns are stored.
// `bias` (columns n0…, or null): added to each stored sum after it is complete, as MatMul then Add round; then
// `res` (rows like C's, or null), as a residual Add after that.
// Half: only the panel's first kTv columns are summed (cols ≤ kTv; a causal product's diagonal panel), half the FMAs.
// `epi` (attention's products): maps each finished vector of sums of tile row i at column col to what is stored
// (after bias and res), as a pass of its own over C would.
struct NoEpi {
  VT operator()(VT v, size_t, size_t) const { return v; }
};
template <size_t R, class A, bool Half = false, class Epi = NoEpi>
__attribute__((always_inline)) inline void Tile(const A& a, const float* __restrict bp, float* __restrict C,
                                                size_t N, size_t rows, size_t cols, size_t n0, size_t kc, bool first,
                                                const float* bias = nullptr, const float* __restrict res = nullptr,
                                                const Epi& epi = Epi{}) {
  VT lo[R], hi[R];
  for (size_t i = 0; i < R; i++) { lo[i] = VT{}; hi[i] = VT{}; }
  for (size_t k = 0; k < kc; k++) {
    const VT b0 = LoadT(bp + k * kNr);
    if constexpr (Half) {
      for (size_t i = 0; i < R; i++) lo[i] += a(k, i) * b0;
      continue;
    }
    const VT b1 = LoadT(bp + k * kNr + kTv);
    for (size_t i = 0; i < R; i++) {
      const float x = a(k, i);
      lo[i] += x * b0;
      hi[i] += x * b1;
    }
  }
  if (rows == R && cols == kNr) {  // a whole tile: straight-line stores (the loop below spills lo/hi to the stack)
    VT bl{}, bh{};
    if (bias) { bl = LoadT(bias + n0); bh = LoadT(bias + n0 + kTv); }
    for (size_t i = 0; i < R; i++) {
      float* c = C + i * N + n0;
      VT l = first ? lo[i] : LoadT(c) + lo[i], h = first ? hi[i] : LoadT(c + kTv) + hi[i];
      if (bias) { l += bl; h += bh; }
      if (res) { l += LoadT(res + i * N + n0); h += LoadT(res + i * N + n0 + kTv); }
      StoreT(c, epi(l, i, n0));
      StoreT(c + kTv, epi(h, i, n0 + kTv));
    }
    return;
  }
  for (size_t i = 0; i < R; i++) {  // a constant trip count (and a test) keeps lo/hi in registers
    if (i >= rows) break;
    float* c = C + i * N + n0;
    alignas(64) float t[kNr];
    StoreT(t, lo[i]);
    StoreT(t + kTv, hi[i]);
    for (size_t j = 0; j < cols; j++) {
      const float v = first ? t[j] : c[j] + t[j], vb = bias ? v + bias[n0 + j] : v;
      t[j] = res ? vb + res[i * N + n0 + j] : vb;
    }
    StoreT(t, epi(LoadT(t), i, n0));
    if (cols > kTv) StoreT(t + kTv, epi(LoadT(t + kTv), i, n0 + kTv));
    std::memcpy(c, t, cols * sizeof(float));
  }
}

// weight_grad's row tiles: on avx512 (32 registers) 12 rows, 24 accumulators, so B's panel is read from L1 half as
// often and a broadcast feeds 2 FMAs of 16 lanes; elsewhere kMr (16 registers). Callers still split in kMr-row tiles;
// the sums, and so the bits, do not depend on the tile height.
constexpr size_t kMw = kTv == 16 ? 2 * kMr : kMr;
constexpr size_t kPackW = kMw <= 8 ? 8 : 16;  // the vector width the pack copies a tile's row of A with
static_assert(kPackW == 8 || kPackW == kTv, "a packed row is copied as one V8 or one VT");
inline void CopyRow(float* dst, const float* src) {
  if constexpr (kPackW == 8) Store8(dst, Load8(src)); else StoreT(dst, LoadT(src));
}
}  // namespace

void weight_grad(const float* __restrict a, const float* __restrict b, float* __restrict c, float* __restrict colsum,
                 size_t K, size_t M, size_t N, size_t t0, size_t t1, size_t n0, size_t n1, float* __restrict work) {
  constexpr size_t NR = kNr;
  alignas(64) float pack[kKc * NR];
  const size_t r0 = t0 * kMr, r1 = t1 * kMr < M ? t1 * kMr : M;  // this unit's rows of C
  const size_t tiles = (r1 - r0 + kMw - 1) / kMw;                 // in tiles of kMw rows
  if (colsum && t0 != 0) colsum = nullptr;  // the unit holding tile 0 sums dB (each column once, whatever the split)
  if (K == 0) {
    for (size_t m = r0; m < r1; m++) std::memset(c + m * N + n0, 0, (n1 - n0) * sizeof(float));
    if (colsum) std::memset(colsum + n0, 0, (n1 - n0) * sizeof(float));
  }
  // k blocks outermost: this unit's rows [k0, k0 + kc) of A packed into `work` (kc × kMw per tile: in L2),
  // then per kNr-column panel B's slice copied contiguous into L1 (B's rows sit N floats apart, often a power of two:
  // every row of an unpacked slice lands in the same few L1 sets) and every tile run over it. A whole-K pack read
  // from L3 once per panel, and packing by memcpy calls, measured 20–25 % slower (1-thread microbench, 2026-12-03).
  size_t whole = 0;  // tiles whose vector loads stay inside a row of A
  while (whole < tiles && r0 + whole * kMw + kPackW <= M) whole++;
  for (size_t k0 = 0; k0 < K; k0 += kKc) {
    const size_t kc = k0 + kKc < K ? kKc : K - k0;
    // (Each tile's run is kWeightGradPackPad floats longer than its kc × kMw: the runs' starts, 12 KB apart, would
    // all fall in the same L1 sets while a chunk writes into all of them; padded, M = 512's weight_grad ran ~10 %
    // faster, one thread, hot, Xeon, 2026-12-03.)
    // A in chunks of 16 rows: the chunk's rows are read into L1 by the first tile, then each tile copies its 16
    // rows × kMw floats to one contiguous run. Tile by tile down the whole block read a new line per row (rows M
    // floats apart, latency-bound: 16 % of weight_grad, Xeon, 2026-12-03); row by row wrote the tiles' runs, 6 KB
    // apart, into the same L1 sets.
    constexpr size_t kChunk = 16;
    for (size_t kb = 0; kb < kc; kb += kChunk) {
      const size_t ke = kb + kChunk < kc ? kb + kChunk : kc;
      for (size_t t = 0; t < tiles; t++) {
        const size_t m0 = r0 + t * kMw;
        const float* src = a + k0 * M + m0;
        float* dst = work + t * (kc * kMw + kWeightGradPackPad);
        if (t < whole) {  // vector stores overlapping the next row's first floats (rewritten by the next store; a
          size_t k = kb;  // tile's last row is copied exactly: the next tile's first row is already written)
          for (; k < ke && k + 1 < kc; k++) CopyRow(dst + k * kMw, src + k * M);
          for (; k < ke; k++) std::memcpy(dst + k * kMw, src + k * M, kMw * sizeof(float));
        } else {  // rows past M are zeros (rows past r1 but inside A are copied; their sums are not stored)
          for (size_t k = kb; k < ke; k++)
            for (size_t i = 0; i < kMw; i++) dst[k * kMw + i] = m0 + i < M ? src[k * M + i] : 0.0f;
        }
      }
    }
    // (the next k block's rows of A, ak0 on, spread over `slots`: this block's panels times tiles; see below)
    const size_t ak0 = k0 + kKc, akc = ak0 < K ? (ak0 + kKc < K ? kKc : K - ak0) : 0;
    const size_t slots = (n1 - n0 + NR - 1) / NR * tiles;
    for (size_t n = n0; n < n1; n += NR) {
      const size_t cols = n1 - n < NR ? n1 - n : NR;
      PackPanel(b + k0 * N + n, N, kc, cols, pack);
      if (colsum) {  // Σ_k B[k, n…] from the packed rows, k in order across the blocks (no second pass over B)
        alignas(64) float acc[NR] = {};
        if (k0) std::memcpy(acc, colsum + n, cols * sizeof(float));
        VT s0 = LoadT(acc), s1 = LoadT(acc + kTv);
        for (size_t k = 0; k < kc; k++) {
          s0 += LoadT(pack + k * NR);
          s1 += LoadT(pack + k * NR + kTv);
        }
        StoreT(acc, s0);
        StoreT(acc + kTv, s1);
        std::memcpy(colsum + n, acc, cols * sizeof(float));
      }
      // While the tiles run, the operands packed next are requested into L2 a tile's share at a time: B's next slice
      // (the next panel's rows in this k block, else the next k block's first panel) and, spread over all of this k
      // block's panels and tiles, the next k block's rows of A (this unit's columns). In the step both come from L3
      // or DRAM (B written by the op before, A by the forward) and the packs waited on them: gpt-mini's 17 nodes
      // 20.6–21.0 → 18.1–20.4 ms a step, four alternated runs each (Zen 4, 2026-12-04); most of it is B's (A's alone,
      // asked for a panel's share at a time, had gained nothing: docs/benchmarks.md).
      const size_t pcol = n + NR < n1 ? n + NR : n0, pk0 = n + NR < n1 ? k0 : k0 + kKc;
      const size_t pkc = pk0 < K ? (pk0 + kKc < K ? kKc : K - pk0) : 0, pcols = n1 - pcol < NR ? n1 - pcol : NR;
      const size_t slot0 = (n - n0) / NR * tiles;
      for (size_t t = 0; t < tiles; t++) {
        for (size_t q = t * pkc / tiles; q < (t + 1) * pkc / tiles; q++)
          PrefetchLines<false, 2>(b + (pk0 + q) * N, pcol, pcol + pcols);
        for (size_t q = (slot0 + t) * akc / slots; q < (slot0 + t + 1) * akc / slots; q++)
          PrefetchLines<false, 2>(a + (ak0 + q) * M, r0, r1);
        const size_t m0 = r0 + t * kMw, rows = r1 - m0 < kMw ? r1 - m0 : kMw;
        const PackedA<kMw> at{work + t * (kc * kMw + kWeightGradPackPad)};
        if (rows > kMr || kMw == kMr) Tile<kMw>(at, pack, c + m0 * N, N, rows, cols, n, kc, k0 == 0);
        else Tile<kMr>(at, pack, c + m0 * N, N, rows, cols, n, kc, k0 == 0);  // a short last tile: half the FMAs
      }
    }
  }
}

void linear(const float* __restrict x, const float* __restrict w, const float* __restrict bias,
            const float* __restrict res, float* __restrict y, size_t K, size_t N, size_t m0, size_t m1,
            float* __restrict work) {
  if (K == 0) {  // empty sums: the bias (and residual) alone
    for (size_t m = m0; m < m1; m++)
      for (size_t n = 0; n < N; n++) {
        const float v = bias ? 0.0f + bias[n] : 0.0f;
        y[m * N + n] = res ? v + res[m * N + n] : v;
      }
    return;
  }
  // Groups of kLinearCols columns of W packed into panels (work: K × kLinearCols floats however wide W is; gpt-mini's
  // layers are one group), then blocks of kRows rows (their slice of x, ≤ 96 KB, stays in L2 while every panel of the
  // group runs over it), k blocks of kKc inside (a panel's slice, ≤ 32 KB, in L1 while the block's tiles run over
  // it). x is read in place: a tile's kMw rows are kMw streams of consecutive floats, which the prefetchers follow.
  constexpr size_t kRows = 8 * kMw;
  for (size_t g0 = 0; g0 < N; g0 += kLinearCols) {
    const size_t gn = N - g0 < kLinearCols ? N - g0 : kLinearCols, panels = (gn + kNr - 1) / kNr;
    for (size_t p = 0; p < panels; p++)
      PackPanel(w + g0 + p * kNr, N, K, gn - p * kNr < kNr ? gn - p * kNr : kNr, work + p * K * kNr);
    for (size_t b0 = m0; b0 < m1; b0 += kRows) {
      const size_t b1 = b0 + kRows < m1 ? b0 + kRows : m1;
      for (size_t k0 = 0; k0 < K; k0 += kKc) {
        const size_t kc = k0 + kKc < K ? kKc : K - k0;
        const bool first = k0 == 0, last = k0 + kc == K;
        for (size_t p = 0; p < panels; p++) {
          const size_t n0 = g0 + p * kNr, cols = gn - p * kNr < kNr ? gn - p * kNr : kNr;
          // the next block's rows, a panel's share at a time: of x in this k block, of y's group in the last (y is a
          // fresh buffer; the write flag is a plain prefetch here: GCC emits prefetchw only with -mprfchw, which
          // measured 2-3 % slower on Zen 4, 2026-12-04). gpt-mini's 16 Linear nodes: 4 % less time over six alternated
          // ORT profiles (12.97-13.42 -> 12.38-13.03 ms a step, Xeon, 2026-12-03); x alone was within noise
          if (b1 < m1) {
            const size_t nb = (b1 + kRows < m1 ? b1 + kRows : m1) - b1;
            const size_t q0 = b1 + p * nb / panels, q1 = b1 + (p + 1) * nb / panels;
            for (size_t q = q0; q < q1; q++) PrefetchLines<false, 2>(x + q * K, k0, k0 + kc);
            if (last)
              for (size_t q = q0; q < q1; q++) PrefetchLines<true, 2>(y + q * N, g0, g0 + gn);
          }
          for (size_t r = b0; r < b1; r += kMw) {
            const size_t rows = b1 - r < kMw ? b1 - r : kMw;
            StridedA<kMw> at{x + r * K + k0, 1, {}};
            for (size_t i = 0; i < kMw; i++) at.off[i] = (i < rows ? i : rows - 1) * K;  // past the last row: it again
            Tile<kMw>(at, work + (p * K + k0) * kNr, y + r * N, N, rows, cols, n0, kc, first, last ? bias : nullptr,
                      last && res ? res + r * N : nullptr);
          }
        }
      }
    }
  }
}

namespace {
// Which part of a small product an attention step needs (causal attention skips the masked half):
//   kAll: every C[m, n] over every k; kLowerC: only C[m, n] with n ≤ m (the rest of C is left unwritten);
//   kKUpToM: row m sums k ≤ m only; kKFromM: row m sums k ≥ m only (whole register tiles: a tile sums from its
//   first row's bound to its last's, and the terms outside a row's bound are zeros of the causal mask).
enum class Part { kAll, kLowerC, kKUpToM, kKFromM };

// r[i][j] → r[j][i] for an 8 × 8 block in 8 vectors: pairs, then quads, then halves interleaved
// (__builtin_shufflevector: GCC 12 and clang both have it)
inline void Transpose8(V8 r[8]) {
  V8 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}
// B(k, n) = b[n·bn + k] (columns contiguous) into SmallGemm's kNr-column panels, zero past N: whole 8 × 8 blocks by
// Transpose8, the rest one float at a time (the scalar loop alone took 1.2 µs of a head's 6.7 µs S = QKᵀ, avx2).
inline void PackColumns(const float* b, size_t bn, size_t K, size_t N, size_t panels, float* __restrict bpack) {
  const size_t K8 = K / 8 * 8;
  for (size_t n0 = 0; n0 < panels * kNr; n0 += 8) {
    float* dst = bpack + (n0 / kNr) * K * kNr + n0 % kNr;  // row k of the panel's block at dst + k·kNr
    if (n0 + 8 <= N) {
      for (size_t k0 = 0; k0 < K8; k0 += 8) {
        V8 r[8];
        for (size_t i = 0; i < 8; i++) r[i] = Load8(b + (n0 + i) * bn + k0);
        Transpose8(r);
        for (size_t j = 0; j < 8; j++) Store8(dst + (k0 + j) * kNr, r[j]);
      }
      for (size_t k = K8; k < K; k++)
        for (size_t i = 0; i < 8; i++) dst[k * kNr + i] = b[(n0 + i) * bn + k];
    } else {
      for (size_t k = 0; k < K; k++)
        for (size_t i = 0; i < 8; i++) dst[k * kNr + i] = n0 + i < N ? b[(n0 + i) * bn + k] : 0.0f;
    }
  }
}

// C[m, n] (row stride ldc) = Σ_k A(k, m)·B(k, n) for m < M, n < N, k < K, with A(k, m) = a[k·ak + m·am] and
// B(k, n) = b[k·bk + n·bn], rows or columns of B contiguous (bn = 1 or bk = 1). A is read in place (broadcasts); B is first copied into zero-padded kNr-column panels
// (bpack: ceil(N/kNr)·kNr·K floats), contiguous, because every tile reads all of it: read in place, the rows of a
// head's K or V sit 3C floats apart and fall into a few L1 sets (in place: 1.6–2× slower, microbench 2026-12-03).
template <class Epi = NoEpi>
void SmallGemm(const float* a, size_t ak, size_t am, const float* b, size_t bk, size_t bn, float* c, size_t ldc, size_t M,
               size_t N, size_t K, Part part, float* __restrict bpack, const Epi& epi = Epi{}) {
  const size_t tiles = (M + kMr - 1) / kMr, panels = (N + kNr - 1) / kNr;
  if (bn == 1) {  // rows of B contiguous
    for (size_t p = 0; p < panels; p++) PackPanel(b + p * kNr, bk, K, N - p * kNr < kNr ? N - p * kNr : kNr, bpack + p * K * kNr);
  } else {  // columns contiguous (Kᵀ, Vᵀ: rows of K or V): 8 × 8 blocks transposed in registers
    PackColumns(b, bn, K, N, panels, bpack);
  }
  for (size_t t = 0; t < tiles; t++) {
    const size_t m0 = t * kMr, rows = M - m0 < kMr ? M - m0 : kMr;
    size_t kb = 0, ke = K;
    if (part == Part::kKUpToM) ke = m0 + rows < K ? m0 + rows : K;
    if (part == Part::kKFromM) kb = m0 < K ? m0 : K;
    StridedA<kMr> at{a + kb * ak + m0 * am, ak, {}};
    for (size_t i = 0; i < kMr; i++) at.off[i] = (i < rows ? i : rows - 1) * am;
    for (size_t p = 0; p < panels; p++) {
      const size_t n0 = p * kNr;
      if (part == Part::kLowerC && n0 > m0 + rows - 1) break;
      const size_t cols = N - n0 < kNr ? N - n0 : kNr;
      // the diagonal panel of a lower C: only its columns up to the tile's last row, in a half tile where they fit
      const size_t need = part == Part::kLowerC && m0 + rows - n0 < cols ? m0 + rows - n0 : cols;
      const auto e = [&epi, m0](VT v, size_t i, size_t col) { return epi(v, m0 + i, col); };  // C's row, not the tile's
      if (need <= kTv) Tile<kMr, StridedA<kMr>, true>(at, bpack + (p * K + kb) * kNr, c + m0 * ldc, ldc, rows, need, n0, ke - kb, true, nullptr, nullptr, e);
      else Tile<kMr>(at, bpack + (p * K + kb) * kNr, c + m0 * ldc, ldc, rows, cols, n0, ke - kb, true, nullptr, nullptr, e);
    }
  }
}

// How far row i of P (and dS) must hold zeros past its n valid entries: a causal product reads whole register tiles
// (kMr rows of A, the k range of a tile's last row), so up to the end of row i's tile, never further; the rest of
// the row is left as it is.
inline size_t ZeroEnd(size_t i, size_t T, bool causal) {
  const size_t e = (i / kMr + 1) * kMr;
  return causal ? (e < T ? e : T) : T;
}

// kTv floats at p of which `room` (≥ 1) may be touched: a whole vector, or the first `room` lanes through a copy (a
// row's last block when its length is not a multiple of the width: the next row starts right after it). Always
// inlined: an out-of-line part returning a vector would cross a call with the base build's vector ABI.
__attribute__((always_inline)) inline VT LoadUpTo(const float* p, size_t room) {
  if (room >= kTv) return LoadT(p);
  alignas(64) float t[kTv] = {};
  for (size_t l = 0; l < room; l++) t[l] = p[l];
  return LoadT(t);
}
__attribute__((always_inline)) inline void StoreUpTo(float* p, size_t room, VT v) {
  if (room >= kTv) return StoreT(p, v);
  alignas(64) float t[kTv];
  StoreT(t, v);
  for (size_t l = 0; l < room; l++) p[l] = t[l];
}
#if !defined(__AVX512F__)
typedef V8i VTi;
#endif
// Lanes of the vector at j that hold one of a row's first n entries
inline VTi Valid(size_t j, size_t n) {
  VTi lane;
  for (size_t l = 0; l < kTv; l++) lane[l] = static_cast<int32_t>(l);
  return lane < static_cast<int32_t>(n - j);
}

// ln x for x > 0 finite (the sums of exps, ≥ 1), NaN through: x = m·2^e with m in [√½, √2), then Cephes' degree-8
// polynomial for ln(1 + f) on f = m − 1 (about 1 ulp) and e·ln 2 in two parts. F = float, V8 or VT, as Exp.
template <class F>
inline F Log(F in) {
  decltype(ToInt32(in)) bits;
  std::memcpy(&bits, &in, sizeof bits);
  auto e = (bits >> 23) - 126;
  bits = (bits & 0x007fffff) | 0x3f000000;  // m in [0.5, 1)
  F m;
  std::memcpy(&m, &bits, sizeof m);
  const auto lowM = m < 0.70710678118654752f;
  e = lowM ? e - 1 : e;
  m = lowM ? m + m - 1.0f : m - 1.0f;
  const F z = m * m;
  F y = F{} + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const F fe = ToFloat(e);
  y = y + fe * -2.12194440e-4f;
  y = y - 0.5f * z;
  F r = m + y;
  r = r + fe * 0.693359375f;
  return in == in ? r : in;
}

// 8 lanes to one by a tree of `op` (l with l + 4, then l + 2, then l + 1)
template <class Op>
inline float Fold8(V8 v, Op op) {
  typedef float V4 __attribute__((vector_size(16)));
  typedef float V2 __attribute__((vector_size(8)));
  const V4 a = op(__builtin_shufflevector(v, v, 0, 1, 2, 3), __builtin_shufflevector(v, v, 4, 5, 6, 7));
  const V2 b = op(__builtin_shufflevector(a, a, 0, 1), __builtin_shufflevector(a, a, 2, 3));
  return op(b, __builtin_shufflevector(b, b, 1, 0))[0];
}
// The lower and upper 8 lanes of a VT by `op` (on avx2 a VT is already 8 lanes)
template <class Op>
inline V8 Halves(VT v, Op op) {
#if defined(__AVX512F__)
  return op(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
#else
  (void)op;
  return v;
#endif
}
constexpr auto kAdd = [](auto a, auto b) { return a + b; };
constexpr auto kMax = [](auto a, auto b) { return a > b ? a : b; };
// The 16 lane partials (one VT on avx512, two V8 elsewhere) summed as a tree, the same on both builds: lane l with
// l + 8, then l with l + 4, l + 2, l + 1 (4 dependent adds; in lane order they were 15, on every row of a softmax)
inline float SumTree16(const VT* zs) {
#if defined(__AVX512F__)
  return Fold8(Halves(zs[0], kAdd), kAdd);
#else
  return Fold8(zs[0] + zs[1], kAdd);
#endif
}
// The largest lane (exact in any order: a tree, as SumTree16)
inline float MaxLanes(VT m) { return Fold8(Halves(m, kMax), kMax); }

// R consecutive rows of scores (row r at s + r·ld: n[r] valid, `cap` floats of room each) to the unnormalized
// e^(scale·s − max) in place, zero from n[r] to at least zend[r]; sets mx[r] to the row's max and z[r] to
// Σ e^(scale·s − max) (the caller takes the logs, and applies 1/z to the rows of PV instead: D multiplies, not n).
// In vector blocks throughout, a row's last one masked (its lanes past n: no part of the max, exp 0), since GCC
// leaves a scalar `a > m ? a : m` reduction a chain of selects and an exp fused with its sum unvectorized. The sum
// runs in kLanes (16) lane partials, vector b into partial b mod (16 / kTv), then SumTree16: the same chain per lane
// with one 16-float vector (avx512) or two 8-float ones. A row is a few vectors of dependent work (max, then exps
// into sums, then the trees): R rows interleaved keep the core busy (one row at a time: a third of a causal head's
// forward, Xeon, 2026-12-03); each row's operations are the same whatever R.
template <size_t R>
void SoftmaxRows(float* s, size_t ld, const size_t* n, const size_t* zend, size_t cap, float scale, float* mx, float* z) {
  constexpr size_t kSub = kLanes / kTv;
  size_t nvec = 0;
  for (size_t r = 0; r < R; r++) nvec = (n[r] + kTv - 1) / kTv > nvec ? (n[r] + kTv - 1) / kTv : nvec;
  VT m[R];
  for (size_t r = 0; r < R; r++) m[r] = VT{} - 3.4e38f;
  for (size_t b = 0; b < nvec; b++) {
    const size_t j = b * kTv;
    for (size_t r = 0; r < R; r++) {
      if (j >= n[r]) continue;
      const float* row = s + r * ld;
      if (j + kTv <= n[r]) {
        const VT a = LoadT(row + j) * scale;
        m[r] = a > m[r] ? a : m[r];
      } else {
        const VT a = LoadUpTo(row + j, cap - j) * scale;
        m[r] = Valid(j, n[r]) && a > m[r] ? a : m[r];
      }
    }
  }
  float mr[R];
  VT zs[R][kSub] = {};
  for (size_t r = 0; r < R; r++) mr[r] = MaxLanes(m[r]);
  for (size_t b = 0; b < nvec; b++) {
    const size_t j = b * kTv;
    for (size_t r = 0; r < R; r++) {
      if (j >= n[r]) continue;
      float* row = s + r * ld;
      if (j + kTv <= n[r]) {
        const VT e = Exp(LoadT(row + j) * scale - mr[r]);
        StoreT(row + j, e);
        zs[r][b % kSub] += e;
      } else {
        const VT e = Valid(j, n[r]) ? Exp(LoadUpTo(row + j, cap - j) * scale - mr[r]) : VT{};
        StoreUpTo(row + j, cap - j, e);
        zs[r][b % kSub] += e;
      }
    }
  }
  for (size_t r = 0; r < R; r++) {
    mx[r] = mr[r];
    z[r] = SumTree16(zs[r]);
    float* row = s + r * ld;
    for (size_t j = (n[r] + kTv - 1) / kTv * kTv; j < zend[r]; j++) row[j] = 0.0f;
  }
}
// Attention's epilogues (Tile's `epi`, r a row of C), applied as each tile of sums is finished, in registers, instead
// of a pass over the rows after the product (the same operations, so the same bits): the forward's rows of Y times
// 1/(their sum of exps); the backward's P = e^(scale·S − lse) and dS = P ⊙ (dP − δ)·scale, δ = Σ_d dY ⊙ Y of the row,
// both zero past the diagonal when causal (where a tile's stored columns reach past it: the zeros ZeroEnd asks for).
struct RowScaleEpi {
  const float* inv;
  VT operator()(VT v, size_t r, size_t) const { return v * inv[r]; }
};
struct ProbEpi {
  const float* lse;
  float scale;
  bool causal;
  VT operator()(VT v, size_t r, size_t col) const {
    if (causal && col > r) return VT{};
    const VT e = Exp(v * scale - lse[r]);
    return causal ? (Valid(col, r + 1) ? e : VT{}) : e;
  }
};
struct DsEpi {
  const float* p;
  size_t T;
  const float* delta;
  float scale;
  bool causal;
  VT operator()(VT v, size_t r, size_t col) const {
    if (col >= T || (causal && col > r)) return VT{};
    const VT d = LoadUpTo(p + r * T + col, T - col) * (v - delta[r]) * scale;
    return causal ? (Valid(col, r + 1) ? d : VT{}) : d;
  }
};
}  // namespace

void softmax_xent(const float* __restrict x, const int64_t* __restrict t, float* __restrict lp, float* __restrict loss,
                  size_t rows, size_t cols, int64_t ignore) {
  // e^(x − max) into lp with the row's max and sum (SoftmaxRows, four rows at a time as the attention's softmax),
  // then lp = x − (max + ln z) from x again
  constexpr size_t kR = 4;
  float mx[kR], z[kR];
  size_t n[kR], zend[kR];
  for (size_t r = 0; r < kR; r++) n[r] = zend[r] = cols;
  for (size_t r0 = 0; r0 < rows; r0 += kR) {
    const size_t nr = rows - r0 < kR ? rows - r0 : kR;
    PrefetchAhead(x, r0 * cols, nr * cols, rows * cols);
    std::memcpy(lp + r0 * cols, x + r0 * cols, nr * cols * sizeof(float));
    if (nr == kR) SoftmaxRows<kR>(lp + r0 * cols, cols, n, zend, cols, 1.0f, mx, z);
    else for (size_t r = 0; r < nr; r++) SoftmaxRows<1>(lp + (r0 + r) * cols, cols, n, zend, cols, 1.0f, mx + r, z + r);
    for (size_t r = 0; r < nr; r++) {
      const float lse = mx[r] + Log(z[r]);
      const float* __restrict v = x + (r0 + r) * cols;
      float* __restrict o = lp + (r0 + r) * cols;
      for (size_t j = 0; j < cols; j++) o[j] = v[j] - lse;
      const int64_t c = t[r0 + r];
      loss[r0 + r] = c == ignore ? 0.0f : -o[c];
    }
  }
}

void softmax_xent_grad(const float* __restrict lp, const int64_t* __restrict t, const float* __restrict w,
                       float* __restrict dx, size_t rows, size_t cols, int64_t ignore) {
  for (size_t r = 0; r < rows; r++) {
    const float* __restrict v = lp + r * cols;
    float* __restrict o = dx + r * cols;
    const int64_t c = t[r];
    if (c == ignore) { std::memset(o, 0, cols * sizeof(float)); continue; }
    PrefetchAhead(lp, r * cols, cols, rows * cols);
    const float wr = w[r];
    size_t j = 0;
    for (; j + kTv <= cols; j += kTv) StoreT(o + j, Exp(LoadT(v + j)) * wr);
    for (; j < cols; j++) o[j] = Exp(v[j]) * wr;
    o[c] = (Exp(v[c]) - 1.0f) * wr;
  }
}

void attention_forward(const float* q, const float* k, const float* v, size_t ld, float* y, size_t ldy, float* lse,
                       size_t T, size_t D, float scale, bool causal, float* work) {
  float *s = work, *inv = s + T * T, *bp = s + 2 * T * T;
  SmallGemm(q, 1, ld, k, 1, ld, s, T, T, T, D, causal ? Part::kLowerC : Part::kAll, bp);  // S = QKᵀ
  constexpr size_t kRows = 4;
  size_t n[kRows], zend[kRows];
  size_t i = 0;
  for (; i + kRows <= T; i += kRows) {
    for (size_t r = 0; r < kRows; r++) { n[r] = causal ? i + r + 1 : T; zend[r] = ZeroEnd(i + r, T, causal); }
    SoftmaxRows<kRows>(s + i * T, T, n, zend, T, scale, lse + i, inv + i);
  }
  for (; i < T; i++) {
    n[0] = causal ? i + 1 : T; zend[0] = ZeroEnd(i, T, causal);
    SoftmaxRows<1>(s + i * T, T, n, zend, T, scale, lse + i, inv + i);
  }
  // lse = max + ln z and 1/z, the rows' logs in vectors (a libm logf per row was 5 % of a head's forward)
  const size_t tv = T / kTv * kTv;
  for (i = 0; i < tv; i += kTv) {
    const VT z = LoadT(inv + i);
    StoreT(lse + i, LoadT(lse + i) + Log(z));
    StoreT(inv + i, 1.0f / z);
  }
  for (i = tv; i < T; i++) {
    lse[i] += Log(inv[i]);
    inv[i] = 1.0f / inv[i];
  }
  // Y = e^(S − max)·V, each row times 1/its sum as its tile is stored
  SmallGemm(s, 1, T, v, ld, 1, y, ldy, T, D, T, causal ? Part::kKUpToM : Part::kAll, bp, RowScaleEpi{inv});
}

void attention_backward(const float* dy, size_t lddy, const float* q, const float* k, const float* v, size_t ld,
                        const float* y, size_t ldy, const float* lse, float* dq, float* dk, float* dv, size_t ldd, size_t T,
                        size_t D, float scale, bool causal, float* work) {
  const size_t R = T > D ? T : D;
  float *p = work, *ds = p + T * T, *bp = ds + T * T, *delta = bp + (R + 31) / 32 * 32 * R;
  const Part lower = causal ? Part::kLowerC : Part::kAll;
  SmallGemm(q, 1, ld, k, 1, ld, p, T, T, T, D, lower, bp, ProbEpi{lse, scale, causal});  // P = e^(QKᵀ·scale − lse)
  for (size_t i = 0; i < T; i++) delta[i] = Dot16(dy + i * lddy, y + i * ldy, D);
  SmallGemm(dy, 1, lddy, v, 1, ld, ds, T, T, T, D, lower, bp, DsEpi{p, T, delta, scale, causal});  // dS from dP = dY Vᵀ
  SmallGemm(p, T, 1, dy, lddy, 1, dv, ldd, T, D, T, causal ? Part::kKFromM : Part::kAll, bp);  // dV = Pᵀ dY
  SmallGemm(ds, 1, T, k, ld, 1, dq, ldd, T, D, T, causal ? Part::kKUpToM : Part::kAll, bp);   // dQ = dS K
  SmallGemm(ds, T, 1, q, ld, 1, dk, ldd, T, D, T, causal ? Part::kKFromM : Part::kAll, bp);   // dK = dSᵀ Q
}

#if defined(ADEMAMIX_CPU_ISA)
}  // namespace ADEMAMIX_CPU_ISA
#endif
}  // namespace cpu
}  // namespace ademamix
