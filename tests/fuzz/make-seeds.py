#!/usr/bin/env python3
"""Regenerate the seed corpora of tests/fuzz from real files and real traffic.

    tests/fuzz/make-seeds.py [--only HARNESS] BUILD_DIR [CORPUS_DIR]

BUILD_DIR is a normal build (make): its mapram-vm, mapram and qtest
migration-test are used.  CORPUS_DIR defaults to tests/fuzz/corpus.  Seeds
are named seed-*; files named regress-* (the inputs of fixed crashes) are
never touched.  Every seed is kept under 64 KiB.

What is made:
- Save files of `mapram-vm -m 2M` (stream, mapped-ram, mapped-ram with
  multifd), and, when qemu-system-x86_64 is installed, of Debian's QEMU
  (7.2) through `exec:mapram save`.  A mapped-ram file is 19 MiB but
  sparse: its seed is the sparse form of tests/fuzz/fuzz-common.h with
  the page regions cut (the bitmaps, the stream and the device sections
  kept).  A stream file carries its pages inline, so its seed is made by
  `mapram convert` from the mapped-ram file with all but a few bits of
  each bitmap cleared: a complete stream with a handful of pages.  The
  mapped-ram seeds of fuzz-ram-load keep 16 set bits per bitmap (a load
  reads every set page: 2 MiB per input was most of its time).
  -> fuzz-stream, fuzz-ram-load (mapram-vm's files only: the harness's
     VM has mapram-vm's blocks and devices; QEMU's go to fuzz-stream)
- The vmdesc JSON of each file -> fuzz-vmdesc.
- The device sections of each mapram-vm file, as byte 0 the device's
  index in fuzz-vmstate's registry (globalstate, serial, rtc, cpu), byte 1
  the section's version, then the body -> fuzz-vmstate.
- The QMP commands the qtests send (MAPRAM_TEST_QMP_LOG), one seed per VM
  process, byte 0 'r' or 'i' (the VM waits for an incoming migration when
  the traffic has migrate-incoming) -> fuzz-qmp.
- The URIs and options of the tests and docs -> fuzz-args.
- libFuzzer dictionaries: tests/fuzz/fuzz-qmp.dict (every name of the
  qapi/ schema: commands, members, enum values) and fuzz-vmdesc.dict (the
  keys of a vmdesc); run-fuzz.sh passes NAME.dict to harness NAME.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

SPARSE_MAGIC = b"MRSPARS1"
MAX_SEED = 64 * 1024
VMSTATE_DEVICES = ["globalstate", "serial", "rtc", "cpu"]
QTEST_PATHS = [
    "/migration/precopy/file",
    "/migration/precopy/file/offset/fdset",
    "/migration/precopy/file/mapped-ram",
    "/migration/multifd/file/mapped-ram/dio",
    "/migration/precopy/unix",
    "/migration/precopy/exec",
    "/migration/cancel",
    "/migration/bad-uri",
    "/migration/compat/mapped-ram-xbzrle",
    "/migration/compat/params-quirk",
    "/migration/compat/seekable/exec",
    "/migration/compat/no-incoming",
    "/migration/query/figures-move",
]
ARGS_SEEDS = [
    (0, "file:/var/tmp/vm.img"), (0, "file:/var/tmp/vm.img,offset=0x1000"),
    (0, "file:/dev/fdset/1,offset=1M"), (0, "unix:/tmp/mig.sock"), (0, "tcp:127.0.0.1:4444"),
    (0, "tcp:[::1]:0"), (0, "exec:mapram save --channels 4 --direct-io /var/tmp/vm.img"),
    (0, "fd:migfd"), (0, "fd:3"), (0, "rdma:127.0.0.1:4444"), (0, "defer"),
    (1, "memory-backend-ram,id=mem0,size=64M"),
    (1, "memory-backend-memfd,id=m,size=2M,share=on,prealloc=on,prealloc-threads=2"),
    (1, "memory-backend-file,id=f,size=4M,mem-path=/dev/shm/x,share=off"),
    (2, "migration.multifd-channels=4"), (2, "migration.x-io-queue-depth=64"),
    (2, "migration.mapped-ram=on"), (2, "migration.direct-io=true"),
    (3, "-m\0002M\0-smp\0002\0-guest\0fill,zero=50,text=25,random=25,chunk=16,seed=7\0-S"),
    (3, "-machine\0pc,memory-backend=mem0\0-object\0memory-backend-ram,id=mem0,size=2M\0"
        "-m\0002M\0-incoming\0defer\0-global\0migration.multifd-channels=2"),
    (3, "-m\0004G\0-guest\0ab\0-qmp\0unix:/tmp/s.sock,server=on,wait=off\0-serial\0none"
        "\0-mem-prealloc\0-name\0vm1\0-guest\0dirty,rate=1000,seed=3"),
]


def be64(b, o):
    return struct.unpack(">Q", b[o:o + 8])[0]


class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile("rwb")
        self.read()                      # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        while True:
            msg = json.loads(self.f.readline())
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        rsp = self.read()
        if "error" in rsp:
            raise RuntimeError(f"{name}: {rsp['error']['desc']}")
        return rsp["return"]

    def wait_completed(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.cmd("query-migrate").get("status")
            if st == "completed":
                return
            if st in ("failed", "cancelled"):
                raise RuntimeError(f"migration {st}")
            time.sleep(0.05)
        raise RuntimeError("migration did not complete")


def vm_save(build, tmp, name, caps, params):
    sock = os.path.join(tmp, name + ".sock")
    out = os.path.join(tmp, name + ".bin")
    vm = subprocess.Popen([os.path.join(build, "system", "mapram-vm"), "-m", "2M", "-guest", "ab",
                           "-qmp", f"unix:{sock},server=on,wait=off"])
    try:
        q = Qmp(sock)
        time.sleep(0.2)                  # the guest writes its pattern
        if caps:
            q.cmd("migrate-set-capabilities",
                  capabilities=[{"capability": c, "state": True} for c in caps])
        q.cmd("migrate-set-parameters", **params)
        q.cmd("migrate", uri="file:" + out)
        q.wait_completed()
        q.cmd("quit")
    finally:
        try:
            vm.wait(timeout=10)
        except subprocess.TimeoutExpired:
            vm.kill()
    return out


def qemu_save(build, tmp):
    qemu = shutil.which(os.environ.get("MAPRAM_QEMU", "qemu-system-x86_64"))
    if not qemu:
        print("make-seeds: no qemu-system-x86_64: no QEMU seeds", file=sys.stderr)
        return None
    sock = os.path.join(tmp, "qemu.sock")
    out = os.path.join(tmp, "qemu-mapped.bin")
    tool = os.path.join(build, "tools", "mapram")
    vm = subprocess.Popen([qemu, "-machine", "pc", "-accel", "tcg", "-m", "16M", "-display", "none",
                           "-nodefaults", "-qmp", f"unix:{sock},server=on,wait=off"])
    try:
        q = Qmp(sock)
        time.sleep(0.5)
        q.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
        q.cmd("migrate", uri=f"exec:{tool} save {out}")
        q.wait_completed()
        q.cmd("quit")
    finally:
        try:
            vm.wait(timeout=10)
        except subprocess.TimeoutExpired:
            vm.kill()
    return out


def info(build, path):
    rc = subprocess.run([os.path.join(build, "tools", "mapram"), "info", "--json", path],
                        capture_output=True, check=True, text=True)
    return json.loads(rc.stdout)


def sparse_seed(data, cut):
    """The sparse form of data, the byte ranges of cut left out, zero runs dropped."""
    keep = bytearray(data)
    for lo, hi in cut:
        keep[lo:hi] = bytes(hi - lo)
    out = bytearray(SPARSE_MAGIC + struct.pack(">Q", len(data)))
    pos = 0
    n = len(keep)
    while pos < n:
        nz = next((i for i in range(pos, n, 512) if any(keep[i:i + 512])), None)
        if nz is None:
            break
        end = nz
        while end < n and any(keep[end:end + 512]):
            end += 512
        end = min(end, n)
        out += struct.pack(">QI", nz, end - nz) + keep[nz:end]
        pos = end
    return bytes(out)


def page_regions(meta):
    return [(b["pages-offset"], b["pages-offset"] + b["length"])
            for b in meta["blocks"] if "pages-offset" in b]


def thin_bitmaps(data, meta, keep_bits):
    """data with all but the first keep_bits set bits of each block's bitmap cleared."""
    data = bytearray(data)
    for b in meta["blocks"]:
        off, nbytes = b["bitmap-offset"], (b["length"] // 4096 + 63) // 64 * 8
        kept = 0
        for i in range(off, off + nbytes):
            byte = data[i]
            for bit in range(8):
                if byte & (1 << bit):
                    if kept < keep_bits:
                        kept += 1
                    else:
                        byte &= ~(1 << bit)
            data[i] = byte
    return data


def thinned_stream(build, tmp, path, meta, keep_bits=1):
    """A mapped-ram file with all but keep_bits set bits per bitmap cleared, converted to a stream."""
    data = thin_bitmaps(open(path, "rb").read(), meta, keep_bits)
    thin = path + ".thin"
    with open(thin, "wb") as f:
        f.write(data)
    out = path + ".stream"
    subprocess.run([os.path.join(build, "tools", "mapram"), "convert", thin, out], check=True,
                   capture_output=True)
    return open(out, "rb").read()


def vmdesc_of(data):
    """The vmdesc JSON at the end of a stream: 0x06, be32 length, the text."""
    for pos in range(len(data) - 5, -1, -1):
        if data[pos] == 6 and pos + 5 + struct.unpack(">I", data[pos + 1:pos + 5])[0] == len(data):
            return data[pos + 5:]
    return None


def small_vmdesc(text):
    """The vmdesc, devices dropped from the end of its list until it is under 64 KiB."""
    if len(text) < MAX_SEED:
        return text
    desc = json.loads(text)
    while len(text) >= MAX_SEED and desc.get("devices"):
        desc["devices"].pop()
        text = json.dumps(desc, separators=(",", ":")).encode()
    return text


def device_sections(data, meta):
    for s in meta["sections"]:
        if s["type"] != "FULL" or s["name"] not in VMSTATE_DEVICES:
            continue
        hdr = 1 + 4 + 1 + len(s["name"]) + 4 + 4
        body = data[s["offset"] + hdr:s["offset"] + s["size"] - 5]
        yield s["name"], bytes([VMSTATE_DEVICES.index(s["name"]), s["version"]]) + body


def qtest_traffic(build, tmp):
    exe = os.path.join(build, "tests", "qtest", "migration-test")
    seeds = []
    for path in QTEST_PATHS:
        env = dict(os.environ, MAPRAM_QTEST_ONLY=path, MAPRAM_TEST_QMP_LOG="1",
                   MAPRAM_VM=os.path.join(build, "system", "mapram-vm"), MAPRAM_TEST_TMPDIR=tmp)
        rc = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=300)
        if rc.returncode != 0:
            print(f"make-seeds: qtest {path} failed; its traffic is still used", file=sys.stderr)
        per_pid = {}
        for line in rc.stderr.splitlines():
            m = re.match(r"\[qmp (\d+)\] >>> (.*)$", line)
            if m:
                per_pid.setdefault(m.group(1), []).append(m.group(2))
        for cmds in per_pid.values():
            # a poll loop (query-migrate until done) is one command many times: keep two
            cmds = [c for i, c in enumerate(cmds) if i < 2 or not cmds[i - 2] == cmds[i - 1] == c]
            text = "\n".join(cmds) + "\n"
            mode = b"i" if "migrate-incoming" in text else b"r"
            seeds.append((path, mode + text.encode()))
    return seeds


VMDESC_KEYS = ["devices", "name", "instance_id", "vmsd_name", "version", "fields", "size",
               "type", "subsections", "page_size", "configuration", "uint32", "buffer",
               "struct", "ram", "globalstate", "serial", "rtc", "cpu"]
JSON_TOKENS = ["{", "}", "[", "]", ":", ",", "null", "true", "false", "-1", "1e400", '""',
               "\\u0000", "\\ud800"]


def write_dict(path, words):
    with open(path, "w") as f:
        f.write("# libFuzzer dictionary, written by tests/fuzz/make-seeds.py\n")
        for w in sorted(set(words)):
            f.write('"%s"\n' % w.replace("\\", "\\\\").replace('"', '\\"'))


def schema_names(src):
    names = []
    for path in sorted(glob.glob(os.path.join(src, "qapi", "*.json"))):
        for d in json.load(open(path)):
            for kind in ("command", "struct", "enum", "union", "alternate", "event"):
                if kind in d:
                    names.append(d[kind])
            for key in ("data", "base"):
                v = d.get(key)
                if isinstance(v, dict):
                    names += [k.lstrip("*") for k in v]
                elif isinstance(v, list):
                    names += [e if isinstance(e, str) else e.get("name", "") for e in v]
    return [n for n in names if n]


def put(corpus, harness, name, data):
    if len(data) >= MAX_SEED:
        print(f"make-seeds: {harness}/{name}: {len(data)} bytes, left out", file=sys.stderr)
        return
    d = os.path.join(corpus, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    global put
    args = sys.argv[1:]
    only = None
    if args[:1] == ["--only"] and len(args) > 1:
        only, args = args[1], args[2:]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    build = os.path.abspath(args[0])
    corpus = args[1] if len(args) == 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    for old in glob.glob(os.path.join(corpus, only or "*", "seed-*")):
        os.unlink(old)
    if only:
        put_all = put
        put = lambda c, harness, name, data: harness == only and put_all(c, harness, name, data)
    tmp = tempfile.mkdtemp(prefix="mapram-seeds-", dir="/var/tmp")
    try:
        files = {
            "vm-stream": vm_save(build, tmp, "stream", [], {"max-bandwidth": 1 << 40}),
            "vm-mapped": vm_save(build, tmp, "mapped", ["mapped-ram"], {"max-bandwidth": 1 << 40}),
            "vm-multifd": vm_save(build, tmp, "multifd", ["mapped-ram", "multifd"],
                                  {"max-bandwidth": 1 << 40, "multifd-channels": 2}),
        }
        q = qemu_save(build, tmp)
        if q:
            files["qemu72-mapped"] = q
        for name, path in files.items():
            data = open(path, "rb").read()
            meta = info(build, path)
            from_vm = name.startswith("vm-")
            vmdesc = vmdesc_of(data)
            if meta["format"] == "mapped-ram":
                seed = sparse_seed(data, page_regions(meta))
                if len(seed) >= MAX_SEED and vmdesc:
                    # QEMU's vmdesc alone is ~100 KiB: the file ends at its EOF
                    seed = sparse_seed(data[:len(data) - len(vmdesc) - 5], page_regions(meta))
                put(corpus, "fuzz-stream", name, seed)
                if from_vm:
                    # a load reads every set page: 16 per block keep the runs, not the cost
                    put(corpus, "fuzz-ram-load", name,
                        sparse_seed(thin_bitmaps(data, meta, 16), page_regions(meta)))
                    # QEMU's blocks take more than 64 KiB of ZERO records as a stream
                    stream = thinned_stream(build, tmp, path, meta)
                    put(corpus, "fuzz-stream", name + "-to-stream", stream)
                    put(corpus, "fuzz-ram-load", name + "-to-stream", stream)
            else:
                # a stream file: cut where the page records would pass 64 KiB
                put(corpus, "fuzz-stream", name + "-cut", data[:MAX_SEED - 1])
            if vmdesc is not None:
                put(corpus, "fuzz-vmdesc", name, small_vmdesc(vmdesc))
            if from_vm:
                for dev, seed in device_sections(data, meta):
                    put(corpus, "fuzz-vmstate", f"{name}-{dev}", seed)
        for path, seed in qtest_traffic(build, tmp):
            h = hashlib.sha1(seed).hexdigest()[:8]
            put(corpus, "fuzz-qmp", path.strip("/").replace("/", "-") + "-" + h, seed)
        for i, (parser, text) in enumerate(ARGS_SEEDS):
            put(corpus, "fuzz-args", f"{i:02d}", bytes([parser]) + text.encode())
        here = os.path.dirname(os.path.abspath(__file__))
        src = os.path.dirname(os.path.dirname(here))
        write_dict(os.path.join(here, "fuzz-qmp.dict"),
                   schema_names(src) + ["execute", "arguments", "id", "exec-oob"] + JSON_TOKENS)
        write_dict(os.path.join(here, "fuzz-vmdesc.dict"), VMDESC_KEYS + JSON_TOKENS)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for d in sorted(glob.glob(os.path.join(corpus, "*"))):
        print(f"{os.path.basename(d)}: {len(os.listdir(d))} files")


if __name__ == "__main__":
    main()
