#!/usr/bin/env bash
# Fresh machine to first result: installs what is missing, builds, and runs the
# main job on its embedded default data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
./build/umrflow run graphs/demo.yaml "$@"
