#!/usr/bin/env bash
# UniMRSeg against the both-modality baseline on the 2D phantoms: for RGB-D
# and RGB-T salient object detection (and, with UMRFLOW_2D_TASKS=sunrgbd,
# RGB-D segmentation), writes phantom scenes (umrflow synth rgbd / rgbt /
# sunrgbd; train and test scenes from different seeds or ids), runs stages 1-3 of
# graphs/phantoms2d/, evaluates Table 2's three inputs on the test scenes,
# trains the baseline (both modalities only, as many epochs as stages 1-3
# together) and evaluates it the same way; prints both tables per task.
# The figures in docs/results.md ("2D tasks") come from this script. A stage
# whose run directory already holds last.pt (an evaluation: report.md) is not
# run again, so a second call resumes an interrupted one.
#   bash tools/results_2d.sh                 # outputs in runs/results_2d
#   UMRFLOW_2D_SCENES=160 UMRFLOW_2D_TEST_SCENES=60 UMRFLOW_2D_OUT=... UMRFLOW_2D_TASKS="rgbd rgbt sunrgbd" bash tools/results_2d.sh
#   UMRFLOW_2D_SEED=7 ...    # another training seed (the graphs' own: 2025); same scenes
#   UMRFLOW_2D_BUDGET=4 ...  # every stage's and the baseline's epochs times 4 (4+8+4 and 16 by default)
# A finished stage is kept whatever the settings: give a new UMRFLOW_2D_OUT
# for another seed or budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/umrflow
[ -x "$bin" ] || { echo "build umrflow first: bash tools/setup.sh" >&2; exit 1; }
out=${UMRFLOW_2D_OUT:-runs/results_2d}
scenes=${UMRFLOW_2D_SCENES:-160}
test_scenes=${UMRFLOW_2D_TEST_SCENES:-60}
start=$(date +%s)
k=${UMRFLOW_2D_BUDGET:-1}
[[ $k =~ ^[1-9][0-9]*$ ]] || { echo "UMRFLOW_2D_BUDGET must be a whole number of at least 1, not '$k'" >&2; exit 1; }
for task in ${UMRFLOW_2D_TASKS:-rgbd rgbt}; do
  data=${UMRFLOW_2D_DATA:-data}/${task}_phantoms_${scenes}
  o=$out/$task
  if [ "$task" = sunrgbd ]; then
    # Segmentation: one folder, train.txt and test.txt; graphs sunrgbd_*.yaml.
    mods="[RGB, Depth]"; prefix=sunrgbd_
    [ -f "$data/test.txt" ] || $bin synth sunrgbd --train "$scenes" --test "$test_scenes" --size 64 --seed 1 --overwrite --out "$data"
    train=(--quiet --set "data.samples.root=$data" --set "data.samples.split=$data/train.txt")
    eval=(--quiet --set "data.samples.root=$data" --set "data.samples.split=$data/test.txt")
  else
    if [ "$task" = rgbt ]; then aux=T; mods="[RGB, Thermal]"; else aux=depth; mods="[RGB, Depth]"; fi
    prefix=
    [ -d "$data/train/RGB" ] || $bin synth "$task" --scenes "$scenes" --size 64 --seed 1 --overwrite --out "$data/train"
    [ -d "$data/test/RGB" ] || $bin synth "$task" --scenes "$test_scenes" --size 64 --seed 2 --overwrite --out "$data/test"
    train=(--quiet --set "data.samples.root=$data/train" --set "data.samples.aux=$aux")
    eval=(--quiet --set "data.samples.root=$data/test" --set "data.samples.aux=$aux")
  fi
  eval+=(--set "step.subsets.modalities=$mods" --set "step.report.modalities=$mods")
  [ -z "${UMRFLOW_2D_SEED:-}" ] || train+=(--set "seed=$UMRFLOW_2D_SEED")
  # run NAME GRAPH ARGS...: one run into $o/NAME unless it finished before.
  run() {
    local name=$1 graph=$2
    shift 2
    if [ -f "$o/$name/last.pt" ] || [ -f "$o/$name/report.md" ]; then echo "$o/$name: done before, kept"; return; fi
    rm -rf "$o/$name"
    $bin run "graphs/phantoms2d/$prefix$graph" "$@" --out "$o/$name"
  }
  echo "== $task: stage 1, modality reconstruction"
  # The profiles' own epochs (4, 8, 4; 16) are only overridden for a budget other than 1.
  epochs() { [ "$k" = 1 ] || echo --set "train.epochs=$(( $1 * k ))"; }
  run stage1 stage1.yaml "${train[@]}" $(epochs 4)
  echo "== $task: stage 2, modality-invariant contrastive learning"
  run stage2 stage2.yaml "${train[@]}" $(epochs 8) --set "modules.net.init.from=$o/stage1/last.pt"
  echo "== $task: stage 3, reverse-attention adapter"
  run stage3 stage3.yaml "${train[@]}" $(epochs 4) --set "step.subsets.modalities=$mods" --set "modules.net.init.from=$o/stage2/last.pt"
  run eval eval.yaml "${eval[@]}" --set "modules.net.init.from=$o/stage3/last.pt" > /dev/null
  echo "== $task: baseline, both modalities only"
  run baseline baseline.yaml "${train[@]}" $(epochs 16)
  run baseline_eval eval.yaml "${eval[@]}" --set modules.net.adapter=false --set "modules.net.init.from=$o/baseline/last.pt" > /dev/null
  for m in eval baseline_eval; do
    name=UniMRSeg
    [ "$m" = eval ] || name=baseline
    echo "-- $task, $name ($o/$m/report.md)"
    grep '^|' "$o/$m/report.md"
  done
done
echo "done in $(( $(date +%s) - start )) s"
