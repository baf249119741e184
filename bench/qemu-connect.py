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

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
mapram = os.path.join(build, "tools", "mapram")
boot = os.path.join(build, "tests", "interop", "fill-boot.bin")
qemu = os.environ.get("QEMU", "qemu-system-x86_64")
mem = os.environ.get("MEM", "1G")
channels = os.environ.get("CHANNELS", "4")
repeat = int(os.environ.get("REPEAT", "3"))
work = tempfile.mkdtemp(prefix="qemu-connect-", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
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
        self.f.readline()
        self.call("qmp_capabilities")

    def call(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" in r:
                continue
            if "error" in r:
                sys.exit("%s: %s" % (cmd, r["error"]["desc"]))
            return r["return"]

    def wait_migration(self):
        while True:
            r = self.call("query-migrate")
            if r.get("status") in ("completed", "failed", "cancelled"):
                if r["status"] != "completed":
                    sys.exit("migration %s: %s" % (r["status"], r.get("error-desc", "")))
                return
            time.sleep(0.01)

    def window_hash(self):
        dump = os.path.join(work, "window.mem")
        self.call("pmemsave", val=1 << 20, size=64 << 20, filename=dump)
        with open(dump, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        os.unlink(dump)
        return h


def start_qemu(name, *extra):
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def restore_exec(path):
    p, q = start_qemu("dst", "-incoming", "defer", "-S")
    t0 = time.monotonic()
    q.call("migrate-incoming", uri="exec:%s load --quiet --channels %s %s" % (mapram, channels, path))
    q.wait_migration()
    t = time.monotonic() - t0
    h = q.window_hash()
    stop_qemu(p, q)
    return t, h


def restore_connect(path):
    p, q = start_qemu("dst", "-incoming", "defer", "-S")
    q.call("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
    q.call("migrate-set-parameters", **{"multifd-channels": int(channels)})
    if os.environ.get("TRANSPORT") == "unix":
        uri = "unix:" + os.path.join(work, "mig.sock")
    else:
        uri = "tcp:127.0.0.1:%d" % free_port()
    q.call("migrate-incoming", uri=uri)
    t0 = time.monotonic()
    subprocess.run([mapram, "load", "--connect", uri, "--quiet", "--channels", channels, path],
                   check=True)
    q.wait_migration()
    t = time.monotonic() - t0
    h = q.window_hash()
    stop_qemu(p, q)
    return t, h


def main():
    path = os.path.join(work, "guest.img")
    p, q = start_qemu("src")
    serial = os.path.join(work, "src.serial")
    while b"D" not in open(serial, "rb").read():
        time.sleep(0.1)
    q.call("stop")
    q.call("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
    q.call("migrate", uri="exec:%s save --quiet --channels 4 %s" % (mapram, path))
    q.wait_migration()
    src = q.window_hash()
    stop_qemu(p, q)
    times = {"exec": [], "connect": []}
    for r in range(repeat):
        order = ["exec", "connect"] if r % 2 == 0 else ["connect", "exec"]
        for case in order:
            t, h = (restore_exec if case == "exec" else restore_connect)(path)
            times[case].append(t)
            print("round %d %-8s %.2f s  mem %s" % (r + 1, case, t, "ok" if h == src else "DIFFERS"),
                  flush=True)
    print("\nguest %s, %s channels, file %.0f MiB allocated" %
          (mem, channels, os.stat(path).st_blocks * 512 / 2**20))
    for case, ts in times.items():
        print("%-8s median %.2f s  (%s)" % (case, statistics.median(ts),
                                            ", ".join("%.2f" % t for t in ts)))


try:
    main()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
