#!/usr/bin/env bash
# ASan + UBSan: builds the op library, the session addon and the kernel check into build-asan/ (CUDA off; both CPU
# kernel builds, avx2 and base, instrumented), then runs their native tests under the sanitizers:
# the C++ kernel check (standalone) and the addon's jest files (and test/edges.test.ts) with the sanitized .so's (ADEMAMIX_BUILD_DIR).
# node itself is not instrumented: libasan is preloaded; leak detection is off (node and ORT leak at exit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${ADEMAMIX_SANITIZE_DIR:-build-asan}
inc=$(bash scripts/fetch-ort-headers.sh)
node_inc="${NODE_INCLUDE_DIR:-$(dirname "$(dirname "$(command -v node)")")/include/node}"
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$out"
log=$out/build.log
echo "== sanitize: ASan+UBSan build into $out/ (log: $log)" >&2
if ! { cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADEMAMIX_SANITIZE=ON -DADEMAMIX_CUDA=OFF \
         -DORT_INCLUDE_DIR="$inc" -DNODE_INCLUDE_DIR="$node_inc" \
         -DNODE_ADDON_API_DIR="$root/node_modules/node-addon-api" \
       && cmake --build "$out" -j "$jobs"; } > "$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "sanitize: the sanitized build failed (full log: $log)" >&2
  exit 1
fi
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== sanitize: C++ kernel check" >&2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$out/custom-ops/ademamix_kernel_check"
libasan=$(gcc -print-file-name=libasan.so)
[[ -f "$libasan" ]] || { echo "sanitize: libasan not found ($libasan)" >&2; exit 1; }
echo "== sanitize: session addon tests (jest, sanitized addon and op library)" >&2
ADEMAMIX_BUILD_DIR="$root/$out" LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  npx jest --runInBand test/native-session.test.ts test/multi-tensor.test.ts test/edges.test.ts
