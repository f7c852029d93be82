#!/usr/bin/env bash
# Builds the tools a guest loads on first use, not at boot: each is one
# program from a Debian package, gzip-compressed, in dist/tools/. The guest's
# image has a link by the tool's name to hyperlab-agent, which asks the host
# for the program the first time it runs (docs/agent-protocol.md, "Tools
# loaded on first use"); none of this is in the initramfs layers.
#   tools/docker.gz       /usr/bin/docker of docker.io: the docker CLI alone (Go, dynamically
#                         linked to glibc, which runtimes.cpio has), no daemon
#   tools/docker-init.gz  /usr/bin/tini-static of tini, what Docker ships as docker-init: the
#                         --init process of a container (static: it runs inside any image)
# manifest.mjs lists each with its package version, sha256 and unpacked sha256.
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step tools
hl_need_tools dpkg-deb:dpkg gzip:gzip readelf:binutils
work=$HL_CACHE/tools
rm -rf "$work"; mkdir -p "$work/pkgs" "$HL_DIST/tools"
hl_extract docker.io:i386 "$work/pkgs"
bin=$work/pkgs/usr/bin/docker
# What it needs at run time must be in the guest already: glibc and its loader (runtimes.cpio).
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ "$needed" = "libc.so.6 " ] || hl_die "the docker client now needs '$needed'; add those libraries to the guest (rootfs/build.sh) and update this check"
# An i386 program (whether it runs is for the guest to say: the integration test
# docker-in-guest runs it there; qemu-user, where the build host needs it, cannot run Go's 386 runtime).
readelf -h "$bin" | grep -q 'Machine: *Intel 80386' || hl_die "$bin is not an i386 program"
gzip -9 -n -c "$bin" > "$HL_DIST/tools/docker.gz"

hl_extract tini:i386 "$work/pkgs"
init=$work/pkgs/usr/bin/tini-static
readelf -h "$init" | grep -q 'Machine: *Intel 80386' || hl_die "$init is not an i386 program"
[ -z "$(readelf -d "$init" 2>/dev/null | grep NEEDED || true)" ] || hl_die "$init is not static: it must run inside any container's image"
gzip -9 -n -c "$init" > "$HL_DIST/tools/docker-init.gz"
hl_sha tools/docker.gz tools/docker-init.gz
