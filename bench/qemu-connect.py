#!/usr/bin/env python3
"""bench/qemu-connect.py: restore a stopped QEMU guest from a mapped-ram
file through `migrate-incoming "exec:mapram load"` and through `mapram
load --connect` (multifd over a socket), figures only (issue #12 point 4).

The guest is tests/interop/fill-boot.bin (two of every three pages below
the PCI hole marked, the rest zero) in a "pc" machine of $MEM (1G).  It is
saved once, stopped, through "exec:mapram save --channels 4"; then each
round restores it into a fresh "-incoming defer -S" QEMU both ways, in
alternating order:
  exec     migrate-incoming "exec:mapram load --channels C FILE"
  connect  multifd on (C channels), migrate-incoming tcp:127.0.0.1:PORT
           (or unix:), then "mapram load --connect URI --channels C FILE"
Time: from migrate-incoming (exec) or the tool's start (connect) to the
destination's query-migrate "completed".  After each restore, a 64 MiB
window of memory is compared with the source's ("mem" column).

usage: bench/qemu-connect.py [BUILD_DIR]
env:   QEMU (qemu-system-x86_64), MEM (1G), CHANNELS (4), REPEAT (3),
       TRANSPORT (tcp, or unix),
       BENCH_TMPDIR (/var/tmp)
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_common import QemuRun, free_port  # noqa: E402


def restore_exec(run, path):
    p, q = run.start_qemu("dst", "-incoming", "defer", "-S")
    t0 = time.monotonic()
    q.call("migrate-incoming", uri="exec:%s load --quiet --channels %s %s" %
           (run.mapram, run.channels, path))
    q.wait_migration()
    t = time.monotonic() - t0
    h = q.window_hash(run.work)
    run.stop_qemu(p, q)
    return t, h


def restore_connect(run, path):
    p, q = run.start_qemu("dst", "-incoming", "defer", "-S")
    q.call("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
    q.call("migrate-set-parameters", **{"multifd-channels": int(run.channels)})
    if os.environ.get("TRANSPORT") == "unix":
        uri = "unix:" + os.path.join(run.work, "mig.sock")
    else:
        uri = "tcp:127.0.0.1:%d" % free_port()
    q.call("migrate-incoming", uri=uri)
    t0 = time.monotonic()
    subprocess.run([run.mapram, "load", "--connect", uri, "--quiet", "--channels", run.channels,
                    path], check=True)
    q.wait_migration()
    t = time.monotonic() - t0
    h = q.window_hash(run.work)
    run.stop_qemu(p, q)
    return t, h


def main(run):
    path = os.path.join(run.work, "guest.img")
    src = run.save_source(path, stop=True)
    times = {"exec": [], "connect": []}
    for r in range(run.repeat):
        order = ["exec", "connect"] if r % 2 == 0 else ["connect", "exec"]
        for case in order:
            t, h = (restore_exec if case == "exec" else restore_connect)(run, path)
            times[case].append(t)
            print("round %d %-8s %.2f s  mem %s" % (r + 1, case, t, "ok" if h == src else "DIFFERS"),
                  flush=True)
    print("\nguest %s, %s channels, file %.0f MiB allocated" %
          (run.mem, run.channels, os.stat(path).st_blocks * 512 / 2**20))
    for case, ts in times.items():
        print("%-8s median %.2f s  (%s)" % (case, statistics.median(ts),
                                            ", ".join("%.2f" % t for t in ts)))


QemuRun(sys.argv[1] if len(sys.argv) > 1 else "build", "qemu-connect").run(main)
