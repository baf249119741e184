"""What bench/qemu-connect.py and bench/qemu-serve.py share: a QMP client,
Debian's QEMU running tests/interop/fill-boot.bin, the one save of its
guest that every round restores, and the cleanup of a run.

Settings come from BUILD_DIR and the environment: QEMU
(qemu-system-x86_64), MEM (1G), CHANNELS (4), REPEAT (3), BENCH_TMPDIR
(/var/tmp).  Standard library only.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


class Qmp:
    """A QMP client on a unix socket; the time each event first came is kept."""

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
        """Poll query-migrate until "completed" (exit on any other end); its time."""
        while True:
            r = self.call("query-migrate")
            if r.get("status") in ("completed", "failed", "cancelled"):
                if r["status"] != "completed":
                    sys.exit("migration %s: %s" % (r["status"], r.get("error-desc", "")))
                return time.monotonic()
            time.sleep(0.01)

    def window_hash(self, work):
        """SHA-256 of the 64 MiB of guest memory from 1 MiB up."""
        dump = os.path.join(work, "window.mem")
        self.call("pmemsave", val=1 << 20, size=64 << 20, filename=dump)
        with open(dump, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        os.unlink(dump)
        return h


class QemuRun:
    """One run: BUILD_DIR's mapram and fill guest, the environment's
    settings, a work folder and the QEMUs started in it."""

    def __init__(self, build, name):
        self.build = os.path.abspath(build)
        self.mapram = os.path.join(self.build, "tools", "mapram")
        self.boot = os.path.join(self.build, "tests", "interop", "fill-boot.bin")
        self.qemu = os.environ.get("QEMU", "qemu-system-x86_64")
        self.mem = os.environ.get("MEM", "1G")
        self.channels = os.environ.get("CHANNELS", "4")
        self.repeat = int(os.environ.get("REPEAT", "3"))
        self.name = name
        self.work = None
        self.procs = []

    def run(self, main):
        """main(self) in a fresh work folder; then every QEMU still
        running is killed and the folder removed, however main ended."""
        self.work = tempfile.mkdtemp(prefix=self.name + "-",
                                     dir=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
        try:
            main(self)
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
            shutil.rmtree(self.work, ignore_errors=True)

    def start_qemu(self, name, *extra):
        """A "pc" QEMU of MEM booting the fill guest, with QMP on
        WORK/NAME.qmp and its serial port in WORK/NAME.serial."""
        qmp = os.path.join(self.work, name + ".qmp")
        if os.path.exists(qmp):
            os.unlink(qmp)
        p = subprocess.Popen([self.qemu, "-machine", "pc", "-accel", "kvm", "-accel", "tcg",
                              "-cpu", "qemu64,-kvmclock", "-m", self.mem, "-display", "none",
                              "-nodefaults", "-serial",
                              "file:" + os.path.join(self.work, name + ".serial"),
                              "-drive", "file=%s,format=raw,if=none,id=d0" % self.boot,
                              "-device", "ide-hd,drive=d0",
                              "-qmp", "unix:%s,server=on,wait=off" % qmp]
                             + list(extra),
                             stderr=open(os.path.join(self.work, name + ".log"), "a"))
        self.procs.append(p)
        return p, Qmp(qmp)

    @staticmethod
    def stop_qemu(p, q):
        try:
            q.call("quit")
        except Exception:
            pass
        p.wait(timeout=30)

    def save_source(self, path, stop):
        """The fill guest, once filled (stopped first if stop), saved to
        path through "exec:mapram save --channels 4"; its window_hash."""
        p, q = self.start_qemu("src")
        serial = os.path.join(self.work, "src.serial")
        while b"D" not in open(serial, "rb").read():
            time.sleep(0.1)
        if stop:
            q.call("stop")
        q.call("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
        q.call("migrate", uri="exec:%s save --quiet --channels 4 %s" % (self.mapram, path))
        q.wait_migration()
        src = q.window_hash(self.work)
        self.stop_qemu(p, q)
        return src


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
