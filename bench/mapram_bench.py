#!/usr/bin/env python3
"""Save/restore benchmark of mapram-vm against fio's disk limits.

Driven by bench/run.sh (issue #3, point 8).  It starts real mapram-vm
processes, talks QMP to them over unix sockets, and times saves and
restores of a stopped VM whose RAM is half non-zero pages, for the plain
stream file: and for mapped-ram with and without multifd and direct-io.
fio measures, in the same run and on the same file system, what the disk
can do with sequential O_DIRECT 1 MiB I/O: the figures are reported as
ratios to that limit.  Figures only: a slow case never fails the run,
only something that broke (a failed migration, a wrong restore) does.

Standard library only: python3 is everywhere meson is.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

MiB = 1 << 20
GiB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A window of guest memory compared between source and destination after
# every restore, so a fast but wrong restore is caught.
CHECK_WINDOW = 16 * MiB


class BenchError(Exception):
    """Something broke: the run exits non-zero."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_size(text):
    units = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


# --- QMP -------------------------------------------------------------------

class QMP:
    """A QMP client on a unix socket; events are kept, not returned."""

    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise BenchError("cannot connect to QMP socket '%s'" % path)
                time.sleep(0.05)
        self.file = self.sock.makefile("rw")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise BenchError("no QMP greeting on '%s'" % path)
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise BenchError("QMP connection closed")
        r = json.loads(line)
        if "event" in r:
            r["_seen"] = time.monotonic()    # when it arrived here, for timing
        return r

    def cmd(self, execute, **args):
        msg = {"execute": execute}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise BenchError("%s: %s" % (execute, r["error"].get("desc")))
            return r.get("return")

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


# --- VM processes ----------------------------------------------------------

def proc_cpu_seconds(pid, children=False):
    """utime + stime of a process (all its threads; with children, also
    of its reaped children), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime, stime are fields 14, 15;
    # cutime, cstime 16, 17.
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / CLK_TCK


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    """Reset VmHWM to the current RSS (clear_refs 5), where allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class VM:
    """A mapram-vm of bench (its vm_bin, mem_arg, smp, work, vms) with QMP
    on a unix socket; prefix runs it through another program that execs
    it (as "ip netns exec NS" does: the pid is the VM's)."""

    def __init__(self, bench, name, args, start_timeout=30.0, prefix=()):
        self.name = name
        self.sock = os.path.join(bench.work, name + ".qmp")
        self.logpath = os.path.join(bench.work, name + ".log")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        cmd = list(prefix) + [bench.vm_bin, "-m", bench.mem_arg, "-smp", str(bench.smp)] + \
            args + ["-qmp", "unix:%s,server=on,wait=off" % self.sock]
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        t0 = time.monotonic()
        try:
            self.qmp = QMP(self.sock, timeout=start_timeout)
            self.start_s = time.monotonic() - t0
        except BenchError:
            self.kill()
            raise BenchError("'%s' did not start: %s" % (" ".join(cmd), self.log_tail()))
        bench.vms.append(self)

    def log_tail(self):
        try:
            with open(self.logpath) as f:
                return f.read()[-2000:].strip()
        except OSError:
            return ""

    def cpu(self):
        return proc_cpu_seconds(self.pid)

    def hwm_kib(self):
        return proc_status_kib(self.pid, "VmHWM")

    def set_migration(self, caps, params):
        self.qmp.cmd("migrate-set-capabilities",
                     capabilities=[{"capability": c, "state": s} for c, s in caps.items()])
        self.qmp.cmd("migrate-set-parameters", **params)

    def wait_migration(self, timeout):
        """Poll query-migrate to its end; returns (info, wall seconds seen)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp.cmd("query-migrate")
            status = info.get("status")
            if status == "completed":
                return info
            if status in ("failed", "cancelled"):
                raise BenchError("%s: migration %s: %s" %
                                 (self.name, status, info.get("error-desc", "")))
            if self.proc.poll() is not None:
                raise BenchError("%s exited during migration: %s" % (self.name, self.log_tail()))
            if time.monotonic() > deadline:
                raise BenchError("%s: migration still '%s' after %d s" %
                                 (self.name, status, timeout))
            time.sleep(0.01)

    def pmemsave(self, path, addr, size):
        self.qmp.cmd("pmemsave", val=addr, size=size, filename=path)
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        return data

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd("quit")
            except Exception:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            self.qmp.close()
        except AttributeError:
            pass
        self.logf.close()


def wait_filled(vm, snapshot, timeout, what="source fill"):
    """No QMP signal says fill ended: wait for an idle VM whose memory
    (snapshot(vm): windows at the end of both vCPUs' halves) has stopped
    changing; what names it in the error after timeout seconds."""
    deadline = time.monotonic() + timeout
    prev = snapshot(vm)
    cpu = vm.cpu()
    while True:
        time.sleep(1.0)
        cur = snapshot(vm)
        now_cpu = vm.cpu()
        idle = now_cpu - cpu < 0.2
        if idle and cur == prev and any(any(w) for w in cur):
            return
        if time.monotonic() > deadline:
            raise BenchError("%s did not finish in %d s" % (what, timeout))
        prev, cpu = cur, now_cpu


# --- helpers ---------------------------------------------------------------

def drop_caches():
    """Drop the page cache so a read comes from the disk; False if we may not."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


def file_sizes(path):
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


def fsync_seconds(path):
    """Time to get a finished save's data onto the disk (0 if it already is)."""
    t = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - t


def odirect_supported(directory):
    path = os.path.join(directory, ".odirect-probe")
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.unlink(path)


# --- fio -------------------------------------------------------------------

FIO_CONFIGS = [
    # (label, iodepth, numjobs): numjobs > 1 write disjoint slices of one
    # file, as multifd channels do.
    ("qd16x1", 16, 1),
    ("qd4x1", 4, 1),
    ("qd4x4", 4, 4),
]


def run_fio(bench):
    """Sequential O_DIRECT 1 MiB write and read bandwidth; best config wins."""
    fio = shutil.which("fio")
    if not fio:
        log("fio not found: no disk limit (apt-get install fio)")
        return None
    path = os.path.join(bench.work, "fio.tmp")
    total = bench.fio_size
    results = []
    for label, depth, jobs in FIO_CONFIGS:
        row = {"config": label, "iodepth": depth, "numjobs": jobs}
        for rw in ("write", "read"):
            if rw == "write" and os.path.exists(path):
                os.unlink(path)
            if rw == "read":
                row["cache_dropped"] = drop_caches()
            per_job = total // jobs
            cmd = [fio, "--name=" + rw, "--filename=" + path, "--rw=" + rw,
                   "--bs=1M", "--size=%d" % per_job, "--offset_increment=%d" % per_job,
                   "--direct=1", "--ioengine=libaio", "--iodepth=%d" % depth,
                   "--numjobs=%d" % jobs, "--group_reporting",
                   # Write into a fresh sparse file, as a save does.
                   "--fallocate=none", "--end_fsync=1",
                   "--output-format=json"]
            log("fio %s %s" % (rw, label))
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise BenchError("fio failed: %s" % p.stderr.strip()[-500:])
            out = p.stdout[p.stdout.index("{"):]
            job = json.loads(out)["jobs"][0]
            row[rw + "_bps"] = job[rw]["bw_bytes"]
        results.append(row)
    if os.path.exists(path):
        os.unlink(path)
    return {
        "size": total,
        "configs": results,
        "write_bps": max(r["write_bps"] for r in results),
        "read_bps": max(r["read_bps"] for r in results),
    }


def fault_in_bps(size):
    """How fast this machine backs fresh anonymous memory (first touch of
    each page: the kernel, and on a virtual machine the hypervisor, must
    allocate and zero it).  A restore fills fresh guest RAM, so this bounds
    it as the disk does; fio reuses its few buffers and never sees it."""
    import mmap
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        try:
            m.madvise(mmap.MADV_HUGEPAGE)   # as mapram-vm's RAM
        except (AttributeError, OSError):
            pass
        t = time.monotonic()
        for off in range(0, size, 4096):
            m[off] = 1
        return size / (time.monotonic() - t)
    finally:
        m.close()


# --- the benchmark ---------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.vm_bin = args.vm
        self.mem_arg = args.mem
        self.mem = parse_size(args.mem)
        self.smp = 2
        self.dir = args.dir
        self.fio_size = parse_size(args.fio_size)
        os.makedirs(self.dir, exist_ok=True)
        self.work = os.path.join(self.dir, "run.%d" % os.getpid())
        os.makedirs(self.work)
        self.vms = []
        self.timeout = args.timeout
        self.strace = args.strace
        self.live_limit = args.live_limit
        self.live_rate = args.live_rate
        self.csum_pairs = args.csum_pairs
        self.partial = None

    def cleanup(self):
        for vm in self.vms:
            vm.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    # The source: filled once, stopped, saved once per case.
    def start_source(self):
        src = VM(self, "src", ["-guest", "fill,zero=50,text=25,random=25"])
        t0 = time.monotonic()
        wait_filled(src, self.snapshot, self.timeout)
        log("source filled in %.1f s" % (time.monotonic() - t0))
        src.qmp.cmd("stop")
        return src

    def windows(self):
        """Guest-physical windows checked: the end of each vCPU's half."""
        half = self.mem // 2
        return [half - CHECK_WINDOW, self.mem - CHECK_WINDOW]

    def snapshot(self, vm):
        return [vm.pmemsave(os.path.join(self.work, "win.bin"), a, CHECK_WINDOW)
                for a in self.windows()]

    @staticmethod
    def config(multifd, channels, dio, mapped_ram, fsync=False, checksums=True):
        caps = {"mapped-ram": mapped_ram, "multifd": multifd}
        # x-fsync and x-checksums are set either way: the source is reused,
        # so a case must undo what the one before it set
        params = {"max-bandwidth": 0, "direct-io": dio, "x-fsync": fsync,
                  "x-checksums": checksums}
        if multifd:
            params["multifd-channels"] = channels
        return caps, params

    def save(self, src, case, path, fsync=False):
        caps, params = self.config(case["multifd"], case["channels"], case["dio"],
                                   case["mapped_ram"], fsync=fsync,
                                   checksums=case.get("checksums", True))
        # A finished migration leaves the source in "postmigrate", which
        # refuses another: resume and stop the (idle, filled) guest.
        if src.qmp.cmd("query-status").get("status") == "postmigrate":
            src.qmp.cmd("cont")
            src.qmp.cmd("stop")
        src.set_migration(caps, params)
        reset_peak_rss(src.pid)
        cpu0 = src.cpu()
        strace = self.start_strace(src.pid, case["name"] + ".save")
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="file:" + path)
        info = src.wait_migration(self.timeout)
        wall = time.monotonic() - t0
        cpu = src.cpu() - cpu0
        strace_summary = self.stop_strace(strace)
        sync = fsync_seconds(path)
        size, alloc = file_sizes(path)
        ram = info.get("ram", {})
        return {
            "time_s": info.get("total-time", 0) / 1000.0,
            "wall_s": wall,
            "fsync_s": sync,
            "page_bytes": ram.get("normal-bytes", 0),
            "normal_pages": ram.get("normal", 0),
            "zero_pages": ram.get("duplicate", 0),
            "transferred": ram.get("transferred", 0),
            "passes": ram.get("dirty-sync-count", 0),
            "downtime_ms": info.get("downtime"),
            "cpu_s": cpu,
            "peak_rss_kib": src.hwm_kib(),
            "file_size": size,
            "file_alloc": alloc,
            "strace": strace_summary,
        }

    def restore(self, case, path, src_windows):
        caps, params = self.config(case["multifd"], case["channels"], case["dio"],
                                   case["mapped_ram"], checksums=case.get("checksums", True))
        cached = not drop_caches()
        # prealloc: back the destination's RAM at start-up (-mem-prealloc),
        # so the restore itself does not wait for first touches
        args = ["-incoming", "defer"] + (["-mem-prealloc"] if case.get("prealloc") else [])
        dst = VM(self, "dst", args, start_timeout=self.timeout)
        try:
            dst.set_migration(caps, params)
            cpu0 = dst.cpu()
            rss0 = dst.hwm_kib()
            strace = self.start_strace(dst.pid, case["name"] + ".restore")
            t0 = time.monotonic()
            dst.qmp.cmd("migrate-incoming", uri="file:" + path)
            info = dst.wait_migration(self.timeout)
            wall = time.monotonic() - t0
            cpu = dst.cpu() - cpu0
            strace_summary = self.stop_strace(strace)
            status = dst.qmp.cmd("query-status")
            if status.get("status") not in ("paused", "postmigrate", "inmigrate",
                                             "prelaunch", "running"):
                raise BenchError("%s restore: destination status '%s'" %
                                 (case["name"], status.get("status")))
            same = self.snapshot(dst) == src_windows
            if not same:
                raise BenchError("%s restore: destination memory differs from the source"
                                 % case["name"])
            tt = info.get("total-time")
            return {
                "time_s": tt / 1000.0 if tt else wall,
                "time_from": "total-time" if tt else "wall",
                "wall_s": wall,
                "start_s": dst.start_s,
                "cpu_s": cpu,
                "peak_rss_kib": dst.hwm_kib(),
                "start_rss_kib": rss0,
                "cache_dropped": not cached,
                "memory_checked": same,
                "strace": strace_summary,
            }
        finally:
            dst.kill()
            self.vms.remove(dst)

    # strace -c -f on the VM during one case, when BENCH_STRACE=1.
    def start_strace(self, pid, label):
        if not self.strace or not shutil.which("strace"):
            return None
        out = os.path.join(self.work, label + ".strace")
        p = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)         # let it attach to every thread
        return (p, out)

    def stop_strace(self, handle):
        if not handle:
            return None
        p, out = handle
        p.send_signal(signal.SIGINT)
        p.wait()
        try:
            with open(out) as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        return "\n".join(lines[:14])

    def live_save(self, rate):
        """A running VM under "dirty" saved with mapped-ram + multifd 4 +
        direct-io: time, passes and a file that stays bounded however
        often pages are rewritten.  A guest dirtying faster than the disk
        writes never converges (mapram has no auto-converge throttle), so
        after live_limit seconds the VM is stopped, as a management layer
        does when a live save overruns, and the save then completes."""
        prog = "dirty" + (",rate=%d" % rate if rate else "")
        vm = VM(self, "live", ["-guest", prog])
        path = os.path.join(self.work, "live.sav")
        try:
            time.sleep(2.0)     # let the guest dirty a good part of RAM first
            caps, params = self.config(True, 4, self.dio_ok, True)
            vm.set_migration(caps, params)
            reset_peak_rss(vm.pid)
            cpu0 = vm.cpu()
            t0 = time.monotonic()
            vm.qmp.cmd("migrate", uri="file:" + path)
            stopped_after = None
            try:
                info = vm.wait_migration(self.live_limit)
            except BenchError:
                status = vm.qmp.cmd("query-migrate").get("status")
                if status not in ("active", "setup", "device", "pre-switchover"):
                    raise
                if status in ("active", "setup"):
                    # still iterating: stop the VM so that it completes
                    stopped_after = time.monotonic() - t0
                    log("live save not converged after %.0f s: stopping the VM"
                        % stopped_after)
                    vm.qmp.cmd("stop")
                else:
                    log("live save still completing ('%s') after %.0f s" %
                        (status, time.monotonic() - t0))
                info = vm.wait_migration(self.timeout)
            wall = time.monotonic() - t0
            cpu = vm.cpu() - cpu0
            size, alloc = file_sizes(path)
            ram = info.get("ram", {})
            return {
                "name": "live %s, mapped-ram+multifd4%s" % (prog, "+dio" if self.dio_ok else ""),
                "rate_pages_s": rate,
                "converged": stopped_after is None,
                "stopped_after_s": stopped_after,
                "time_s": info.get("total-time", 0) / 1000.0,
                "wall_s": wall,
                "downtime_ms": info.get("downtime"),
                "passes": ram.get("dirty-sync-count", 0),
                "page_bytes": ram.get("normal-bytes", 0),
                "transferred": ram.get("transferred", 0),
                "cpu_s": cpu,
                "peak_rss_kib": vm.hwm_kib(),
                "file_size": size,
                "file_alloc": alloc,
            }
        finally:
            vm.kill()
            self.vms.remove(vm)
            if os.path.exists(path):
                os.unlink(path)

    def cases(self):
        out = [{"name": "stream", "mapped_ram": False, "multifd": False,
                "channels": 0, "dio": False}]
        for dio in (False, True):
            if dio and not self.dio_ok:
                continue
            out.append({"name": "mapped-ram" + ("+dio" if dio else ""),
                        "mapped_ram": True, "multifd": False, "channels": 0, "dio": dio})
            for ch in (1, 2, 4):
                out.append({"name": "mapped-ram+multifd%d%s" % (ch, "+dio" if dio else ""),
                            "mapped_ram": True, "multifd": True, "channels": ch,
                            "dio": dio})
        # The same restores into a destination started with -mem-prealloc.
        prealloc = ("mapped-ram+multifd4", "mapped-ram+dio", "mapped-ram+multifd1+dio",
                    "mapped-ram+multifd4+dio")
        out += [dict(c, name=c["name"] + "/prealloc", prealloc=True)
                for c in out if c["name"] in prealloc]
        return out

    # The cost of the checksum table (x-checksums): alternating pairs.
    CSUM_CASES = ("mapped-ram", "mapped-ram+multifd4+dio")

    def checksum_cost(self, src, src_windows):
        """Each case's save, durable save (x-fsync) and restore with the
        table and without it, in `pairs` pairs whose order alternates.  One
        run of each differs by up to +-50 % from the next on this host, so
        the cost is the median of the pairs' ratios, not a ratio of two
        single runs."""
        out = []
        by_name = {c["name"]: c for c in self.cases()}
        for name in self.CSUM_CASES:
            if name not in by_name:
                continue
            ratios = {"save": [], "durable": [], "restore": []}
            times = {(op, on): [] for op in ratios for on in (True, False)}
            for i in range(self.csum_pairs):
                for on in ((True, False) if i % 2 == 0 else (False, True)):
                    case = dict(by_name[name], checksums=on)
                    path = os.path.join(self.work, "csum.sav")
                    for op in ("durable", "save"):
                        if os.path.exists(path):
                            os.unlink(path)
                        drop_caches()
                        r = self.save(src, case, path, fsync=op == "durable")
                        times[(op, on)].append(r["time_s"] or r["wall_s"])
                    r = self.restore(case, path, src_windows)
                    times[("restore", on)].append(r["time_s"] or r["wall_s"])
                    os.unlink(path)
                for op in ratios:
                    ratios[op].append(times[(op, True)][-1] / times[(op, False)][-1] - 1)
                log("checksum cost %s, pair %d: %s" % (name, i + 1, ", ".join(
                    "%s %+.1f %%" % (op, 100 * ratios[op][-1]) for op in ratios)))
            out.append({"case": name, "pairs": self.csum_pairs, "ops": {
                op: {"with_s": statistics.median(times[(op, True)]),
                     "without_s": statistics.median(times[(op, False)]),
                     "ratios": ratios[op],
                     "median_ratio": statistics.median(ratios[op])} for op in ratios}})
        return out

    def run(self, only=None):
        self.dio_ok = odirect_supported(self.dir)
        if not self.dio_ok:
            log("O_DIRECT not supported in '%s': direct-io cases skipped" % self.dir)
        results = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(self.dir),
            "mem": self.mem,
            "dir": self.dir,
            "guest": "fill,zero=50,text=25,random=25",
            "cache_drop": drop_caches(),
        }
        if not results["cache_drop"]:
            log("cannot drop the page cache (not root?): restores may read from it")
        results["fio"] = run_fio(self)
        log("memory fault-in rate")
        results["fault_in_bps"] = fault_in_bps(self.mem)
        rows = []
        self.partial = results
        results["cases"] = rows
        cases = [c for c in self.cases() if not only or c["name"] in only]
        src = self.start_source() if cases else None
        src_windows = self.snapshot(src) if src else None
        for case in cases:
            path = os.path.join(self.work, "save.sav")
            if os.path.exists(path):
                os.unlink(path)
            log("case %s: save with x-fsync" % case["name"])
            durable = self.save(src, case, path, fsync=True)
            os.unlink(path)
            log("case %s: save" % case["name"])
            save = self.save(src, case, path)
            save["durable_s"] = durable["time_s"]
            save["durable_fsync_s"] = durable["fsync_s"]
            log("case %s: restore" % case["name"])
            restore = self.restore(case, path, src_windows)
            restore["page_bytes"] = save["page_bytes"]
            os.unlink(path)
            rows.append({"case": case, "save": save, "restore": restore})
            log("  save %.2f s (%.0f MB/s), restore %.2f s (%.0f MB/s)" %
                (save["time_s"], save["page_bytes"] / save["time_s"] / 1e6,
                 restore["time_s"], restore["page_bytes"] / restore["time_s"] / 1e6))
        results["checksum_cost"] = []
        if src is None and (not only or "checksums" in only) and self.csum_pairs:
            src = self.start_source()
            src_windows = self.snapshot(src)
        if src and (not only or "checksums" in only) and self.csum_pairs:
            results["checksum_cost"] = self.checksum_cost(src, src_windows)
        if src:
            src.kill()
            self.vms.remove(src)
        results["live"] = []
        if not only or "live" in only:
            for rate in (0, self.live_rate):
                log("live save under dirty, rate %s" % (rate or "unlimited"))
                results["live"].append(self.live_save(rate))
        return results


def machine_info(directory):
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    p = subprocess.run(["df", "-T", directory], capture_output=True, text=True)
    lines = p.stdout.splitlines()
    if len(lines) >= 2:
        f = lines[1].split()
        info["fs_device"], info["fs_type"] = f[0], f[1]
    return info


# --- report ----------------------------------------------------------------

def gib(n):
    return n / GiB


def report(res):
    fio = res["fio"]
    wlim = fio["write_bps"] if fio else None
    rlim = fio["read_bps"] if fio else None
    m = res["machine"]
    print("mapram bench %s: %d CPUs, %.1f GiB RAM, %s (%s) at %s" %
          (res["date"], m.get("nproc", 0), m.get("mem_total_kib", 0) / (1 << 20),
           m.get("fs_type", "?"), m.get("fs_device", "?"), res["dir"]))
    print("VM: %g GiB, guest %s; page cache dropped before reads: %s" %
          (gib(res["mem"]), res["guest"], "yes" if res["cache_drop"] else "NO (not root)"))
    if fio:
        print("\nfio limit, sequential O_DIRECT 1 MiB, %g GiB (MB/s = 10^6 B/s):" %
              gib(fio["size"]))
        for r in fio["configs"]:
            print("  %-7s write %7.0f MB/s   read %7.0f MB/s" %
                  (r["config"], r["write_bps"] / 1e6, r["read_bps"] / 1e6))
        print("  limit   write %7.0f MB/s   read %7.0f MB/s (best of the above)" %
              (wlim / 1e6, rlim / 1e6))
    if res.get("fault_in_bps"):
        fb = res["fault_in_bps"]
        print("first touch of fresh memory: %.0f MB/s (%g GiB in %.1f s): a restore "
              "fills that much fresh RAM" % (fb / 1e6, gib(res["mem"]), res["mem"] / fb))
    else:
        print("\nfio: not run (no fio): ratios omitted")
    hdr = ("%-28s %-7s %7s %7s %7s %7s %8s %6s %6s %7s %6s %8s %7s %7s %7s %7s" %
           ("case", "op", "time s", "wall s", "start s", "fsync s", "data MB/s", "xfio",
            "+sync", "x-fs s", "xfio", "RAM GiB/s", "cpu s", "rss MiB", "size G", "alloc G"))
    print("\n" + hdr)
    print("-" * len(hdr))
    for row in res["cases"]:
        for op in ("save", "restore"):
            r = row[op]
            t = r["time_s"] or r["wall_s"]
            bps = r["page_bytes"] / t if t else 0
            lim = wlim if op == "save" else rlim
            ratio = "%6.2f" % (bps / lim) if lim else "     -"
            # a save is on the disk only once flushed: the ratio with fsync
            synced = ("%6.2f" % (r["page_bytes"] / (t + r["fsync_s"]) / lim)
                      if lim and op == "save" else "     -")
            fsync = "%7.2f" % r["fsync_s"] if op == "save" else "      -"
            # the same save with x-fsync: "completed" once on the disk
            dur = r.get("durable_s") if op == "save" else None
            durable = "%7.2f" % dur if dur else "      -"
            dratio = ("%6.2f" % (r["page_bytes"] / dur / lim)
                      if dur and lim else "     -")
            start = "%7.2f" % r["start_s"] if "start_s" in r else "      -"
            size = "%7.2f" % gib(row["save"]["file_size"]) if op == "save" else "      -"
            alloc = "%7.2f" % gib(row["save"]["file_alloc"]) if op == "save" else "      -"
            print("%-28s %-7s %7.2f %7.2f %s %s %8.0f %s %s %s %s %8.2f %7.2f %7.0f %s %s" %
                  (row["case"]["name"] if op == "save" else "", op, t, r["wall_s"], start,
                   fsync,
                   bps / 1e6, ratio, synced, durable, dratio,
                   gib(res["mem"]) / t if t else 0, r["cpu_s"],
                   r["peak_rss_kib"] / 1024, size, alloc))
    cost = res.get("checksum_cost") or []
    if cost:
        print("\nchecksum table (x-checksums): %d pairs with and without it, alternating; "
              "medians, and the median of the pairs' differences" % cost[0]["pairs"])
        for c in cost:
            for op in ("save", "durable", "restore"):
                o = c["ops"][op]
                print("  %-26s %-8s %6.3f s vs %6.3f s: %+6.1f %%   (pairs: %s)" % (
                    c["case"] if op == "save" else "", op, o["with_s"], o["without_s"],
                    100 * o["median_ratio"], " ".join("%+.0f" % (100 * r) for r in o["ratios"])))
    for live in res.get("live", []):
        t = live["time_s"] or live["wall_s"]
        how = ("converged" if live["converged"] else
               "NOT converged, VM stopped after %.0f s" % live["stopped_after_s"])
        print("\n%s: %s; time %.2f s (wall %.2f), downtime %s ms, %d passes, "
              "%.2f GiB page data written, cpu %.2f s, rss %.0f MiB, "
              "file %.2f GiB, allocated %.2f GiB"
              % (live["name"], how, t, live["wall_s"], live["downtime_ms"], live["passes"],
                 gib(live["page_bytes"]), live["cpu_s"], live["peak_rss_kib"] / 1024,
                 gib(live["file_size"]), gib(live["file_alloc"])))
    print("\ntime s: query-migrate total-time (restores: the destination's, or wall clock "
          "from migrate-incoming to completed); data MB/s: non-zero page bytes / time; "
          "xfio: that / the fio limit (write for saves, read for restores); start s: "
          "the destination's start-up to QMP ready (with /prealloc: -mem-prealloc "
          "backs all guest RAM then); fsync s: "
          "extra time to flush a finished save to disk; +sync: xfio counting that "
          "flush (fio's write test ends with an fsync too, inside its timed run); "
          "x-fs s: the same save with x-fsync on (completed = every fd fdatasync()ed), "
          "and its xfio: the figure to hold beside fio's.")
    for row in res["cases"]:
        for op in ("save", "restore"):
            if row[op].get("strace"):
                print("\nstrace -c -f, %s %s:\n%s" % (row["case"]["name"], op, row[op]["strace"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vm", required=True, help="mapram-vm binary")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", "/var/tmp/mapram-bench"))
    ap.add_argument("--mem", default=os.environ.get("BENCH_MEM", "4G"))
    ap.add_argument("--fio-size", default=os.environ.get("BENCH_FIO_SIZE", "4G"))
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--strace", action="store_true",
                    default=os.environ.get("BENCH_STRACE") == "1",
                    help="strace -c -f the VM during each case (slows it)")
    ap.add_argument("--live-limit", type=int,
                    default=int(os.environ.get("BENCH_LIVE_LIMIT", "20")),
                    help="seconds a live save may run before the VM is stopped")
    ap.add_argument("--live-rate", type=int,
                    default=int(os.environ.get("BENCH_LIVE_RATE", "20000")),
                    help="pages/s of the rate-limited live case")
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY") or None,
                    help="comma-separated case names (and 'live', 'checksums')")
    ap.add_argument("--csum-pairs", type=int,
                    default=int(os.environ.get("BENCH_CSUM_PAIRS", "5")),
                    help="pairs of saves and restores with and without the checksum "
                    "table (0: none)")
    args = ap.parse_args()

    bench = Bench(args)
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        res = bench.run(set(args.only.split(",")) if args.only else None)
    except BenchError as e:
        log("bench: %s" % e)
        if args.json and bench.partial:
            bench.partial["incomplete"] = str(e)
            with open(args.json, "w") as f:
                json.dump(bench.partial, f, indent=2)
            log("partial results: %s" % args.json)
        return 1
    finally:
        bench.cleanup()
        signal.signal(signal.SIGTERM, old)
    report(res)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
        print("\nresults: %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
