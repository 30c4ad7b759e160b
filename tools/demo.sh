#!/usr/bin/env bash
# Fresh machine to first result: installs what is missing, builds, then runs
# UniMRSeg end to end on synthetic BraTS-like phantoms with the small profile
# (graphs/phantoms/): stage 1, stage 2, stage 3, and the evaluation over all 15
# modality subsets of the held-out cases, whose table it prints; then the
# complete-modality baseline with as many epochs, whose Average and Std Dev rows
# it prints beside. About 5 minutes on two CPU cores once built.
#   bash tools/demo.sh                 # outputs in runs/demo (or runs/demo.N)
#   UMRFLOW_DEMO_DATA=... UMRFLOW_DEMO_OUT=... UMRFLOW_SEED=... bash tools/demo.sh
# UMRFLOW_DEMO_SET: one more --set for every run of the pipeline, e.g.
#   UMRFLOW_DEMO_SET=execution.own_kernels=false bash tools/demo.sh
# UMRFLOW_DEMO_STAGE2: another stage-2 graph of the phantom profile, e.g.
#   UMRFLOW_DEMO_STAGE2=graphs/phantoms/stage2_dice_bce.yaml bash tools/demo.sh
set -euo pipefail
# Relative UMRFLOW_DEMO_DATA and UMRFLOW_DEMO_OUT are the caller's: resolved before the cd.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -n "${UMRFLOW_DEMO_DATA:-}" ] && UMRFLOW_DEMO_DATA=$(absolute "$UMRFLOW_DEMO_DATA")
[ -n "${UMRFLOW_DEMO_OUT:-}" ] && UMRFLOW_DEMO_OUT=$(absolute "$UMRFLOW_DEMO_OUT")
cd "$(dirname "$0")/.."
phantoms=$PWD/data/phantoms
data=${UMRFLOW_DEMO_DATA:-$phantoms}
if [ "$data" != "$phantoms" ] && [ ! -d "$data" ]; then
  echo "error: UMRFLOW_DEMO_DATA: '$data' is no folder (give a folder of BraTS-layout cases, or leave it unset for the phantoms)" >&2
  exit 1
fi
bash tools/setup.sh
bin=./build/umrflow
out=${UMRFLOW_DEMO_OUT:-runs/demo}
if [ -e "$out" ]; then
  i=1
  while [ -e "$out.$i" ]; do i=$((i + 1)); done
  out="$out.$i"
fi
start=$(date +%s)
mkdir -p "$out"
# The split the runs use is kept with the outputs ($out/split.yaml): the data
# folder's own split.yaml when it has one; else, for the phantoms (data/phantoms),
# new phantoms and their split; else, for a folder of someone's cases, a new
# split written only to $out (umrflow split stops when it finds no case):
# phantoms are never written anywhere but data/phantoms, nor anything into
# another data folder.
if [ -f "$data/split.yaml" ]; then
  cp "$data/split.yaml" "$out/split.yaml"
elif [ "$data" = "$phantoms" ]; then
  $bin synth brats --cases 24 --size 48 --overwrite --out "$data"
  $bin split --from "$data" --val 0.1 --test 0.25 --out "$data/split.yaml"
  cp "$data/split.yaml" "$out/split.yaml"
else
  echo "== $data has no split.yaml: splitting its cases into $out/split.yaml (10 % validation, 25 % test)"
  $bin split --from "$data" --val 0.1 --test 0.25 --out "$out/split.yaml"
fi
split="$out/split.yaml"
common=(--quiet --set "data.cases.root=$data" --set "data.cases.split=$split")
# UMRFLOW_SEED: the training seed of every stage and the baseline (weights, crops, dropout draws).
[ -n "${UMRFLOW_SEED:-}" ] && common+=(--set "seed=$UMRFLOW_SEED")
[ -n "${UMRFLOW_DEMO_SET:-}" ] && common+=(--set "$UMRFLOW_DEMO_SET")
# The validation runs (best.pt) read the held-out validation cases of the same data.
val="data.cases.root=$data, data.cases.split=$split, data.cases.subset=val, step.report.hd95=false"
echo "== stage 1: modality reconstruction"
$bin run graphs/phantoms/stage1.yaml "${common[@]}" --out "$out/stage1"
echo "== stage 2: modality-invariant contrastive learning"
$bin run "${UMRFLOW_DEMO_STAGE2:-graphs/phantoms/stage2.yaml}" "${common[@]}" --set "modules.net.init.from=$out/stage1/last.pt" \
  --set "train.validate.set=[$val, modules.net.adapter=false]" --out "$out/stage2"
echo "== stage 3: reverse-attention adapter"
$bin run graphs/phantoms/stage3.yaml "${common[@]}" --set "modules.net.init.from=$out/stage2/best.pt" \
  --set "train.validate.set=[$val]" --out "$out/stage3"
echo "== evaluation: 15 modality subsets of the held-out cases"
$bin run graphs/phantoms/eval.yaml "${common[@]}" --set "modules.net.init.from=$out/stage3/best.pt" --out "$out/eval"
echo "== baseline: the same network trained on complete modalities only, as many epochs"
$bin run graphs/phantoms/baseline.yaml "${common[@]}" --out "$out/baseline"
$bin run graphs/phantoms/eval.yaml "${common[@]}" --set modules.net.adapter=false \
  --set "modules.net.init.from=$out/baseline/last.pt" --out "$out/baseline_eval" > /dev/null
echo "== UniMRSeg (above) against the baseline, Dice (%) over the same 15 subsets and cases"
echo "| model $(grep -m1 '^| present' "$out/eval/report.md")"
echo "|---$(grep -m1 '^|---' "$out/eval/report.md")"
for m in eval baseline_eval; do
  name=UniMRSeg
  [ "$m" = eval ] || name=baseline
  grep -E '^\| (\*\*Average|Std Dev)' "$out/$m/report.md" | sed "s/^|/| $name |/"
done
echo "done in $(( $(date +%s) - start )) s; report: $out/eval/report.md (also .csv, .json, per_case.csv, dice_boxplot.svg and .png)"
