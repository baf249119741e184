#!/usr/bin/env python3
"""Keep the code quoted in a document identical to the files it quotes.

A line "<!-- file: PATH -->" in the document must be followed by a fenced
code block whose text is exactly the file PATH (relative to the source
root).  docs/embedding.md quotes examples/minimal-host.c this way, and the
program that tests build and run is that file, so the page cannot drift.

    check-doc-example.py SOURCE_ROOT DOC [PATH...]

Each PATH given must be quoted at least once.  Exit 0 when every quote
matches, 1 with a unified diff otherwise.
"""
import difflib
import os
import re
import sys

MARKER = re.compile(r'^<!-- file: (\S+) -->$')


def quotes(doc_lines):
    """Yield (path, line number of the marker, quoted text)."""
    i = 0
    while i < len(doc_lines):
        m = MARKER.match(doc_lines[i].rstrip('\n'))
        i += 1
        if not m:
            continue
        if i >= len(doc_lines) or not doc_lines[i].startswith('```'):
            yield m.group(1), i, None
            continue
        start = i + 1
        end = start
        while end < len(doc_lines) and doc_lines[end].rstrip('\n') != '```':
            end += 1
        yield m.group(1), i, ''.join(doc_lines[start:end])
        i = end + 1


def main():
    root, doc = sys.argv[1], sys.argv[2]
    required = set(sys.argv[3:])
    with open(os.path.join(root, doc), encoding='utf-8') as f:
        lines = f.readlines()
    ok = True
    seen = set()
    for path, lineno, text in quotes(lines):
        seen.add(path)
        if text is None:
            print(f'{doc}:{lineno}: marker for {path} is not followed by a code block')
            ok = False
            continue
        with open(os.path.join(root, path), encoding='utf-8') as f:
            want = f.read()
        if text != want:
            ok = False
            print(f'{doc}:{lineno}: the code block differs from {path}:')
            sys.stdout.writelines(difflib.unified_diff(
                want.splitlines(True), text.splitlines(True), path, doc))
    for path in sorted(required - seen):
        print(f'{doc}: does not quote {path}')
        ok = False
    if ok:
        print(f'{doc}: quotes {", ".join(sorted(seen))} verbatim')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
