#!/bin/bash
# bench/run.sh: "make bench" (issue #3, point 8).  Saves and restores a
# stopped 4 GiB mapram-vm whose RAM is half non-zero pages, for stream
# file: and mapped-ram with and without multifd (1, 2, 4 channels) and
# direct-io, plus a live save under the "dirty" guest, and measures fio's
# sequential O_DIRECT 1 MiB write/read bandwidth on the same file system
# as the limit.  Prints a table, writes bench/results/last.json.  Figures
# only: it exits non-zero when something broke, never because of speed.
#
# usage: bench/run.sh [BUILD_DIR]
# env:   BENCH_DIR       where the files go (/var/tmp/mapram-bench); needs
#                        about 2x RAM size free (one save + fio's file)
#        BENCH_MEM       guest RAM (4G)
#        BENCH_FIO_SIZE  bytes per fio test (4G)
#        BENCH_ONLY      comma-separated case names, "live" for the live saves,
#                        "checksums" for the checksum table's pairs
#        BENCH_LIVE_LIMIT seconds a live save runs before the VM is stopped (20)
#        BENCH_LIVE_RATE pages/s of the rate-limited live save (20000)
#        BENCH_STRACE=1  strace -c -f the VM during each case (slows it)
#        BENCH_QEMU=1    also run bench/qemu-exec.sh (QEMU exec: migration)
#        BENCH_NETNS=0   skip bench/netns.py (as root: live migration between
#                        two network namespaces beside iperf3, and QEMU 7.2
#                        saves through mapram save --listen; issue 12)
#        BENCH_NETNS_MEM guest RAM of those migrations and saves (4G)
#        BENCH_RESTORE=0 skip bench/restore.py (issue 10: time to a running
#                        guest, copy vs on-demand vs shared restores, page-touch
#                        latency, density of 8 shared VMs, QEMU 7.2 restored
#                        through mapram serve vs exec:mapram load (bench/
#                        qemu-serve.py; QEMU, MEM, CHANNELS, REPEAT); then the
#                        SVG plots)
#        BENCH_RESTORE_SIZES guest RAM sizes of those restores (1G,4G,16G; a size
#                        is skipped, saying why, without RAM + 25% + 2 GiB
#                        available or RAM + 2 GiB of disk)
#        BENCH_RESTORE_REPS restores per mode and size, median reported (3)
#        BENCH_DENSITY_VMS VMs restored at once from one 1 GiB file (8; 0: none)
#        BENCH_SVG_DIR   where the plots go (bench/results)
# Run as root so the page cache can be dropped before each read.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src_root=$(dirname "$here")
build=${1:-$src_root/build}
case $build in /*) ;; *) build=$PWD/$build ;; esac

die() { echo "bench: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 not found"
vm=
for c in "$build/system/mapram-vm" "$build/mapram-vm"; do
    if [ -x "$c" ] && [ ! -d "$c" ]; then vm=$c; break; fi
done
[ -n "$vm" ] || die "mapram-vm not found in '$build' (build it first: make)"
command -v fio >/dev/null || echo "bench: fio not found: figures without the disk limit" >&2
[ "$(id -u)" = 0 ] || echo "bench: not root: the page cache cannot be dropped before reads" >&2

bench_dir=${BENCH_DIR:-/var/tmp/mapram-bench}
mkdir -p "$bench_dir" "$here/results"

args=(--vm "$vm" --dir "$bench_dir" --json "$here/results/last.json")
[ -n "${BENCH_ONLY:-}" ] && args+=(--only "$BENCH_ONLY")
python3 "$here/mapram_bench.py" "${args[@]}"

if [ "${BENCH_RESTORE:-1}" = 1 ]; then
    echo
    echo "Restores: time to running, copy vs on demand vs shared (bench/restore.py):"
    command -v gnuplot >/dev/null || echo "bench: gnuplot not found: no plots (apt-get install gnuplot-nox)" >&2
    python3 "$here/restore.py" --vm "$vm" --build "$build" --dir "$bench_dir" \
        --json "$here/results/restore.json" --last "$here/results/last.json" \
        --svg-dir "${BENCH_SVG_DIR:-$here/results}"
fi

if [ "${BENCH_QEMU:-0}" = 1 ]; then
    echo
    echo "QEMU exec: benchmark (bench/qemu-exec.sh):"
    BENCH_TMPDIR=$bench_dir "$here/qemu-exec.sh" "$build"
fi

if [ "${BENCH_NETNS:-1}" = 1 ]; then
    echo
    if [ "$(id -u)" = 0 ]; then
        echo "Live migration between network namespaces (bench/netns.py):"
        python3 "$here/netns.py" --build "$build" --dir "$bench_dir" \
            --mem "${BENCH_NETNS_MEM:-4G}" --qemu-mem "${BENCH_NETNS_MEM:-4G}" \
            --json "$here/results/netns.json"
    else
        echo "bench: not root: no network namespaces, bench/netns.py skipped" >&2
    fi
fi
