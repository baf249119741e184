#!/bin/sh
# The installed library as a VMM author gets it (docs/embedding.md):
# `meson install` into a temporary DESTDIR, then, with nothing from the
# source or build tree on the include or library path,
#   - exactly the public headers are installed, and each compiles alone;
#   - libmapram.so exports exactly the functions those headers declare;
#   - examples/minimal-host.c builds with `pkg-config --cflags --libs mapram`
#     and runs: save to a mapped-ram file, restore, compare.
# The temporary directory is removed on every exit.
#
#   test-install.sh BUILD_DIR SOURCE_DIR
# Environment: CC (default cc), MAPRAM_SANITIZE (meson's b_sanitize, so the
# program links against a sanitized library), MAPRAM_TEST_TMPDIR.
set -eu

build=$1
src=$2
cc=${CC:-cc}
tmp=$(mktemp -d "${MAPRAM_TEST_TMPDIR:-/var/tmp}/mapram-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

fail() {
    echo "test-install: $*" >&2
    exit 1
}

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install failed"; }

pcs=$(find "$tmp/root" -name mapram.pc)
[ "$(echo "$pcs" | wc -w)" -eq 1 ] || fail "expected one mapram.pc, found: '$pcs'"

# DESTDIR install: the .pc names the configured prefix.  A copy whose prefix
# points into DESTDIR proves that every path in it derives from ${prefix}.
prefix=$(sed -n 's/^prefix=//p' "$pcs")
[ -n "$prefix" ] || fail "mapram.pc has no prefix= line"
root=$tmp/root$prefix
mkdir "$tmp/pkgconfig"
sed "s|^prefix=.*|prefix=$root|" "$pcs" >"$tmp/pkgconfig/mapram.pc"
PKG_CONFIG_PATH=$tmp/pkgconfig
export PKG_CONFIG_PATH
cflags=$(pkg-config --cflags mapram)
libdir=$(pkg-config --variable=libdir mapram)
case "$cflags" in *"-I$root/include/mapram"*) ;; *) fail "cflags '$cflags' miss $root/include/mapram" ;; esac
case "$libdir" in "$root"/*) ;; *) fail "libdir '$libdir' is not under $root" ;; esac

# Exactly the three public headers.
headers=$(cd "$root/include" && find . -type f | sort | tr '\n' ' ')
want="./mapram/migration/host.h ./mapram/migration/migration.h ./mapram/migration/vmstate.h "
[ "$headers" = "$want" ] || fail "installed headers '$headers', want '$want'"

# Each compiles on its own, warning-free, from the install prefix only.
for h in host.h migration.h vmstate.h; do
    printf '#include <migration/%s>\n' "$h" >"$tmp/h.c"
    # shellcheck disable=SC2086
    $cc -std=gnu11 -Wall -Wextra -Werror -fsyntax-only $cflags "$tmp/h.c" ||
        fail "migration/$h does not compile on its own"
done

if [ -e "$libdir/libmapram.so" ]; then
    libs=$(pkg-config --libs mapram)
    # Exported functions == functions declared in the installed headers.
    sed -n 's/^[A-Za-z_][^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' \
        "$root"/include/mapram/migration/*.h | grep -v '^typedef$' | sort >"$tmp/declared"
    [ -s "$tmp/declared" ] || fail "no function declarations found in the headers"
    nm -D --defined-only "$libdir/libmapram.so" | awk '$2 == "T" { print $3 }' | sort >"$tmp/exported"
    diff -u "$tmp/declared" "$tmp/exported" >&2 ||
        fail "libmapram.so exports differ from the header declarations (see libmapram.map)"
else
    libs=$(pkg-config --static --libs mapram)   # a -Ddefault_library=static build
fi

san=
if [ -n "${MAPRAM_SANITIZE:-}" ] && [ "$MAPRAM_SANITIZE" != none ]; then
    san="-fsanitize=$MAPRAM_SANITIZE"
fi
# shellcheck disable=SC2086
$cc -std=gnu11 -Wall -Wextra -Werror $san -o "$tmp/minimal-host" \
    "$src/examples/minimal-host.c" $cflags $libs || fail "examples/minimal-host.c does not build"
LD_LIBRARY_PATH=$libdir "$tmp/minimal-host" "$tmp/vm.img" >"$tmp/out.log" 2>&1 ||
    { cat "$tmp/out.log" >&2; fail "minimal-host failed"; }
cat "$tmp/out.log"
grep -qx 'restored: memory identical, clock identical, destination running' "$tmp/out.log" ||
    fail "minimal-host did not report an identical restore"
[ ! -e "$tmp/vm.img" ] || fail "minimal-host left its image behind"
echo "test-install: ok"
