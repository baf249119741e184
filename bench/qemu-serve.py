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
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

args = [a for a in sys.argv[1:] if not a.startswith("--json")]
json_out = None
if "--json" in sys.argv:
    json_out = sys.argv[sys.argv.index("--json") + 1]
    args = [a for a in args if a != json_out]
build = os.path.abspath(args[0] if args else "build")
mapram = os.path.join(build, "tools", "mapram")
boot = os.path.join(build, "tests", "interop", "fill-boot.bin")
qemu = os.environ.get("QEMU", "qemu-system-x86_64")
mem = os.environ.get("MEM", "1G")
channels = os.environ.get("CHANNELS", "4")
repeat = int(os.environ.get("REPEAT", "3"))
procs = []


class Qmp:
    def __init__(self, path):
        for _ in range(600):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("cannot connect to " + path)
        self.f = self.s.makefile("rw")
        self.events = {}
        self.f.readline()
        self.call("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            sys.exit("QMP connection closed")
        r = json.loads(line)
        if "event" in r:
            self.events.setdefault(r["event"], time.monotonic())
        return r

    def call(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                continue
            if "error" in r:
                sys.exit("%s: %s" % (cmd, r["error"]["desc"]))
            return r["return"]

    def wait_event(self, name, timeout=120):
        deadline = time.monotonic() + timeout
        while name not in self.events:
            if time.monotonic() > deadline:
                sys.exit("no %s event in %d s" % (name, timeout))
            self._read()
        return self.events[name]

    def wait_migration(self):
        while True:
            r = self.call("query-migrate")
            if r.get("status") in ("completed", "failed", "cancelled"):
                if r["status"] != "completed":
                    sys.exit("migration %s: %s" % (r["status"], r.get("error-desc", "")))
                return time.monotonic()
            time.sleep(0.01)

    def window_hash(self, work):
        dump = os.path.join(work, "window.mem")
        self.call("pmemsave", val=1 << 20, size=64 << 20, filename=dump)
        with open(dump, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        os.unlink(dump)
        return h


def start_qemu(work, name, *extra):
    qmp = os.path.join(work, name + ".qmp")
    if os.path.exists(qmp):
        os.unlink(qmp)
    p = subprocess.Popen([qemu, "-machine", "pc", "-accel", "kvm", "-accel", "tcg",
                          "-cpu", "qemu64,-kvmclock", "-m", mem, "-display", "none",
                          "-nodefaults", "-serial", "file:" + os.path.join(work, name + ".serial"),
                          "-drive", "file=%s,format=raw,if=none,id=d0" % boot,
                          "-device", "ide-hd,drive=d0", "-qmp", "unix:%s,server=on,wait=off" % qmp]
                         + list(extra), stderr=open(os.path.join(work, name + ".log"), "a"))
    procs.append(p)
    return p, Qmp(qmp)


def stop_qemu(p, q):
    try:
        q.call("quit")
    except Exception:
        pass
    p.wait(timeout=30)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass


def restore_load(work, path):
    drop_caches()
    p, q = start_qemu(work, "dst", "-incoming", "defer")
    t0 = time.monotonic()
    q.call("migrate-incoming", uri="exec:%s load --quiet --channels %s %s" % (mapram, channels, path))
    t_done = q.wait_migration()
    t_run = q.wait_event("RESUME")
    h = q.window_hash(work)
    stop_qemu(p, q)
    return t_run - t0, t_done - t0, h


def restore_serve(work, path):
    drop_caches()
    p, q = start_qemu(work, "dst", "-incoming", "defer")
    q.call("migrate-set-capabilities",
           capabilities=[{"capability": "postcopy-ram", "state": True}])
    uri = "unix:" + os.path.join(work, "serve.sock")
    q.call("migrate-incoming", uri=uri)
    t0 = time.monotonic()
    srv = subprocess.Popen([mapram, "serve", "--quiet", "--channels", channels, path, uri])
    t_run = q.wait_event("RESUME")
    t_done = q.wait_migration()
    if srv.wait(timeout=120) != 0:
        sys.exit("mapram serve failed")
    h = q.window_hash(work)
    stop_qemu(p, q)
    return t_run - t0, t_done - t0, h


def main(work):
    path = os.path.join(work, "guest.img")
    p, q = start_qemu(work, "src")
    serial = os.path.join(work, "src.serial")
    while b"D" not in open(serial, "rb").read():
        time.sleep(0.1)
    q.call("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
    q.call("migrate", uri="exec:%s save --quiet --channels 4 %s" % (mapram, path))
    q.wait_migration()
    src = q.window_hash(work)
    stop_qemu(p, q)
    runs = {"load": [], "serve": []}
    for r in range(repeat):
        order = ["load", "serve"] if r % 2 == 0 else ["serve", "load"]
        for case in order:
            t_run, t_done, h = (restore_load if case == "load" else restore_serve)(work, path)
            if h != src:
                sys.exit("%s restore: memory differs from the source" % case)
            runs[case].append({"resume_s": t_run, "complete_s": t_done})
            print("round %d %-6s RESUME %.3f s, completed %.3f s" % (r + 1, case, t_run, t_done),
                  flush=True)
    res = {"mem": mem, "channels": int(channels), "repeat": repeat}
    for case, rs in runs.items():
        res[case] = {"resume_s": statistics.median(x["resume_s"] for x in rs),
                     "complete_s": statistics.median(x["complete_s"] for x in rs), "runs": rs}
        print("%-6s median: RESUME %.3f s, completed %.3f s" %
              (case, res[case]["resume_s"], res[case]["complete_s"]))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(res, f, indent=2)


if not shutil.which(qemu):
    sys.exit("qemu-serve: %s not found (apt-get install qemu-system-x86)" % qemu)
work = tempfile.mkdtemp(prefix="qemu-serve-", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
try:
    main(work)
finally:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    shutil.rmtree(work, ignore_errors=True)
