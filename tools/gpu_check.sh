#!/usr/bin/env bash
# GPU checks in one call on the lent GPU machine (see ../shared/device/README.md):
# builds against the PyTorch wheel's libtorch with the Debian libraries
# unpacked from .devdeps (fetch them here first: bash tools/fetch_devdeps.sh),
# runs the parity and network tests, then a few steps of each stage graph at
# the paper's size (128^3 crops, widths 64-512) and the PyTorch peer on the
# same card, and writes everything under $OUT (or /tmp/gpu_check).
# Run it as:   run(command="bash tools/gpu_check.sh", carry=[".devdeps"])
# Status: prepared; no GPU machine has been lent to a session that could run it yet.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out" /tmp/deps
for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
D=/tmp/deps/usr
# zlib1g-dev's libz.so names Debian's runtime by absolute path: use this machine's.
[ -e "$D/lib/x86_64-linux-gnu/libz.so" ] ||
  ln -sf "$(ls /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -1)" "$D/lib/x86_64-linux-gnu/libz.so"
TP=$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)")
export LD_LIBRARY_PATH=$D/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt"
TORCH_CUDA_ARCH_LIST=9.0 cmake -S . -B /tmp/build -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TP;$D" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
grep -i "gloo" "$out/configure.log" || true  # without Gloo's headers multi-process runs are compiled out
cmake --build /tmp/build -j16 > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
/tmp/build/tests/umrflow_tests --gtest_filter='DeviceFeed*:DeviceMemory*:StepChecks*:MultiTensorAdamW*:Scheduler*:*Parity*:UniMRSegNet*:Swin3D*:UNet3D*:UniMRSegLosses*' > "$out/tests.log" 2>&1 || true
tail -3 "$out/tests.log"
# Phantoms large enough for 128^3 crops (Z = 208 * 155 / 240 = 134).
bin=/tmp/build/umrflow
$bin synth brats --cases 8 --size 208 --procedural --overwrite --out /tmp/ph > /dev/null 2>&1
$bin split --from /tmp/ph --val 0 --test 0 --out /tmp/ph/split.yaml > /dev/null
common=(--quiet --set device=cuda --set data.cases.root=/tmp/ph --set data.cases.split=/tmp/ph/split.yaml --set train.epochs=2
        --set train.validate=null --set modules.net.init=null --set execution.threads=12 --set execution.prefetch=16)
for stage in stage1 stage2 stage3; do
  for cast in none bf16; do
    $bin run graphs/${stage}_brats.yaml "${common[@]}" --set execution.autocast=$cast --out "$out/$stage-$cast" > "$out/$stage-$cast.log" 2>&1 || tail -5 "$out/$stage-$cast.log"
    echo "$stage $cast: $(tail -1 "$out/$stage-$cast/metrics.jsonl" 2>/dev/null)"
  done
done
# The peer on the same card, same crop and batch.
for amp in none bf16; do
  python3 ../shared/bench/peer_unet3d.py --roi 128 --batch 2 --amp $amp > "$out/peer-$amp.json" 2>&1 || true
  echo "peer $amp: $(tail -1 "$out/peer-$amp.json")"
done
# The data plane at 1, 2 and 16 threads on this 16-core machine (issue 11's
# scaling figure): the stage-2 augmentation of 128^3 crops from the HDF5 cache
# of the phantoms above, first epoch (chunks decoded). Last, and bounded, so
# that it never costs the GPU figures.
timeout 120 $bin convert brats --src /tmp/ph --out /tmp/ph.h5 > "$out/convert.log" 2>&1 &&
  timeout 150 $bin bench graphs/bench/data_stage2_h5.yaml --set data.cases.file=/tmp/ph.h5 --threads 1,2,16 --repeat 2 \
    > "$out/data_plane.txt" 2>&1 || true
echo "data plane:"; grep "^|" "$out/data_plane.txt" 2>/dev/null || tail -3 "$out/convert.log"
