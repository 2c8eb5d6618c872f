// ORT glue of the fused ops (include/ademamix/nn_ops.h): input checks with errors that name the node and the
// tensor, the split over ORT's intra-op pool, and the loops of nn_kernels.cc. LayerNormalizationGrad's dScale and dBias
// are sums over rows: each fixed block of kRowBlock rows sums into its own partial, and the partials are added in block
// order, so the result does not depend on the thread count.
#include "ademamix/nn_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>
#include "ademamix/nn_kernels.h"
#include "glue.h"

namespace ademamix {
namespace {

using namespace glue;

constexpr size_t kElemChunk = size_t(1) << 14;  // elements per pool task (GeluGrad), and about that per row chunk
constexpr size_t kRowBlock = 32;                // rows per partial sum of dScale and dBias

// The normalized axis of a rank-r tensor from attribute `axis` (negative counts from the end), or an error.
OrtStatus* Axis(const Ctx& c, int64_t axis, size_t rank, size_t* out) {
  const int64_t r = static_cast<int64_t>(rank), a = axis < 0 ? axis + r : axis;
  if (rank == 0 || a < 0 || a >= r)
    return Fail(c.Err("axis " + std::to_string(axis) + " is out of range for an input of rank " + std::to_string(rank)));
  *out = static_cast<size_t>(a);
  return nullptr;
}

// Gelu(X) → Y (forward) and GeluGrad(dY, X) → dX: elementwise over pool tasks of kElemChunk elements.
// Attribute approximate: absent or "none" → erf form, "tanh" → tanh form, anything else an error.
template <bool kGrad>
class GeluKernel : public Kernel {
 public:
  static constexpr const char* kOp = kGrad ? "GeluGrad" : "Gelu";
  GeluKernel(const OrtKernelInfo* info, bool tanh) : label_(NodeLabel(info, kOp)), tanh_(tanh) {}
  static OrtStatus* Create(const OrtKernelInfo* info, void** kernel) {
    std::string v;
    RETURN_IF(AttrS(info, "approximate", "none", &v));
    if (v != "none" && v != "tanh")
      return Fail(NodeLabel(info, kOp) + ": attribute approximate must be 'none' or 'tanh', got '" + v + "'");
    *kernel = new GeluKernel(info, v == "tanh");
    return nullptr;
  }
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims d, dx;
    const void *dy = nullptr, *x = nullptr;
    if constexpr (kGrad) {
      RETURN_IF(c.Tensor(0, "dY", F32, nullptr, "", &d, &dy));
      RETURN_IF(c.Tensor(1, "X", F32, &d, "dY", &dx, &x));
    } else {
      RETURN_IF(c.Tensor(0, "X", F32, nullptr, "", &d, &x));
    }
    void* o = nullptr;
    RETURN_IF(c.Output(0, d, &o));
    const float *g = static_cast<const float*>(dy), *v = static_cast<const float*>(x);
    float* out = static_cast<float*>(o);
    const bool tanh = tanh_;
    return ParallelRange(ctx, Numel(d), [&](size_t b, size_t e) {
      if constexpr (kGrad) cpu::gelu_grad(g + b, v + b, out + b, e - b, tanh);
      else cpu::gelu(v + b, out + b, e - b, tanh);
    }, kElemChunk);
  }

 private:
  const std::string label_;
  const bool tanh_;
};

// SoftmaxCrossEntropyLoss(scores [N, C], target [N] int64) → loss, log_prob [N, C] (optional), as ONNX's for 2-D scores
// without class weights; and its score gradient SoftmaxCrossEntropyLossGrad(dLoss, log_prob, target) → dScores.
// Attributes reduction ("mean", the default, "sum" or "none") and ignore_index (optional). A target that is neither a
// class nor ignore_index is an error naming the node and the row. Rows are split over the pool; the loss is the rows'
// losses added in row order in double (the same bits on any thread count).
struct XentAttrs {
  enum Reduction { kMean, kSum, kNone } reduction = kMean;
  bool hasIgnore = false;
  int64_t ignore = 0;
  static OrtStatus* Read(const OrtKernelInfo* info, const std::string& label, XentAttrs* a) {
    std::string v;
    RETURN_IF(AttrS(info, "reduction", "mean", &v));
    if (v != "mean" && v != "sum" && v != "none")
      return Fail(label + ": attribute reduction must be 'mean', 'sum' or 'none', got '" + v + "'");
    a->reduction = v == "mean" ? kMean : v == "sum" ? kSum : kNone;
    int64_t ig = 0;
    if (OrtStatus* st = api->KernelInfoGetAttribute_int64(info, "ignore_index", &ig)) api->ReleaseStatus(st);
    else { a->hasIgnore = true; a->ignore = ig; }
    return nullptr;
  }
  // the value no target can take when there is no ignore_index (a class is ≥ 0)
  int64_t Ignore() const { return hasIgnore ? ignore : -1; }
  // every target a class in [0, C) or ignore_index; `kept`: how many are classes
  OrtStatus* Check(const Ctx& c, const int64_t* t, size_t N, size_t C, size_t* kept) const {
    size_t k = 0;
    for (size_t r = 0; r < N; r++) {
      if (hasIgnore && t[r] == ignore) continue;
      if (t[r] < 0 || static_cast<uint64_t>(t[r]) >= C)
        return Fail(c.Err("target " + std::to_string(t[r]) + " at row " + std::to_string(r) + " is not a class in [0, " +
                          std::to_string(C) + ")" + (hasIgnore ? " nor ignore_index " + std::to_string(ignore) : "")));
      k++;
    }
    *kept = k;
    return nullptr;
  }
};

template <bool kGrad>
class XentKernel : public Kernel {
 public:
  static constexpr const char* kOp = kGrad ? "SoftmaxCrossEntropyLossGrad" : "SoftmaxCrossEntropyLoss";
  XentKernel(const OrtKernelInfo* info, const XentAttrs& a) : label_(NodeLabel(info, kOp)), a_(a) {}
  static OrtStatus* Create(const OrtKernelInfo* info, void** kernel) {
    XentAttrs a;
    RETURN_IF(XentAttrs::Read(info, NodeLabel(info, kOp), &a));
    *kernel = new XentKernel(info, a);
    return nullptr;
  }
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims dx, dt, dd;
    const void *x = nullptr, *t = nullptr, *dl = nullptr;
    const size_t xi = kGrad ? 1 : 0, ti = kGrad ? 2 : 1;
    RETURN_IF(c.Tensor(xi, kGrad ? "log_prob" : "scores", F32, nullptr, "", &dx, &x));
    if (dx.size() != 2) return Fail(c.Err(std::string("needs ") + (kGrad ? "log_prob" : "scores") + " [N, C], got " + DimsStr(dx)));
    const Dims want = {dx[0]};
    RETURN_IF(c.Tensor(ti, "target", I64, &want, "[N] of " + DimsStr(dx), &dt, &t));
    const size_t N = static_cast<size_t>(dx[0]), C = static_cast<size_t>(dx[1]);
    const int64_t* tp = static_cast<const int64_t*>(t);
    size_t kept = 0;
    RETURN_IF(a_.Check(c, tp, N, C, &kept));
    const size_t chunk = std::max<size_t>(1, kElemChunk / std::max<size_t>(C, 1));
    if constexpr (kGrad) {
      const Dims none = {dx[0]}, scalar = {};
      const bool perRow = a_.reduction == XentAttrs::kNone;
      RETURN_IF(c.Tensor(0, "dLoss", F32, perRow ? &none : &scalar, perRow ? "[N] (reduction none)" : "a scalar", &dd, &dl));
      void* o = nullptr;
      RETURN_IF(c.Output(0, dx, &o));
      const float* g = static_cast<const float*>(dl);
      std::vector<float> w(N);  // each row's weight: dLoss (÷ the kept rows for mean)
      const float s = perRow ? 0.0f : a_.reduction == XentAttrs::kMean ? static_cast<float>(double(g[0]) / double(kept)) : g[0];
      for (size_t r = 0; r < N; r++) w[r] = perRow ? g[r] : s;
      const float* lp = static_cast<const float*>(x);
      float* out = static_cast<float*>(o);
      const int64_t ig = a_.Ignore();
      return ParallelRange(ctx, N, [&](size_t b, size_t e) {
        cpu::softmax_xent_grad(lp + b * C, tp + b, w.data() + b, out + b * C, e - b, C, ig);
      }, chunk);
    } else {
      void *ol = nullptr, *op = nullptr;
      RETURN_IF(c.Output(0, a_.reduction == XentAttrs::kNone ? want : Dims{}, &ol));
      RETURN_IF(c.Output(1, dx, &op));  // (null where the node leaves log_prob out)
      thread_local std::vector<float> scratch;
      float* lp = static_cast<float*>(op);
      if (!lp) { if (scratch.size() < N * C) scratch.resize(N * C); lp = scratch.data(); }
      std::vector<float> rowLoss(N);
      const float* xp = static_cast<const float*>(x);
      const int64_t ig = a_.Ignore();
      RETURN_IF(ParallelRange(ctx, N, [&](size_t b, size_t e) {
        cpu::softmax_xent(xp + b * C, tp + b, lp + b * C, rowLoss.data() + b, e - b, C, ig);
      }, chunk));
      float* loss = static_cast<float*>(ol);
      if (a_.reduction == XentAttrs::kNone) { std::copy(rowLoss.begin(), rowLoss.end(), loss); return nullptr; }
      double sum = 0;
      for (size_t r = 0; r < N; r++) sum += rowLoss[r];
      loss[0] = static_cast<float>(a_.reduction == XentAttrs::kMean ? sum / double(kept) : sum);
      return nullptr;
    }
  }

 private:
  const std::string label_;
  const XentAttrs a_;
};

class SoftmaxGradKernel : public Kernel {
 public:
  explicit SoftmaxGradKernel(const OrtKernelInfo* info)
      : label_(NodeLabel(info, "SoftmaxGrad")), axis_(AttrI(info, "axis", -1)) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims d, dy2;
    const void *dy = nullptr, *y = nullptr;
    RETURN_IF(c.Tensor(0, "dY", F32, nullptr, "", &d, &dy));
    RETURN_IF(c.Tensor(1, "Y", F32, &d, "dY", &dy2, &y));
    size_t a = 0;
    RETURN_IF(Axis(c, axis_, d.size(), &a));
    if (a + 1 != d.size()) return Fail(c.Err("only the last axis is supported, got axis " + std::to_string(axis_)));
    void* o = nullptr;
    RETURN_IF(c.Output(0, d, &o));
    const size_t cols = static_cast<size_t>(d.back()), rows = cols ? Numel(d) / cols : 0;
    const float *g = static_cast<const float*>(dy), *p = static_cast<const float*>(y);
    float* out = static_cast<float*>(o);
    return ParallelRange(ctx, rows, [&](size_t b, size_t e) {
      cpu::softmax_grad(g + b * cols, p + b * cols, out + b * cols, e - b, cols);
    }, std::max<size_t>(1, kElemChunk / std::max<size_t>(cols, 1)));
  }

 private:
  const std::string label_;
  const int64_t axis_;
};

// Elements of `d` before dim `from` (the rows) and from it on (the columns): the layer norms' split at their axis, and
// a linear layer's rows (from = the last dim)
struct RowsCols { size_t rows = 1, cols = 1; };
inline RowsCols SplitAt(const Dims& d, size_t from) {
  RowsCols r;
  for (size_t i = 0; i < d.size(); i++) (i < from ? r.rows : r.cols) *= static_cast<size_t>(d[i]);
  return r;
}
// A layer norm's per-column input (Scale, B) must hold the normalized dims' elements
OrtStatus* CheckNormalized(const Ctx& c, const char* name, const Dims& dims, const Dims& x, int64_t axis, size_t cols) {
  if (Numel(dims) == cols) return nullptr;
  return Fail(c.Err(std::string("input '") + name + "' has shape " + DimsStr(dims) + " but the normalized dims of 'X' " +
                    DimsStr(x) + " from axis " + std::to_string(axis) + " hold " + std::to_string(cols) + " elements"));
}

// LayerNormalization(X, Scale, B) → Y, Mean, InvStdDev over the dims from `axis` (rows × cols, cols contiguous), as
// ONNX defines it with stash_type float; Scale and B hold the normalized dims' elements. gpt-mini's [16, 128, 128] on two
// threads, hot: 80–97 µs against ORT's own kernel's 162–175 (2026-12-03).
class LayerNormKernel : public Kernel {
 public:
  explicit LayerNormKernel(const OrtKernelInfo* info)
      : label_(NodeLabel(info, "LayerNormalization")), axis_(AttrI(info, "axis", -1)),
        eps_(static_cast<float>(AttrF(info, "epsilon", 1e-5))) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims d, ds, db;
    const void *x = nullptr, *scale = nullptr, *bias = nullptr;
    RETURN_IF(c.Tensor(0, "X", F32, nullptr, "", &d, &x));
    RETURN_IF(c.Tensor(1, "Scale", F32, nullptr, "", &ds, &scale));
    RETURN_IF(c.Tensor(2, "B", F32, nullptr, "", &db, &bias));
    size_t a = 0;
    RETURN_IF(Axis(c, axis_, d.size(), &a));
    const RowsCols rc = SplitAt(d, a);
    const size_t rows = rc.rows, cols = rc.cols;
    RETURN_IF(CheckNormalized(c, "Scale", ds, d, axis_, cols));
    RETURN_IF(CheckNormalized(c, "B", db, d, axis_, cols));
    Dims stat(d);
    for (size_t i = a; i < stat.size(); i++) stat[i] = 1;
    size_t nin = 0, nout = 0;
    RETURN_IF(c.Counts(&nin, &nout));
    void *o = nullptr, *om = nullptr, *oi = nullptr;
    RETURN_IF(c.Output(0, d, &o));
    if (nout > 1) RETURN_IF(c.Output(1, stat, &om));
    if (nout > 2) RETURN_IF(c.Output(2, stat, &oi));
    const float *v = static_cast<const float*>(x), *s = static_cast<const float*>(scale), *b = static_cast<const float*>(bias);
    float *y = static_cast<float*>(o), *mean = static_cast<float*>(om), *inv = static_cast<float*>(oi);
    const float eps = eps_;
    const size_t chunk = std::max<size_t>(1, kElemChunk / std::max<size_t>(cols, 1));  // rows per pool task
    return ParallelRange(ctx, rows, [&](size_t r0, size_t r1) {
      cpu::layernorm(v + r0 * cols, s, b, y + r0 * cols, mean ? mean + r0 : nullptr, inv ? inv + r0 : nullptr, r1 - r0, cols, eps);
    }, chunk);
  }

 private:
  const std::string label_;
  const int64_t axis_;
  const float eps_;
};

class LayerNormGradKernel : public Kernel {
 public:
  explicit LayerNormGradKernel(const OrtKernelInfo* info)
      : label_(NodeLabel(info, "LayerNormalizationGrad")), axis_(AttrI(info, "axis", -1)) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims d, dx, ds, dm, di;
    const void *dy = nullptr, *x = nullptr, *scale = nullptr, *mean = nullptr, *inv = nullptr;
    RETURN_IF(c.Tensor(0, "dY", F32, nullptr, "", &d, &dy));
    RETURN_IF(c.Tensor(1, "X", F32, &d, "dY", &dx, &x));
    RETURN_IF(c.Tensor(2, "Scale", F32, nullptr, "", &ds, &scale));
    RETURN_IF(c.Tensor(3, "Mean", F32, nullptr, "", &dm, &mean));
    RETURN_IF(c.Tensor(4, "InvStdDev", F32, &dm, "Mean", &di, &inv));
    Dims dr;
    const void* res = nullptr;
    RETURN_IF(c.Tensor(5, "dR", F32, &d, "dY", &dr, &res, true));
    size_t a = 0;
    RETURN_IF(Axis(c, axis_, d.size(), &a));
    const RowsCols rc = SplitAt(d, a);
    const size_t rows = rc.rows, cols = rc.cols;
    RETURN_IF(CheckNormalized(c, "Scale", ds, d, axis_, cols));
    if (Numel(dm) != rows)
      return Fail(c.Err("input 'Mean' has shape " + DimsStr(dm) + " but 'X' " + DimsStr(d) + " has " +
                        std::to_string(rows) + " rows before axis " + std::to_string(axis_)));
    void *o = nullptr, *os = nullptr, *ob = nullptr;
    RETURN_IF(c.Output(0, d, &o));
    RETURN_IF(c.Output(1, ds, &os));
    RETURN_IF(c.Output(2, ds, &ob));
    const float *g = static_cast<const float*>(dy), *v = static_cast<const float*>(x), *s = static_cast<const float*>(scale),
                *mu = static_cast<const float*>(mean), *is = static_cast<const float*>(inv),
                *rp = static_cast<const float*>(res);
    float* out = static_cast<float*>(o);
    std::vector<float> resCopy;  // dR in dX's buffer (dY given twice, written in place): read from a copy
    if (rp && rp == out) {
      resCopy.assign(rp, rp + Numel(d));
      rp = resCopy.data();
    }
    const size_t blocks = (rows + kRowBlock - 1) / kRowBlock;
    std::vector<float> partial(blocks * 2 * cols, 0.0f);  // per block: dScale then dBias
    RETURN_IF(ParallelRange(ctx, blocks, [&](size_t b, size_t e) {
      for (size_t k = b; k < e; k++) {
        const size_t r0 = k * kRowBlock, n = std::min(kRowBlock, rows - r0);
        float* p = partial.data() + k * 2 * cols;
        cpu::layernorm_grad(g + r0 * cols, v + r0 * cols, s, mu + r0, is + r0, rp ? rp + r0 * cols : nullptr, out + r0 * cols,
                            p, p + cols, n, cols);
      }
    }, 1));
    float* dscale = static_cast<float*>(os);
    float* dbias = static_cast<float*>(ob);
    for (size_t j = 0; j < cols; j++) {
      float a1 = 0.0f, a2 = 0.0f;
      for (size_t k = 0; k < blocks; k++) { a1 += partial[k * 2 * cols + j]; a2 += partial[k * 2 * cols + cols + j]; }
      if (dscale) dscale[j] = a1;
      if (dbias) dbias[j] = a2;
    }
    return nullptr;
  }

 private:
  const std::string label_;
  const int64_t axis_;
};

// One unit of work per pool thread, for kernels whose units each pack an operand (more units than threads repack:
// 6 or 8 units on 2 threads were 10–35 % slower for WeightGrad, microbench 2026-12-03). The C API does not say how
// many threads the pool has: a first call runs hardware_concurrency() units and counts the threads that ran them.
std::atomic<uint64_t> g_unitCalls{0};
thread_local uint64_t t_lastUnitCall = 0;
class ThreadUnits {
 public:
  // fn(u, units) for each u < units = min(pool threads, side)
  template <class F>
  OrtStatus* Run(OrtKernelContext* ctx, size_t side, const F& fn) {
    const uint64_t id = g_unitCalls.fetch_add(1, std::memory_order_relaxed) + 1;
    std::atomic<size_t> seen{0};
    size_t want = threads_.load(std::memory_order_relaxed);
    const bool probe = want == 0;
    if (probe) want = std::max<size_t>(1, std::thread::hardware_concurrency());
    const size_t units = std::min(want, side);
    RETURN_IF(ParallelRange(ctx, units, [&](size_t u0, size_t u1) {
      if (t_lastUnitCall != id) { t_lastUnitCall = id; seen.fetch_add(1, std::memory_order_relaxed); }
      for (size_t u = u0; u < u1; u++) fn(u, units);
    }, 1));
    if (probe && units == want) threads_.store(seen.load(), std::memory_order_relaxed);
    return nullptr;
  }

 private:
  std::atomic<size_t> threads_{0};  // the pool's threads as the first call counted them (0: not counted yet)
};

// dW = XᵀdY and dB = Σ_rows dY, split between threads by row tiles of dW (M > N) or by column panels.
class WeightGradKernel : public Kernel {
 public:
  explicit WeightGradKernel(const OrtKernelInfo* info) : label_(NodeLabel(info, "WeightGrad")) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims dx, dd;
    const void *x = nullptr, *dy = nullptr;
    RETURN_IF(c.Tensor(0, "X", F32, nullptr, "", &dx, &x));
    RETURN_IF(c.Tensor(1, "dY", F32, nullptr, "", &dd, &dy));
    // the leading dims are the rows (a linear layer's batch and sequence dims, flattened in place)
    if (dx.size() < 2 || dd.size() != dx.size() || !std::equal(dx.begin(), dx.end() - 1, dd.begin()))
      return Fail(c.Err("needs X [rows, M] and dY [rows, N] with the same rows, got " + DimsStr(dx) + " and " + DimsStr(dd)));
    const size_t K = SplitAt(dx, dx.size() - 1).rows, M = static_cast<size_t>(dx.back()), N = static_cast<size_t>(dd.back());
    void *ow = nullptr, *ob = nullptr;
    RETURN_IF(c.Output(0, {dx.back(), dd.back()}, &ow));
    RETURN_IF(c.Output(1, {dd.back()}, &ob));
    const float *a = static_cast<const float*>(x), *b = static_cast<const float*>(dy);
    float *w = static_cast<float*>(ow), *bias = static_cast<float*>(ob);
    const size_t P = cpu::kWeightGradPanel, panels = (N + P - 1) / P, R = cpu::kWeightGradTileRows, tiles = (M + R - 1) / R;
    const bool byTiles = M > N;  // split the larger side (the smaller operand is the one every unit reads whole)
    const size_t side = byTiles ? tiles : panels;
    // one unit per thread: a unit packs the rows of A its tiles need for every k block. The split changes no bit
    // (each element's sum order is fixed by the k blocks).
    return units_.Run(ctx, side, [&](size_t u, size_t units) {
      thread_local std::vector<float> work;
      const size_t s0 = u * side / units, s1 = (u + 1) * side / units;
      const size_t t0 = byTiles ? s0 : 0, t1 = byTiles ? s1 : tiles;
      if (work.size() < cpu::weight_grad_work_size(t1 - t0)) work.resize(cpu::weight_grad_work_size(t1 - t0));
      cpu::weight_grad(a, b, w, bias, K, M, N, t0, t1, byTiles ? 0 : s0 * P, byTiles ? N : std::min(s1 * P, N), work.data());
    });
  }

 private:
  const std::string label_;
  ThreadUnits units_;
};

// Linear(X [..., K], W [K, N], B [N], R [..., N] optional) → Y [..., N] = X·W + B (+ R) (rows of X flattened): each
// pool thread packs W (512 columns at a time) and runs its share of the rows (in whole row tiles), the bias and the
// residual R added in the tiles' registers instead of passes of their own. Each element is the same k-ordered sum
// whatever the split.
class LinearKernel : public Kernel {
 public:
  explicit LinearKernel(const OrtKernelInfo* info) : label_(NodeLabel(info, "Linear")) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims dx, dw, db;
    const void *x = nullptr, *w = nullptr, *b = nullptr;
    RETURN_IF(c.Tensor(0, "X", F32, nullptr, "", &dx, &x));
    RETURN_IF(c.Tensor(1, "W", F32, nullptr, "", &dw, &w));
    RETURN_IF(c.Tensor(2, "B", F32, nullptr, "", &db, &b));
    if (dx.empty() || dw.size() != 2 || dw[0] != dx.back())
      return Fail(c.Err("needs X [..., K] and W [K, N], got " + DimsStr(dx) + " and " + DimsStr(dw)));
    if (db.size() != 1 || db[0] != dw[1]) return Fail(c.Err("needs B [N] for W " + DimsStr(dw) + ", got " + DimsStr(db)));
    const size_t K = static_cast<size_t>(dw[0]), N = static_cast<size_t>(dw[1]);
    const size_t M = SplitAt(dx, dx.size() - 1).rows;
    Dims dy(dx);
    dy.back() = dw[1];
    Dims dr;
    const void* r = nullptr;
    RETURN_IF(c.Tensor(3, "R", F32, &dy, "Y", &dr, &r, true));
    void* o = nullptr;
    RETURN_IF(c.Output(0, dy, &o));
    if (M == 0 || N == 0) return nullptr;
    const float *xp = static_cast<const float*>(x), *wp = static_cast<const float*>(w), *bp = static_cast<const float*>(b);
    float* y = static_cast<float*>(o);
    constexpr size_t kRowChunk = 2 * cpu::kWeightGradTileRows;  // a unit's rows: whole tiles of either build
    const size_t chunks = (M + kRowChunk - 1) / kRowChunk;
    return units_.Run(ctx, chunks, [&](size_t u, size_t units) {
      thread_local std::vector<float> work;
      if (work.size() < cpu::linear_work_size(K, N)) work.resize(cpu::linear_work_size(K, N));
      const size_t m0 = u * chunks / units * kRowChunk, m1 = std::min(M, (u + 1) * chunks / units * kRowChunk);
      cpu::linear(xp, wp, bp, static_cast<const float*>(r), y, K, N, m0, m1, work.data());
    });
  }

 private:
  const std::string label_;
  ThreadUnits units_;
};

// Self-attention over a packed QKV [B, T, 3C] (C = heads × D; q, k, v side by side as a linear layer makes them):
// each (batch, head) is one pool task, reading its q, k, v columns in place and writing its columns of Y [B, T, C]
// (and of dQKV in the backward), so no head is ever transposed out. Attributes: heads, causal (0/1), scale (default
// 1/√D).
struct AttentionShape {
  size_t B = 0, T = 0, H = 0, D = 0;
  float scale = 0.0f;
};
// Reads `cols` floats of each of `rows` rows (ld floats apart) in order, one load per cache line: brings them into
// this core's caches ahead of a kernel that reads them in a less regular order.
inline void WarmRows(const float* p, size_t rows, size_t ld, size_t cols) {
  float s = 0.0f;
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < cols; j += 16) s += p[r * ld + j];
  volatile float sink = s;  // keeps the loads
  (void)sink;
}

class AttentionBase : public Kernel {
 protected:
  // By the time the backward runs, QKV and Y were written long ago (DRAM), and a head's columns are a few cache lines
  // in each of T rows 3C floats apart, which the prefetchers follow poorly. So a pool task takes a whole batch's heads
  // (when there are batches enough to share out) and first reads the rows of those heads straight through
  // (WarmRows): per head 52 -> 45 us on one thread with cold caches (Zen 5, avx2, alternated, 2026-12-03); forward
  // and backward alike, gpt-mini's step 6 % faster on avx2, 4.7 % on avx512 (12 alternated rounds each).
  static size_t TaskChunk(const AttentionShape& s) { return s.B >= 4 ? s.H : 1; }
  // Columns of the heads of task t's batch that the range [t0, t1) runs from t on, when t is the first of them in
  // the range (0 otherwise: already warmed)
  static size_t WarmCols(const AttentionShape& s, size_t t, size_t t0, size_t t1) {
    const size_t h = t % s.H;
    return t == t0 || h == 0 ? std::min(s.H - h, t1 - t) * s.D : 0;
  }
  AttentionBase(const OrtKernelInfo* info, const char* op)
      : label_(NodeLabel(info, op)), heads_(AttrI(info, "heads", 0)), causal_(AttrI(info, "causal", 0) != 0),
        scale_(AttrF(info, "scale", 0.0)) {}
  OrtStatus* Shape(const Ctx& c, const Dims& qkv, AttentionShape* s) const {
    if (qkv.size() != 3 || qkv[2] % 3 != 0)
      return Fail(c.Err("input 'QKV' must be [batch, seq, 3 × dim], got " + DimsStr(qkv)));
    const int64_t C = qkv[2] / 3;
    if (heads_ <= 0 || C % heads_ != 0)
      return Fail(c.Err("attribute heads " + std::to_string(heads_) + " must be positive and divide the dim " + std::to_string(C)));
    s->B = static_cast<size_t>(qkv[0]);
    s->T = static_cast<size_t>(qkv[1]);
    s->H = static_cast<size_t>(heads_);
    s->D = static_cast<size_t>(C / heads_);
    s->scale = scale_ != 0.0 ? static_cast<float>(scale_) : 1.0f / std::sqrt(static_cast<float>(s->D));
    return nullptr;
  }
  const std::string label_;
  const int64_t heads_;
  const bool causal_;
  const double scale_;
};

class AttentionKernel : public AttentionBase {
 public:
  explicit AttentionKernel(const OrtKernelInfo* info) : AttentionBase(info, "SelfAttention") {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims dq;
    const void* in = nullptr;
    RETURN_IF(c.Tensor(0, "QKV", F32, nullptr, "", &dq, &in));
    AttentionShape s;
    RETURN_IF(Shape(c, dq, &s));
    void *oy = nullptr, *ol = nullptr;
    RETURN_IF(c.Output(0, {dq[0], dq[1], dq[2] / 3}, &oy));
    RETURN_IF(c.Output(1, {dq[0], static_cast<int64_t>(s.H), dq[1]}, &ol));
    const float* qkv = static_cast<const float*>(in);
    float *y = static_cast<float*>(oy), *lse = static_cast<float*>(ol);
    const size_t C = s.H * s.D;
    const bool causal = causal_;
    return ParallelRange(ctx, s.B * s.H, [&](size_t b0, size_t b1) {
      thread_local std::vector<float> work, lseScratch;
      if (work.size() < cpu::attention_work_size(s.T, s.D)) work.resize(cpu::attention_work_size(s.T, s.D));
      if (!lse && lseScratch.size() < s.T) lseScratch.resize(s.T);
      for (size_t t = b0; t < b1; t++) {
        const size_t b = t / s.H, h = t % s.H;
        const float* q = qkv + b * s.T * 3 * C + h * s.D;
        if (const size_t n = WarmCols(s, t, b0, b1)) {
          for (size_t p = 0; p < 3; p++) WarmRows(q + p * C, s.T, 3 * C, n);
          WarmRows(y + b * s.T * C + h * s.D, s.T, C, n);
        }
        cpu::attention_forward(q, q + C, q + 2 * C, 3 * C, y + b * s.T * C + h * s.D, C,
                               lse ? lse + t * s.T : lseScratch.data(), s.T, s.D, s.scale, causal, work.data());
      }
    }, TaskChunk(s));
  }
};

class AttentionGradKernel : public AttentionBase {
 public:
  explicit AttentionGradKernel(const OrtKernelInfo* info) : AttentionBase(info, "SelfAttentionGrad") {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    Dims dd, dq, dy2, dl;
    const void *gy = nullptr, *in = nullptr, *yv = nullptr, *lv = nullptr;
    RETURN_IF(c.Tensor(1, "QKV", F32, nullptr, "", &dq, &in));
    AttentionShape s;
    RETURN_IF(Shape(c, dq, &s));
    const Dims dy = {dq[0], dq[1], dq[2] / 3}, dlse = {dq[0], static_cast<int64_t>(s.H), dq[1]};
    RETURN_IF(c.Tensor(0, "dY", F32, &dy, "Y of this QKV", &dd, &gy));
    RETURN_IF(c.Tensor(2, "Y", F32, &dy, "dY", &dy2, &yv));
    RETURN_IF(c.Tensor(3, "LSE", F32, &dlse, "[batch, heads, seq]", &dl, &lv));
    void* og = nullptr;
    RETURN_IF(c.Output(0, dq, &og));
    const float *g = static_cast<const float*>(gy), *qkv = static_cast<const float*>(in), *y = static_cast<const float*>(yv),
                *lse = static_cast<const float*>(lv);
    float* out = static_cast<float*>(og);
    const size_t C = s.H * s.D;
    const bool causal = causal_;
    return ParallelRange(ctx, s.B * s.H, [&](size_t b0, size_t b1) {
      thread_local std::vector<float> work;
      if (work.size() < cpu::attention_work_size(s.T, s.D)) work.resize(cpu::attention_work_size(s.T, s.D));
      for (size_t t = b0; t < b1; t++) {
        const size_t b = t / s.H, h = t % s.H, o3 = b * s.T * 3 * C + h * s.D, o1 = b * s.T * C + h * s.D;
        const float* q = qkv + o3;
        float* dqp = out + o3;
        if (const size_t n = WarmCols(s, t, b0, b1)) {
          for (size_t p = 0; p < 3; p++) {
            WarmRows(q + p * C, s.T, 3 * C, n);
            WarmRows(dqp + p * C, s.T, 3 * C, n);
          }
          WarmRows(g + o1, s.T, C, n);
          WarmRows(y + o1, s.T, C, n);
        }
        cpu::attention_backward(g + o1, C, q, q + C, q + 2 * C, 3 * C, y + o1, C, lse + t * s.T, dqp, dqp + C, dqp + 2 * C,
                                3 * C, s.T, s.D, s.scale, causal, work.data());
      }
    }, TaskChunk(s));
  }
};

// SumSquares(X1, …, Xn) → Σ_i Σ x² (a scalar): the global gradient norm's square in one node instead of one
// ReduceSumSquare per gradient and a Sum (52 nodes on gpt-mini, 0.57 ms of its step, 2026-12-03). Each tensor is cut
// in fixed chunks of kElemChunk, each chunk summed in 16 lanes (cpu::sum_squares) on whichever thread, and the chunks'
// sums added in order in double: the same bits on any thread count.
class SumSquaresKernel : public Kernel {
 public:
  explicit SumSquaresKernel(const OrtKernelInfo* info) : label_(NodeLabel(info, "SumSquares")) {}
  OrtStatus* Compute(OrtKernelContext* ctx) override {
    const Ctx c{ctx, label_.c_str()};
    size_t in = 0, out = 0;
    RETURN_IF(c.Counts(&in, &out));
    struct Piece { const float* p; size_t n; };
    std::vector<Piece> pieces;
    for (size_t i = 0; i < in; i++) {
      Dims d;
      const void* x = nullptr;
      RETURN_IF(c.Tensor(i, "X" + std::to_string(i + 1), F32, nullptr, "", &d, &x));
      const size_t n = Numel(d);
      for (size_t b = 0; b < n; b += kElemChunk)
        pieces.push_back({static_cast<const float*>(x) + b, std::min(kElemChunk, n - b)});
    }
    void* o = nullptr;
    RETURN_IF(c.Output(0, {}, &o));
    std::vector<double> sums(pieces.size());
    RETURN_IF(ParallelRange(ctx, pieces.size(), [&](size_t b, size_t e) {
      for (size_t k = b; k < e; k++) sums[k] = cpu::sum_squares(pieces[k].p, pieces[k].n);
    }, 1));
    double total = 0;
    for (double v : sums) total += v;
    *static_cast<float*>(o) = static_cast<float>(total);
    return nullptr;
  }

 private:
  const std::string label_;
};

enum class Which { kGelu, kSoftmax, kLayerNorm, kWeightGrad, kAttention, kAttentionGrad, kLinear, kLayerNormFwd, kGeluFwd, kXent, kXentGrad };

OrtStatusPtr ORT_API_CALL InferNnShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx);

struct NnOpDef : OrtCustomOp {
  Which which;
  explicit NnOpDef(Which w) : OrtCustomOp{}, which(w) {
    version = ORT_API_VERSION;
    GetName = [](const OrtCustomOp* op) -> const char* {
      switch (static_cast<const NnOpDef*>(op)->which) {
        case Which::kGelu: return "GeluGrad";
        case Which::kSoftmax: return "SoftmaxGrad";
        case Which::kLayerNorm: return "LayerNormalizationGrad";
        case Which::kWeightGrad: return "WeightGrad";
        case Which::kAttention: return "SelfAttention";
        case Which::kAttentionGrad: return "SelfAttentionGrad";
        case Which::kLinear: return "Linear";
        case Which::kLayerNormFwd: return "LayerNormalization";
        case Which::kGeluFwd: return "Gelu";
        case Which::kXent: return "SoftmaxCrossEntropyLoss";
        case Which::kXentGrad: return "SoftmaxCrossEntropyLossGrad";
      }
      return "";
    };
    GetExecutionProviderType = [](const OrtCustomOp*) -> const char* { return "CPUExecutionProvider"; };
    GetInputType = [](const OrtCustomOp* op, size_t i) {  // the losses' targets are int64
      const Which w = static_cast<const NnOpDef*>(op)->which;
      return (w == Which::kXent && i == 1) || (w == Which::kXentGrad && i == 2) ? I64 : F32;
    };
    GetInputTypeCount = [](const OrtCustomOp* op) -> size_t {
      const Which w = static_cast<const NnOpDef*>(op)->which;
      return w == Which::kLayerNorm ? 6 : w == Which::kAttention ? 1 : w == Which::kAttentionGrad ? 4 : w == Which::kLinear ? 4
             : w == Which::kLayerNormFwd || w == Which::kXentGrad ? 3 : w == Which::kGeluFwd ? 1 : 2;
    };
    GetOutputType = [](const OrtCustomOp*, size_t) { return F32; };
    GetOutputTypeCount = [](const OrtCustomOp* op) -> size_t {
      const Which w = static_cast<const NnOpDef*>(op)->which;
      return w == Which::kLayerNorm || w == Which::kLayerNormFwd ? 3
             : w == Which::kWeightGrad || w == Which::kAttention || w == Which::kXent ? 2 : 1;
    };
    // Linear's residual R and LayerNormalizationGrad's dR may be left out
    GetInputCharacteristic = [](const OrtCustomOp* op, size_t i) {
      const Which w = static_cast<const NnOpDef*>(op)->which;
      return (w == Which::kLinear && i == 3) || (w == Which::kLayerNorm && i == 5) ? OPT : REQ;
    };
    // LayerNormalizationGrad's dScale and dBias, WeightGrad's dB, SelfAttention's LSE may be left out of a node
    GetOutputCharacteristic = [](const OrtCustomOp*, size_t i) { return i ? OPT : REQ; };
    GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
    CreateKernel = nullptr;
    KernelCompute = nullptr;
    KernelDestroy = [](void* k) { delete static_cast<Kernel*>(k); };
    CreateKernelV2 = [](const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo* info, void** kernel) -> OrtStatusPtr {
      switch (static_cast<const NnOpDef*>(op)->which) {
        case Which::kGelu: return GeluKernel<true>::Create(info, kernel);
        case Which::kGeluFwd: return GeluKernel<false>::Create(info, kernel);
        case Which::kXent: return XentKernel<false>::Create(info, kernel);
        case Which::kXentGrad: return XentKernel<true>::Create(info, kernel);
        case Which::kSoftmax: *kernel = new SoftmaxGradKernel(info); return nullptr;
        case Which::kLayerNorm: *kernel = new LayerNormGradKernel(info); return nullptr;
        case Which::kWeightGrad: *kernel = new WeightGradKernel(info); return nullptr;
        case Which::kAttention: *kernel = new AttentionKernel(info); return nullptr;
        case Which::kAttentionGrad: *kernel = new AttentionGradKernel(info); return nullptr;
        case Which::kLinear: *kernel = new LinearKernel(info); return nullptr;
        case Which::kLayerNormFwd: *kernel = new LayerNormKernel(info); return nullptr;
      }
      return Fail("unknown fused backward op");
    };
    KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatusPtr { return static_cast<Kernel*>(k)->Compute(ctx); };
    InferOutputShapeFn = InferNnShapes;
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 1 << 30; };
    // the row-wise backward ops write dX over dY where ORT allows (dY's last use): its lines are in cache from
    // reading dY, where a fresh buffer's are first read from memory (a write-allocate per line); the kernels read
    // each element of dY before writing the same element of dX, and nothing of it after. (GeluGrad also can, but
    // ran slower in place on gpt-mini, 3.2 against 2.65 ms a step for its four nodes, Xeon, 2026-12-03.)
    if (w == Which::kSoftmax || w == Which::kLayerNorm) {
      GetMayInplace = MayInplace<0, 0>;
      ReleaseMayInplace = ReleaseInplace;
    }
  }
};

// dX like dY (input 0); LayerNormalizationGrad: dX like X, dScale and dBias like Scale; SelfAttentionGrad: dQKV like
// QKV; SelfAttention: Y [B, T, C] from QKV [B, T, 3C] (ORT's own fusions downstream, e.g. MatMul + Add into Gemm,
// need it), LSE left to the kernel (only SelfAttentionGrad reads it); WeightGrad: left to the kernel
OrtStatusPtr ORT_API_CALL InferNnShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx) {
  const Which w = static_cast<const NnOpDef*>(op)->which;
  if (w == Which::kWeightGrad) return nullptr;
  if (w == Which::kAttention) {
    Dims dims;
    std::vector<std::string> syms;
    if (InputShape(ctx, 0, &dims, &syms) && dims.size() == 3 && dims[2] > 0 && dims[2] % 3 == 0) {
      dims[2] /= 3;
      SetOutputShape(ctx, 0, dims, syms, F32);
    }
    return nullptr;
  }
  if (w == Which::kAttentionGrad) {
    SameShape(ctx, 1, {0}, {F32});
    return nullptr;
  }
  if (w == Which::kLayerNormFwd) {  // Y like X; Mean and InvStdDev: X's dims, 1 from axis on
    Dims dims;
    std::vector<std::string> syms;
    if (!InputShape(ctx, 0, &dims, &syms)) return nullptr;
    SetOutputShape(ctx, 0, dims, syms, F32);
    int64_t axis = -1;
    const OrtOpAttr* at = nullptr;
    if (OrtStatus* st = api->ShapeInferContext_GetAttribute(ctx, "axis", &at)) {
      api->ReleaseStatus(st);
    } else if (at) {
      size_t got = 0;
      if (OrtStatus* st2 = api->ReadOpAttr(at, ORT_OP_ATTR_INT, &axis, sizeof axis, &got)) api->ReleaseStatus(st2);
    }
    const int64_t r = static_cast<int64_t>(dims.size()), a = axis < 0 ? axis + r : axis;
    if (a < 0 || a >= r) return nullptr;  // the kernel names the bad axis
    for (int64_t i = a; i < r; i++) { dims[i] = 1; syms[i].clear(); }
    SetOutputShape(ctx, 1, dims, syms, F32);  // (refused where the node has no such output)
    SetOutputShape(ctx, 2, dims, syms, F32);
    return nullptr;
  }
  if (w == Which::kXent) {  // loss: a scalar (or [N] for reduction none: left to the kernel), log_prob like scores
    const OrtOpAttr* at = nullptr;
    bool none = false;
    if (OrtStatus* st = api->ShapeInferContext_GetAttribute(ctx, "reduction", &at)) {
      api->ReleaseStatus(st);
    } else if (at) {
      char buf[8] = {};
      size_t got = 0;
      if (OrtStatus* st2 = api->ReadOpAttr(at, ORT_OP_ATTR_STRING, buf, sizeof buf - 1, &got)) api->ReleaseStatus(st2);
      none = std::string(buf, std::min(got, sizeof buf - 1)).rfind("none", 0) == 0;
    }
    if (!none) SetOutputShape(ctx, 0, {}, {}, F32);
    SameShape(ctx, 0, {1}, {F32});
    return nullptr;
  }
  if (w == Which::kXentGrad) {
    SameShape(ctx, 1, {0}, {F32});
    return nullptr;
  }
  if (w == Which::kLinear) {  // Y: X's dims with the last one W's second
    Dims dx, dw;
    std::vector<std::string> sx, sw;
    if (InputShape(ctx, 0, &dx, &sx) && InputShape(ctx, 1, &dw, &sw) && dw.size() == 2) {
      dx.back() = dw[1];
      sx.back() = sw[1];
      SetOutputShape(ctx, 0, dx, sx, F32);
    }
    return nullptr;
  }
  if (w == Which::kLayerNorm) {
    SameShape(ctx, 1, {0}, {F32});
    SameShape(ctx, 2, {1, 2}, {F32, F32});
  } else {
    SameShape(ctx, 0, {0}, {F32});
  }
  return nullptr;
}

}  // namespace

OrtStatus* AddNnOps(OrtCustomOpDomain* domain) {
  static NnOpDef ops[] = {NnOpDef(Which::kGelu), NnOpDef(Which::kSoftmax), NnOpDef(Which::kLayerNorm),
                          NnOpDef(Which::kWeightGrad), NnOpDef(Which::kAttention), NnOpDef(Which::kAttentionGrad),
                          NnOpDef(Which::kLinear), NnOpDef(Which::kLayerNormFwd), NnOpDef(Which::kGeluFwd),
                          NnOpDef(Which::kXent), NnOpDef(Which::kXentGrad)};
  for (NnOpDef& op : ops) RETURN_IF(api->CustomOpDomain_Add(domain, &op));
  static FloatListOp sumSquares(
      "SumSquares", [](const OrtKernelInfo* info) -> Kernel* { return new SumSquaresKernel(info); }, false,
      [](const OrtCustomOp*, OrtShapeInferContext* ctx) -> OrtStatusPtr {
        SetOutputShape(ctx, 0, {}, {}, F32);  // a scalar
        return nullptr;
      });
  RETURN_IF(api->CustomOpDomain_Add(domain, &sumSquares));
  return nullptr;
}

}  // namespace ademamix
