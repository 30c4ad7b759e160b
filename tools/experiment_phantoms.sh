#!/usr/bin/env bash
# The experiment of docs/results.md: UniMRSeg (stages 1-3 of tools/demo.sh, and
# the stage-2 model on its own) against the complete-modality baseline, each
# trained with 3 seeds (UMRFLOW_SEEDS) on the same phantoms and evaluated on all
# 15 modality subsets of the same held-out cases. Prints mean +- sd over seeds
# of the Average and Std Dev rows and the per-subset differences to the
# baseline (tools/experiment_summary.py). About 5 minutes per seed on 2 cores.
#   bash tools/experiment_phantoms.sh            # outputs in runs/experiment[.N]
#   UMRFLOW_SEEDS="1 2" UMRFLOW_DEMO_DATA=... bash tools/experiment_phantoms.sh
#   UMRFLOW_DEMO_SET=execution.own_kernels=false UMRFLOW_EXPERIMENT_OUT=runs/libtorch bash tools/experiment_phantoms.sh
set -euo pipefail
# A relative UMRFLOW_DEMO_DATA is the caller's: resolved before the cd.
case "${UMRFLOW_DEMO_DATA:-/}" in /*) ;; *) UMRFLOW_DEMO_DATA=$PWD/$UMRFLOW_DEMO_DATA ;; esac
cd "$(dirname "$0")/.."
bin=./build/umrflow
data=${UMRFLOW_DEMO_DATA:-data/phantoms}
out=${UMRFLOW_EXPERIMENT_OUT:-runs/experiment}
seeds=${UMRFLOW_SEEDS:-2025 2026 2027}  # 2025 is the graphs' own seed (the demo's)
if [ -e "$out" ]; then
  i=1
  while [ -e "$out.$i" ]; do i=$((i + 1)); done
  out="$out.$i"
fi
for seed in $seeds; do
  echo "== seed $seed"
  UMRFLOW_DEMO_DATA="$data" UMRFLOW_DEMO_OUT="$out/seed$seed" UMRFLOW_SEED="$seed" bash tools/demo.sh
  # The stage-2 model on its own (plain path for every subset).
  $bin run graphs/phantoms/eval.yaml --quiet --set "data.cases.root=$data" --set "data.cases.split=$out/seed$seed/split.yaml" \
    --set modules.net.adapter=false --set "modules.net.init.from=$out/seed$seed/stage2/best.pt" ${UMRFLOW_DEMO_SET:+--set "$UMRFLOW_DEMO_SET"} --out "$out/seed$seed/stage2_eval" > /dev/null
done
/usr/bin/python3 tools/experiment_summary.py "$out" | tee "$out/summary.md"
