#!/usr/bin/env bash
# Creates .venv with the Python packages the tests use as independent references (onnx for fixtures written by
# another serializer, onnxruntime for the Python-ORT path, torch for gradient/trajectory parity). Installs come
# from the machine's pip configuration (a local wheel mirror here); resolving is slow, so it runs once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
pkgs=(numpy onnx onnxruntime ${ADEMAMIX_PY_EXTRA:-})
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import numpy, onnx, onnxruntime" 2>/dev/null && [[ -z "${ADEMAMIX_PY_EXTRA:-}" ]]; then
  echo "$venv/bin/python"; exit 0
fi
python3 -m venv "$venv" >&2
# Resolve from the local mirror only when there is one: the default index is unreachable offline and each retry
# costs seconds.
idx=()
if [[ -n "${ADEMAMIX_PIP_INDEX:-}" ]]; then idx=(--index-url "$ADEMAMIX_PIP_INDEX")
elif [[ -d /opt/pypi/simple ]]; then idx=(--index-url file:///opt/pypi/simple); fi
"$venv/bin/pip" install -q "${idx[@]}" "${pkgs[@]}" >&2
echo "$venv/bin/python"
