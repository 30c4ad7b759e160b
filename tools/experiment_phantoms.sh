#!/usr/bin/env bash
# The experiment of docs/results.md: UniMRSeg (stages 1-3, tools/demo.sh) and
# the complete-modality baseline (graphs/phantoms/baseline.yaml, which the demo
# also runs), both evaluated on all 15 modality subsets of
# the same held-out phantom cases. Prints both tables.
#   bash tools/experiment_phantoms.sh            # outputs in runs/experiment[.N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/umrflow
data=${UMRFLOW_DEMO_DATA:-data/phantoms}
out=${UMRFLOW_EXPERIMENT_OUT:-runs/experiment}
if [ -e "$out" ]; then
  i=1
  while [ -e "$out.$i" ]; do i=$((i + 1)); done
  out="$out.$i"
fi
UMRFLOW_DEMO_DATA="$data" UMRFLOW_DEMO_OUT="$out/unimrseg" bash tools/demo.sh
# The demo trains and evaluates the baseline too (unimrseg/baseline, unimrseg/baseline_eval).
echo
echo "## UniMRSeg"
cat "$out/unimrseg/eval/report.md"
echo
echo "## Baseline (complete modalities only)"
cat "$out/unimrseg/baseline_eval/report.md"
