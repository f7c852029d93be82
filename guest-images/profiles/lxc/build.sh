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
. ../profile.sh
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
hl_needed_libs "$pkgs" "$layer/lib/i386-linux-gnu" "$HL_DEFAULT_LIBS" "$layer"/usr/bin/lxc-* "$layer/usr/libexec/lxc/lxc-monitord"
hl_log "lxc profile libraries: $(cd "$layer/lib/i386-linux-gnu" && ls | tr '\n' ' ')"

# The payload: the tools, libraries, LXC's config and our files/.
cp -a files/. "$layer/"
hl_profile_layer lxc "$layer" "$work"
hl_sha profile-lxc.cpio
