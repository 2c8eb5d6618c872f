// CUDA side of the collective ops: plain copies on ORT's compute stream. The reduction itself is MPI's: on host buffers
// (staged), or on device pointers when the MPI build is CUDA-aware (ADEMAMIX_MPI_CUDA_AWARE=1). Compiled here; run only
// where a GPU is lent.
#include <cuda_runtime.h>
#include <cstddef>

extern "C" {

int ademamix_collective_copy(void* dst, const void* src, size_t bytes, int kind, void* stream) {
  const cudaMemcpyKind k = kind == 0 ? cudaMemcpyDeviceToHost : kind == 1 ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice;
  return static_cast<int>(cudaMemcpyAsync(dst, src, bytes, k, static_cast<cudaStream_t>(stream)));
}

int ademamix_collective_sync(void* stream) { return static_cast<int>(cudaStreamSynchronize(static_cast<cudaStream_t>(stream))); }

int ademamix_collective_malloc(void** p, size_t bytes) { return static_cast<int>(cudaMalloc(p, bytes)); }

void ademamix_collective_free(void* p) { cudaFree(p); }

const char* ademamix_collective_error(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // extern "C"
