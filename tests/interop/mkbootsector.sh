#!/bin/sh
# Assemble and link one x86 boot sector flat at 0x7c00, then check that it
# is exactly one 512-byte sector ending in the 0x55 0xaa signature (the
# BIOS refuses anything else, and a silent overflow past 510 bytes would
# otherwise only show up as a guest that never prints 'A').
#
# usage: mkbootsector.sh AS LD SOURCE.S OUTPUT.bin [AS-OPTION...]
set -eu
as_prog=$1
ld_prog=$2
src=$3
out=$4
shift 4
obj="$out.o"

"$as_prog" --32 "$@" -o "$obj" "$src"
"$ld_prog" -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$out" "$obj"
rm -f "$obj"

size=$(wc -c < "$out")
if [ "$size" -ne 512 ]; then
    echo "mkbootsector: '$out' is $size bytes, a boot sector must be 512" >&2
    rm -f "$out"
    exit 1
fi
sig=$(od -An -tx1 -j510 -N2 "$out" | tr -d ' \n')
if [ "$sig" != "55aa" ]; then
    echo "mkbootsector: '$out' lacks the 0x55 0xaa signature (got '$sig')" >&2
    rm -f "$out"
    exit 1
fi
