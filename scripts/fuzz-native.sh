#!/usr/bin/env bash
# Native fuzzing of the op library (custom-ops/fuzz/): builds the libFuzzer harness into build-fuzz/ with clang++-14
# (ASan + UBSan + coverage, CPU kernels only), replays every file in custom-ops/fuzz/regressions/ (inputs that once
# crashed), then fuzzes for [seconds] (default 30) on a copy of custom-ops/fuzz/corpus/. The kept corpus is only
# changed with --update-corpus: the run's new inputs are merged in and the whole corpus is re-minimized (-merge=1).
# Crashes are written to build-fuzz/artifacts/; a crash, sanitizer report, timeout or an op the run never got to its
# kernel fails the script.
#   scripts/fuzz-native.sh [seconds] [--update-corpus]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=30
update=0
for a in "$@"; do
  case "$a" in
    --update-corpus) update=1 ;;
    '' | *[!0-9]*) echo "usage: scripts/fuzz-native.sh [seconds] [--update-corpus]" >&2; exit 2 ;;
    *) secs=$a ;;
  esac
done
command -v clang++-14 >/dev/null || { echo "fuzz-native: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
out=build-fuzz
inc=$(bash scripts/fetch-ort-headers.sh)
# onnxruntime-node's runtime (the newest napi-v<N> folder, as src/native/paths.ts picks it)
ortlib=$(ls -d node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so.1 2>/dev/null | sort -V | tail -n 1)
[[ -n "$ortlib" ]] || { echo "fuzz-native: no libonnxruntime.so.1 under node_modules/onnxruntime-node (npm install first)" >&2; exit 1; }
mkdir -p "$out"
echo "== fuzz-native: build ($out/build.log)" >&2
if ! { cmake -S custom-ops/fuzz -B "$out" -DCMAKE_CXX_COMPILER=clang++-14 -DORT_INCLUDE_DIR="$inc" \
         -DORT_LIB="$root/$ortlib" && cmake --build "$out" -j "${JOBS:-2}"; } > "$out/build.log" 2>&1; then
  tail -n 40 "$out/build.log" >&2
  echo "fuzz-native: the harness build failed" >&2
  exit 1
fi
bin=$out/fuzz_ops
# ORT keeps process-lifetime allocations: no leak check. Short allocation stacks: the allocator is the hot path.
# New allocations filled with 0xFF (ORT's arena is off, so every output is one): FUZZ_OPS_CHECK_WRITTEN fails a run
# that succeeds with an output element still holding that pattern (never written by the op).
export ASAN_OPTIONS=detect_leaks=0:malloc_context_size=8:malloc_fill_byte=255:max_malloc_fill_size=1048576
export FUZZ_OPS_CHECK_WRITTEN=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
flags=(-detect_leaks=0 -timeout=10 -max_len=160 -len_control=0 -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$out/artifacts/" -print_final_stats=1)
mkdir -p "$out/artifacts"
shopt -s nullglob
regressions=(custom-ops/fuzz/regressions/*)
echo "== fuzz-native: ${#regressions[@]} regression inputs" >&2
"$bin" "${flags[@]}" "${regressions[@]}" > "$out/regressions.log" 2>&1 || { tail -n 60 "$out/regressions.log" >&2; exit 1; }
work=$out/corpus-run
rm -rf "$work" && mkdir -p "$work" && cp custom-ops/fuzz/corpus/* "$work"/
echo "== fuzz-native: fuzzing for ${secs}s on a copy of custom-ops/fuzz/corpus ($(ls "$work" | wc -l) inputs)" >&2
# FUZZ_OPS_REQUIRE_REACH: fail when an op never got past session creation into its kernel
FUZZ_OPS_STATS=1 FUZZ_OPS_REQUIRE_REACH=1 "$bin" "${flags[@]}" -max_total_time="$secs" "$work" > "$out/fuzz.log" 2>&1 \
  || { grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$out/fuzz.log" | tail -n 80 >&2; exit 1; }
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec)|^fuzz_ops:|^  [A-Za-z]' "$out/fuzz.log" >&2
if ((update)); then
  merged=$out/corpus-merged
  rm -rf "$merged" && mkdir -p "$merged"
  "$bin" -merge=1 "$merged" custom-ops/fuzz/corpus "$work" > "$out/merge.log" 2>&1 || { tail -n 20 "$out/merge.log" >&2; exit 1; }
  rm -f custom-ops/fuzz/corpus/* && cp "$merged"/* custom-ops/fuzz/corpus/
  echo "== fuzz-native: corpus now $(ls custom-ops/fuzz/corpus | wc -l) inputs, $(du -sh --apparent-size custom-ops/fuzz/corpus | cut -f1)" >&2
fi
echo "fuzz-native: ok" >&2
