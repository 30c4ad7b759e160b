#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang + ASan + UBSan) in build-fuzz/
# and runs each on a seed corpus made from the project's own files: the graphs,
# NIfTI phantoms, PyTorch state dicts and a cache file. Stops at the first
# crash, leaving the input under build-fuzz/artifacts/<target>/.
#   bash tools/fuzz.sh                       # 60 s per target (what CI runs)
#   UMRFLOW_FUZZ_SECONDS=3600 bash tools/fuzz.sh
#   UMRFLOW_FUZZ_RUNS=1000000 bash tools/fuzz.sh   # a number of executions instead
#   UMRFLOW_FUZZ_TARGETS="fuzz_graph_doc" bash tools/fuzz.sh
#   UMRFLOW_FUZZ_CI=1 bash tools/fuzz.sh         # CI: seed 1 and a fixed number of runs
#                                                # per target (about a minute each), so
#                                                # every CI run fuzzes the same inputs
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh > /dev/null  # the GCC build makes the seed files
for p in clang libclang-rt-14-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q > /dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev > /dev/null
    break
  fi
done
out=build-fuzz
[ -f "$out/build.ninja" ] || cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DUMRFLOW_FUZZ=ON -DUMRFLOW_BUILD_TESTS=OFF -DUMRFLOW_PCH=OFF > /dev/null
cmake --build "$out" --target fuzz_targets -j "${UMRFLOW_JOBS:-2}"

# Seed corpora, made once.
seeds=$out/seeds
if [ ! -d "$seeds" ]; then
  mkdir -p "$seeds"/{fuzz_graph_doc,fuzz_nifti,fuzz_state_dict,fuzz_h5cache}
  i=0
  for f in $(find graphs tests -name '*.yaml'); do cp "$f" "$seeds/fuzz_graph_doc/$i.yaml"; i=$((i + 1)); done
  tmp=$(mktemp -d)
  ./build/umrflow synth brats --cases 2 --size 16 --seed 3 --out "$tmp/ph" > /dev/null 2>&1
  for f in "$tmp"/ph/*/*.nii.gz; do gzip -dc "$f" > "$seeds/fuzz_nifti/$(basename "$f" .gz)"; done
  ./build/umrflow convert brats --src "$tmp/ph" --out "$seeds/fuzz_h5cache/two_cases.h5" > /dev/null 2>&1
  /usr/bin/python3 - "$seeds/fuzz_state_dict" <<'PY'
import collections, sys, torch
d = sys.argv[1]
torch.save({"w": torch.randn(3, 4), "n": torch.arange(5)}, f"{d}/dict.pt")
torch.save(collections.OrderedDict(a=torch.ones(2, 2), b=torch.zeros(3, dtype=torch.float64)), f"{d}/ordered.pt")
torch.save({"state_dict": {"module.x": torch.randn(2, 3).t()}}, f"{d}/nested.pt")
PY
  rm -rf "$tmp"
fi

targets=${UMRFLOW_FUZZ_TARGETS:-fuzz_graph_doc fuzz_nifti fuzz_state_dict fuzz_h5cache}
limit=(-max_total_time="${UMRFLOW_FUZZ_SECONDS:-60}")
[ -n "${UMRFLOW_FUZZ_RUNS:-}" ] && limit=(-runs="$UMRFLOW_FUZZ_RUNS")
# libtorch is not instrumented: its allocations freed in instrumented code are fine.
export ASAN_OPTIONS=${ASAN_OPTIONS:-alloc_dealloc_mismatch=0:detect_odr_violation=0:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
declare -A ci_runs=([fuzz_graph_doc]=40000 [fuzz_nifti]=400000 [fuzz_state_dict]=20000 [fuzz_h5cache]=12000)
for t in $targets; do
  corpus=$out/corpus/$t
  if [ -n "${UMRFLOW_FUZZ_CI:-}" ]; then
    limit=(-runs="${ci_runs[$t]}" -seed=1)
    corpus=$out/corpus-ci/$t
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus" "$out/artifacts/$t"
  # Inputs an earlier run left here are kept aside, so this run's verdict is its own.
  if [ -n "$(ls -A "$out/artifacts/$t")" ]; then
    mkdir -p "$out/artifacts/$t.earlier"
    mv "$out/artifacts/$t"/* "$out/artifacts/$t.earlier/"
  fi
  echo "== $t"
  "$out/tests/fuzz/$t" "${limit[@]}" -timeout=20 -rss_limit_mb=4096 -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" "$corpus" "$seeds/$t" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY|INFO: Seed)" || true
  # Any one of these is a failure (slow-unit-* files are only reports).
  failing=$(find "$out/artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
  if [ -n "$failing" ]; then
    echo "fuzz: $t found a failing input: $failing"
    exit 1
  fi
done
echo "fuzz: no crash"
