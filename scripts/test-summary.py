#!/usr/bin/env python3
"""Print 'N passed, N failed[, N skipped]' from meson's testlog.json.

Counts GTest cases inside each meson test when the test printed TAP or
GTest lines; otherwise the meson test itself counts as one.
"""
import json
import sys

def main(path):
    passed = failed = skipped = 0
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"test-summary: cannot read {path}: {e}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    for line in lines:
        t = json.loads(line)
        res = t.get("result")
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
        else:
            failed += 1
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
