#!/usr/bin/env python3
"""Instant restore: time to a running guest, eager vs on demand vs shared.

Driven by bench/run.sh (issue #10, point 5).  Per guest size it fills a
`touch` guest (the `fill` program, then 1,000 timed page touches after a
load) once, saves it stopped with mapped-ram, and restores it N times in
each mode, dropping the page cache before each restore:

  copy       eager: every page read before the guest resumes
             (mapped-ram + multifd 4 + direct-io where O_DIRECT works)
  on-demand  postcopy-ram beside mapped-ram (same channels and direct-io)
  shared     x-mapped-ram-shared: guest RAM maps the file

It records migrate-incoming -> RESUME (ms), migrate-incoming -> completed
(every page loaded; its data rate beside fio's O_DIRECT read, measured in
the same run), the guest's first 1,000 distinct page touches after the
resume (p50/p99), RSS/PSS of 8 VMs restored shared from one 1 GiB file
beside 8 copy restores, and (bench/qemu-serve.py) QEMU 7.2's time to
resume through `mapram serve` vs `exec:mapram load`.  Medians of N.  Then it draws the SVG plots
(gnuplot) from its JSON and from bench/results/last.json.

Figures only: it exits non-zero when something broke, never for speed.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapram_bench as mb  # noqa: E402
from mapram_bench import BenchError, GiB, MiB, log  # noqa: E402

PAGE = 4096
WINDOW = 16 * MiB
TOUCH_MAGIC = 0x54414c4843554f54
TOUCH_COUNT = 1000
GUEST = "touch,zero=50,text=25,random=25"
MODES = ("copy", "on-demand", "shared")


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def pss_kib(pid):
    """Pss of /proc/PID/smaps_rollup (kB), or None where unreadable."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def backing_bps(size, workers):
    """How fast this machine backs fresh guest-like memory with all its CPUs:
    `workers` processes each first-touch size/workers bytes of a private
    anonymous MADV_HUGEPAGE mapping at once (mapram_bench.fault_in_bps is
    the one-process figure).  A restore must back all of guest RAM before
    or while it reads the data into it, so this bounds it as fio bounds
    the reads."""
    part = size // workers
    pids, pipes = [], []
    go_r, go_w = os.pipe()
    for _ in range(workers):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.close(go_w)
            try:
                import mmap
                m = mmap.mmap(-1, part, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                try:
                    m.madvise(mmap.MADV_HUGEPAGE)
                except (AttributeError, OSError):
                    pass
                os.read(go_r, 1)
                t = time.monotonic()
                for off in range(0, part, 4096):
                    m[off] = 1
                os.write(w, repr(time.monotonic() - t).encode())
            finally:
                os._exit(0)
        os.close(w)
        pids.append(pid)
        pipes.append(r)
    os.close(go_r)
    os.write(go_w, b"x" * workers)
    os.close(go_w)
    times = []
    for r in pipes:
        with os.fdopen(r) as f:
            out = f.read()
        if out:
            times.append(float(out))
    for pid in pids:
        os.waitpid(pid, 0)
    if len(times) != workers:
        return None
    return part * workers / max(times)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


class RVM(mb.VM):
    """A mapram-vm whose QMP events are waited for as they arrive."""

    def wait_event(self, name, timeout, status=None):
        """When event name (a MIGRATION event: with data.status status) arrived."""
        def match(ev):
            return ev["event"] == name and (
                status is None or ev.get("data", {}).get("status") == status)
        deadline = time.monotonic() + timeout
        for ev in self.qmp.events:
            if match(ev):
                return ev["_seen"]
        self.qmp.sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while True:
                r = self.qmp._read()
                if "event" in r:
                    self.qmp.events.append(r)
                    if match(r):
                        return r["_seen"]
        except OSError:
            raise BenchError("%s: no %s event in %d s: %s" %
                             (self.name, name, timeout, self.log_tail()))
        finally:
            self.qmp.sock.settimeout(None)


class Restore:
    def __init__(self, args):
        self.vm_bin = args.vm
        self.build = args.build
        self.dir = args.dir
        self.smp = 2
        self.timeout = args.timeout
        self.reps = args.reps
        self.sizes = [mb.parse_size(s) for s in args.sizes.split(",") if s]
        self.density_vms = args.density_vms
        self.modes = [m for m in args.modes.split(",") if m]
        for m in self.modes:
            if m not in MODES:
                raise SystemExit("restore.py: unknown mode '%s' (modes: %s)" %
                                 (m, ",".join(MODES)))
        os.makedirs(self.dir, exist_ok=True)
        self.work = os.path.join(self.dir, "restore.%d" % os.getpid())
        os.makedirs(self.work)
        self.vms = []
        self.mem = 0
        self.mem_arg = ""
        self.dio_ok = mb.odirect_supported(self.dir)
        self.fio_size = args.fio_size

    def cleanup(self):
        for vm in list(self.vms):
            vm.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    def set_size(self, size):
        self.mem = size
        self.mem_arg = "%dM" % (size // MiB)

    def vm(self, name, args, timeout=30.0):
        return RVM(self, name, args, start_timeout=timeout)

    def drop(self, vm):
        vm.kill()
        self.vms.remove(vm)

    # Windows compared with the source: the last page holds touch's results.
    def windows(self):
        return [self.mem // 2 - WINDOW, self.mem - PAGE - WINDOW]

    def snapshot(self, vm):
        return [vm.pmemsave(os.path.join(self.work, "win.%s.bin" % vm.name), a, WINDOW)
                for a in self.windows()]

    def wait_filled(self, vm):
        deadline = time.monotonic() + self.timeout
        prev, cpu = self.snapshot(vm), vm.cpu()
        while True:
            time.sleep(1.0)
            cur, now_cpu = self.snapshot(vm), vm.cpu()
            if now_cpu - cpu < 0.2 and cur == prev and any(any(w) for w in cur):
                return cur
            if time.monotonic() > deadline:
                raise BenchError("source fill did not finish in %d s" % self.timeout)
            prev, cpu = cur, now_cpu

    def caps(self, mode):
        caps = {"mapped-ram": True, "multifd": mode != "shared",
                "postcopy-ram": mode == "on-demand", "events": True}
        params = {"direct-io": self.dio_ok and mode != "shared",
                  "x-mapped-ram-shared": mode == "shared"}
        if mode != "shared":
            params["multifd-channels"] = 4
        return caps, params

    def save(self, path):
        src = self.vm("src", ["-guest", GUEST])
        t0 = time.monotonic()
        windows = self.wait_filled(src)
        log("  source filled in %.1f s" % (time.monotonic() - t0))
        # saved running (the guest is idle now: one pass, then the stop at
        # its end): a destination resumes by itself only if the source ran
        caps, params = self.caps("copy")
        src.set_migration(caps, params)
        src.qmp.cmd("migrate", uri="file:" + path)
        info = src.wait_migration(self.timeout)
        self.drop(src)
        mb.fsync_seconds(path)
        return windows, info.get("ram", {}).get("normal-bytes", 0)

    def touches(self, vm):
        """The touch guest's latencies (ns) once vCPU 0 wrote them."""
        deadline = time.monotonic() + self.timeout
        while True:
            page = vm.pmemsave(os.path.join(self.work, "touch.bin"),
                               self.mem - PAGE, PAGE)
            magic, count = struct.unpack_from("<QI", page)
            if magic == TOUCH_MAGIC and count == TOUCH_COUNT:
                return list(struct.unpack_from("<%dI" % TOUCH_COUNT, page, 16))
            if time.monotonic() > deadline:
                raise BenchError("%s: no touch results in %d s" % (vm.name, self.timeout))
            time.sleep(0.05)

    def restore(self, mode, path, windows, name="dst", check=True):
        """Start a destination and migrate-incoming; returns (vm, t0)."""
        if check:
            mb.drop_caches()
        dst = self.vm(name, ["-guest", GUEST, "-incoming", "defer"], timeout=self.timeout)
        caps, params = self.caps(mode)
        dst.set_migration(caps, params)
        t0 = time.monotonic()
        dst.qmp.cmd("migrate-incoming", uri="file:" + path)
        return dst, t0

    def one(self, mode, path, windows, page_bytes):
        dst, t0 = self.restore(mode, path, windows)
        try:
            t_run = dst.wait_event("RESUME", min(self.timeout, 120))
            # the event's arrival, not a poll of query-migrate (10 ms apart)
            t_done = dst.wait_event("MIGRATION", self.timeout, status="completed")
            info = dst.wait_migration(self.timeout)
            lat = self.touches(dst)
            if self.snapshot(dst) != windows:
                raise BenchError("%s restore: memory differs from the source" % mode)
            ram = info.get("ram", {})
            return {
                "resume_ms": (t_run - t0) * 1000.0,
                "complete_s": t_done - t0,
                "total_time_ms": info.get("total-time"),
                "data_bps": page_bytes / (t_done - t0),
                "postcopy_requests": ram.get("postcopy-requests"),
                "touch_p50_us": pct(lat, 50) / 1000.0,
                "touch_p99_us": pct(lat, 99) / 1000.0,
                "touch_max_us": max(lat) / 1000.0,
                "rss_kib": mb.proc_status_kib(dst.pid, "VmRSS"),
                "pss_kib": pss_kib(dst.pid),
            }
        finally:
            self.drop(dst)

    def density(self, path, windows, n):
        """RSS and PSS of n VMs restored from one file, shared and copied."""
        out = {"vms": n, "mem": self.mem}
        for mode in ("shared", "copy"):
            need = (self.mem if mode == "copy" else 64 * MiB) * n + 2 * GiB
            if need > mem_available():
                out[mode] = {"skipped": "needs %.1f GiB free, %.1f GiB available" %
                             (need / GiB, mem_available() / GiB)}
                log("  density %s: %s" % (mode, out[mode]["skipped"]))
                continue
            mb.drop_caches()
            vms = []
            try:
                for i in range(n):
                    vm, _ = self.restore(mode, path, windows, name="d%d" % i, check=False)
                    vms.append(vm)
                for vm in vms:
                    vm.wait_migration(self.timeout)
                    self.touches(vm)
                    if self.snapshot(vm) != windows:
                        raise BenchError("density %s: memory differs" % mode)
                rss = [mb.proc_status_kib(vm.pid, "VmRSS") for vm in vms]
                pss = [pss_kib(vm.pid) or 0 for vm in vms]
                out[mode] = {"rss_kib": sum(rss), "pss_kib": sum(pss),
                             "rss_each_kib": rss, "pss_each_kib": pss}
                log("  density %s: %d VMs, RSS %.0f MiB, PSS %.0f MiB" %
                    (mode, n, sum(rss) / 1024, sum(pss) / 1024))
            finally:
                for vm in vms:
                    self.drop(vm)
        return out

    def run(self):
        res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": mb.machine_info(self.dir), "guest": GUEST, "reps": self.reps,
               "dio": self.dio_ok, "cache_drop": mb.drop_caches(), "sizes": [],
               "skipped": []}
        self.partial = res
        fb = argparse.Namespace(work=self.work, fio_size=self.fio_size)
        res["fio"] = mb.run_fio(fb)
        rlim = res["fio"]["read_bps"] if res["fio"] else None
        ncpu = os.cpu_count() or 1
        res["backing_workers"] = ncpu
        res["uffd_move"] = uffd_move(self.build)
        for size in self.sizes:
            need_mem = size + size // 4 + 2 * GiB
            need_disk = size + 2 * GiB
            why = None
            if mem_available() < need_mem:
                why = "needs %.1f GiB of available RAM, %.1f GiB here" % (
                    need_mem / GiB, mem_available() / GiB)
            elif disk_free(self.dir) < need_disk:
                why = "needs %.1f GiB free in %s, %.1f GiB here" % (
                    need_disk / GiB, self.dir, disk_free(self.dir) / GiB)
            if why:
                log("size %g GiB skipped: %s" % (size / GiB, why))
                res["skipped"].append({"mem": size, "why": why})
                continue
            self.set_size(size)
            path = os.path.join(self.work, "guest.sav")
            log("size %g GiB: fill and save" % (size / GiB))
            windows, page_bytes = self.save(path)
            # this host backs fresh memory at rates that vary 30x from hour to
            # hour: measured for each size, right before its restores
            log("size %g GiB: memory backing rate, %d processes" % (size / GiB, ncpu))
            blim = backing_bps(size, ncpu)
            row = {"mem": size, "page_bytes": page_bytes, "modes": {}, "backing_bps": blim}
            # the modes interleaved, each rep in the other order: this host's
            # disk and memory drift over minutes (and the first restore after
            # a save is often slow), which a block of one mode's reps would
            # charge to that mode alone
            all_runs = {mode: [] for mode in self.modes}
            for rep in range(self.reps):
                order = self.modes if rep % 2 == 0 else self.modes[::-1]
                for mode in order:
                    r = self.one(mode, path, windows, page_bytes)
                    log("  %-9s #%d: RESUME %.1f ms, completed %.2f s, touch p50 %.1f "
                        "p99 %.1f us" % (mode, rep + 1, r["resume_ms"], r["complete_s"],
                                         r["touch_p50_us"], r["touch_p99_us"]))
                    all_runs[mode].append(r)
            for mode in self.modes:
                runs = all_runs[mode]
                med = {k: statistics.median(r[k] for r in runs)
                       for k in runs[0] if isinstance(runs[0][k], (int, float))}
                if rlim:
                    med["x_fio_read"] = med["data_bps"] / rlim
                if rlim and blim:
                    # the floor: reading the data at fio's rate, or backing all RAM
                    # (the guest's data lies in every 2 MiB window) at blim
                    limit_s = max(page_bytes / rlim, size / blim)
                    med["limit_s"] = limit_s
                    med["x_limit"] = limit_s / med["complete_s"]
                row["modes"][mode] = {"median": med, "runs": runs}
            if size == GiB and self.density_vms:
                log("density: %d VMs from one %g GiB file" % (self.density_vms, size / GiB))
                res["density"] = self.density(path, windows, self.density_vms)
            os.unlink(path)
            res["sizes"].append(row)
        res["serve_vs_load"] = qemu_serve_vs_load(self.build, self.work, os.environ)
        return res


def uffd_move(build):
    """The host's price of what an on-demand restore adds, a UFFDIO_MOVE of
    a 2 MiB page, alone and beside a process backing fresh memory, and
    what the moves cost that process (bench/uffd-move.c); skipped, saying
    why, without the build's bench/uffd-move or where it cannot run."""
    tool = os.path.join(build, "bench", "uffd-move") if build else ""
    if not tool or not os.path.exists(tool):
        return {"skipped": "no bench/uffd-move in '%s'" % build}
    log("UFFDIO_MOVE's price on this host (bench/uffd-move)")
    p = subprocess.run([tool, "2"], capture_output=True, text=True)
    if p.returncode == 2:
        return {"skipped": p.stderr.strip()}
    if p.returncode != 0:
        raise BenchError("bench/uffd-move failed (exit %d): %s" % (p.returncode, p.stderr.strip()))
    return json.loads(p.stdout)


def qemu_serve_vs_load(build, work, env):
    """QEMU 7.2's time to resume through `mapram serve` vs `exec:mapram
    load` (bench/qemu-serve.py, 1 GiB guest); skipped, saying why, without
    QEMU or a mapram tool that has serve."""
    tool = os.path.join(build, "tools", "mapram") if build else ""
    qemu = env.get("QEMU", "qemu-system-x86_64")
    if not tool or not os.path.exists(tool):
        return {"skipped": "no mapram tool in '%s'" % build}
    if subprocess.run([tool, "serve", "--help"], capture_output=True).returncode != 0:
        return {"skipped": "this mapram has no serve command"}
    if not shutil.which(qemu):
        return {"skipped": "%s not found" % qemu}
    out = os.path.join(work, "qemu-serve.json")
    log("QEMU 7.2: mapram serve vs exec:mapram load (bench/qemu-serve.py)")
    p = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "qemu-serve.py"), build, "--json", out],
                       env=dict(env, BENCH_TMPDIR=work), stdout=sys.stderr)
    if p.returncode != 0:
        raise BenchError("bench/qemu-serve.py failed (exit %d)" % p.returncode)
    with open(out) as f:
        return json.load(f)


def report(res):
    fio = res.get("fio")
    rlim = fio["read_bps"] if fio else None
    print("mapram restore bench %s: %d CPUs, guest %s, median of %d, direct-io %s" %
          (res["date"], res["machine"].get("nproc", 0), res["guest"], res["reps"],
           "on" if res["dio"] else "off"))
    if rlim:
        print("fio O_DIRECT read limit: %.0f MB/s" % (rlim / 1e6))
    for row in res["sizes"]:
        if row.get("backing_bps"):
            print("memory backing rate before the %g GiB restores (%d processes "
                  "first-touching fresh memory): %.0f MB/s" %
                  (row["mem"] / GiB, res.get("backing_workers", 1), row["backing_bps"] / 1e6))
    um = res.get("uffd_move")
    if um and "skipped" in um:
        print("UFFDIO_MOVE's price: skipped: %s" % um["skipped"])
    elif um:
        print("UFFDIO_MOVE of 2 MiB: %.1f us alone, %.1f us beside a process backing fresh "
              "memory, which backs %.2f GB/s alone and %.2f GB/s beside the moves" %
              (um["move_us_alone"], um["move_us_beside_backing"], um["backing_gbs_alone"],
               um["backing_gbs_beside_moves"]))
    hdr = "%-6s %-10s %10s %11s %9s %7s %7s %10s %10s %9s" % (
        "RAM", "mode", "RESUME ms", "complete s", "MB/s", "xfio", "xlimit", "touch p50",
        "p99 us", "RSS MiB")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for row in res["sizes"]:
        for mode, m in row["modes"].items():
            d = m["median"]
            print("%-6s %-10s %10.1f %11.2f %9.0f %7s %7s %10.1f %10.1f %9.0f" % (
                "%gG" % (row["mem"] / GiB), mode, d["resume_ms"], d["complete_s"],
                d["data_bps"] / 1e6, "%.2f" % d["x_fio_read"] if "x_fio_read" in d else "-",
                "%.2f" % d["x_limit"] if "x_limit" in d else "-",
                d["touch_p50_us"], d["touch_p99_us"], d["rss_kib"] / 1024))
    for s in res["skipped"]:
        print("%gG skipped: %s" % (s["mem"] / GiB, s["why"]))
    dens = res.get("density")
    if dens:
        print("\ndensity, %d VMs of %g GiB from one file:" % (dens["vms"], dens["mem"] / GiB))
        for mode in ("shared", "copy"):
            d = dens.get(mode, {})
            if "skipped" in d:
                print("  %-6s skipped: %s" % (mode, d["skipped"]))
            else:
                print("  %-6s RSS %7.0f MiB, PSS %7.0f MiB" %
                      (mode, d["rss_kib"] / 1024, d["pss_kib"] / 1024))
    sv = res.get("serve_vs_load", {})
    if "skipped" in sv:
        print("\nQEMU 7.2 serve vs load: skipped: %s" % sv["skipped"])
    else:
        print("\nQEMU 7.2, %s guest, medians of %d: exec:mapram load RESUME %.3f s (completed "
              "%.3f s); mapram serve RESUME %.3f s (completed %.3f s)" %
              (sv["mem"], sv["repeat"], sv["load"]["resume_s"], sv["load"]["complete_s"],
               sv["serve"]["resume_s"], sv["serve"]["complete_s"]))
    print("\nRESUME ms: migrate-incoming to the RESUME event; complete s: to status "
          "completed (every page loaded; shared: mapped); MB/s: non-zero page bytes / "
          "that; xfio: that / fio's read rate; xlimit: the floor (the data read at fio's "
          "rate, or all RAM backed at the backing rate, whichever is slower) / complete s; "
          "touch: the guest's first 1,000 distinct page reads after the resume.")


# --- plots -----------------------------------------------------------------

def gnuplot(script, data, svg):
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found (apt-get install gnuplot-nox): %s not drawn" % svg)
        return False
    base = os.path.splitext(svg)[0]
    with open(base + ".dat", "w") as f:
        f.write(data)
    p = subprocess.run([gp], input=script.replace("@DAT@", base + ".dat")
                       .replace("@SVG@", svg), text=True, capture_output=True)
    os.unlink(base + ".dat")
    if p.returncode != 0:
        raise BenchError("gnuplot failed: %s" % p.stderr.strip()[-500:])
    log("plot: %s" % svg)
    return True


def plot_time_to_running(res, svg):
    lines = ["# GiB copy on-demand shared (ms to RESUME)"]
    for row in res["sizes"]:
        if any(m not in row["modes"] for m in MODES):
            continue
        lines.append("%g %s" % (row["mem"] / GiB, " ".join(
            "%.3f" % row["modes"][m]["median"]["resume_ms"] for m in MODES)))
    if len(lines) == 1:
        return False
    script = """set terminal svg size 640,400 dynamic font "sans,11"
set output "@SVG@"
set title "Time from migrate-incoming to RESUME (median)"
set xlabel "guest RAM (GiB)"
set ylabel "ms (log scale)"
set logscale y
set grid
set key top left
plot "@DAT@" using 1:2 with linespoints title "copy (eager)", \\
     "" using 1:3 with linespoints title "on demand", \\
     "" using 1:4 with linespoints title "shared"
"""
    return gnuplot(script, "\n".join(lines) + "\n", svg)


def plot_throughput(last, svg):
    """GB/s of each case's save and restore (last.json) beside fio's limits."""
    rows = []
    for c in last.get("cases", []):
        name = c["case"]["name"]
        pb = c["save"]["page_bytes"]
        s = c["save"]["time_s"] or c["save"]["wall_s"]
        r = c["restore"]["time_s"] or c["restore"]["wall_s"]
        rows.append('"%s" %.3f %.3f' % (name, pb / s / 1e9, pb / r / 1e9))
    if not rows or not last.get("fio"):
        return False
    w, r = last["fio"]["write_bps"] / 1e9, last["fio"]["read_bps"] / 1e9
    script = """set terminal svg size 900,480 dynamic noenhanced font "sans,10"
set output "@SVG@"
set title "Page data GB/s per case (bench/results/last.json, %s), dashed: fio O_DIRECT limits"
set ylabel "GB/s (1e9 B/s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by 90 right font ",9"
set bmargin 9
set grid ytics
set key top left
set yrange [0:%f]
set arrow from graph 0, first %f to graph 1, first %f nohead lw 2 dt 2 lc rgb "#d62728"
set label "fio write %.2f GB/s" at graph 0.99, first %f right offset 0,0.6 tc rgb "#d62728"
set arrow from graph 0, first %f to graph 1, first %f nohead lw 2 dt 2 lc rgb "#1f77b4"
set label "fio read %.2f GB/s" at graph 0.99, first %f right offset 0,0.6 tc rgb "#1f77b4"
plot "@DAT@" using 2:xtic(1) title "save" lc rgb "#ff9896", "" using 3 title "restore" lc rgb "#aec7e8"
""" % (last.get("date", "?"), max([w, r] + [float(x.split()[1]) for x in rows] +
                                  [float(x.split()[2]) for x in rows]) * 1.15,
       w, w, w, w, r, r, r, r)
    return gnuplot(script, "\n".join(rows) + "\n", svg)


def main():
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vm", required=True, help="mapram-vm binary")
    ap.add_argument("--build", help="build dir, for tools/mapram and the QEMU guest "
                    "(bench/qemu-serve.py); without it that figure is skipped")
    ap.add_argument("--dir", default=env("BENCH_DIR", "/var/tmp/mapram-bench"))
    ap.add_argument("--sizes", default=env("BENCH_RESTORE_SIZES", "1G,4G,16G"))
    ap.add_argument("--modes", default=",".join(MODES),
                    help="restore modes to run (default: %s)" % ",".join(MODES))
    ap.add_argument("--reps", type=int, default=int(env("BENCH_RESTORE_REPS", "3")))
    ap.add_argument("--density-vms", type=int, default=int(env("BENCH_DENSITY_VMS", "8")))
    ap.add_argument("--fio-size", type=mb.parse_size,
                    default=mb.parse_size(env("BENCH_FIO_SIZE", "4G")))
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--last", help="bench/results/last.json, for the GB/s plot")
    ap.add_argument("--svg-dir", help="draw the SVG plots here")
    ap.add_argument("--plot-only", action="store_true",
                    help="draw the plots from --json without running anything")
    args = ap.parse_args()

    if args.plot_only:
        with open(args.json) as f:
            res = json.load(f)
    else:
        bench = Restore(args)
        old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            res = bench.run()
        except BenchError as e:
            log("bench: %s" % e)
            if args.json:
                bench.partial["incomplete"] = str(e)
                with open(args.json, "w") as f:
                    json.dump(bench.partial, f, indent=2)
            return 1
        finally:
            bench.cleanup()
            signal.signal(signal.SIGTERM, old)
        report(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
            print("\nresults: %s" % args.json)
    if args.svg_dir:
        os.makedirs(args.svg_dir, exist_ok=True)
        plot_time_to_running(res, os.path.join(args.svg_dir, "bench-time-to-running.svg"))
        if args.last and os.path.exists(args.last):
            with open(args.last) as f:
                plot_throughput(json.load(f), os.path.join(args.svg_dir,
                                                           "bench-throughput.svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
