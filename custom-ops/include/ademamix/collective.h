// The collective ops of the com.ademamix domain (src/collective.cc): AllReduce, ReduceScatter, AllGather over MPI.
#pragma once
#include "onnxruntime_c_api.h"

namespace ademamix {
// Adds the collective ops (CPU, and CUDA when built with it) to `domain`. MPI is loaded on first use only, and only in
// a process started by mpirun with more than one rank.
OrtStatus* AddCollectiveOps(const OrtApi* api, OrtCustomOpDomain* domain);
}  // namespace ademamix

#if defined(ADEMAMIX_WITH_CUDA)
extern "C" {
// Staging for the CUDA path (src/collective_cuda.cu): copies on ORT's compute stream, then waits for it.
// kind: 0 device→host, 1 host→device, 2 device→device. Return 0 or a CUDA error code; message via ademamix_cuda_error.
int ademamix_collective_copy(void* dst, const void* src, size_t bytes, int kind, void* stream);
int ademamix_collective_sync(void* stream);
int ademamix_collective_malloc(void** p, size_t bytes);
void ademamix_collective_free(void* p);
const char* ademamix_collective_error(int code);
}
#endif
