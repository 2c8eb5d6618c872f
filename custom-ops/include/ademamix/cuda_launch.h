// C entry points of the CUDA backend (src/cuda_kernels.cu). The ORT glue (ops.cc) and the GPU harness
// (scripts/gpu/) are compiled by the host compiler and only see these declarations, so no CUDA header or nvcc-only
// construct leaks into them; the arguments are plain structs and pointers.
//
// One launch covers a list of tensors (a per-tensor op is a list of one): every tensor is cut into fixed 4096-element
// chunks, one thread block per chunk, all chunks of up to kAdemamixCudaMaxTensors tensors in one grid (longer lists
// take several launches on the same stream). The host builds the optimizer's per-launch scalars once (the same
// AdemamixOp/SimplifiedOp/AdamWOp constructors the CPU uses) and passes them by value as a kernel argument.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "ademamix/kernels.h"
#include "ademamix/codec.h"

extern "C" {

// One tensor of a launch; every pointer is device memory. `state`/`state_out` point to float, or to bf16 when the
// launch has bf16 states, in the op's state order (see kernels.h). A null state_out skips storing that state (an
// optional output the node does not produce). Outputs may alias their own inputs (in place) but nothing else.
typedef struct ademamix_cuda_tensor {
  const float* param;
  const float* grad;
  const void* state[ademamix::kMaxStates];
  float* param_out;
  void* state_out[ademamix::kMaxStates];
  int64_t n;
} ademamix_cuda_tensor;

// Tensors per grid: keeps the kernel's parameter block (list + per-launch scalars) under the classic 4 KB limit.
enum { kAdemamixCudaMaxTensors = 36 };

// Each returns 0 (cudaSuccess) or the CUDA error code of the failed launch (ademamix_cuda_error_string names it).
// Launches are asynchronous on `stream` (a cudaStream_t; null is the legacy default stream).
int ademamix_cuda_ademamix(const ademamix::AdemamixHyper* h, const ademamix_cuda_tensor* tensors, size_t count,
                           int bf16_states, void* stream);
// s1_out (device, may be null) receives s1_value, the step's S1, from the first block.
int ademamix_cuda_simplified(const ademamix::SimplifiedHyper* h, const ademamix_cuda_tensor* tensors, size_t count,
                             int bf16_states, float* s1_out, float s1_value, void* stream);
int ademamix_cuda_adamw(const ademamix::AdamWHyper* h, const ademamix_cuda_tensor* tensors, size_t count,
                        int bf16_states, void* stream);
// A generic op (schemas.gen.h: schema::kOps[op_index], its functor in kernels.h) over a list of float32 tensors.
// Functors with a norm pass run it first (per-block partial sums reduced per tensor in a fixed order, so results do
// not depend on scheduling), with scratch from cudaMallocAsync on the same stream.
int ademamix_cuda_generic(int op_index, const ademamix::GenericHyper* h, const ademamix_cuda_tensor* tensors,
                          size_t count, void* stream);
// A coded-state op (schema::kOps[op_index], any definition; codec.h) over a list of tensors whose states are
// float32, bf16 or 8-bit per cfg: one 256-thread block per 256-element quantization block (the block's absmax is
// reduced in shared memory before its codes are written). Functors with a norm pass run it first.
int ademamix_cuda_coded(int op_index, const ademamix::GenericHyper* h, const ademamix::CodedConfig* cfg,
                        const ademamix::CodedTensor* tensors, size_t count, void* stream);
// Device-to-device copy on `stream` (AdEMAMix with beta1 = 0 that still names m1_out: m1_out = grad).
int ademamix_cuda_copy(void* dst, const void* src, size_t bytes, void* stream);
const char* ademamix_cuda_error_string(int code);

}  // extern "C"
