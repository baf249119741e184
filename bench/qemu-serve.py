#!/usr/bin/env python3
"""bench/qemu-serve.py: QEMU 7.2's time to a running guest restored from a
mapped-ram file through `mapram serve` (postcopy: the guest runs before
its pages are in) vs `migrate-incoming "exec:mapram load"` (every page
first), figures only (issue #10 point 5; the pattern of qemu-connect.py).

The guest is tests/interop/fill-boot.bin in a "pc" machine of $MEM (1G),
saved once while running (it is idle once filled, so the save converges
and a restore resumes by itself) through "exec:mapram save".  Then each
round restores it into a fresh "-incoming defer" QEMU both ways, in
alternating order, with the page cache dropped first (as root):
  load   migrate-incoming "exec:mapram load --channels C FILE"
  serve  postcopy-ram on, migrate-incoming unix:SOCK, then
         "mapram serve --channels C FILE unix:SOCK"
Times: from migrate-incoming (load) or serve's start (serve) to QMP's
RESUME, and to query-migrate "completed"; after each restore a 64 MiB
window of memory is compared with the source's.

usage: bench/qemu-serve.py [BUILD_DIR] [--json FILE]
env:   QEMU (qemu-system-x86_64), MEM (1G), CHANNELS (4), REPEAT (3),
       BENCH_TMPDIR (/var/tmp)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mapram_bench import drop_caches  # noqa: E402
from qemu_common import QemuRun  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--json")]
json_out = None
if "--json" in sys.argv:
    json_out = sys.argv[sys.argv.index("--json") + 1]
    args = [a for a in args if a != json_out]


def restore_load(run, path):
    drop_caches()
    p, q = run.start_qemu("dst", "-incoming", "defer")
    t0 = time.monotonic()
    q.call("migrate-incoming", uri="exec:%s load --quiet --channels %s %s" %
           (run.mapram, run.channels, path))
    t_done = q.wait_migration()
    t_run = q.wait_event("RESUME")
    h = q.window_hash(run.work)
    run.stop_qemu(p, q)
    return t_run - t0, t_done - t0, h


def restore_serve(run, path):
    drop_caches()
    p, q = run.start_qemu("dst", "-incoming", "defer")
    q.call("migrate-set-capabilities",
           capabilities=[{"capability": "postcopy-ram", "state": True}])
    uri = "unix:" + os.path.join(run.work, "serve.sock")
    q.call("migrate-incoming", uri=uri)
    t0 = time.monotonic()
    srv = subprocess.Popen([run.mapram, "serve", "--quiet", "--channels", run.channels, path,
                            uri])
    t_run = q.wait_event("RESUME")
    t_done = q.wait_migration()
    if srv.wait(timeout=120) != 0:
        sys.exit("mapram serve failed")
    h = q.window_hash(run.work)
    run.stop_qemu(p, q)
    return t_run - t0, t_done - t0, h


def main(run):
    path = os.path.join(run.work, "guest.img")
    src = run.save_source(path, stop=False)
    runs = {"load": [], "serve": []}
    for r in range(run.repeat):
        order = ["load", "serve"] if r % 2 == 0 else ["serve", "load"]
        for case in order:
            t_run, t_done, h = (restore_load if case == "load" else restore_serve)(run, path)
            if h != src:
                sys.exit("%s restore: memory differs from the source" % case)
            runs[case].append({"resume_s": t_run, "complete_s": t_done})
            print("round %d %-6s RESUME %.3f s, completed %.3f s" % (r + 1, case, t_run, t_done),
                  flush=True)
    res = {"mem": run.mem, "channels": int(run.channels), "repeat": run.repeat}
    for case, rs in runs.items():
        res[case] = {"resume_s": statistics.median(x["resume_s"] for x in rs),
                     "complete_s": statistics.median(x["complete_s"] for x in rs), "runs": rs}
        print("%-6s median: RESUME %.3f s, completed %.3f s" %
              (case, res[case]["resume_s"], res[case]["complete_s"]))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(res, f, indent=2)


run = QemuRun(args[0] if args else "build", "qemu-serve")
if not shutil.which(run.qemu):
    sys.exit("qemu-serve: %s not found (apt-get install qemu-system-x86)" % run.qemu)
run.run(main)
