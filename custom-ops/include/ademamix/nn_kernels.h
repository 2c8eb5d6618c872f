// CPU loops of the fused backward ops (src/nn_ops.cc): the gradients of GELU, Softmax and LayerNormalization in one
// pass each, where the standard-op form of the same rule (src/ops/fused.ts, also the ops' function bodies) takes
// 4–12 elementwise passes and broadcast reductions. Plain C++, no ORT, float32 throughout; built like
// cpu_kernels.cc for avx2 and base, and once more for avx512 (x86-64-v4: the matrix tiles in 16-float registers),
// picked by cpu_dispatch.cc; avx512 and avx2 give the same bits. Row sums use 16 fixed lanes, so results do not depend on
// how callers split the rows between threads.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ademamix {
namespace cpu {

// dx[i] = dy[i] · GELU'(x[i]) for i in [0, n); tanh: the tanh approximation's derivative, else the exact (erf) one.
// In softmax_grad and layernorm_grad dx may be dy (in place); no other output may alias an input.
// softmax_grad: rows of `cols` elements, dx = y ⊙ (dy − Σ_row dy ⊙ y).
// layernorm_grad: rows of `cols` elements normalized with per-row mean and inv (1/σ), x̂ = (x − mean)·inv,
//   dx = inv·(dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)) with dx̂ = dy ⊙ scale; adds Σ_rows dy ⊙ x̂ to dscale[cols] and
//   Σ_rows dy to dbias[cols] (row by row, in order); dres (or null): X's gradient from elsewhere, dx = dres + that.
// weight_grad: the weight and bias gradients of a linear layer from its flattened input A [K, M] and output gradient
//   B [K, N] (K = batch × rows): the block of C = AᵀB [M, N] in row tiles [t0, t1) (kWeightGradTileRows rows each)
//   and columns [n0, n1), and, when colsum is not null and t0 == 0, columns [n0, n1) of colsum = Σ_k B[k, :].
//   n0 must be a multiple of kWeightGradPanel; callers split the tiles or the panels between threads (the larger of
//   A and B is then read once, the smaller by every thread). `work`: weight_grad_work_size(t1 − t0) floats of the
//   calling thread. Each element is one sum over k in fixed blocks, in order, so the result does not depend on the split.
constexpr size_t kWeightGradPanel = 32, kWeightGradTileRows = 6, kWeightGradKc = 256;
// (one tile more than the unit's: the avx512 build packs A in tiles of twice the rows, the last one padded)
constexpr size_t kWeightGradPackPad = 48;  // floats between the packed runs of A's tiles (a few L1 sets apart)
inline size_t weight_grad_work_size(size_t tiles) {
  return (tiles + 1) * (kWeightGradTileRows * kWeightGradKc + kWeightGradPackPad) + 8;
}
// attention_forward: softmax attention of one (batch, head): Q, K, V [T, D] with row stride ld (views into a packed
//   QKV), y [T, D] with row stride ldy, lse[T] = log Σ_j e^(s_ij) of the scaled scores s = scale·QKᵀ (causal: j ≤ i
//   only), y = softmax(s)·V. attention_backward: dQ, dK, dV (row stride ldd) from dY, Q, K, V, Y and lse (P is
//   recomputed from lse, as flash attention does, instead of being saved). `work` holds attention_work_size(T, D)
//   floats. Causal attention computes only the unmasked half of each product (whole register tiles).
inline size_t attention_work_size(size_t T, size_t D) {
  const size_t R = T > D ? T : D;
  return 2 * T * T + (R + 31) / 32 * 32 * R + T;  // S (or P) and dS, B's packed panels (16 or 32 columns), δ per row
}
// linear: y[m, :] = x[m, :]·W (+ bias) (+ res[m, :]) for rows m in [m0, m1) of x [M, K] and y, res [M, N], all
//   row-major, W [K, N] (bias, res: null for none). `work`: linear_work_size(K, N) floats of the calling thread (W is
//   packed in groups of kLinearCols columns). Each element is one sum over k in fixed blocks (of kWeightGradKc), in
//   order, then + bias, then + res: the result does not depend on how callers split the rows.
constexpr size_t kLinearCols = 512;
inline size_t linear_work_size(size_t K, size_t N) { return (N < kLinearCols ? (N + 31) / 32 * 32 : kLinearCols) * K; }
// softmax_xent: rows of `cols` scores x → log-probabilities lp = x − (max + ln Σ e^(x − max)) and each row's loss
//   −lp[t[r]] (0 where t[r] == ignore; targets already checked to be classes). softmax_xent_grad: dx = (e^lp − onehot(t))
//   times the row's weight w[r] (0 where t[r] == ignore): SoftmaxCrossEntropyLoss's score gradient.
// gelu: y = x·Φ(x) (erf form, Φ as gelu_grad computes it) or ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (`tanh`).
// sum_squares: Σ x[i]² over n elements in 16 fixed lanes (then in order, as the row sums): the gradient norm's parts.
// layernorm: rows of `cols` elements: mean, inv = 1/√(mean of squared deviations + eps) (ONNX LayerNormalization's
//   order), y = (x − mean)·inv·scale + bias; mean and inv (per row) may be null. Row sums in 16 fixed lanes.
#define ADEMAMIX_NN_ENTRY_POINTS                                                                         \
  void layernorm(const float* x, const float* scale, const float* bias, float* y, float* mean, float* inv, size_t rows, \
                 size_t cols, float eps);                                                                \
  void linear(const float* x, const float* w, const float* bias, const float* res, float* y, size_t K, size_t N, \
              size_t m0, size_t m1, float* work);                                                        \
  void weight_grad(const float* a, const float* b, float* c, float* colsum, size_t K, size_t M, size_t N, size_t t0, \
                   size_t t1, size_t n0, size_t n1, float* work);                                        \
  void gelu(const float* x, float* y, size_t n, bool tanh);                                             \
  void gelu_grad(const float* dy, const float* x, float* dx, size_t n, bool tanh);                      \
  float sum_squares(const float* x, size_t n);                                                          \
  void softmax_grad(const float* dy, const float* y, float* dx, size_t rows, size_t cols);              \
  void softmax_xent(const float* x, const int64_t* t, float* lp, float* loss, size_t rows, size_t cols,    \
                    int64_t ignore);                                                                      \
  void softmax_xent_grad(const float* lp, const int64_t* t, const float* w, float* dx, size_t rows, size_t cols, \
                         int64_t ignore);                                                                 \
  void layernorm_grad(const float* dy, const float* x, const float* scale, const float* mean, const float* inv, \
                      const float* dres, float* dx, float* dscale, float* dbias, size_t rows, size_t cols); \
  void attention_forward(const float* q, const float* k, const float* v, size_t ld, float* y, size_t ldy, float* lse, \
                         size_t T, size_t D, float scale, bool causal, float* work);                      \
  void attention_backward(const float* dy, size_t lddy, const float* q, const float* k, const float* v, size_t ld, \
                          const float* y, size_t ldy, const float* lse, float* dq, float* dk, float* dv, size_t ldd, \
                          size_t T, size_t D, float scale, bool causal, float* work);
ADEMAMIX_NN_ENTRY_POINTS
namespace avx512 { ADEMAMIX_NN_ENTRY_POINTS }
namespace avx2 { ADEMAMIX_NN_ENTRY_POINTS }
namespace base { ADEMAMIX_NN_ENTRY_POINTS }

}  // namespace cpu
}  // namespace ademamix
