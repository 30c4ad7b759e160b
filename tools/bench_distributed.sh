#!/usr/bin/env bash
# One process against two (Gloo, started with torchrun's variables) on this
# machine, training the UniMRSeg base network (widths 8-16-32-64, soft Dice,
# SGD) on 32^3 synthetic crops with the same global batch: 1 process x batch 2
# x 2 threads against 2 ranks x batch 1 x 1 thread, with and without
# execution.sync_bn, and with one gradient bucket or small ones. Prints the steady-state time per global step (mean of
# epochs 2..E, from metrics.jsonl) and the largest weight difference from the
# one-process run after E epochs. A correctness and overhead figure on a CPU,
# not a speed claim: the ranks share the same cores.
#   bash tools/bench_distributed.sh            # E = 4 epochs of 8 steps
#   UMRFLOW_BENCH_EPOCHS=6 bash tools/bench_distributed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/build/umrflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
epochs=${UMRFLOW_BENCH_EPOCHS:-4}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
graph="graphs/bench/step_unet3d_cpu.yaml --quiet --set train.epochs=$epochs --set data.source.count=16"
graph+=" --set train.optimizer.type=sgd --set train.optimizer.lr=0.01 --set execution.threads=1"

# Mean seconds per step over epochs 2.. of a run directory (metrics.jsonl).
step_time() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
steps = float(sys.argv[2])
print("%.3f" % (sum(r["time_s"] for r in rows[1:]) / len(rows[1:]) / steps))
EOF
}

# Largest |a - b| over the network's tensors (parameters and BatchNorm
# statistics), relative to the largest |a|: both checkpoints exported as
# PyTorch state dicts.
difference() {
  "$bin" weights export --overwrite "$1" "$work/a.pth" > /dev/null
  "$bin" weights export --overwrite "$2" "$work/b.pth" > /dev/null
  /usr/bin/python3 - "$work/a.pth" "$work/b.pth" <<'EOF'
import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
keys = [k for k in a if a[k].is_floating_point()]
d = max((a[k].double() - b[k].double()).abs().max().item() for k in keys)
s = max(a[k].double().abs().max().item() for k in keys)
print("%.1e (%d tensors)" % (d / s, len(keys)))
EOF
}

ranks() {  # ranks OUT EXTRA...: two ranks, each with one thread
  local out=$1
  shift
  local port=$((20000 + RANDOM % 30000))
  for r in 0 1; do
    OMP_NUM_THREADS=1 RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$bin" run $graph --set data.batch.size=1 "$@" --out "$out" > "$work/rank$r.log" 2>&1 &
  done
  wait
}

OMP_NUM_THREADS=2 "$bin" run $graph --out "$work/one" > "$work/one.log" 2>&1
ranks "$work/two"
ranks "$work/sync" --set execution.sync_bn=true
ranks "$work/onebucket" --set execution.bucket_mb=0
ranks "$work/small" --set execution.bucket_mb=0.25
buckets() { grep -o "gradients averaged in [0-9]* bucket(s).*backward pass" "$1/log.txt" | sed 's/ of the first step//' | head -n 1; }
echo
echo "| run | s per global step (batch 2) | largest weight difference from 1 process |"
echo "|---|---|---|"
echo "| 1 process, batch 2, 2 threads | $(step_time "$work/one" 8) | - |"
echo "| 2 ranks, batch 1 each, 1 thread each | $(step_time "$work/two" 8) | $(difference "$work/one/last.pt" "$work/two/last.pt") |"
echo "| 2 ranks with sync_bn | $(step_time "$work/sync" 8) | $(difference "$work/one/last.pt" "$work/sync/last.pt") |"
echo "| 2 ranks, one bucket (bucket_mb 0) | $(step_time "$work/onebucket" 8) | $(difference "$work/one/last.pt" "$work/onebucket/last.pt") |"
echo "| 2 ranks, bucket_mb 0.25 | $(step_time "$work/small" 8) | $(difference "$work/one/last.pt" "$work/small/last.pt") |"
echo
for run in two onebucket small; do echo "$run: $(buckets "$work/$run")"; done
