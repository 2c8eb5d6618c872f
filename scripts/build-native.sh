#!/usr/bin/env bash
# Builds the op library (build/custom-ops/libademamix_ops.so) and the session addon
# (build/session-addon/ademamix_session.node). Run by `npm install` (postinstall) and `npm run build:native`.
# The op library gets CUDA kernels when nvcc is found (CUDA runtime linked statically: it still loads without a GPU);
# ADEMAMIX_NO_CUDA=1 (or ADEMAMIX_CMAKE_ARGS=-DADEMAMIX_CUDA=OFF) builds it CPU-only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
inc=$(bash scripts/fetch-ort-headers.sh)
node_inc="${NODE_INCLUDE_DIR:-$(dirname "$(dirname "$(command -v node)")")/include/node}"
[[ -f "$node_inc/node_api.h" ]] || { echo "build-native: node_api.h not found under $node_inc (set NODE_INCLUDE_DIR)" >&2; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)
# compiler output goes to a log: one line while it runs, the log's tail only when it fails (ADEMAMIX_VERBOSE=1: all)
mkdir -p build
log=build/native-build.log
echo "building the op library and the session addon (a few minutes on 2 cores; log: $log)" >&2
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DORT_INCLUDE_DIR="$inc" -DNODE_INCLUDE_DIR="$node_inc" \
         -DNODE_ADDON_API_DIR="$root/node_modules/node-addon-api" ${ADEMAMIX_CMAKE_ARGS:-} \
       && cmake --build build -j "$jobs"; } > "$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "build-native: the native build failed (full log: $log)" >&2
  exit 1
fi
[[ -n "${ADEMAMIX_VERBOSE:-}" ]] && cat "$log" >&2
true
