#!/bin/sh
# Build the native tokenizer with AddressSanitizer + UndefinedBehaviorSanitizer in a scratch
# directory (the in-tree .so and generated .cpp are left alone) and run the tokenizer, container,
# hostile-input and matrix tests against it. CPython is not instrumented, so libasan is preloaded
# and leak detection is off (the interpreter keeps allocations alive by design).
#
#   sh fuzz/sanitize.sh [BUILD_DIR] [extra pytest args]     (BUILD_DIR default: /tmp/fastscan-asan)
set -eu
PY=${PY:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-/tmp/fastscan-asan}
[ $# -gt 0 ] && shift
LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "libasan not found (gcc -print-file-name=libasan.so)" >&2; exit 2; }

rm -rf "$BUILD" && mkdir -p "$BUILD/src"
cp -r "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/MANIFEST.in" "$ROOT/native" "$ROOT/fastscan" \
      "$ROOT/tests" "$ROOT/fuzz" "$BUILD/src/"
rm -f "$BUILD"/src/fastscan/*.so
cd "$BUILD/src"
status=0
FASTSCAN_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
FASTSCAN_LDFLAGS="-fsanitize=address,undefined" \
    "$PY" setup.py -q build_ext --inplace -t "$BUILD/tmp"
# PYCRYPTODOME_DISABLE_DEEPBIND: py7zr's pycryptodome dlopens with RTLD_DEEPBIND, which ASan
# refuses (google/sanitizers#611).
LD_PRELOAD="$LIBASAN" PYCRYPTODOME_DISABLE_DEEPBIND=1 PYTHONPATH="$BUILD/src" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$BUILD/asan" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$BUILD/ubsan" \
FASTSCAN_TEST_MODEL=none \
    "$PY" -m pytest -q -p no:cacheprovider -m "not slow" \
    tests/tokenizer tests/containers \
    -k "not fuzz_campaign" \
    tests/security/test_hostile.py tests/security/test_matrix.py \
    tests/security/test_fuzz_regressions.py "$@" || status=$?
# Re-run what the coverage-guided campaign found (atheris itself cannot run on gcc's ASan).
CORPUS=${FUZZ_CORPUS:-$ROOT/out/fuzz/corpus}
if [ -d "$CORPUS" ]; then
    LD_PRELOAD="$LIBASAN" PYCRYPTODOME_DISABLE_DEEPBIND=1 PYTHONPATH="$BUILD/src" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$BUILD/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$BUILD/ubsan" \
        "$PY" fuzz/replay.py "$CORPUS" tests/regressions || status=$?
fi
if ls "$BUILD"/asan.* "$BUILD"/ubsan.* >/dev/null 2>&1; then
    echo "sanitizer reports:" >&2; cat "$BUILD"/asan.* "$BUILD"/ubsan.* >&2; exit 1
fi
exit $status
