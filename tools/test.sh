#!/usr/bin/env bash
# Fresh machine to test results: installs what is missing, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
ctest --test-dir "${UMRFLOW_BUILD_DIR:-build}" --output-on-failure -j "${UMRFLOW_TEST_JOBS:-2}"
