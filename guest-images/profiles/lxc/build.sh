#!/usr/bin/env bash
# The lxc profile's layer: LXC 5.0 (Debian's lxc, liblxc1, liblxc-common) on
# top of the default guest, as ONE initramfs layer appended after the
# default's three:
#   profile-lxc.cpio   an uncompressed newc archive of three files:
#     /etc/inittab                              the default's, plus the profile's boot steps
#     /usr/libexec/hyperlab/profile-init        those steps: unpack the payload, run profile.d/
#     /usr/lib/hyperlab/profile/lxc.cpio.xz     the payload, xz-compressed: the lxc-* tools a
#                          learner needs, the shared libraries they load (found through ELF
#                          NEEDED entries), the busybox template, LXC's config, files/
#                          (default.conf with a veth on lxcbr0, the step that makes lxcbr0).
# Why xz unpacked by the guest's busybox and not a compressed initramfs
# member: the guest kernel's only initramfs decompressor is LZ4
# (CONFIG_RD_LZ4), whose 64 KiB window cannot see that Debian's lxc-* tools
# are eleven near-copies of one 1.2 MB program: LZ4 gives 8.1 MB, xz with an
# 8 MiB dictionary 2.2 MB. The unpacking happens once per boot snapshot.
set -euo pipefail; cd "$(dirname "$0")"
. ../../lib.sh
hl_begin_step profile-lxc
hl_need_tools cpio:cpio readelf:binutils dpkg-deb:dpkg xz:xz-utils
work=$HL_CACHE/profile-lxc
rm -rf "$work"; mkdir -p "$work"
pkgs=$work/pkgs layer=$work/layer
mkdir -p "$pkgs" "$layer"

# gcc-12-base: only for its copyright, which libgcc-s1's doc folder links to.
for p in lxc liblxc1 liblxc-common libapparmor1 libselinux1 libpcre2-8-0 libgcc-s1 gcc-12-base libc6 libcap2 libseccomp2; do
  hl_extract "$p:i386" "$pkgs"
done

# Debian links each lxc-* tool with most of LXC inside it (1.2 MB each), so
# the layer takes only the tools the profile documents, not all 25.
tools=(lxc-create lxc-start lxc-attach lxc-ls lxc-info lxc-stop lxc-destroy lxc-cgroup lxc-execute lxc-wait lxc-config)
mkdir -p "$layer"/{usr/bin,usr/sbin,usr/libexec/lxc,usr/lib/i386-linux-gnu/lxc/rootfs,usr/share/lxc,etc/lxc,var/lib/lxc,var/cache/lxc,lib/i386-linux-gnu}
for t in "${tools[@]}"; do install -m 0755 "$pkgs/usr/bin/$t" "$layer/usr/bin/$t"; done
# init.lxc.static: what lxc-execute runs as the container's PID 1 (static: the container needs no libraries for it)
install -m 0755 "$pkgs/usr/sbin/init.lxc.static" "$layer/usr/sbin/init.lxc.static"
install -m 0755 "$pkgs/usr/libexec/lxc/lxc-monitord" "$layer/usr/libexec/lxc/lxc-monitord"
cp -a "$pkgs/usr/share/lxc/config" "$pkgs/usr/share/lxc/lxc.functions" "$layer/usr/share/lxc/"
mkdir -p "$layer/usr/share/lxc/templates" "$layer/usr/share/lxc/hooks"
# lxc-busybox, not lxc-oci: the busybox template needs only the guest's
# static busybox (it copies it in); lxc-oci needs skopeo, umoci and jq
# (Go programs of tens of MB) to unpack an image. See docs/profiles.md.
install -m 0755 "$pkgs/usr/share/lxc/templates/lxc-busybox" "$layer/usr/share/lxc/templates/lxc-busybox"
# One change to it: it finds busybox with `command -v busybox`, which in the
# guest's shell (busybox ash, where busybox is a built-in) prints "busybox",
# not a path, and the template then fails "Failed to find busybox binary".
grep -q '^BUSYBOX_EXE=$(command -v busybox)$' "$layer/usr/share/lxc/templates/lxc-busybox" \
  || hl_die "lxc-busybox no longer finds busybox as this recipe expects; check its BUSYBOX_EXE line"
sed -i 's|^BUSYBOX_EXE=$(command -v busybox)$|&\n# hyperlab: in busybox ash, command -v prints a built-in busybox by name\ncase "$BUSYBOX_EXE" in /*) ;; *) BUSYBOX_EXE=/bin/busybox ;; esac|' \
  "$layer/usr/share/lxc/templates/lxc-busybox"
install -m 0755 "$pkgs/usr/share/lxc/hooks/clonehostname" "$layer/usr/share/lxc/hooks/clonehostname"
cp "$pkgs/usr/lib/i386-linux-gnu/lxc/rootfs/README" "$layer/usr/lib/i386-linux-gnu/lxc/rootfs/README"

# Shared libraries the tools need beyond what the default guest has
# (runtimes.cpio: libc, libcap, libseccomp, ld-linux), following NEEDED entries.
have=" libc.so.6 libcap.so.2 libseccomp.so.2 ld-linux.so.2 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libyajl.so.2 libsystemd.so.0 "
find_lib() {
  local d
  for d in lib/i386-linux-gnu usr/lib/i386-linux-gnu lib; do
    [ -e "$pkgs/$d/$1" ] && { printf '%s\n' "$pkgs/$d/$1"; return; }
  done
  hl_die "shared library $1 not found in the downloaded packages; add its package to profiles/lxc/build.sh"
}
queue=("$layer"/usr/bin/lxc-* "$layer/usr/libexec/lxc/lxc-monitord")
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -n "${seen[$lib]:-}" ] && continue
    seen[$lib]=1
    case "$have" in *" $lib "*) continue ;; esac
    src=$(find_lib "$lib")
    install -m 0755 "$(readlink -f "$src")" "$layer/lib/i386-linux-gnu/$lib"
    queue+=("$layer/lib/i386-linux-gnu/$lib")
  done
done
hl_log "lxc profile libraries: $(cd "$layer/lib/i386-linux-gnu" && ls | tr '\n' ' ')"

# The payload: the tools, libraries, LXC's config and our files (files/, but
# profile-init, which must exist before anything is unpacked).
cp -a files/. "$layer/"
rm -rf "$layer/usr/libexec/hyperlab"
chmod -R u+rwX,go+rX,go-w "$layer"
hl_cpio "$layer" "$work/lxc.cpio"

# The layer: the payload (xz, CRC32: what busybox's xz decoder checks; no
# BCJ filter: busybox's decoder has none; dictionary 8 MiB: the memory the
# guest lends the decoder at boot), profile-init, and an inittab: the
# default's with the profile's boot steps as its first entry (busybox init
# runs sysinit entries, and waits for them, before anything else), so the
# agent answers only once the profile is unpacked and its bridge is up.
wrap=$work/wrap
mkdir -p "$wrap/etc" "$wrap/usr/lib/hyperlab/profile" "$wrap/usr/libexec/hyperlab"
xz --check=crc32 --lzma2=preset=9e,dict=8MiB -c "$work/lxc.cpio" > "$wrap/usr/lib/hyperlab/profile/lxc.cpio.xz"
install -m 0755 files/usr/libexec/hyperlab/profile-init "$wrap/usr/libexec/hyperlab/profile-init"
{ grep '^#' ../../rootfs/files/etc/inittab
  echo "# The profile's boot steps first: /usr/libexec/hyperlab/profile-init."
  echo "::sysinit:/usr/libexec/hyperlab/profile-init"
  grep -v '^#' ../../rootfs/files/etc/inittab
} > "$wrap/etc/inittab"
chmod 0644 "$wrap/etc/inittab"
hl_cpio "$wrap" "$HL_DIST/profile-lxc.cpio"
# What the manifest records of the payload (manifest.mjs reads it).
printf '{"payload":"/usr/lib/hyperlab/profile/lxc.cpio.xz","unpackedBytes":%s,"compressedBytes":%s}\n' \
  "$(stat -c %s "$work/lxc.cpio")" "$(stat -c %s "$wrap/usr/lib/hyperlab/profile/lxc.cpio.xz")" > "$HL_CACHE/profile-lxc.json"
hl_log "lxc payload: $(stat -c %s "$work/lxc.cpio") bytes unpacked, $(stat -c %s "$wrap/usr/lib/hyperlab/profile/lxc.cpio.xz") as xz"
hl_sha profile-lxc.cpio
