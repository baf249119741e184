#!/bin/sh
# The ram section's record flags belong to its codec (STYLE.md habit 8):
# RAM_SAVE_FLAG_* may appear in migration/ram-codec.c and nowhere else in
# the sources, so nobody builds or takes apart a RAM record by hand.
# Fails naming every FILE:LINE that uses one elsewhere.
#
#   scripts/check-ram-flags.sh [SOURCE_ROOT]   check a tree (default: this one)
#   scripts/check-ram-flags.sh --self-test      show that the check can fail
set -u

codec=migration/ram-codec.c
dirs="migration tools system tests include util io monitor qapi bench"

check() {   # check ROOT: 0 when clean, 1 (with the offenders listed) when not
    root=$1
    if ! grep -q '^#define RAM_SAVE_FLAG_EOS ' "$root/$codec" 2>/dev/null; then
        echo "check-ram-flags: $root/$codec does not define the flags: wrong tree?" >&2
        return 1
    fi
    hits=$(cd "$root" && for d in $dirs; do [ -d "$d" ] && echo "$d"; done |
           xargs grep -rnI 'RAM_SAVE_FLAG_' -- 2>/dev/null | grep -v "^$codec:")
    if [ -n "$hits" ]; then
        echo "$hits" | awk -F: -v codec="$codec" \
            '{ print $1 ":" $2 ": RAM_SAVE_FLAG_* outside " codec }' >&2
        echo "check-ram-flags: the ram section's record flags are $codec's alone;" \
             "call the codec (migration/ram-codec.h) instead" >&2
        return 1
    fi
    return 0
}

self_test() {
    t=$(mktemp -d "${TMPDIR:-/tmp}/check-ram-flags.XXXXXX") || exit 1
    trap 'rm -rf "$t"' EXIT
    mkdir -p "$t/migration" "$t/tools"
    printf '#define RAM_SAVE_FLAG_EOS 0x010\nx = RAM_SAVE_FLAG_EOS;\n' > "$t/$codec"
    printf 'int a;\n' > "$t/tools/clean.c"
    check "$t" 2>"$t/out" || { echo "self-test: a clean tree failed:"; cat "$t/out"; exit 1; }
    printf 'int a;\nput(f, RAM_SAVE_FLAG_EOS);\n' > "$t/tools/dirty.c"
    if check "$t" 2>"$t/out"; then
        echo "self-test: a use in tools/dirty.c passed"; exit 1
    fi
    grep -qx 'tools/dirty.c:2: RAM_SAVE_FLAG_\* outside migration/ram-codec.c' "$t/out" || {
        echo "self-test: the failure does not name tools/dirty.c:2:"; cat "$t/out"; exit 1; }
    rm "$t/tools/dirty.c"
    rm "$t/$codec" && touch "$t/$codec"
    if check "$t" 2>"$t/out"; then
        echo "self-test: a tree without the codec's flags passed"; exit 1
    fi
    echo "self-test: OK"
}

if [ "${1:-}" = --self-test ]; then
    self_test
    exit 0
fi
check "${1:-$(cd "$(dirname "$0")/.." && pwd)}"
