#!/usr/bin/env python3
"""mapram info / verify / convert / load on libvirt save images.

The images are built here in libvirt's layout from the facts in
docs/file-format.md ("libvirt save images"), around a QEMU stream that
mapram-vm wrote (tests/fuzz/corpus/fuzz-stream/seed-vm-mapped-to-stream):
a 92-byte header, the domain XML and cookie with their NULs, zero padding
to data_len (XML + cookie + 64 KiB), then QEMU's data at 92 + data_len.
No libvirt is needed.

  test-libvirt-tool.py MAPRAM STREAM          TAP on stdout, exit 0 / 1
"""
import bz2
import gzip
import json
import lzma
import os
import struct
import subprocess
import sys
import tempfile

MAPRAM, STREAM_PATH = sys.argv[1], sys.argv[2]
STREAM = open(STREAM_PATH, 'rb').read()
XML = (b"<domain type='kvm'>\n  <name>web1</name>\n"
       b"  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\n"
       b"  <memory unit='KiB'>262144</memory>\n"
       b"  <os>\n    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n  </os>\n"
       b"</domain>\n")
COOKIE = b"<qemuDomainSaveCookie>\n  <cpu mode='custom' match='exact'/>\n</qemuDomainSaveCookie>\n"
FORMATS = {'raw': 0, 'gzip': 1, 'bzip2': 2, 'xz': 3, 'lzop': 4, 'zstd': 5, 'sparse': 6}
COMPRESS = {'raw': lambda b: b, 'gzip': gzip.compress, 'bzip2': bz2.compress,
            'xz': lambda b: lzma.compress(b, preset=3)}


def image(data, fmt='raw', magic=b'LibvirtQemudSave', version=2, running=1, cookie=COOKIE):
    x = XML + b'\0'
    c = cookie + b'\0' if cookie else b''
    data_len = len(x) + len(c) + 64 * 1024
    hdr = magic + struct.pack('<5I', version, data_len, running, FORMATS[fmt],
                              len(x) if cookie else 0) + b'\0' * 56
    return hdr + x + c + b'\0' * (data_len - len(x) - len(c)) + data


DATA_OFFSET = len(image(b''))
tmp = tempfile.mkdtemp(prefix='test-libvirt-tool-')
failures = []
count = 0


def path(name):
    return os.path.join(tmp, name)


def write(name, data):
    open(path(name), 'wb').write(data)
    return path(name)


def mapram(*args):
    p = subprocess.run([MAPRAM] + list(args), capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def test(fn):
    global count
    count += 1
    try:
        fn()
        print('ok %d %s' % (count, fn.__name__))
    except AssertionError as e:
        failures.append(fn.__name__)
        print('not ok %d %s: %s' % (count, fn.__name__, e))
    return fn


def image_of(fmt):
    """An image of each format: zstd through the tool (no zstd in Python's library)."""
    if fmt in COMPRESS:
        return write(fmt + '.save', image(COMPRESS[fmt](STREAM), fmt))
    sparse = image_of_sparse()
    rc, _, err = mapram('convert', '--quiet', '--format', fmt, sparse, path(fmt + '.save'))
    check(rc == 0, err)
    return path(fmt + '.save')


def image_of_sparse():
    if not os.path.exists(path('sparse.save')):
        rc, _, err = mapram('convert', '--quiet', image_of('raw'), path('sparse.save'))
        check(rc == 0, err)
    return path('sparse.save')


@test
def info_json_carries_the_header_and_xml():
    rc, out, err = mapram('info', '--json', image_of('gzip'))
    check(rc == 0, err)
    lv = json.loads(out)['libvirt']
    want = {'complete': True, 'version': 2, 'format': 'gzip', 'was-running': True,
            'data-len': DATA_OFFSET - 92, 'data-offset': DATA_OFFSET,
            'cookie-offset': len(XML) + 1, 'cookie': COOKIE.decode(), 'name': 'web1',
            'uuid': '4dea22b3-1d52-d8f3-2516-782e98ab3fa0', 'memory': 256 << 20,
            'machine': 'pc-i440fx-7.2', 'xml': XML.decode()}
    check(lv == want, 'libvirt member %r' % lv)
    check(json.loads(out)['format'] == 'stream', 'QEMU data format')


@test
def info_text_names_the_domain():
    rc, out, err = mapram('info', image_of('raw'))
    check(rc == 0, err)
    lines = out.decode().splitlines()
    check(lines[1:5] == [
        'libvirt save image: version 2, format raw, complete, data at offset %d' % DATA_OFFSET,
        'libvirt was running: yes',
        'libvirt domain: web1, uuid 4dea22b3-1d52-d8f3-2516-782e98ab3fa0, '
        'memory 268435456 bytes, machine pc-i440fx-7.2',
        'libvirt xml: %d bytes, cookie: %d bytes at %d' % (len(XML), len(COOKIE), len(XML) + 1)],
        'text %r' % lines[:5])


@test
def verify_every_format():
    for fmt in ('raw', 'gzip', 'bzip2', 'xz', 'zstd'):
        p = image_of(fmt)
        rc, out, err = mapram('verify', p)
        check(rc == 0, err)
        check(out.decode() == '%s: OK (libvirt %s image of stream, 3 RAM blocks, 7 sections, '
              'no checksum table)\n' % (p, fmt), out)
    p = image_of_sparse()
    rc, out, err = mapram('verify', '--data', p)
    check(rc == 0, err)
    check(out.decode() == '%s: OK (libvirt sparse image of mapped-ram, 3 RAM blocks, '
          '7 sections, every page matches the checksum table)\n' % p, out)


@test
def load_gives_qemu_the_stream():
    for fmt in ('raw', 'gzip', 'bzip2', 'xz', 'zstd'):
        rc, out, err = mapram('load', '--quiet', image_of(fmt))
        check(rc == 0, err)
        check(out == STREAM, '%s: load output differs from the saved stream' % fmt)
    rc, out, err = mapram('load', '--quiet', image_of_sparse())
    check(rc == 0, err)
    check(out == STREAM, 'sparse: load output differs from the stream it was made of')


@test
def load_reads_every_member():
    """gzip and bzip2 data of several members (pigz, pbzip2, or cat of two
    files), then zero padding: every member is read, as gzip -dc does."""
    cut = len(STREAM) // 3
    for fmt in ('gzip', 'bzip2'):
        c = COMPRESS[fmt]
        p = write('members-%s.save' % fmt,
                  image(c(STREAM[:cut]) + c(STREAM[cut:2 * cut]) + c(STREAM[2 * cut:]) +
                        b'\0' * 512, fmt))
        rc, out, err = mapram('load', '--quiet', p)
        check(rc == 0, fmt + ': ' + err)
        check(out == STREAM, '%s: load output differs from the saved stream' % fmt)
        rc, out, err = mapram('verify', p)
        check(rc == 0, fmt + ': ' + err)
    # bytes after the last member that start like one, but are none, are
    # ignored as gzip -dc and bzip2 -dc ignore them
    for fmt, tail in (('gzip', b'\x1f\x00junk'), ('gzip', b'\x1f'), ('bzip2', b'BZx'),
                      ('bzip2', b'BZh0 junk'), ('bzip2', b'B')):
        p = write('tail-%s.save' % fmt, image(COMPRESS[fmt](STREAM) + tail, fmt))
        rc, out, err = mapram('load', '--quiet', p)
        check(rc == 0 and out == STREAM, '%s + %r: %s' % (fmt, tail, err))


@test
def convert_to_sparse_keeps_xml_cookie_padding():
    raw = open(image_of('raw'), 'rb').read()
    for fmt in ('raw', 'gzip', 'xz'):
        out = path('to-sparse-%s.save' % fmt)
        rc, _, err = mapram('convert', '--quiet', image_of(fmt), out)
        check(rc == 0, err)
        s = open(out, 'rb').read()
        # only the format field (byte 28) differs up to the data offset
        check(s[:28] == raw[:28] and s[28] == 6 and s[29:DATA_OFFSET] == raw[29:DATA_OFFSET],
              '%s: header or XML region changed' % fmt)
        check(s[DATA_OFFSET:DATA_OFFSET + 4] == b'QEVM', 'no QEVM at the data offset')


@test
def convert_back_is_byte_for_byte():
    sparse = image_of_sparse()
    rc, _, err = mapram('convert', '--quiet', sparse, path('back.save'))
    check(rc == 0, err)
    check(open(path('back.save'), 'rb').read() == open(image_of('raw'), 'rb').read(),
          'raw -> sparse -> raw is not the same file')
    for fmt in ('gzip', 'bzip2', 'xz', 'zstd'):
        out = path('back-%s.save' % fmt)
        rc, _, err = mapram('convert', '--quiet', '--format', fmt, sparse, out)
        check(rc == 0, err)
        b = open(out, 'rb').read()
        check(b[28] == FORMATS[fmt] and b[29:DATA_OFFSET] == open(sparse, 'rb').read()[29:DATA_OFFSET],
              fmt + ': header region')
        rc, data, err = mapram('load', out)
        check(rc == 0 and data == STREAM, fmt + ': data ' + err)


@test
def interrupted_save():
    p = write('part.save', image(STREAM, magic=b'LibvirtQemudPart'))
    msg = 'libvirt save image is incomplete (magic LibvirtQemudPart: the save was interrupted)'
    rc, out, err = mapram('verify', p)
    check(rc == 1 and err == 'mapram verify: %s: %s\n' % (p, msg), err)
    rc, out, err = mapram('info', p)
    check(rc == 0 and 'format raw, incomplete (magic LibvirtQemudPart: an interrupted save)'
          in out.decode(), out)
    rc, out, err = mapram('load', p)
    check(rc == 1 and err == 'mapram load: %s: %s\n' % (p, msg), err)
    rc, out, err = mapram('convert', p, path('x.save'))
    check(rc == 1 and err == 'mapram convert: %s\n' % msg, err)


@test
def lzop_refused_by_name():
    p = write('lzop.save', image(b'\x89LZO\0\r\n\x1a\n', 'lzop'))
    rc, out, err = mapram('verify', p)
    check(rc == 1 and err == "mapram verify: %s: libvirt save image format lzop is not "
          "supported: no lzop library is packaged for Debian (decompress with 'lzop -dc' and "
          "convert the raw stream)\n" % p, err)


@test
def version1_is_raw():
    p = write('v1.save', image(STREAM, 'xz', version=1))
    rc, out, err = mapram('load', p)
    check(rc == 0 and out == STREAM, err)


@test
def bad_headers_named():
    whole = image(STREAM)
    cases = [
        ('trunc.save', whole[:60], 'libvirt save image: header truncated: 60 of 92 bytes'),
        ('xmlcut.save', whole[:5000], 'libvirt save image: data_len %d (XML, cookie and '
         'padding) runs past the end of the file (5000 bytes)' % (DATA_OFFSET - 92)),
        ('ver.save', whole[:16] + struct.pack('<I', 9) + whole[20:],
         'libvirt save image: unknown version 9 (known: 1, 2)'),
        ('fmt.save', whole[:28] + struct.pack('<I', 42) + whole[32:],
         'libvirt save image: unknown format 42 (known: 0 raw, 1 gzip, 2 bzip2, 3 xz, '
         '4 lzop, 5 zstd, 6 sparse)'),
    ]
    for name, data, msg in cases:
        p = write(name, data)
        for cmd in ('info', 'verify'):
            rc, out, err = mapram(cmd, p)
            check(rc == 1 and err == 'mapram %s: %s: %s\n' % (cmd, p, msg), err)


@test
def damaged_compressed_data_named():
    b = open(image_of('xz'), 'rb').read()
    p = write('xzcut.save', b[:DATA_OFFSET + 200])
    rc, out, err = mapram('verify', p)
    check(rc == 1 and err == 'mapram verify: %s: xz data ends before its compressed stream '
          'does\n' % p, err)


@test
def format_option_rules():
    rc, out, err = mapram('convert', '--format', 'gzip', image_of('gzip'), path('x.save'))
    check(rc == 1 and err == 'mapram convert: --format applies to a sparse image: this one is '
          'gzip and becomes sparse\n', err)
    rc, out, err = mapram('convert', '--format', 'gzip', STREAM_PATH, path('x.save'))
    check(rc == 2 and err == 'mapram convert: --format applies to libvirt save images only\n',
          err)
    rc, out, err = mapram('convert', '--format', 'sparse', image_of_sparse(), path('x.save'))
    check(rc == 1 and err == "mapram convert: --format 'sparse' is not one of raw, gzip, "
          "bzip2, xz, lzop, zstd\n", err)


print('1..%d' % count)
if not failures:
    subprocess.run(['rm', '-rf', tmp])
sys.exit(1 if failures else 0)
