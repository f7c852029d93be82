#!/usr/bin/env bash
# Builds the guest root filesystem as three initramfs layers (newc cpio archives)
# that the host concatenates at boot; the kernel unpacks them in order:
#   base.cpio      busybox (static) and the directory skeleton
#   runtimes.cpio  the OCI runtimes crun and runc with the shared libraries they load
#   hyperlab.cpio  our own files: /init (init.c), /sbin/hyperlab-agent (../agent/) and
#                  files/ (inittab, profile, /usr/bin/docker: a link to the agent that
#                  fetches the docker client from the host on first use, ../tools/)
# Changing our files rebuilds only hyperlab.cpio's contents.
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step rootfs
hl_need_tools cpio:cpio readelf:binutils dpkg-deb:dpkg gcc:gcc-multilib
dpkg-query -W --showformat='${Package} ${Version} ${Architecture}\n' gcc-12 libc6-dev-i386 >> "$HL_CACHE/packages-rootfs.txt"
work=$HL_CACHE/rootfs
rm -rf "$work"; mkdir -p "$work"

# --- base: busybox and the skeleton
base=$work/base; pkgs=$work/pkgs
mkdir -p "$base" "$pkgs"
hl_extract busybox-static:i386 "$pkgs"
mkdir -p "$base"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,mnt,var/log,home,lib}
chmod 1777 "$base/tmp"
# The kernel opens /dev/console for /init before anything is mounted.
mknod -m 600 "$base/dev/console" c 5 1
mknod -m 666 "$base/dev/null" c 1 3
install -m 0755 "$pkgs/bin/busybox" "$base/bin/busybox"
# Applet links, from the applet list busybox itself reports (it is static i386; the host runs it).
hl_i386 "$base/bin/busybox" --list-full | sort | while read -r path; do
  case "$path" in bin/busybox|linuxrc) continue ;; esac
  # -s: paths in the guest, not the build host's (where /bin may be a link to usr/bin)
  rel=$(realpath -m -s --relative-to="$(dirname "/$path")" /bin/busybox)
  ln -sf "$rel" "$base/$path"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$base/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$base/etc/group"
hl_cpio "$base" "$HL_DIST/base.cpio"

# --- runtimes: crun and runc plus every shared library they need, found through ELF NEEDED entries
rt=$work/runtimes
mkdir -p "$rt"/{usr/bin,usr/sbin,lib/i386-linux-gnu}
for p in crun runc libc6 libcap2 libseccomp2 libyajl2; do
  hl_extract "$p:i386" "$pkgs"
done
# crun links libsystemd only for the systemd cgroup driver and journald, which
# the guest has no systemd for; our stand-in (libsystemd/) replaces it and the
# five libraries behind it. See libsystemd/libsystemd.c.
stub=$work/libsystemd.so.0
gcc -m32 -march=i686 -shared -fPIC -Os -s -nostdlib -Wall -Wextra -Werror -Wl,-soname,libsystemd.so.0 \
  -Wl,--version-script,libsystemd/libsystemd.map -Wl,--build-id=none -o "$stub" libsystemd/libsystemd.c
install -m 0755 "$pkgs/usr/bin/crun" "$rt/usr/bin/crun"
install -m 0755 "$pkgs/usr/sbin/runc" "$rt/usr/sbin/runc"
ln -s ../sbin/runc "$rt/usr/bin/runc"
find_lib() {
  local d
  [ "$1" = libsystemd.so.0 ] && { printf '%s\n' "$stub"; return; }
  for d in lib/i386-linux-gnu usr/lib/i386-linux-gnu lib; do
    [ -e "$pkgs/$d/$1" ] && { printf '%s\n' "$pkgs/$d/$1"; return; }
  done
  hl_die "shared library $1 not found in the downloaded packages; add its package to rootfs/build.sh"
}
queue=("$rt/usr/bin/crun" "$rt/usr/sbin/runc")
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -n "${seen[$lib]:-}" ] && continue
    seen[$lib]=1
    src=$(find_lib "$lib")
    install -m 0755 "$(readlink -f "$src")" "$rt/lib/i386-linux-gnu/$lib"
    queue+=("$rt/lib/i386-linux-gnu/$lib")
  done
done
install -m 0755 "$(readlink -f "$pkgs/lib/i386-linux-gnu/ld-linux.so.2")" "$rt/lib/ld-linux.so.2"
hl_cpio "$rt" "$HL_DIST/runtimes.cpio"

# --- hyperlab: our own files: /init, built from init.c (static, i386), the agent, and files/ as they are
own=$work/hyperlab
cp -a files "$own"
# Modes as committed, whatever the checkout's umask made of them.
chmod -R u+rwX,go+rX,go-w "$own"
gcc -m32 -march=i686 -static -Os -s -Wall -Wextra -Werror -o "$own/init" init.c
# The host's agent in the guest (docs/agent-protocol.md); inittab starts it.
../agent/build.sh "$own/sbin/hyperlab-agent" >&2
hl_cpio "$own" "$HL_DIST/hyperlab.cpio"

hl_sha base.cpio runtimes.cpio hyperlab.cpio
