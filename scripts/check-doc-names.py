#!/usr/bin/env python3
"""Doc comments must name functions that exist.

Every `name()` written in a comment of our C sources (a function the
comment points the reader to) must be a function, a function-pointer op
or a macro defined or declared in this tree, one a system header
declares (libc, GLib, json-glib, liburing, ...), or be named as QEMU's
("QEMU's inet_parse()").  A comment that still names a function after
it was renamed or removed misleads the next reader; this fails the test
suite naming the file, the line and the stale name.

usage: check-doc-names.py SOURCE_ROOT
"""
import os
import re
import sys

SOURCE_DIRS = ["include", "util", "io", "qapi", "monitor", "migration",
               "system", "tools", "tests", "examples"]
SYSTEM_INCLUDE = "/usr/include"

COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\(\)")
# a definition or declaration: "name(" after a type; an op of a table of
# function pointers: "(*name)("
DEFINED = re.compile(r"(?:^|[\s*])([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.M)
OP = re.compile(r"\(\s*\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*\(")
# a function of QEMU's, named as such ("QEMU's inet_parse()")
QEMUS = re.compile(r"QEMU's\s+$")
MACRO = re.compile(r"^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)
TOKEN = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


def sources(root):
    for d in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.join(dirpath, f)


def strip_comments_keep_lines(text):
    return COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def tree_names(files):
    names = set()
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            code = strip_comments_keep_lines(f.read())
        names.update(DEFINED.findall(code))
        names.update(OP.findall(code))
        names.update(MACRO.findall(code))
    return names


def system_names():
    names = set()
    for dirpath, _, files in os.walk(SYSTEM_INCLUDE):
        for f in files:
            if f.endswith(".h"):
                try:
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        names.update(t.decode() for t in TOKEN.findall(fh.read()))
                except OSError:
                    pass
    return names


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    files = sorted(sources(root))
    known = tree_names(files)
    system = None
    stale = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in COMMENT.finditer(text):
            line0 = text.count("\n", 0, m.start()) + 1
            for c in CALL.finditer(m.group(0)):
                name = c.group(1)
                if name in known or QEMUS.search(m.group(0)[:c.start()]):
                    continue
                if system is None:
                    system = system_names()
                if name in system:
                    continue
                line = line0 + m.group(0).count("\n", 0, c.start())
                stale.append(f"{os.path.relpath(path, root)}:{line}: "
                             f"comment names {name}(), which nothing defines")
    for s in stale:
        print(s)
    print(f"check-doc-names: {len(files)} files, {len(stale)} stale name(s)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
