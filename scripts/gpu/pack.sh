#!/usr/bin/env bash
# Packs what a GPU machine needs to validate and benchmark the CUDA kernels without this repository's toolchain
# (Node, ORT headers): the kernel sources, the harness and the scripts. Unpack and run `bash scripts/gpu/run.sh`
# (needs nvcc and g++; torch for the AdamW reference). Output: $1 or build/gpu/ademamix-gpu.tar.gz.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$root/build/gpu/ademamix-gpu.tar.gz}
mkdir -p "$(dirname "$dest")"
cd "$root"
tar czf "$dest" custom-ops/include custom-ops/src/cpu_kernels.cc custom-ops/src/cuda_kernels.cu scripts/gpu
echo "$dest"
