#!/usr/bin/env bash
# Stage-3 step strategies (docs/benchmarks.md): one epoch of the released stage
# 3 (decoder learning, encoder statistics updating) with per-group backward
# (train.accumulate, as in graphs/stage3_brats.yaml), with one backward over
# the seven pairs run one by one, and with the pairs in one batch with
# BatchNorm statistics per pair (group_bn: batched), at the phantom profile (24^3 crops, widths 8-32) and at 128^3
# with small widths (4-8). Prints seconds per case (the epoch's step time over
# its cases) and the process's peak resident memory (GNU time).
# UMRFLOW_BENCH_BLAS="openblas reference" also times each strategy with
# Debian's reference BLAS and LAPACK (found first through LD_LIBRARY_PATH),
# which libtorch used before tools/setup.sh installed OpenBLAS;
# UMRFLOW_BENCH_STRATEGIES picks strategies (default: all three);
# UMRFLOW_BENCH_SET adds one --set to every run (e.g. execution.own_kernels=false).
#   bash tools/bench_stage3.sh            # both sizes
#   UMRFLOW_BENCH_SIZES=24 UMRFLOW_BENCH_BLAS="openblas reference" bash tools/bench_stage3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/build/umrflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sizes=${UMRFLOW_BENCH_SIZES:-24 128}
blases=${UMRFLOW_BENCH_BLAS:-openblas}
lib=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "BLAS: $(readlink -f "$lib/libblas.so.3")"
echo
echo "| crop | widths | cases | strategy | BLAS | s per case | peak RSS (MiB) | total loss |"
echo "|---|---|---|---|---|---|---|---|"
for size in $sizes; do
  if [ "$size" -le 32 ]; then cases=3 phantom=32 widths="[8, 16, 32, 32]"; else cases=1 phantom=$size widths="[4, 8, 8, 8]"; fi
  data=$work/ph$size
  $bin synth brats --cases $((cases + 1)) --size "$phantom" --seed 5 --overwrite --out "$data" > /dev/null 2>&1
  $bin split --from "$data" --val 0.01 --test 0 --out "$data/split.yaml" > /dev/null 2>&1
  for strategy in ${UMRFLOW_BENCH_STRATEGIES:-per_group_backward one_backward batched_pairs}; do
  for blas in $blases; do
    path=${LD_LIBRARY_PATH:-}
    [ "$blas" = reference ] && path=$lib/blas:$lib/lapack${path:+:$path}
    acc="train.accumulate={groups: subsets.group, slice: [subsets.incomplete]}" bn=loop
    [ "$strategy" != per_group_backward ] && acc="train.accumulate=null"
    [ "$strategy" = batched_pairs ] && bn=batched
    out=$work/run_${size}_${strategy}_$blas
    # Address space capped (UMRFLOW_BENCH_MEMORY_GIB, default 20) so that a
    # strategy that does not fit fails with an allocation error instead of
    # sending the machine into swap or the OOM killer.
    if ! (ulimit -v $((${UMRFLOW_BENCH_MEMORY_GIB:-20} * 1024 * 1024)); LD_LIBRARY_PATH=$path /usr/bin/time -f "%M" -o "$work/rss" "$bin" run graphs/phantoms/stage3.yaml --quiet --out "$out" \
      --set "data.cases.root=$data" --set "data.cases.split=$data/split.yaml" --set modules.net.init=null \
      --set train.validate=null --set train.epochs=1 --set modules.net.freeze_decoder=false \
      --set modules.net.encoder_bn_update=true --set "modules.net.widths=$widths" \
      --set "data.crop.size=[$size, $size, $size]" --set "data.foreground.k_divisible=[$size, $size, $size]" \
      --set execution.threads=1 --set "$acc" --set "modules.net.group_bn=$bn" ${UMRFLOW_BENCH_SET:+--set "$UMRFLOW_BENCH_SET"} > "$work/log" 2>&1); then
      echo "| ${size}^3 | $widths | - | $strategy | $blas | failed in ${UMRFLOW_BENCH_MEMORY_GIB:-20} GiB: $(grep -m1 -o "allocate [0-9]* bytes" "$work/log" || tail -n 1 "$work/log" | cut -c1-120) | - | - |"
      continue
    fi
    /usr/bin/python3 - "$out/metrics.jsonl" "$(cat "$work/rss")" "$size" "$widths" "$strategy" "$blas" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])][-1]
cases = m["samples_per_s"] * m["time_s"]
step = m["time_s"] - m.get("data_wait_s", 0.0)
print(f"| {sys.argv[3]}^3 | {sys.argv[4]} | {cases:.0f} | {sys.argv[5]} | {sys.argv[6]} | {step / cases:.2f} | {int(sys.argv[2]) / 1024:.0f} | {m['total']:.6f} |")
PY
  done
  done
done
