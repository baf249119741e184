#!/bin/sh
# Run one libFuzzer harness of tests/fuzz on its corpus.
#
#   run-fuzz.sh replay HARNESS CORPUS_DIR ARTIFACT_DIR
#       every file of CORPUS_DIR once (the seeds and the regression cases);
#       fails on the first crash, leak, UBSan report or GLib critical
#   run-fuzz.sh run HARNESS CORPUS_DIR ARTIFACT_DIR
#       fuzz from CORPUS_DIR for $FUZZ_SECONDS seconds (default 10); new
#       inputs go to a scratch directory (the corpus is not touched), a
#       crash is written to ARTIFACT_DIR/HARNESS-crash-SHA1 and fails the run;
#       tests/fuzz/HARNESS.dict, when there is one, is its dictionary
#
# Both print libFuzzer's final statistics (-print_final_stats=1).  Extra
# libFuzzer flags: $FUZZ_FLAGS (e.g. FUZZ_FLAGS=-jobs=2).  To reproduce a
# crash: HARNESS ARTIFACT_DIR/HARNESS-crash-SHA1 (FUZZ_VERBOSE=1 shows what
# the code printed).
set -eu
mode=$1 exe=$2 corpus=$3 artifacts=$4
name=$(basename "$exe")
mkdir -p "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# GLib's slice magazines keep freed blocks across inputs, so libFuzzer sees
# more mallocs than frees, re-runs the input with a full LeakSanitizer check,
# and after 1000 such inputs turns per-input leak detection off.  Plain
# malloc keeps the counts balanced and leak detection on.
export G_SLICE="${G_SLICE:-always-malloc}"
common="-print_final_stats=1 -timeout=60 -rss_limit_mb=4096 -artifact_prefix=$artifacts/$name-"
case $mode in
replay)
    # shellcheck disable=SC2046
    set -- $(find "$corpus" -type f | sort)
    [ $# -gt 0 ] || { echo "run-fuzz: $corpus is empty" >&2; exit 1; }
    echo "run-fuzz: $name: $# inputs of $corpus"
    # shellcheck disable=SC2086
    exec "$exe" $common ${FUZZ_FLAGS:-} "$@"
    ;;
run)
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/mapram-$name-XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    secs=${FUZZ_SECONDS:-10}
    dict=$(dirname "$corpus")/../$name.dict
    [ -f "$dict" ] && common="$common -dict=$dict"
    echo "run-fuzz: $name: $secs s from $corpus"
    # shellcheck disable=SC2086
    "$exe" $common -max_total_time="$secs" ${FUZZ_FLAGS:-} "$scratch" "$corpus"
    ;;
*)
    echo "usage: run-fuzz.sh replay|run HARNESS CORPUS_DIR ARTIFACT_DIR" >&2
    exit 2
    ;;
esac
