#!/usr/bin/env bash
# `umrflow predict` on BraTS-size cases (240 x 240 x 155 phantoms), the
# network at the phantom profile's widths (8-32) with random weights (one
# stage-3 epoch on a 16^3 phantom: the time does not depend on the weights).
# Prints seconds per case for the paper's 128^3 windows and the phantom
# profile's 32^3, whole volume and --crop foreground, and the peak resident
# memory (GNU time). docs/benchmarks.md ("Prediction") holds the figures.
#   bash tools/bench_predict.sh
#   UMRFLOW_BENCH_DATA=data/brats_size bash tools/bench_predict.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/build/umrflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
$bin synth brats --cases 3 --size 16 --seed 5 --out "$work/small" > /dev/null 2>&1
$bin split --from "$work/small" --val 0 --test 0 --out "$work/small/split.yaml" > /dev/null 2>&1
$bin run graphs/phantoms/stage3.yaml --quiet --out "$work/s3" --set "data.cases.root=$work/small" \
  --set "data.cases.split=$work/small/split.yaml" --set modules.net.init=null --set train.validate=null \
  --set train.epochs=1 --set 'data.crop.size=[16, 16, 16]' > /dev/null 2>&1
# UMRFLOW_BENCH_DATA: a folder of BraTS-size cases to use instead (synthesising
# one 240^3 phantom takes minutes on 2 cores).
big=${UMRFLOW_BENCH_DATA:-$work/big}
if [ -z "${UMRFLOW_BENCH_DATA:-}" ]; then
  $bin synth brats --cases "${UMRFLOW_BENCH_CASES:-1}" --size 240 --seed 6 --out "$big" > /dev/null 2>&1
fi
cases=$(find "$big" -name '*_flair.nii*' | wc -l)
echo
echo "| window | region | cases | s per case | peak RSS (MiB) |"
echo "|---|---|---|---|---|"
for window in 128 32; do
  for crop in none foreground; do
    out=$work/seg_${window}_$crop
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" predict --quiet --weights "$work/s3/last.pt" --input "$big" \
      --output "$out" --window "$window,$window,$window" --crop "$crop" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    per_case=$(grep -o '([0-9.]* s per case)' "$work/log" | tr -d '(' | cut -d' ' -f1)
    echo "| ${window}^3 | $([ "$crop" = none ] && echo 'whole volume' || echo 'foreground box') | $cases | $per_case | $(( $(cat "$work/rss") / 1024 )) |"
  done
done
