#!/usr/bin/env bash
# Builds loader.elf: a multiboot image that starts Linux with no firmware at all.
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step loader
hl_need_tools gcc:gcc ld:binutils
dpkg-query -W --showformat='${Package} ${Version} ${Architecture}\n' gcc-12 binutils >> "$HL_CACHE/packages-loader.txt"
work=$HL_CACHE/loader
mkdir -p "$work"
CFLAGS="-m32 -march=i686 -Os -ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables -nostdlib -Wall -Wextra -Werror"
gcc $CFLAGS -c entry.S -o "$work/entry.o"
gcc $CFLAGS -c loader.c -o "$work/loader.o"
ld -m elf_i386 -no-pie --build-id=none --no-warn-rwx-segments -T loader.ld "$work/entry.o" "$work/loader.o" -o "$HL_DIST/loader.elf"
hl_sha loader.elf
