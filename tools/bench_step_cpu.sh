#!/usr/bin/env bash
# The CPU training step against the PyTorch peer (docs/benchmarks.md), side by
# side in one run: ../shared/bench/peer_unet3d.py and
# graphs/bench/step_unet3d_cpu.yaml (the same network, loss, optimizer and batch
# of 2 x 4 x 32^3), at 1 and 2 intra-op threads (umrflow's data plane sized
# automatically beside them), alternating so both see the same machine. Both
# figures are medians of single steps: the peer's over 10 after 3 warm-up
# steps, umrflow's over the 12 of its second epoch. umrflow also runs with
# execution.own_kernels false (libtorch's kernels throughout), which shows
# what its own CPU kernels buy on the same machine in the same minute.
# A last row per thread count gives the medians over the rounds (of the
# figures and of the per-round ratios).
#   bash tools/bench_step_cpu.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
peer=../shared/bench/peer_unet3d.py
[ -f "$peer" ] || { echo "bench_step_cpu: $peer is missing (the shared folder sits next to the project)" >&2; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# umrflow keeps freed memory (engine/cli/main.cpp); the peer is timed as users
# run it (glibc's defaults) and with the same malloc settings as umrflow.
same_malloc=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647:glibc.malloc.arena_max=1
peer_step() {  # threads [extra env]
  env OMP_NUM_THREADS="$1" ${2:+"$2"} /usr/bin/python3 "$peer" --roi 32 --batch 2 --widths 8,16,32,64 --threads "$1" 2>/dev/null |
    python3 -c "import json, sys; print(f\"{json.loads(sys.stdin.read().strip().splitlines()[-1])['median_step_s']:.3f}\")"
}
ours_step() {  # threads [--set ...]
  OMP_NUM_THREADS=$1 build/umrflow bench graphs/bench/step_unet3d_cpu.yaml --threads 0 --repeat 3 --set train.epochs=2 "${@:2}" 2>/dev/null |
    awk -F'|' 'NR == 3 {printf "%.3f", $5}'
}
echo "| threads | round | umrflow s/step (median step of the second epoch's 12, median of 3 runs) | umrflow, execution.own_kernels false | peer s/step (median of 10) | peer / umrflow | peer, umrflow's malloc settings | ratio |"
echo "|---|---|---|---|---|---|---|---|"
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.${2:-3}f}')" $1; }
for t in 1 2; do
  all_ours="" all_lt="" all_theirs="" all_same="" all_r1="" all_r2=""
  for r in $(seq "$rounds"); do
    ours=$(ours_step "$t")
    lt=$(ours_step "$t" --set execution.own_kernels=false)
    theirs=$(peer_step "$t")
    same=$(peer_step "$t" "GLIBC_TUNABLES=$same_malloc")
    ratio() { python3 -c "print(f'{float($1) / float($ours):.2f}')"; }
    r1=$(ratio "$theirs") r2=$(ratio "$same")
    echo "| $t | $r | $ours | $lt | $theirs | $r1 | $same | $r2 |"
    all_ours+=" $ours" all_lt+=" $lt" all_theirs+=" $theirs" all_same+=" $same" all_r1+=" $r1" all_r2+=" $r2"
  done
  echo "| $t | median | $(median "$all_ours") | $(median "$all_lt") | $(median "$all_theirs") | $(median "$all_r1" 2) | $(median "$all_same") | $(median "$all_r2" 2) |"
done
