#!/usr/bin/env bash
# On a GPU machine: builds and runs the validation harness, the benchmark and (when torch with CUDA is importable) the
# torch.optim.AdamW(fused=True) reference. Results go to $OUT (the device runner's output folder) or build/gpu/results:
#   validate.txt, bench.jsonl, bench_torch.jsonl, nvidia-smi.txt. Exit status: the harness's (1 on any mismatch).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
res=${OUT:-$root/build/gpu/results}
mkdir -p "$res"
nvidia-smi > "$res/nvidia-smi.txt" 2>&1 || true
bash "$root/scripts/gpu/build.sh" || exit 1
status=0
"$root/build/gpu/validate" | tee "$res/validate.txt" || status=$?
"$root/build/gpu/validate_generic" | tee "$res/validate_generic.txt" || status=1
"$root/build/gpu/bench" --reps "${REPS:-50}" | tee "$res/bench.jsonl" || status=${status:-$?}
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  python3 "$root/scripts/gpu/bench_torch.py" --reps "${REPS:-50}" | tee "$res/bench_torch.jsonl"
else
  echo "torch with CUDA not importable: skipping the torch.optim.AdamW(fused=True) reference" | tee "$res/bench_torch.jsonl"
fi
exit $status
