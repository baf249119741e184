#!/bin/sh
# Run every meson test of BUILD_DIR; re-run the failed ones once (alone),
# then print the summary line.  Exit status: 0 only if every test passed on
# its first run.  A test that fails and then passes on its re-run is named
# FLAKY and still counted as failed: the re-run only tells a race (FLAKY)
# from a steady failure, it never turns a failure into a pass.
#   scripts/run-tests.sh BUILD_DIR [meson test options...]
set -u
build=$1; shift
log=$build/meson-logs/testlog.json
meson test -C "$build" --print-errorlogs "$@"
rc=$?
if [ "$rc" -eq 0 ]; then
    python3 scripts/test-summary.py "$log"
    exit 0
fi
cp "$log" "$build/meson-logs/testlog-first.json"
failed=$(python3 scripts/test-summary.py --failed "$build/meson-logs/testlog-first.json")
if [ -z "$failed" ]; then
    python3 scripts/test-summary.py "$build/meson-logs/testlog-first.json"
    exit "$rc"
fi
echo "run-tests: running again, one at a time: $(echo $failed | tr '\n' ' ')"
# shellcheck disable=SC2086
meson test -C "$build" --no-rebuild --print-errorlogs --num-processes 1 "$@" $failed
python3 scripts/test-summary.py "$build/meson-logs/testlog-first.json" "$log"
exit "$rc"
