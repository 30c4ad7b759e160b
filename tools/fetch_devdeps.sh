#!/usr/bin/env bash
# The Debian packages that tools/gpu_check.sh unpacks on the GPU machine, into
# DIR (default .devdeps, kept out of git): the shared recipe's
# (../shared/device/fetch_debs.sh: TBB, yaml-cpp, fmt, HDF5, Boost, NIfTI,
# CLI11, GoogleTest) and the headers that recipe's test program did not need
# (libpng, libjpeg and zlib, for the 2D nodes and the HDF5 chunk decoder).
#   bash tools/fetch_devdeps.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.devdeps}
case "$dir" in /* | */ | *..*) echo "fetch_devdeps: give a folder inside the project, such as .devdeps" >&2; exit 2 ;; esac
shared=../shared/device/fetch_debs.sh
[ -f "$shared" ] || { echo "fetch_devdeps: $shared is missing (the shared folder sits next to the project)" >&2; exit 1; }
bash "$shared" "$dir"
(cd "$dir" && apt-get download libpng-dev libpng16-16 libjpeg62-turbo-dev libjpeg62-turbo zlib1g-dev > /dev/null) ||
  { echo "fetch_devdeps: apt-get download of the image and zlib packages failed (above)" >&2; exit 1; }
grep -qxF "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >> .git/info/exclude
echo "$(ls -1 "$dir"/*.deb | wc -l) packages in $dir ($(du -sh "$dir" | cut -f1)); carry it: run(..., carry=[\"$dir\"])"
