#!/usr/bin/env bash
# Builds the GPU validation harness and benchmark: build/gpu/validate and build/gpu/bench (nvcc; no ONNX Runtime).
#   scripts/gpu/build.sh              CUDA build (needs nvcc; runs only where there is a GPU)
#   scripts/gpu/build.sh --host-shim  build/gpu/validate-shim: the harness with the CPU kernels standing in for the GPU,
#                                     to check the harness itself on any machine (proves nothing about the CUDA code)
# ADEMAMIX_CUDA_GENCODE overrides the target (default: sm_90 code + compute_90 PTX, as the op library).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${ADEMAMIX_GPU_BUILD:-$root/build/gpu}
mkdir -p "$out"
inc=(-I"$root/custom-ops/include" -I"$root/scripts/gpu")
cpu_flags=(-std=c++17 -O3 -fno-math-errno -fPIC)
g++ "${cpu_flags[@]}" "${inc[@]}" -c "$root/custom-ops/src/cpu_kernels.cc" -o "$out/cpu_kernels.o"
if [[ "${1:-}" == "--host-shim" ]]; then
  g++ -std=c++17 -O2 -DADEMAMIX_HOST_SHIM "${inc[@]}" -x c++ "$root/scripts/gpu/validate.cu" -x none \
    "$root/scripts/gpu/host_shim.cc" "$out/cpu_kernels.o" -o "$out/validate-shim"
  g++ -std=c++17 -O2 -DADEMAMIX_HOST_SHIM "${inc[@]}" -x c++ "$root/scripts/gpu/validate_generic.cu" -x none \
    "$root/scripts/gpu/host_shim.cc" "$out/cpu_kernels.o" -o "$out/validate-generic-shim"
  echo "$out/validate-shim $out/validate-generic-shim"
  exit 0
fi
command -v nvcc >/dev/null || { echo "scripts/gpu/build.sh: nvcc not found (put the CUDA toolkit's bin on PATH)" >&2; exit 1; }
gencode=${ADEMAMIX_CUDA_GENCODE:-arch=compute_90,code=[sm_90,compute_90]}
nv=(nvcc -std=c++17 -O3 -gencode "$gencode" "${inc[@]}")
"${nv[@]}" -c "$root/custom-ops/src/cuda_kernels.cu" -o "$out/cuda_kernels.o"
"${nv[@]}" "$root/scripts/gpu/validate.cu" "$out/cuda_kernels.o" "$out/cpu_kernels.o" -o "$out/validate"
"${nv[@]}" "$root/scripts/gpu/validate_generic.cu" "$out/cuda_kernels.o" "$out/cpu_kernels.o" -o "$out/validate_generic"
"${nv[@]}" "$root/scripts/gpu/bench.cu" "$out/cuda_kernels.o" -o "$out/bench"
echo "$out/validate $out/validate_generic $out/bench"
