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
# Every case runs BENCH_REPEAT times, round robin over the cases (restore
# times on this host move by 2x from run to run: they are mostly QEMU
# backing its fresh RAM), and the table shows the median and every run.
# A restore is faster when its QEMU reuses memory that the case before it
# just freed, and the cat restore frees the most (its QEMU and 2 GiB of
# page cache), so a fixed order favours whichever case follows cat:
# measured on the interleaved guest, in the order cat, dd, mapram, dd took
# 8.6 s and mapram load 10.5 s; in the order cat, mapram, dd, mapram load
# 14.1 s and dd 18.8 s.  So cat restores first in every round and the
# other cases rotate behind it: over as many rounds as there are other
# cases, each follows cat once (so BENCH_QUICK=1 is balanced with an even
# BENCH_REPEAT).
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
# Last, a live save both ways (issue #4: "the file sizes of a live save"):
# a running $LIVE_MEM guest (tests/interop/ab-boot.S, re-dirtying 99 MiB
# per pass) is saved through exec:cat and through exec:mapram save at
# 64 MiB/s until QEMU has synced its dirty log 4 times (3 full passes),
# then unthrottled to completion.  The stream keeps every pass; the
# mapped-ram file overwrites each page's slot, so it stays within RAM.
#
# usage: bench/qemu-exec.sh [BUILD_DIR]
# env:   QEMU (qemu-system-x86_64), MAPRAM (BUILD_DIR/tools/mapram or
#        BUILD_DIR/mapram), MEM (4G), BENCH_TMPDIR (/var/tmp),
#        BENCH_QUICK=1 (only cat, dd and mapram --channels 4 --direct-io),
#        BENCH_LAYOUTS ("interleaved clustered": the guests, in order;
#        "none": only the live saves),
#        BENCH_REPEAT (3: runs of each case, round robin; the median is shown),
#        LIVE_MEM (1G: RAM of the live-save guest; BENCH_LIVE=0 skips it)
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
boot_sector() {   # boot_sector LAYOUT|ab: path of its boot sector
    local name=fill-boot src=fill-boot defsym=()
    if [ "$1" = clustered ]; then name=fill-boot-clustered; defsym=(--defsym CLUSTERED=1); fi
    if [ "$1" = ab ]; then name=ab-boot; src=ab-boot; fi
    if [ -f "$build/tests/interop/$name.bin" ]; then
        echo "$build/tests/interop/$name.bin"
        return
    fi
    "$src_root/tests/interop/mkbootsector.sh" as ld \
        "$src_root/tests/interop/$src.S" "$work/$name.bin" "${defsym[@]}"
    echo "$work/$name.bin"
}
layouts=${BENCH_LAYOUTS:-interleaved clustered}
[ "$layouts" = none ] && layouts=
repeat=${BENCH_REPEAT:-3}
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
elif sys.argv[2] == "wait-syncs":
    while True:
        r = call(f, "query-migrate")
        if r.get("status") in ("completed", "failed", "cancelled"):
            sys.exit("qmp: migration %s before %s dirty-log syncs" % (r["status"], sys.argv[3]))
        if r.get("ram", {}).get("dirty-sync-count", 0) >= int(sys.argv[3]):
            break
        time.sleep(0.05)
elif sys.argv[2] == "ram-transferred":
    print(call(f, "query-migrate")["ram"]["transferred"])
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

wait_serial() {   # wait_serial CHAR: until the source guest prints CHAR
    until grep -q "$1" "$work/src.serial" 2>/dev/null; do
        kill -0 "$(cat "$work/src.pid")" 2>/dev/null || die "source QEMU died: $(cat "$work/src.log")"
        sleep 0.2
    done
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
mib() { awk "BEGIN { printf \"%.1f\", $1 / 1048576 }"; }
alloc_mib() { mib "$(( $(stat -c %b "$1") * $(stat -c %B "$1") ))"; }   # allocated MiB of FILE
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

rotated() {   # rotated ROUND N: 1..N, starting at 1 + (ROUND - 1) % N
    local r=$1 n=$2 j
    for ((j = 0; j < n; j++)); do echo $(( 1 + (j + r - 1) % n )); done
}

median() {   # median of the numbers on stdin (space separated); empty if none
    tr ' ' '\n' | awk 'NF { print }' | sort -g |
        awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

# Results per case key: times[K] (one per run), fsyncs[K], info[K] (text).
declare -A times fsyncs info

# save_run KEY FILE URI-BODY: migrate the stopped source to exec:URI-BODY
save_run() {
    local key=$1 file=$2 body=$3 t1 t2 t3
    [ "$file" = /dev/null ] || rm -f "$file"
    t1=$(now)
    qmp "$work/src.qmp" migrate "{\"uri\": \"exec:$body\"}" >/dev/null
    qmp "$work/src.qmp" wait-migration >/dev/null
    t2=$(now)
    sync "$file" 2>/dev/null || true    # what the page cache still holds
    t3=$(now)
    # QEMU 7.2 will not migrate again from postmigrate: resume and stop.
    qmp "$work/src.qmp" cont >/dev/null
    qmp "$work/src.qmp" stop >/dev/null
    [ "$file" = /dev/null ] && return
    times[$key]+="$(calc "$t2 - $t1") "
    fsyncs[$key]+="$(calc "$t3 - $t2") "
    info[$key]="$(mib "$(stat -c %s "$file")") $(alloc_mib "$file") - -"
    echo "qemu-exec: save exec:$body: $(calc "$t2 - $t1") s" >&2
}

# restore_run KEY URI-BODY: load a fresh destination from exec:URI-BODY
restore_run() {
    local key=$1 body=$2 cache t1 t2 h ok
    cache=$(drop_caches)
    start_qemu dst -incoming defer -S
    qmp "$work/dst.qmp" query-status >/dev/null    # wait for the socket
    t1=$(now)
    qmp "$work/dst.qmp" migrate-incoming "{\"uri\": \"exec:$body\"}" >/dev/null
    qmp "$work/dst.qmp" wait-migration >/dev/null
    t2=$(now)
    h=$(hash_window "$work/dst.qmp")
    if [ "$h" = "$src_hash" ]; then ok=same; else ok=DIFFERS; fi
    stop_qemu dst
    times[$key]+="$(calc "$t2 - $t1") "
    # a wrong restore stays visible whatever the other runs did
    case ${info[$key]:-} in *DIFFERS*) ;; *) info[$key]="- - $cache $ok" ;; esac
    echo "qemu-exec: restore exec:$body: $(calc "$t2 - $t1") s $ok" >&2
}

# row KIND KEY URI-BODY: the table line of one case (median of its runs)
row() {
    local kind=$1 key=$2 body=$3 t f size alloc cache memok
    t=$(echo "${times[$key]}" | median)
    f=$(echo "${fsyncs[$key]:-}" | median)
    read -r size alloc cache memok <<< "${info[$key]}"
    body=${body//$MAPRAM/mapram}
    body=${body//$work\//}
    body=${body// status=none/}
    rows+=("$(printf '%-7s  %-58s %7.2f %8s %9.2f %9s %9s  %-7s %-4s  %s' \
        "$kind" "exec:$body" "$t" "${f:+ +$f}" \
        "$(calc "$ram_bytes / $t / 1073741824")" "$size" "$alloc" "$cache" "$memok" \
        "${times[$key]% }")")
}

# bench_layout LAYOUT: fill a source guest with that layout, then every
# save and restore case on it, each run $repeat times, round robin; adds
# its table to "tables".
bench_layout() {
    local layout=$1 s d v i r
    local -a save_keys=() save_files=() save_bodies=() load_keys=() load_bodies=()
    cp "$(boot_sector "$layout")" "$work/disk.bin"
    rows=()
    times=() fsyncs=() info=()
    echo "qemu-exec: $("$qemu" --version | head -1), guest RAM $mem, $layout, files in $work" >&2
    start_qemu src
    t0=$(now)
    wait_serial D
    qmp "$work/src.qmp" stop >/dev/null
    echo "qemu-exec: guest filled in $(calc "$(now) - $t0") s" >&2
    qmp "$work/src.qmp" migrate-set-parameters \
        '{"max-bandwidth": 100000000000, "downtime-limit": 2000}' >/dev/null
    ram_bytes=$(qmp "$work/src.qmp" query-memory-size-summary |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["base-memory"])')
    src_hash=$(hash_window "$work/src.qmp")

    s=$work/stream.img
    d=$work/dd.img
    save_keys=(cat dd); save_files=("$s" "$d")
    save_bodies=("cat > $s" "dd of=$d oflag=direct iflag=fullblock bs=1M status=none")
    load_keys=(cat dd)
    load_bodies=("cat $s" "dd if=$s iflag=direct bs=1M status=none")
    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        variants=("--channels 4 --direct-io")
    else
        variants=("--channels 1" "--channels 1 --direct-io"
                  "--channels 4" "--channels 4 --direct-io")
    fi
    i=0
    for v in "${variants[@]}"; do
        save_keys+=("m$i"); save_files+=("$work/mapped-ram$i.img")
        save_bodies+=("$MAPRAM save $v $work/mapped-ram$i.img")
        load_keys+=("m$i"); load_bodies+=("$MAPRAM load $v $work/mapped-ram$i.img")
        i=$((i + 1))
    done

    # Warm-up, not reported: QEMU's first migration sets up its dirty log.
    save_run warmup /dev/null "cat > /dev/null"
    for r in $(seq "$repeat"); do
        for i in "${!save_keys[@]}"; do
            save_run "s.${save_keys[$i]}" "${save_files[$i]}" "${save_bodies[$i]}"
        done
    done
    rm -f "$d"
    for r in $(seq "$repeat"); do
        for i in 0 $(rotated "$r" $(( ${#load_keys[@]} - 1 ))); do
            restore_run "r.${load_keys[$i]}" "${load_bodies[$i]}"
        done
    done
    for i in "${!save_keys[@]}"; do
        row save "s.${save_keys[$i]}" "${save_bodies[$i]}"
    done
    for i in "${!load_keys[@]}"; do
        row restore "r.${load_keys[$i]}" "${load_bodies[$i]}"
    done
    rm -f "$s" "$work"/mapped-ram*.img
    stop_qemu src
    rm -f "$work/src.serial"

    tables+=("$(
        echo
        echo "QEMU exec: save/restore of a stopped $mem guest ($(( ram_bytes >> 20 )) MiB RAM," \
             "half non-zero pages, $layout), median of $repeat runs"
        printf '%-7s  %-58s %7s %8s %9s %9s %9s  %-7s %-4s  %s\n' \
            what case "time s" "fsync s" "RAM GiB/s" "size MiB" "alloc MiB" cache mem "runs s"
        printf '%s\n' "${rows[@]}")")
}

# live_run URI-BODY FILE: a live save of a fresh running ab guest; adds a
# row to live_rows.
live_run() {
    local body=$1 file=$2 t1 t2 sent
    rm -f "$file" "$work/src.serial"
    start_qemu src
    wait_serial B
    qmp "$work/src.qmp" migrate-set-parameters \
        '{"max-bandwidth": 67108864, "downtime-limit": 300}' >/dev/null
    t1=$(now)
    qmp "$work/src.qmp" migrate "{\"uri\": \"exec:$body\"}" >/dev/null
    qmp "$work/src.qmp" wait-syncs 4
    qmp "$work/src.qmp" migrate-set-parameters \
        '{"max-bandwidth": 100000000000, "downtime-limit": 30000}' >/dev/null
    qmp "$work/src.qmp" wait-migration >/dev/null
    t2=$(now)
    sent=$(qmp "$work/src.qmp" ram-transferred)
    stop_qemu src
    body=${body//$MAPRAM/mapram}
    body=${body//$work\//}
    live_rows+=("$(printf '%-64s %7.2f %10s %9s %9s' "exec:$body" "$(calc "$t2 - $t1")" \
        "$(mib "$sent")" "$(mib "$(stat -c %s "$file")")" \
        "$(alloc_mib "$file")")")
    echo "qemu-exec: live save exec:$body: $(calc "$t2 - $t1") s" >&2
    rm -f "$file"
}

tables=()
for layout in $layouts; do
    bench_layout "$layout"
done
if [ "${BENCH_LIVE:-1}" = 1 ]; then
    live_rows=()
    mem=${LIVE_MEM:-1G}
    cp "$(boot_sector ab)" "$work/disk.bin"
    echo "qemu-exec: live saves of a running $mem ab guest" >&2
    live_run "cat > $work/live-stream.img" "$work/live-stream.img"
    live_run "$MAPRAM save --channels 4 --direct-io $work/live-mapped-ram.img" \
        "$work/live-mapped-ram.img"
    tables+=("$(
        echo
        echo "QEMU exec: live save of a running $mem guest re-dirtying 99 MiB per pass" \
             "(4 dirty-log syncs at 64 MiB/s, then unthrottled)"
        printf '%-64s %7s %10s %9s %9s\n' case "time s" "sent MiB" "size MiB" "alloc MiB"
        printf '%s\n' "${live_rows[@]}")")
fi
printf '%s\n' "${tables[@]}"
