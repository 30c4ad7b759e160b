#!/usr/bin/env bash
# Installs the Debian packages umrflow needs (only those missing), then
# configures and builds into build/. Safe to run again: it does nothing twice.
# mricron-data gives the phantoms their brain template; python3-nibabel lets the
# tests check NIfTI files against an independent reader; libgloo-dev has the headers
# of the collectives (Gloo) that libtorch ships, for multi-process training;
# libdeflate-dev inflates HDF5 cache chunks outside HDF5's lock; libpng and
# libjpeg decode the 2D data sets, and python3-pil checks them independently;
# python3-torchvision's ResNet-50 checks that its weights import;
# libopenblas0-openmp replaces Debian's reference BLAS for libtorch's matrix
# products (stage 3's Swin attention: stage 3 on the CPU 1.8x faster) and
# shares libtorch's OpenMP threads.
#   bash tools/setup.sh            # install + build
#   UMRFLOW_BUILD_DIR=... UMRFLOW_JOBS=... bash tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ pkg-config
  libtorch-dev libtbb-dev libyaml-cpp-dev libfmt-dev libboost-dev
  libhdf5-dev libdeflate-dev libnifti2-dev libniftiio-dev libcli11-dev libgtest-dev libgloo-dev
  libpng-dev libjpeg62-turbo-dev libopenblas0-openmp
  mricron-data python3-nibabel python3-numpy python3-h5py python3-torch python3-pil python3-torchvision
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

build=${UMRFLOW_BUILD_DIR:-build}
jobs=${UMRFLOW_JOBS:-$(nproc)}
# Each compile that includes torch takes about 1.5 GiB; do not run more jobs than memory allows.
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1600000 ))
(( mem_jobs >= 1 && mem_jobs < jobs )) && jobs=$mem_jobs
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" -j "$jobs"
echo "setup: built $build/umrflow"
