#!/bin/bash
# bench/qemu-exec.sh: save and restore a stopped QEMU guest through exec:,
# with "mapram save/load" beside the plain ways QEMU users do it today
# (issue #4, point 7).  Figures only: it never fails on speed.
#
# Save cases (one stopped guest, same memory for each):
#   exec:cat > FILE                                   page cache, stream file
#   exec:dd of=FILE oflag=direct iflag=fullblock bs=1M  libvirt's cache bypass
#   exec:mapram save [--channels 1|4] [--direct-io] FILE   mapped-ram file
# Restore cases (into a fresh "-incoming defer -S" QEMU, page cache dropped
# first when we may):
#   exec:cat FILE, exec:dd if=FILE iflag=direct bs=1M (the stream file)
#   exec:mapram load [--channels 1|4] [--direct-io] FILE
#
# The guests are tests/interop/fill-boot.S: each marks 2 of every 3 pages
# below the 3 GiB PCI hole of a 4 GiB "pc" machine, so half its RAM is
# non-zero pages mixed with zero pages, then halts.  "interleaved" does it
# page by page (every third page zero: the worst case for a file that
# keeps zero pages as holes, since each 8 KiB run is an extent of its own);
# "clustered" in 64 KiB chunks chosen by a hash, as mapram-vm's fill guest
# in "make bench".  Between saves the source is resumed and stopped again
# (QEMU 7.2 refuses to migrate from "postmigrate"); the halted guest does
# not change memory meanwhile.
#
# Columns: "time s" from the migrate command to query-migrate "completed"
# (what the user waits for); "fsync s" the extra time to get a save's file
# onto the disk (large for cat, whose data may still sit in the page
# cache); "RAM GiB/s" guest RAM / time; file logical and allocated sizes;
# "cache" whether the page cache was dropped before a restore.
#
# After each restore, a 64 MiB window of the destination's memory is
# compared with the source's (column "mem"), so a fast but wrong restore
# shows up.
#
# usage: bench/qemu-exec.sh [BUILD_DIR]
# env:   QEMU (qemu-system-x86_64), MAPRAM (BUILD_DIR/tools/mapram or
#        BUILD_DIR/mapram), MEM (4G), BENCH_TMPDIR (/var/tmp),
#        BENCH_QUICK=1 (only cat, dd and mapram --channels 4 --direct-io),
#        BENCH_LAYOUTS ("interleaved clustered": the guests, in order)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src_root=$(dirname "$here")
build=${1:-$src_root/build}
qemu=${QEMU:-qemu-system-x86_64}
mem=${MEM:-4G}
tmp_parent=${BENCH_TMPDIR:-/var/tmp}

die() { echo "qemu-exec: $*" >&2; exit 1; }

command -v "$qemu" >/dev/null || die "'$qemu' not found (apt-get install qemu-system-x86)"
command -v python3 >/dev/null || die "python3 not found"
if [ -z "${MAPRAM:-}" ]; then
    for m in "$build/tools/mapram" "$build/mapram"; do
        if [ -x "$m" ] && [ ! -d "$m" ]; then MAPRAM=$m; break; fi
    done
fi
[ -n "${MAPRAM:-}" ] && [ -x "$MAPRAM" ] || die "mapram tool not found in '$build' (set MAPRAM)"
MAPRAM=$(readlink -f "$MAPRAM")

work=$(mktemp -d "$tmp_parent/mapram-bench-qemu.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The guests: built by meson, or here from source when the build has none.
boot_sector() {   # boot_sector LAYOUT: path of its boot sector
    local name=fill-boot defsym=()
    if [ "$1" = clustered ]; then name=fill-boot-clustered; defsym=(--defsym CLUSTERED=1); fi
    if [ -f "$build/tests/interop/$name.bin" ]; then
        echo "$build/tests/interop/$name.bin"
        return
    fi
    "$src_root/tests/interop/mkbootsector.sh" as ld \
        "$src_root/tests/interop/fill-boot.S" "$work/$name.bin" "${defsym[@]}"
    echo "$work/$name.bin"
}
layouts=${BENCH_LAYOUTS:-interleaved clustered}
for layout in $layouts; do
    case $layout in interleaved|clustered) ;; *) die "unknown layout '$layout'" ;; esac
done

# A one-shot QMP client: "qmp SOCKET CMD [JSON-ARGS]" prints the "return"
# value; "qmp SOCKET wait-migration" polls query-migrate to its end.
cat > "$work/qmp.py" <<'EOF'
import json, socket, sys, time

def connect(path):
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit("qmp: cannot connect to " + path)
    f = s.makefile("rw")
    f.readline()
    return f

def call(f, cmd, args=None):
    msg = {"execute": cmd}
    if args:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            sys.exit("qmp: connection closed during " + cmd)
        r = json.loads(line)
        if "event" in r:
            continue
        if "error" in r:
            sys.exit("qmp: %s: %s" % (cmd, r["error"]["desc"]))
        return r["return"]

f = connect(sys.argv[1])
call(f, "qmp_capabilities")
if sys.argv[2] == "wait-migration":
    while True:
        r = call(f, "query-migrate")
        if r.get("status") in ("completed", "failed", "cancelled"):
            print(r["status"])
            if r["status"] != "completed":
                sys.exit("qmp: migration %s: %s" % (r["status"], r.get("error-desc", "")))
            break
        time.sleep(0.02)
else:
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps(call(f, sys.argv[2], args)))
EOF
qmp() { python3 "$work/qmp.py" "$@"; }

# start_qemu NAME [ARGS...]: background QEMU with its QMP socket NAME.qmp
start_qemu() {
    local name=$1; shift
    "$qemu" -machine pc -accel kvm -accel tcg -cpu qemu64,-kvmclock \
        -m "$mem" -display none -nodefaults \
        -serial "file:$work/$name.serial" \
        -drive "file=$work/disk.bin,format=raw,if=none,id=d0" \
        -device ide-hd,drive=d0 \
        -qmp "unix:$work/$name.qmp,server=on,wait=off" "$@" \
        2>>"$work/$name.log" &
    pids+=($!)
    echo $! > "$work/$name.pid"
}

stop_qemu() {
    local name=$1 pid
    pid=$(cat "$work/$name.pid")
    qmp "$work/$name.qmp" quit >/dev/null 2>&1 || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
drop_caches() {
    sync
    if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo dropped; else echo warm; fi
}
hash_window() {   # hash_window SOCKET: md5 of [1 MiB, 65 MiB) of guest memory
    local dump="$work/window.$RANDOM"
    qmp "$1" pmemsave "{\"val\": 1048576, \"size\": 67108864, \"filename\": \"$dump\"}" >/dev/null
    md5sum < "$dump" | cut -d' ' -f1
    rm -f "$dump"
}

# bench_layout LAYOUT: fill a source guest with that layout, then every
# save and restore case on it; prints its table.
bench_layout() {
    local layout=$1 s d m v
    cp "$(boot_sector "$layout")" "$work/disk.bin"
    rows=()
    echo "qemu-exec: $("$qemu" --version | head -1), guest RAM $mem, $layout, files in $work" >&2
    start_qemu src
    t0=$(now)
    until grep -q D "$work/src.serial" 2>/dev/null; do
        kill -0 "$(cat "$work/src.pid")" 2>/dev/null || die "source QEMU died: $(cat "$work/src.log")"
        sleep 0.2
    done
    qmp "$work/src.qmp" stop >/dev/null
    echo "qemu-exec: guest filled in $(calc "$(now) - $t0") s" >&2
    qmp "$work/src.qmp" migrate-set-parameters \
        '{"max-bandwidth": 100000000000, "downtime-limit": 2000}' >/dev/null
    ram_bytes=$(qmp "$work/src.qmp" query-memory-size-summary |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["base-memory"])')
    src_hash=$(hash_window "$work/src.qmp")

    # Warm-up, not reported: QEMU's first migration sets up its dirty log.
    save /dev/null "cat > /dev/null"

    s=$work/stream.img
    save "$s" "cat > $s"
    restore "$s" "cat $s"
    restore "$s" "dd if=$s iflag=direct bs=1M status=none"
    rm -f "$s"

    d=$work/dd.img
    save "$d" "dd of=$d oflag=direct iflag=fullblock bs=1M status=none"
    rm -f "$d"

    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        variants=("--channels 4 --direct-io")
    else
        variants=("--channels 1" "--channels 1 --direct-io"
                  "--channels 4" "--channels 4 --direct-io")
    fi
    for v in "${variants[@]}"; do
        m=$work/mapped-ram.img
        save "$m" "$MAPRAM save $v $m"
        restore "$m" "$MAPRAM load $v $m"
        rm -f "$m"
    done

    stop_qemu src
    rm -f "$work/src.serial"

    tables+=("$(
        echo
        echo "QEMU exec: save/restore of a stopped $mem guest ($(( ram_bytes >> 20 )) MiB RAM," \
             "half non-zero pages, $layout)"
        printf '%-7s  %-58s %7s %8s %9s %9s %9s  %-7s %s\n' \
            what case "time s" "fsync s" "RAM GiB/s" "size MiB" "alloc MiB" cache mem
        printf '%s\n' "${rows[@]}")")
}

tables=()
for layout in $layouts; do
    bench_layout "$layout"
done
printf '%s\n' "${tables[@]}"
