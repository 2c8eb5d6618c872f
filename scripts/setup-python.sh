#!/usr/bin/env bash
# Creates .venv with the Python packages the tests use as independent references (onnx for fixtures written by
# another serializer, onnxruntime for the Python-ORT path, torch + onnxscript + safetensors for the PyTorch interop
# and parity tests; transformers for the models of test/interop-defaults.test.ts). Installs come from the machine's pip configuration (a local wheel mirror here); resolving is
# slow, so it runs once: a second call only checks that the modules are importable (find_spec, no imports) and
# prints the interpreter's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${ADEMAMIX_VENV:-$root/.venv}"
pkgs=(numpy onnx onnxruntime torch onnxscript safetensors transformers optax jax ${ADEMAMIX_PY_EXTRA:-})
mods="numpy onnx onnxruntime torch onnxscript safetensors transformers optax jax"
have() {
  [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))" $mods 2>/dev/null
}
if have && [[ -z "${ADEMAMIX_PY_EXTRA:-}" ]]; then echo "$venv/bin/python"; exit 0; fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" >&2
# Resolve from the local mirror only when there is one: the default index is unreachable offline and each retry
# costs seconds. The CPU build of torch is a local wheel (/opt/wheels); the mirror's torch is the CUDA build, whose
# dependencies are gigabytes.
idx=()
if [[ -n "${ADEMAMIX_PIP_INDEX:-}" ]]; then idx=(--index-url "$ADEMAMIX_PIP_INDEX")
elif [[ -d /opt/pypi/simple ]]; then idx=(--index-url file:///opt/pypi/simple); fi
links=()
wheels="${ADEMAMIX_TORCH_WHEELS:-/opt/wheels}"
if compgen -G "$wheels/torch-*+cpu-*.whl" >/dev/null; then
  links=(--find-links "$wheels")
  # pin the local CPU wheel's version so the resolver never prefers another torch
  v=$(basename "$(ls "$wheels"/torch-*+cpu-*.whl | sort -V | tail -1)" | cut -d- -f2)
  for i in "${!pkgs[@]}"; do [[ "${pkgs[$i]}" == torch ]] && pkgs[$i]="torch==$v"; done
fi
# pip's notes on the mirror go to a log: one line here, the log's tail only when the install fails
log="$venv/pip-install.log"
echo "setting up the Python reference environment in $venv (once; a few minutes; log: $log)" >&2
if ! "$venv/bin/pip" install -q --disable-pip-version-check "${idx[@]}" "${links[@]}" "${pkgs[@]}" > "$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "setup-python: pip install failed (full log: $log)" >&2
  exit 1
fi
echo "$venv/bin/python"
