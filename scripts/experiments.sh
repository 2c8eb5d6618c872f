#!/usr/bin/env bash
# Reproduces docs/results.md: the optimizer comparisons and the Rosenbrock toy, then copies the figures and summaries
# into docs/results/. Finished runs are reused (each run directory keeps result.json), so an interrupted
# reproduction continues where it stopped. About 60 minutes on 2 cores in total (38 without the 6000-step study).
set -euo pipefail
cd "$(dirname "$0")/.."
cli=(node dist/cli.js experiment)
out=runs/experiments
"${cli[@]}" rosenbrock --out "$out/rosenbrock"
"${cli[@]}" compare --task gpt --sweep --seeds 3 --jobs 2 --out "$out/gpt"
"${cli[@]}" compare --task vit --sweep --seeds 3 --jobs 2 --out "$out/vit"
"${cli[@]}" compare --task gpt --steps 6000 --seeds 2 --variants adamw,ademamix-0.999,ademamix-0.9999 --jobs 2 --out "$out/gpt-6000"
mkdir -p docs/results
cp "$out"/rosenbrock/rosenbrock-{paths,paths-zoom,objective}.svg "$out/rosenbrock/rosenbrock.json" docs/results/
for t in gpt vit gpt-6000; do
  for f in "$out/$t"/*.svg; do cp "$f" "docs/results/$t-$(basename "$f" | sed -E 's/^(gpt|vit)-//')"; done
  cp "$out/$t/summary.md" "docs/results/$t-summary.md"
done
echo "figures and summaries in docs/results/"
