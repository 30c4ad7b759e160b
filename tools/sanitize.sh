#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer: a separate
# build in build-asan/ (about as long as the normal build), then every test.
#   bash tools/sanitize.sh
#   UMRFLOW_TEST_FILTER='Run.*' bash tools/sanitize.sh     # a gtest filter instead of ctest
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh > /dev/null
out=build-asan
[ -f "$out/build.ninja" ] || cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUMRFLOW_SANITIZE=ON > /dev/null
cmake --build "$out" -j "${UMRFLOW_JOBS:-2}"
# libtorch is not instrumented: memory it allocates may be freed by instrumented
# code with another operator; leaks at exit are libtorch's static state.
export ASAN_OPTIONS=${ASAN_OPTIONS:-alloc_dealloc_mismatch=0:detect_odr_violation=0:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -n "${UMRFLOW_TEST_FILTER:-}" ]; then
  "$out/tests/umrflow_tests" --gtest_filter="$UMRFLOW_TEST_FILTER"
else
  ctest --test-dir "$out" --output-on-failure -j "${UMRFLOW_TEST_JOBS:-2}"
fi
