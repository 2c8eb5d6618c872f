#!/usr/bin/env bash
# On the GPU machine, once every piece from pack-ep.sh is under .gpu-carry/: unpacks the runnable package, puts
# libonnxruntime_providers_shared.so beside ONNX Runtime's core library (where the provider looks for it), adds the
# CUDA libraries that torch ships to the library path, then trains gpt-tiny on the CPU and on the CUDA EP with the
# custom ops on the GPU and compares the losses (scripts/gpu/ep-train.js). With --kernels it first runs run.sh (kernel
# validation and benchmarks). Results: $OUT (or build/gpu/results)/ep-train.jsonl.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
res=${OUT:-$root/build/gpu/results}
ep=${ADEMAMIX_EP_DIR:-/tmp/ademamix-ep}
mkdir -p "$res"
status=0
if [[ "${1:-}" == "--kernels" ]]; then bash "$root/scripts/gpu/run.sh" || status=$?; shift; fi
ls "$root"/.gpu-carry/ep.tar.xz.part-* >/dev/null 2>&1 || { echo "ep-run: no .gpu-carry/ep.tar.xz.part-* here (run pack-ep.sh and carry every piece)" >&2; exit 1; }
rm -rf "$ep" && mkdir -p "$ep"
cat "$root"/.gpu-carry/ep.tar.xz.part-* | xz -d | tar xf - -C "$ep" || { echo "ep-run: the pieces do not unpack (one missing?)" >&2; exit 1; }
cp "$ep/ep/libonnxruntime_providers_shared.so" "$ep/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/"
libs=$(python3 -c 'import glob, os, site
print(":".join(sorted({d for sp in site.getsitepackages() for d in glob.glob(os.path.join(sp, "nvidia", "*", "lib"))})))' 2>/dev/null || true)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$res/ep-gpu.txt" 2>&1 || true
"$ep/bin/node" "$ep/scripts/gpu/ep-train.js" --provider "$ep/ep/libonnxruntime_providers_cuda.so" --steps "${STEPS:-200}" \
  | tee "$res/ep-train.jsonl" || status=1
exit $status
