// The few CUDA runtime calls the GPU harness and benchmark use, behind one header. Normally that is the CUDA runtime;
// built with -DADEMAMIX_HOST_SHIM (scripts/gpu/build.sh --host-shim) "device" memory is host memory and the launch
// entry points run the CPU kernels, so the harness's own logic (poisoning, canaries, comparisons, tensor lists) can be
// checked on a machine without a GPU. The shim proves nothing about the CUDA kernels themselves.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "ademamix/cuda_launch.h"

#if !defined(ADEMAMIX_HOST_SHIM)
#include <cuda_runtime.h>
#define DEV_CHECK(expr)                                                                               \
  do {                                                                                                \
    cudaError_t e_ = (expr);                                                                          \
    if (e_ != cudaSuccess) {                                                                          \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                   \
    }                                                                                                 \
  } while (0)
namespace dev {
using Stream = cudaStream_t;
inline void* Alloc(size_t bytes) { void* p = nullptr; DEV_CHECK(cudaMalloc(&p, bytes ? bytes : 1)); return p; }
inline void Free(void* p) { DEV_CHECK(cudaFree(p)); }
inline void ToDevice(void* d, const void* h, size_t bytes) { DEV_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)); }
inline void ToHost(void* h, const void* d, size_t bytes) { DEV_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)); }
inline void Fill(void* d, int byte, size_t bytes) { DEV_CHECK(cudaMemset(d, byte, bytes)); }
inline Stream NewStream() { Stream s; DEV_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); return s; }
inline void Sync(Stream s) { DEV_CHECK(cudaStreamSynchronize(s)); }
inline const char* Name() {
  static char name[300];
  cudaDeviceProp p;
  int d = 0;
  DEV_CHECK(cudaGetDevice(&d));
  DEV_CHECK(cudaGetDeviceProperties(&p, d));
  std::snprintf(name, sizeof name, "%s (sm_%d%d, %d SMs)", p.name, p.major, p.minor, p.multiProcessorCount);
  return name;
}
}  // namespace dev
#else
namespace dev {
using Stream = void*;
inline void* Alloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
inline void Free(void* p) { std::free(p); }
inline void ToDevice(void* d, const void* h, size_t bytes) { std::memcpy(d, h, bytes); }
inline void ToHost(void* h, const void* d, size_t bytes) { std::memcpy(h, d, bytes); }
inline void Fill(void* d, int byte, size_t bytes) { std::memset(d, byte, bytes); }
inline Stream NewStream() { return nullptr; }
inline void Sync(Stream) {}
inline const char* Name() { return "host shim (CPU kernels standing in for the GPU)"; }
}  // namespace dev
#endif
