#!/usr/bin/env bash
# Firmware for booting through a BIOS: SeaBIOS and its VGA BIOS, from Debian's
# seabios package. (The default boot skips firmware; see loader/.)
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step firmware
work=$HL_CACHE/firmware
rm -rf "$work"; mkdir -p "$work"
hl_extract seabios:all "$work"
cp "$work/usr/share/seabios/bios.bin" "$HL_DIST/bios.bin"
cp "$work/usr/share/seabios/vgabios-stdvga.bin" "$HL_DIST/vgabios-stdvga.bin"
hl_sha bios.bin vgabios-stdvga.bin
