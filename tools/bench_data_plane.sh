#!/usr/bin/env bash
# Data-plane benchmark (docs/benchmarks.md): 128^3 crops of 4 modalities with the
# full stage-2 augmentation, from NIfTI and from the HDF5 cache, at 1 and 2
# threads. Makes BraTS-sized phantoms (240x240x155) once under data/bench/.
#   bash tools/bench_data_plane.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-8}
bin=build/umrflow
if [ ! -d data/bench/phantoms ]; then
  $bin synth brats --cases "$cases" --size 240 --seed 11 --overwrite --out data/bench/phantoms
fi
[ -f data/bench/phantoms.h5 ] || $bin convert brats --src data/bench/phantoms --out data/bench/phantoms.h5
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "cases: $(ls data/bench/phantoms | wc -l); NIfTI $(du -sh data/bench/phantoms | cut -f1), HDF5 $(du -sh data/bench/phantoms.h5 | cut -f1)"
echo; echo "NIfTI (brats.cases + crop_foreground + random_crop + flip + zscore + scale + shift):"
$bin bench graphs/bench/data_stage2_nifti.yaml --threads 1,2 --repeat 3
echo; echo "HDF5 cache, first epoch (brats.h5 chunks decoded for the crop + flip + zscore + scale + shift):"
$bin bench graphs/bench/data_stage2_h5.yaml --threads 1,2 --repeat 3
echo; echo "HDF5 cache, second epoch (decoded chunks kept in memory, data.cases.memory_cache):"
$bin bench graphs/bench/data_stage2_h5.yaml --threads 1,2 --repeat 3 --passes 2
