#!/usr/bin/env python3
"""Live migration between two hosts, measured (issue 12, point 5).

Called by bench/run.sh as root ("make bench"), or alone:

  bench/netns.py --build BUILD [--mem 4G] [--json bench/results/netns.json]

Two network namespaces joined by a veth pair stand for two hosts.  In one
run, on the same veth:

1. iperf3 (Debian's) between the namespaces, 1 and 4 streams: the link's
   limit;
2. a live migration of a running mapram-vm (--mem, 4 GiB by default, its
   RAM filled once by the "fill" guest: half zero pages, a quarter text,
   a quarter random bytes) over tcp with multifd 1, 2, 4 and 8 channels,
   without compression and with zstd: total time, downtime, bytes on the
   wire (the veth's byte counter, headers included, and query-migrate's
   "transferred"), CPU seconds of both VMs, and the rate against iperf3's.
   The guest is migrated back and forth: each case's destination is the
   next case's source, so it is filled once (and one migration before the
   cases warms the host's memory up, not reported); after each case two
   windows of memory are compared between source and destination;
3. Debian's QEMU 7.2 saving a stopped guest (tests/interop/fill-boot.S,
   clustered: half its RAM non-zero) to a file three ways: multifd with 4
   channels into "mapram save --listen" (a unix socket, one page-I/O
   channel per multifd channel; with and without --direct-io),
   "exec:mapram save --channels 4 --direct-io", and "exec:dd oflag=direct".
   CPU seconds are QEMU's (with its exec: child) plus mapram save's.  QEMU and the file are on this host: this
   compares the ways into a file, not the link.

Figures only: it exits non-zero when something broke (a failed migration,
memory that differs), never because of speed.  Standard library only.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mapram_bench import (QMP, VM, BenchError, log, parse_size,  # noqa: E402
                          odirect_supported, proc_cpu_seconds, wait_filled, MiB)

SRC_ADDR, DST_ADDR = "10.205.0.1", "10.205.0.2"
WINDOW = 16 * MiB


def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if check and r.returncode:
        raise BenchError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Netns:
    """Two namespaces and a veth pair; close() deletes them (and the pair)."""

    def __init__(self):
        pid = os.getpid()
        self.ns = ["mapram-bench-%d-src" % pid, "mapram-bench-%d-dst" % pid]
        self.dev = ["mrb%ds" % pid, "mrb%dd" % pid]
        self.addr = [SRC_ADDR, DST_ADDR]
        self.made = []
        try:
            for n in self.ns:
                ip("netns", "add", n)
                self.made.append(n)
            ip("link", "add", self.dev[0], "netns", self.ns[0], "type", "veth",
               "peer", "name", self.dev[1], "netns", self.ns[1])
            for i in range(2):
                ip("-n", self.ns[i], "addr", "add", self.addr[i] + "/24", "dev", self.dev[i])
                ip("-n", self.ns[i], "link", "set", self.dev[i], "up")
                ip("-n", self.ns[i], "link", "set", "lo", "up")
        except BenchError:
            self.close()
            raise

    def tx_bytes(self, side):
        out = ip("-n", self.ns[side], "-s", "-j", "link", "show", "dev", self.dev[side])
        return json.loads(out)[0]["stats64"]["tx"]["bytes"]

    def close(self):
        for n in self.made:
            ip("netns", "del", n, check=False)
        self.made = []


class NsVM(VM):
    """A mapram-vm in a namespace (ip netns exec execs it: same pid)."""

    def __init__(self, b, name, side, args):
        self.side = side
        super().__init__(b, name, args, prefix=["ip", "netns", "exec", b.net.ns[side]])

    def window(self, b, addr):
        path = os.path.join(b.work, "%s.win" % self.name)
        return hashlib.sha256(self.pmemsave(path, addr, WINDOW)).hexdigest()


class Bench:
    def __init__(self, a):
        self.vm_bin = a.vm
        self.tool = a.tool
        self.mem_arg = a.mem
        self.mem = parse_size(a.mem)
        self.smp = 2
        self.timeout = a.timeout
        self.iperf_seconds = a.iperf_seconds
        self.channels = [int(c) for c in a.channels.split(",")]
        self.compression = a.compression.split(",")
        self.qemu = a.qemu
        self.qemu_mem = a.qemu_mem
        self.build = a.build
        os.makedirs(a.dir, exist_ok=True)
        self.dir = a.dir
        self.work = os.path.join(a.dir, "netns.%d" % os.getpid())
        os.makedirs(self.work)
        self.vms = []
        self.net = None

    def cleanup(self):
        for vm in self.vms:
            vm.kill()
        if self.net:
            self.net.close()
        shutil.rmtree(self.work, ignore_errors=True)

    # --- iperf3 -----------------------------------------------------------

    def iperf(self, streams):
        server = subprocess.Popen(["ip", "netns", "exec", self.net.ns[1], "iperf3", "-s",
                                   "-B", DST_ADDR], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                r = subprocess.run(["ip", "netns", "exec", self.net.ns[0], "iperf3", "-c",
                                    DST_ADDR, "-t", str(self.iperf_seconds), "-P",
                                    str(streams), "-J"], capture_output=True, text=True,
                                   timeout=self.iperf_seconds + 60)
                out = json.loads(r.stdout) if r.stdout.strip() else {}
                # iperf3 -J may exit 0 with an "error" and no results
                err = out.get("error") or (r.stderr.strip() if r.returncode else "")
                if not err:
                    break
                if "unable to connect" not in err:
                    raise BenchError("iperf3: %s" % err)
                time.sleep(0.05)        # the server is not listening yet
            else:
                raise BenchError("iperf3: the server never listened")
        except subprocess.TimeoutExpired:
            raise BenchError("iperf3 -c did not end")
        finally:
            server.terminate()
            server.wait()
        bps = out["end"]["sum_received"]["bits_per_second"]
        log("iperf3 -P %d: %.2f Gbit/s" % (streams, bps / 1e9))
        return {"streams": streams, "seconds": self.iperf_seconds,
                "bytes_per_s": bps / 8,
                "retransmits": out["end"]["sum_sent"].get("retransmits")}

    # --- live migration ---------------------------------------------------

    def wait_filled(self, vm):
        """As mapram_bench's source: the windows at the end of both vCPUs' halves."""
        windows = [self.mem // 2 - WINDOW, self.mem - WINDOW]
        path = os.path.join(self.work, "%s.win" % vm.name)
        wait_filled(vm, lambda v: [v.pmemsave(path, w, WINDOW) for w in windows],
                    self.timeout, what="fill")

    def migrate(self, src, channels, comp):
        """One live migration src -> a fresh VM on the other side; returns
        (row, the destination, now running)."""
        dst = NsVM(self, "vm%d" % len(self.vms), 1 - src.side,
                   ["-guest", "fill,zero=50,text=25,random=25", "-incoming", "defer"])
        params = {"multifd-channels": channels, "multifd-compression": comp}
        if comp == "zstd":
            params["multifd-zstd-level"] = 1
        for vm in (src, dst):
            vm.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "multifd", "state": True},
                {"capability": "events", "state": True}])
            vm.qmp.cmd("migrate-set-parameters", **params)
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 0, "downtime-limit": 300})
        dst.qmp.cmd("migrate-incoming", uri="tcp:%s:0" % self.net.addr[dst.side])
        port = dst.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        tx0 = self.net.tx_bytes(src.side)
        c_src, c_dst = proc_cpu_seconds(src.pid), proc_cpu_seconds(dst.pid)
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="tcp:%s:%s" % (self.net.addr[dst.side], port))
        deadline = t0 + self.timeout
        while True:
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled"):
                raise BenchError("migration %s: %s" % (st, info.get("error-desc", "")))
            if time.monotonic() > deadline:
                raise BenchError("migration still '%s' after %d s" % (st, self.timeout))
            time.sleep(0.01)
        wall = time.monotonic() - t0
        while dst.qmp.cmd("query-status")["status"] != "running":
            if time.monotonic() > deadline:
                raise BenchError("destination not running after %d s" % self.timeout)
            time.sleep(0.01)
        resumed = time.monotonic() - t0
        cpu_src = proc_cpu_seconds(src.pid) - c_src
        cpu_dst = proc_cpu_seconds(dst.pid) - c_dst
        wire = self.net.tx_bytes(src.side) - tx0
        # the guest is idle after its fill: the same memory on both sides
        for w in (self.mem // 2 - WINDOW, self.mem - WINDOW):
            if src.window(self, w) != dst.window(self, w):
                raise BenchError("multifd %d %s: memory at 0x%x differs" % (channels, comp, w))
        ram = info["ram"]
        row = {"channels": channels, "compression": comp,
               "direction": "%s->%s" % (self.net.addr[src.side], self.net.addr[dst.side]),
               "total_time_ms": info["total-time"], "downtime_ms": info.get("downtime"),
               "setup_time_ms": info.get("setup-time"), "wall_s": wall,
               "resumed_s": resumed, "passes": ram.get("dirty-sync-count"),
               "transferred": ram["transferred"], "multifd_bytes": ram.get("multifd-bytes"),
               "normal_pages": ram["normal"], "zero_pages": ram["duplicate"],
               "wire_bytes": wire, "cpu_src_s": cpu_src, "cpu_dst_s": cpu_dst}
        row["wire_bytes_per_s"] = wire / (info["total-time"] / 1000.0)
        log("multifd %d %-4s: %6.2f s, downtime %d ms, %.0f MiB on the wire, "
            "CPU %.1f + %.1f s" % (channels, comp, info["total-time"] / 1000.0,
                                   info.get("downtime", 0), wire / MiB, cpu_src, cpu_dst))
        src.kill()
        self.vms.remove(src)
        return row, dst

    def live(self):
        src = NsVM(self, "vm0", 0, ["-guest", "fill,zero=50,text=25,random=25"])
        t0 = time.monotonic()
        self.wait_filled(src)
        log("guest filled in %.1f s" % (time.monotonic() - t0))
        # Warm-up, not reported: the first destination backs its fresh RAM
        # from the host (slow on a VM host); later ones reuse what the
        # previous VM freed, as every case does after this one.
        log("warm-up migration, not reported:")
        _, src = self.migrate(src, 4, "none")
        rows = []
        for comp in self.compression:
            for ch in self.channels:
                row, src = self.migrate(src, ch, comp)
                rows.append(row)
        return rows

    # --- QEMU 7.2 saves ---------------------------------------------------

    def qemu_saves(self):
        disk = os.path.join(self.build, "tests", "interop", "fill-boot-clustered.bin")
        if not os.path.exists(disk):
            raise BenchError("'%s' missing: build the interop tests" % disk)
        qdir = os.path.join(self.work, "qemu")
        os.makedirs(qdir)
        shutil.copy(disk, os.path.join(qdir, "disk.bin"))
        serial = os.path.join(qdir, "serial")
        sock = os.path.join(qdir, "qmp")
        logf = open(os.path.join(qdir, "log"), "w")
        q = subprocess.Popen([self.qemu, "-machine", "pc", "-accel", "kvm", "-accel", "tcg",
                              "-cpu", "qemu64,-kvmclock", "-m", self.qemu_mem,
                              "-display", "none", "-nodefaults", "-serial", "file:" + serial,
                              "-drive", "file=%s/disk.bin,format=raw,if=none,id=d0" % qdir,
                              "-device", "ide-hd,drive=d0",
                              "-qmp", "unix:%s,server=on,wait=off" % sock],
                             stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        rows = []
        try:
            qmp = QMP(sock, timeout=30)
            version = qmp.cmd("query-version")["qemu"]
            deadline = time.monotonic() + self.timeout
            t0 = time.monotonic()
            while not (os.path.exists(serial) and b"D" in open(serial, "rb").read()):
                if q.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("QEMU's guest did not fill its RAM")
                time.sleep(0.2)
            log("QEMU %d.%d.%d: guest filled in %.1f s" % (version["major"], version["minor"],
                                                            version["micro"],
                                                            time.monotonic() - t0))
            qmp.cmd("stop")
            qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 100000000000,
                                                 "downtime-limit": 2000})
            dio = ["--direct-io"] if odirect_supported(self.dir) else []
            out = os.path.join(self.dir, "netns-qemu.%d.img" % os.getpid())
            tool = self.tool
            dio_s = " --direct-io" if dio else ""
            cases = [
                ("mapram save --listen unix: --channels 4", "listen", []),
                ("mapram save --listen unix: --channels 4" + dio_s, "listen", dio),
                ("exec:mapram save --channels 4" + dio_s,
                 "exec:%s save --channels 4 %s %s" % (tool, " ".join(dio), out), dio),
                ("exec:dd oflag=direct", "exec:dd of=%s oflag=direct iflag=fullblock bs=1M "
                 "status=none" % out, []),
            ]
            if not dio:
                del cases[1]
            # warm-up, not reported: QEMU's first migration sets up its dirty log
            qmp.cmd("migrate", uri="exec:cat > /dev/null")
            self.qemu_wait(qmp, q)
            qmp.cmd("cont")
            qmp.cmd("stop")
            for name, uri, opts in cases:
                rows.append(self.qemu_save(qmp, q, name, uri, out, opts))
                qmp.cmd("cont")     # QEMU 7.2 will not migrate from postmigrate
                qmp.cmd("stop")
            qmp.cmd("quit")
            q.wait(timeout=30)
        finally:
            if q.poll() is None:
                q.kill()
                q.wait()
            logf.close()
        return {"qemu": "%d.%d.%d" % (version["major"], version["minor"], version["micro"]),
                "mem": self.qemu_mem, "rows": rows}

    def qemu_wait(self, qmp, q):
        deadline = time.monotonic() + self.timeout
        while True:
            info = qmp.cmd("query-migrate")
            if info.get("status") == "completed":
                return info
            if info.get("status") in ("failed", "cancelled") or q.poll() is not None:
                raise BenchError("QEMU migration %s: %s" % (info.get("status"),
                                                            info.get("error-desc", "")))
            if time.monotonic() > deadline:
                raise BenchError("QEMU migration still '%s'" % info.get("status"))
            time.sleep(0.01)

    def qemu_save(self, qmp, q, name, uri, out, dio):
        if os.path.exists(out):
            os.unlink(out)
        saver = None
        cpu0 = proc_cpu_seconds(q.pid, children=True)
        if uri == "listen":
            sock = os.path.join(self.work, "qemu", "save.sock")
            if os.path.exists(sock):
                os.unlink(sock)
            saver = subprocess.Popen([self.tool, "save", "--listen", "unix:" + sock,
                                      "--channels", "4", "--quiet"] + dio + [out],
                                     stdin=subprocess.DEVNULL)
            while not os.path.exists(sock):
                if saver.poll() is not None:
                    raise BenchError("mapram save --listen exited: %d" % saver.returncode)
                time.sleep(0.01)
            qmp.cmd("migrate-set-capabilities",
                    capabilities=[{"capability": "multifd", "state": True}])
            qmp.cmd("migrate-set-parameters", **{"multifd-channels": 4})
            uri = "unix:" + sock
        else:
            qmp.cmd("migrate-set-capabilities",
                    capabilities=[{"capability": "multifd", "state": False}])
        t0 = time.monotonic()
        qmp.cmd("migrate", uri=uri)
        info = self.qemu_wait(qmp, q)
        saver_cpu = 0.0
        if saver:
            _, status, ru = os.wait4(saver.pid, 0)
            saver.returncode = os.waitstatus_to_exitcode(status)
            if saver.returncode:
                raise BenchError("mapram save --listen failed (%d)" % saver.returncode)
            saver_cpu = ru.ru_utime + ru.ru_stime
        wall = time.monotonic() - t0
        qemu_cpu = proc_cpu_seconds(q.pid, children=True) - cpu0
        cpu = qemu_cpu + saver_cpu
        st = os.stat(out)
        row = {"case": name, "time_s": wall, "total_time_ms": info.get("total-time"),
               "cpu_s": cpu, "qemu_cpu_s": qemu_cpu, "listen_cpu_s": saver_cpu,
               "size": st.st_size, "allocated": st.st_blocks * 512,
               "transferred": info["ram"]["transferred"]}
        if name.startswith(("mapram", "exec:mapram")):
            r = subprocess.run([self.tool, "verify", out], capture_output=True, text=True)
            if r.returncode:
                raise BenchError("mapram verify %s: %s" % (out, r.stdout + r.stderr))
        log("QEMU save %-48s %6.2f s, CPU %.1f s (QEMU and its exec child %.1f)" %
            (name, wall, cpu, qemu_cpu))
        os.unlink(out)
        return row


def report(res):
    print("Live migration between two network namespaces over a veth pair "
          "(guest %s, fill: half zero pages)" % res["mem"])
    lim = {r["streams"]: r["bytes_per_s"] for r in res["iperf3"]}
    print("iperf3: " + ", ".join("-P %d %.2f Gbit/s (%.0f MB/s)" % (p, b * 8 / 1e9, b / 1e6)
                                 for p, b in sorted(lim.items())))
    top = max(lim.values())
    print("%-5s %-4s %8s %9s %10s %10s %8s %8s %7s" % (
        "chans", "comp", "total s", "downt ms", "wire MiB", "sent MiB", "wire MB/s",
        "CPU s", "x iperf"))
    for r in res["live"]:
        print("%-5d %-4s %8.2f %9d %10.0f %10.0f %8.0f %8.1f %7.2f" % (
            r["channels"], r["compression"], r["total_time_ms"] / 1000.0, r["downtime_ms"] or 0,
            r["wire_bytes"] / MiB, r["transferred"] / MiB, r["wire_bytes_per_s"] / 1e6,
            r["cpu_src_s"] + r["cpu_dst_s"], r["wire_bytes_per_s"] / top))
    if res.get("qemu_saves"):
        qs = res["qemu_saves"]
        print()
        print("QEMU %s save of a stopped %s guest (half non-zero pages) to a file" %
              (qs["qemu"], qs["mem"]))
        print("%-52s %8s %8s %10s %10s" % ("case", "time s", "CPU s", "size MiB", "alloc MiB"))
        for r in qs["rows"]:
            print("%-52s %8.2f %8.1f %10.0f %10.0f" % (r["case"], r["time_s"], r["cpu_s"],
                                                      r["size"] / MiB, r["allocated"] / MiB))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", required=True)
    p.add_argument("--mem", default="4G", help="guest RAM of the live migrations")
    p.add_argument("--qemu-mem", default="4G", help="guest RAM of the QEMU saves")
    p.add_argument("--dir", default="/var/tmp/mapram-bench")
    p.add_argument("--json", default=None)
    p.add_argument("--iperf-seconds", type=int, default=5)
    p.add_argument("--channels", default="1,2,4,8")
    p.add_argument("--compression", default="none,zstd")
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--no-qemu", action="store_true")
    p.add_argument("--timeout", type=int, default=600)
    a = p.parse_args()
    a.build = os.path.abspath(a.build)
    a.vm = os.path.join(a.build, "system", "mapram-vm")
    a.tool = os.path.join(a.build, "tools", "mapram")
    if os.geteuid() != 0:
        log("netns: not root: no network namespaces, no figures")
        return 0
    for prog in ("ip", "iperf3"):
        if not shutil.which(prog):
            raise SystemExit("netns: '%s' not found (make deps)" % prog)
    b = Bench(a)
    res = {"machine": {"host": platform.node(), "cpus": os.cpu_count(),
                       "kernel": platform.release(),
                       "loadavg_start": os.getloadavg()},
           "mem": a.mem, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        b.net = Netns()
        res["iperf3"] = [b.iperf(1), b.iperf(4)]
        res["live"] = b.live()
        if not a.no_qemu and shutil.which(a.qemu):
            res["qemu_saves"] = b.qemu_saves()
    except BenchError as e:
        log("netns: FAILED: %s" % e)
        return 1
    finally:
        b.cleanup()
    res["machine"]["loadavg_end"] = os.getloadavg()
    report(res)
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
        log("netns: results in %s" % a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
