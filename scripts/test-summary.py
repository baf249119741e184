#!/usr/bin/env python3
"""Summarise meson test runs: 'N passed, N failed[, N skipped]'.

  test-summary.py TESTLOG.json [RETRY-TESTLOG.json]

With a second log (a re-run of the tests that failed in the first), each
failed test whose re-run passed is named FLAKY above the summary line, and
each whose re-run failed too is named FAILED; both count as failed.  A test
counts as passed only when its first run passed: a pass on the re-run says
the failure is a race, not that there is none.
  test-summary.py --failed TESTLOG.json   prints the names of failed tests
"""
import json
import sys

def load(path):
    results = {}
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            results[t["name"]] = t.get("result")
    return results

def ok(res):
    return res in ("OK", "EXPECTEDFAIL")

def main(argv):
    if argv[1:2] == ["--failed"]:
        for name, res in load(argv[2]).items():
            if not ok(res) and res != "SKIP":
                # "project:suite / test" in the log; meson test takes "test"
                print(name.split(" / ", 1)[-1])
        return 0
    try:
        first = load(argv[1])
    except OSError as e:
        print(f"test-summary: cannot read {argv[1]}: {e}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    retry = load(argv[2]) if len(argv) > 2 else {}
    passed = failed = skipped = 0
    for name, res in first.items():
        if res == "SKIP":
            skipped += 1
        elif ok(res):
            passed += 1
        else:
            if name in retry and ok(retry[name]):
                print(f"FLAKY: {name} failed ({res}) and passed when run again")
            elif name in retry:
                print(f"FAILED: {name} failed ({res}) and again ({retry[name]})")
            failed += 1
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
