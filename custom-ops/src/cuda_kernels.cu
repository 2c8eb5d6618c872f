// CUDA backend of the kernel skeleton: one grid-wide kernel template for the three optimizers, parameterized by the
// optimizer's per-element struct from kernels.h (the same `update` the CPU loops run) and the state storage type.
//
// - A launch covers a list of tensors: each tensor is cut into kChunk-element chunks and every chunk is one block,
//   so a multi-tensor op is one grid (up to kAdemamixCudaMaxTensors tensors; longer lists loop on the host) and a
//   per-tensor op is a list of one. Chunks never straddle tensors, so a block's alignment is its tensor's.
// - Vector path: when every stream of the tensor is 16-byte aligned, each thread moves 16 bytes of the narrowest
//   stream per access (float states: 4 elements, one float4 per stream; bf16 states: 8 elements, one 16-byte load
//   per state and two float4 for param/grad). Misaligned tensors and the tail of each chunk (< one vector) go
//   element by element through the same `update`.
// - The per-launch scalars (bias corrections, 1 − β, lr·λ, …) are computed once on the host by the Op constructor,
//   exactly as on the CPU, and passed by value: no device reads of schedule scalars, no per-element pow/sqrt(double).
// - The tensor list is a __grid_constant__ parameter: blocks index it dynamically straight from the constant bank
//   instead of each thread copying the ~3 KB list into local memory.
#include <cuda_runtime.h>
#include <climits>
#include "ademamix/cuda_launch.h"

namespace ademamix {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kIters = 2;                      // vector steps per thread per chunk
constexpr int kChunk = kThreads * 8 * kIters;  // 4096 elements: a multiple of both vector widths (4 and 8)

struct LaunchList {
  ademamix_cuda_tensor t[kAdemamixCudaMaxTensors];
  unsigned first_block[kAdemamixCudaMaxTensors + 1];  // block index where each tensor's chunks start
  int count;
};
static_assert(sizeof(LaunchList) + 64 <= 4096, "kernel parameters must stay within 4 KB");

// Elements per vector access: 16 bytes of the state stream.
template <class S>
struct VecWidth { static constexpr int value = 16 / static_cast<int>(sizeof(S)); };

template <int N>
__device__ __forceinline__ void LoadVec(const float* p, float* v) {
#pragma unroll
  for (int c = 0; c < N / 4; c++) {
    const float4 q = reinterpret_cast<const float4*>(p)[c];
    v[4 * c] = q.x; v[4 * c + 1] = q.y; v[4 * c + 2] = q.z; v[4 * c + 3] = q.w;
  }
}
template <int N>
__device__ __forceinline__ void LoadVec(const bf16* p, float* v) {
#pragma unroll
  for (int c = 0; c < N / 8; c++) {
    const uint4 q = reinterpret_cast<const uint4*>(p)[c];
    const unsigned w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {  // little-endian: the lower half holds the lower-indexed element
      v[8 * c + 2 * j] = bits_f32(w[j] << 16);
      v[8 * c + 2 * j + 1] = bits_f32(w[j] & 0xFFFF0000u);
    }
  }
}
template <int N>
__device__ __forceinline__ void StoreVec(float* p, const float* v) {
#pragma unroll
  for (int c = 0; c < N / 4; c++)
    reinterpret_cast<float4*>(p)[c] = make_float4(v[4 * c], v[4 * c + 1], v[4 * c + 2], v[4 * c + 3]);
}
template <int N>
__device__ __forceinline__ void StoreVec(bf16* p, const float* v) {
#pragma unroll
  for (int c = 0; c < N / 8; c++) {
    unsigned w[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
      w[j] = unsigned(f32_to_bf16(v[8 * c + 2 * j]).bits) | (unsigned(f32_to_bf16(v[8 * c + 2 * j + 1]).bits) << 16);
    reinterpret_cast<uint4*>(p)[c] = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

template <class Op, class S>
__global__ void __launch_bounds__(kThreads)
    StepKernel(const Op op0, const __grid_constant__ LaunchList list, float* scalar_out, float scalar_value,
               const float* denom) {
  constexpr int K = Op::kStates;
  constexpr int N = VecWidth<S>::value;
  if (scalar_out != nullptr && blockIdx.x == 0 && threadIdx.x == 0) *scalar_out = scalar_value;
  // This block's tensor: the last whose first block is <= blockIdx.x. The walk is the same for every thread of the
  // block (no divergence) and at most kAdemamixCudaMaxTensors steps over the constant bank.
  int t = 0;
  while (t + 1 < list.count && list.first_block[t + 1] <= blockIdx.x) t++;
  if (t >= list.count) return;  // the one-block launch that only writes scalar_out
  const ademamix_cuda_tensor& d = list.t[t];
  Op op = op0;
  if constexpr (Op::kNormPass) op.denom = denom[t];  // this tensor's max(‖pre‖₂, 1), from NormKernel
  const int64_t begin = int64_t(blockIdx.x - list.first_block[t]) * kChunk;
  const int64_t end = begin + kChunk < d.n ? begin + kChunk : d.n;

  // P and the states may be their outputs' buffers (in place), so they are not __restrict__: each element is read
  // once and then written by the same thread, and never read again. Gradients are only read.
  const float* P = d.param;
  const float* __restrict__ G = d.grad;
  float* PO = d.param_out;
  const S* st[K];
  S* so[K];
  uintptr_t addr = reinterpret_cast<uintptr_t>(P) | reinterpret_cast<uintptr_t>(G) | reinterpret_cast<uintptr_t>(PO);
#pragma unroll
  for (int k = 0; k < K; k++) {
    st[k] = static_cast<const S*>(d.state[k]);
    so[k] = static_cast<S*>(d.state_out[k]);
    addr |= reinterpret_cast<uintptr_t>(st[k]) | reinterpret_cast<uintptr_t>(so[k]);
  }
  // begin is a multiple of N, so with 16-byte aligned bases every vector access below is 16-byte aligned.
  const int64_t vend = (addr & 15) == 0 ? begin + (end - begin) / N * N : begin;

  for (int64_t i = begin + int64_t(threadIdx.x) * N; i < vend; i += int64_t(kThreads) * N) {
    float p[N], g[N], s[K][N], out[N];
    LoadVec<N>(P + i, p);
    LoadVec<N>(G + i, g);
#pragma unroll
    for (int k = 0; k < K; k++) LoadVec<N>(st[k] + i, s[k]);
#pragma unroll
    for (int j = 0; j < N; j++) {
      float e[K];
#pragma unroll
      for (int k = 0; k < K; k++) e[k] = s[k][j];
      out[j] = op.update(p[j], g[j], e);
#pragma unroll
      for (int k = 0; k < K; k++) s[k][j] = e[k];
    }
    StoreVec<N>(PO + i, out);
#pragma unroll
    for (int k = 0; k < K; k++)
      if (so[k] != nullptr) StoreVec<N>(so[k] + i, s[k]);  // uniform branch: the same for the whole grid
  }
  // Scalar path: the chunk's tail after the last whole vector, or the whole chunk when misaligned.
  for (int64_t i = vend + threadIdx.x; i < end; i += kThreads) {
    float e[K];
#pragma unroll
    for (int k = 0; k < K; k++) e[k] = load_state(st[k][i]);
    PO[i] = op.update(P[i], G[i], e);
#pragma unroll
    for (int k = 0; k < K; k++)
      if (so[k] != nullptr) store_state(&so[k][i], e[k]);
  }
}

// Norm pass of a kNormPass functor: each block sums pre(g, s)² over its chunk in double (a fixed tree in shared
// memory), then FinishNorm adds each tensor's block sums in block order: no atomics, so the same result every run.
template <class Op>
__global__ void __launch_bounds__(kThreads) NormKernel(const Op op, const __grid_constant__ LaunchList list, double* partial) {
  constexpr int K = Op::kStates;
  __shared__ double red[kThreads];
  int t = 0;
  while (t + 1 < list.count && list.first_block[t + 1] <= blockIdx.x) t++;
  const ademamix_cuda_tensor& d = list.t[t];
  const int64_t begin = int64_t(blockIdx.x - list.first_block[t]) * kChunk;
  const int64_t end = begin + kChunk < d.n ? begin + kChunk : d.n;
  double acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    float e[K];
#pragma unroll
    for (int k = 0; k < K; k++) e[k] = static_cast<const float*>(d.state[k])[i];
    const double c = op.pre(d.grad[i], e);
    acc += c * c;
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

__global__ void FinishNorm(const __grid_constant__ LaunchList list, const double* partial, float* denom) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= list.count) return;
  double s = 0;
  for (unsigned b = list.first_block[t]; b < list.first_block[t + 1]; b++) s += partial[b];
  denom[t] = fmaxf(static_cast<float>(sqrt(s)), 1.0f);
}

// Packs the tensors into as few grids as the list size allows and launches them in order on `stream`.
template <class Op, class S>
int LaunchAll(const Op& op, const ademamix_cuda_tensor* tensors, size_t count, float* scalar_out, float scalar_value,
              cudaStream_t stream) {
  LaunchList list;
  list.count = 0;
  list.first_block[0] = 0;
  bool scalar_pending = scalar_out != nullptr;
  auto flush = [&]() -> int {
    const unsigned blocks = list.first_block[list.count];
    if (blocks == 0 && !scalar_pending) return 0;
    float* denom = nullptr;
    double* partial = nullptr;
    if constexpr (Op::kNormPass) {
      if (int err = static_cast<int>(cudaMallocAsync(reinterpret_cast<void**>(&partial), sizeof(double) * (blocks ? blocks : 1), stream))) return err;
      if (int err = static_cast<int>(cudaMallocAsync(reinterpret_cast<void**>(&denom), sizeof(float) * kAdemamixCudaMaxTensors, stream))) return err;
      if (blocks) {
        NormKernel<Op><<<blocks, kThreads, 0, stream>>>(op, list, partial);
        FinishNorm<<<1, kAdemamixCudaMaxTensors, 0, stream>>>(list, partial, denom);
      }
    }
    StepKernel<Op, S><<<blocks ? blocks : 1u, kThreads, 0, stream>>>(op, list, scalar_pending ? scalar_out : nullptr,
                                                                        scalar_value, denom);
    scalar_pending = false;
    list.count = 0;
    int err = static_cast<int>(cudaGetLastError());
    if constexpr (Op::kNormPass) {
      cudaFreeAsync(partial, stream);
      cudaFreeAsync(denom, stream);
    }
    return err;
  };
  for (size_t i = 0; i < count; i++) {
    if (tensors[i].n <= 0) continue;
    const int64_t chunks = (tensors[i].n + kChunk - 1) / kChunk;
    if (list.count == kAdemamixCudaMaxTensors || int64_t(list.first_block[list.count]) + chunks > INT_MAX)
      if (int err = flush()) return err;
    list.t[list.count] = tensors[i];
    list.first_block[list.count + 1] = list.first_block[list.count] + static_cast<unsigned>(chunks);
    list.count++;
  }
  return flush();
}

template <class Op>
int Dispatch(const Op& op, const ademamix_cuda_tensor* t, size_t count, int bf16_states, float* scalar_out,
             float scalar_value, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return bf16_states ? LaunchAll<Op, bf16>(op, t, count, scalar_out, scalar_value, s)
                     : LaunchAll<Op, float>(op, t, count, scalar_out, scalar_value, s);
}


// ---- coded states (codec.h): one 256-thread block per 256-element quantization block ----------------------------
constexpr int kCodedMaxTensors = 22;  // keeps the list + config + functor within the 4 KB parameter block

struct CodedList {
  CodedTensor t[kCodedMaxTensors];
  unsigned first_block[kCodedMaxTensors + 1];
  unsigned index[kCodedMaxTensors];  // the tensor's index in the node's list (the random stream's counter)
  int count;
};
static_assert(sizeof(CodedList) + sizeof(CodedConfig) + 256 <= 4096, "kernel parameters must stay within 4 KB");

// index 0: unsigned map, 1: signed (CodedConfig::is_signed)
__constant__ float kCodedMap[2][256] = {ADEMAMIX_QMAP_UNSIGNED, ADEMAMIX_QMAP_SIGNED};
__constant__ float kCodedThr[2][256] = {ADEMAMIX_QTHR_UNSIGNED, ADEMAMIX_QTHR_SIGNED};

__device__ __forceinline__ int CodedTensorOf(const CodedList& list) {
  int t = 0;
  while (t + 1 < list.count && list.first_block[t + 1] <= blockIdx.x) t++;
  return t;
}

template <class Op>
__global__ void __launch_bounds__(kQuantBlock)
    CodedStepKernel(const Op op0, const CodedConfig cfg, const __grid_constant__ CodedList list, const float* denom) {
  constexpr int K = Op::kStates;
  __shared__ float red[kQuantBlock];
  const int t = CodedTensorOf(list);
  const CodedTensor& d = list.t[t];
  Op op = op0;
  if constexpr (Op::kNormPass) op.denom = denom[t];
  const int64_t b = int64_t(blockIdx.x - list.first_block[t]);
  const int64_t i = b * kQuantBlock + threadIdx.x;
  const bool active = i < d.n;
  float e[K];
#pragma unroll
  for (int k = 0; k < K; k++) {
    const float a = cfg.fmt[k] == kFmt8bit ? d.absmax[k][b] : 0.0f;
    e[k] = active ? load_coded(cfg.fmt[k], d.state[k], i, kCodedMap[cfg.is_signed[k]], a) : 0.0f;
  }
  if (active) d.param_out[i] = op.update(d.param[i], d.grad[i], e);
  const bool sr = cfg.stochastic != 0;
#pragma unroll
  for (int k = 0; k < K; k++) {
    const uint32_t r = sr ? rand_bits(cfg.seed, cfg.step, cfg.slot_id[k], list.index[t], i) : 0u;
    if (cfg.fmt[k] != kFmt8bit) {  // uniform over the grid
      if (active) store_wide(cfg.fmt[k], d.state_out[k], i, e[k], sr, r);
      continue;
    }
    red[threadIdx.x] = active ? fabsf(e[k]) : 0.0f;
    __syncthreads();
    for (int w = kQuantBlock / 2; w > 0; w /= 2) {
      if (threadIdx.x < w) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + w]);
      __syncthreads();
    }
    const float a = red[0];
    __syncthreads();  // red is reused by the next slot
    if (threadIdx.x == 0) d.absmax_out[k][b] = a;
    const float* map = kCodedMap[cfg.is_signed[k]];
    const float* thr = kCodedThr[cfg.is_signed[k]];
    if (active) static_cast<uint8_t*>(d.state_out[k])[i] = code_of(e[k], a, map, thr, quant_nearest(0.0f, thr), sr, r);
  }
}

template <class Op>
__global__ void __launch_bounds__(kQuantBlock)
    CodedNormKernel(const Op op, const CodedConfig cfg, const __grid_constant__ CodedList list, double* partial) {
  constexpr int K = Op::kStates;
  __shared__ double red[kQuantBlock];
  const int t = CodedTensorOf(list);
  const CodedTensor& d = list.t[t];
  const int64_t b = int64_t(blockIdx.x - list.first_block[t]);
  const int64_t i = b * kQuantBlock + threadIdx.x;
  double acc = 0;
  if (i < d.n) {
    float e[K];
#pragma unroll
    for (int k = 0; k < K; k++)
      e[k] = load_coded(cfg.fmt[k], d.state[k], i, kCodedMap[cfg.is_signed[k]], cfg.fmt[k] == kFmt8bit ? d.absmax[k][b] : 0.0f);
    if constexpr (Op::kNormPass) { const double c = op.pre(d.grad[i], e); acc = c * c; }
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kQuantBlock / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

__global__ void FinishCodedNorm(const __grid_constant__ CodedList list, const double* partial, float* denom) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= list.count) return;
  double s = 0;
  for (unsigned b = list.first_block[t]; b < list.first_block[t + 1]; b++) s += partial[b];
  denom[t] = fmaxf(static_cast<float>(sqrt(s)), 1.0f);
}

template <class Op>
int LaunchCoded(const Op& op, const CodedConfig& cfg, const CodedTensor* tensors, size_t count, cudaStream_t stream) {
  CodedList list;
  list.count = 0;
  list.first_block[0] = 0;
  auto flush = [&]() -> int {
    const unsigned blocks = list.first_block[list.count];
    if (blocks == 0) { list.count = 0; return 0; }
    float* denom = nullptr;
    double* partial = nullptr;
    if constexpr (Op::kNormPass) {
      if (int err = static_cast<int>(cudaMallocAsync(reinterpret_cast<void**>(&partial), sizeof(double) * blocks, stream))) return err;
      if (int err = static_cast<int>(cudaMallocAsync(reinterpret_cast<void**>(&denom), sizeof(float) * kCodedMaxTensors, stream))) return err;
      CodedNormKernel<Op><<<blocks, kQuantBlock, 0, stream>>>(op, cfg, list, partial);
      FinishCodedNorm<<<1, kCodedMaxTensors, 0, stream>>>(list, partial, denom);
    }
    CodedStepKernel<Op><<<blocks, kQuantBlock, 0, stream>>>(op, cfg, list, denom);
    list.count = 0;
    int err = static_cast<int>(cudaGetLastError());
    if constexpr (Op::kNormPass) {
      cudaFreeAsync(partial, stream);
      cudaFreeAsync(denom, stream);
    }
    return err;
  };
  for (size_t i = 0; i < count; i++) {
    if (tensors[i].n <= 0) continue;
    const int64_t blocks = (tensors[i].n + kQuantBlock - 1) / kQuantBlock;
    if (list.count == kCodedMaxTensors || int64_t(list.first_block[list.count]) + blocks > INT_MAX)
      if (int err = flush()) return err;
    list.t[list.count] = tensors[i];
    list.index[list.count] = static_cast<unsigned>(i);
    list.first_block[list.count + 1] = list.first_block[list.count] + static_cast<unsigned>(blocks);
    list.count++;
  }
  return flush();
}

}  // namespace
}  // namespace cuda
}  // namespace ademamix

using namespace ademamix;

extern "C" int ademamix_cuda_ademamix(const AdemamixHyper* h, const ademamix_cuda_tensor* t, size_t count,
                                      int bf16_states, void* stream) {
  if (h->beta1 != 0.0) return cuda::Dispatch(AdemamixOp<true>(*h), t, count, bf16_states, nullptr, 0.f, stream);
  return cuda::Dispatch(AdemamixOp<false>(*h), t, count, bf16_states, nullptr, 0.f, stream);
}

extern "C" int ademamix_cuda_simplified(const SimplifiedHyper* h, const ademamix_cuda_tensor* t, size_t count,
                                        int bf16_states, float* s1_out, float s1_value, void* stream) {
  return cuda::Dispatch(SimplifiedOp(*h), t, count, bf16_states, s1_out, s1_value, stream);
}

extern "C" int ademamix_cuda_adamw(const AdamWHyper* h, const ademamix_cuda_tensor* t, size_t count, int bf16_states,
                                   void* stream) {
  return cuda::Dispatch(AdamWOp(*h), t, count, bf16_states, nullptr, 0.f, stream);
}

extern "C" int ademamix_cuda_generic(int op_index, const GenericHyper* h, const ademamix_cuda_tensor* t, size_t count,
                                     void* stream) {
  switch (op_index) {
#define ADEMAMIX_CUDA_CASE(IDX, OP, FUNCTOR) \
  case IDX: return cuda::Dispatch(FUNCTOR(*h), t, count, 0, nullptr, 0.f, stream);
    ADEMAMIX_GENERIC_OPS(ADEMAMIX_CUDA_CASE)
#undef ADEMAMIX_CUDA_CASE
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int ademamix_cuda_coded(int op_index, const GenericHyper* h, const CodedConfig* cfg, const CodedTensor* t,
                                   size_t count, void* stream) {
  int err = 0;
  const bool known = with_functor(op_index, *h, [&](auto op) {
    err = cuda::LaunchCoded(op, *cfg, t, count, static_cast<cudaStream_t>(stream));
  });
  return known ? err : static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int ademamix_cuda_copy(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0 || dst == src) return 0;
  return static_cast<int>(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
}

extern "C" const char* ademamix_cuda_error_string(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}
