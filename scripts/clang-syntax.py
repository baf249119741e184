#!/usr/bin/env python3
"""Every C file of a clang build dir, compiled with -fsyntax-only.

usage: clang-syntax.py BUILD_DIR

The CI's clang build (build-fuzz) compiles only what the libFuzzer
harnesses link, so a warning clang raises where gcc does not (unused
cleanup variables, printf formats passed on in a va_list) would reach
the tree unseen in tests/ and the programs' mains.  This runs the
build's own command for every file of compile_commands.json, without
code generation, in parallel; any diagnostic fails it (-Werror is in
the commands).  Needs the build's generated headers: run it after the
build (meson test does).
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys


def syntax_command(entry):
    args = shlex.split(entry["command"])
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MQ", "-MF"):
            skip = True
            continue
        if a in ("-c", "-MD"):
            continue
        out.append(a)
    return out[:1] + ["-fsyntax-only"] + out[1:] + ["-fno-color-diagnostics"]


def check(entry):
    p = subprocess.run(syntax_command(entry), cwd=entry["directory"],
                       capture_output=True, text=True)
    return entry["file"], p.returncode, p.stderr


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    with open(os.path.join(sys.argv[1], "compile_commands.json")) as f:
        entries = json.load(f)
    # one command per file: a file built into several targets has the same flags
    seen, todo = set(), []
    for e in entries:
        if e["file"].endswith(".c") and e["file"] not in seen:
            seen.add(e["file"])
            todo.append(e)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        for name, rc, err in ex.map(check, todo):
            if rc != 0 or err.strip():
                failed += 1
                sys.stderr.write("%s:\n%s\n" % (name, err))
    print("clang -fsyntax-only: %d files, %d with diagnostics" % (len(todo), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
