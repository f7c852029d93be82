#!/usr/bin/env bash
# Builds the guest kernel: Linux 6.1 from Debian's linux-source-6.1, ARCH=i386,
# `allnoconfig` plus hyperlab.config, everything built in, no modules.
# The source tree and its objects stay in the cache, so a rebuild after a
# config change is incremental. A first build takes many minutes on 2 cores.
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step kernel
hl_need_tools make:make gcc:gcc flex:flex bison:bison bc:bc objcopy:binutils
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || hl_die "the kernel source is missing; run: apt-get install linux-source-6.1"
dpkg-query -W --showformat='${Package} ${Version} ${Architecture}\n' linux-source-6.1 gcc-12 binutils >> "$HL_CACHE/packages-kernel.txt"

dir=$HL_CACHE/kernel
tree=$dir/linux-source-6.1
stamp=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ ! -f "$tree/Makefile" ] || [ "$(cat "$dir/source.sha256" 2>/dev/null)" != "$stamp" ]; then
  hl_log "unpacking $tarball"
  rm -rf "$tree"; mkdir -p "$dir"
  tar -xf "$tarball" -C "$dir"
  echo "$stamp" > "$dir/source.sha256"
fi

export KBUILD_BUILD_TIMESTAMP="$(date -u -d "@$SOURCE_DATE_EPOCH" '+%a %b %e %H:%M:%S UTC %Y')"
export KBUILD_BUILD_USER=hyperlab KBUILD_BUILD_HOST=hyperlab KBUILD_BUILD_VERSION=1
fragment=$PWD/hyperlab.config
(
  cd "$tree"
  make -s ARCH=i386 allnoconfig
  scripts/kconfig/merge_config.sh -m -O . .config "$fragment" >/dev/null
  make -s ARCH=i386 olddefconfig
  # Every option the fragment sets must have survived dependency resolution.
  bad=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$fragment" | while read -r opt; do
    case "$opt" in
      *=n) if grep -qE "^${opt%=n}=" .config; then echo "$opt"; fi ;;
      *) if ! grep -qxF "$opt" .config; then echo "$opt"; fi ;;
    esac
  done)
  [ -z "$bad" ] || hl_die "kernel options lost to unmet dependencies: $bad"
  hl_log "building bzImage (this takes a while the first time)"
  make -s ARCH=i386 -j"$(nproc)" bzImage
  make -s ARCH=i386 kernelrelease > "$dir/release"
)
cp "$tree/arch/x86/boot/bzImage" "$HL_DIST/bzImage"
# The uncompressed kernel as raw bytes from its load address: hyperlab's loader
# starts it directly, skipping the ~30 M instructions of decompression.
objcopy -O binary -R .comment -R .note -S "$tree/vmlinux" "$HL_DIST/vmlinux.bin"
entry=$(readelf -h "$tree/vmlinux" | sed -n 's/.*Entry point address: *//p')
end_virt=$(sed -n 's/^\([0-9a-f]*\) . _end$/\1/p' "$tree/System.map")
text_virt=$(sed -n 's/^\([0-9a-f]*\) . _text$/\1/p' "$tree/System.map")
cp "$tree/.config" "$HL_DIST/kernel.config"
mkdir -p "$HL_DIST/licenses"
cp "$tree/COPYING" "$HL_DIST/licenses/linux.COPYING"
cp "$tree/LICENSES/preferred/GPL-2.0" "$HL_DIST/licenses/linux.GPL-2.0"
cp "$tree/LICENSES/exceptions/Linux-syscall-note" "$HL_DIST/licenses/linux.Linux-syscall-note"

# The loader's module (vmlinux.bin first) lands at MODULE_BASE, which must be
# the kernel's physical load address.
phys=$(( $(sed -n 's/^CONFIG_PHYSICAL_START=//p' "$tree/.config") ))
module_base=$(( $(sed -n 's/^MODULE_BASE = \(0x[0-9a-fA-F]*\);/\1/p' ../loader/loader.ld) ))
[ "$phys" -eq "$module_base" ] || hl_die "CONFIG_PHYSICAL_START ($phys) differs from MODULE_BASE in loader/loader.ld ($module_base)"
[ $((entry)) -eq "$phys" ] || hl_die "vmlinux entry $entry is not its load address $phys"
# Where the kernel image ends in physical memory (bss and brk included): the initramfs goes after it.
printf '{ "load": %d, "entry": %d, "end": %d }\n' "$phys" $((entry)) $((0x$end_virt - 0x$text_virt + phys)) > "$dir/layout.json"
hl_sha bzImage vmlinux.bin kernel.config
