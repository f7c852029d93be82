#!/usr/bin/env bash
# The podman profile's layer: Podman 4.3 (Debian's podman) with conmon,
# netavark, aardvark-dns, catatonit and iptables (nft), on top of the default
# guest, as ONE initramfs layer (profiles/profile.sh): its payload holds
#   podman, conmon, catatonit      the engine, the monitor it leaves beside
#                                  each container, the init of `--init`
#   netavark, aardvark-dns         its network backend and the DNS server of
#                                  its networks
#   xtables-nft-multi (iptables)   what netavark writes NAT rules with
#   the shared libraries these load (found through ELF NEEDED entries),
#   containers-common's config, ours (files/), and the engine's busybox image
#   as an OCI image layout, which the boot step pulls into podman's store.
# crun comes from the default guest (runtimes.cpio).
set -euo pipefail; cd "$(dirname "$0")"
. ../../lib.sh
. ../profile.sh
hl_begin_step profile-podman
hl_need_tools cpio:cpio readelf:binutils dpkg-deb:dpkg xz:xz-utils node:nodejs
work=$HL_CACHE/profile-podman
rm -rf "$work"; mkdir -p "$work"
pkgs=$work/pkgs layer=$work/layer
mkdir -p "$pkgs" "$layer"

# gcc-12-base: only for its copyright, which libgcc-s1's doc folder links to.
for p in podman conmon netavark aardvark-dns catatonit iptables \
  libgpgme11 libassuan0 libgpg-error0 libdevmapper1.02.1 libudev1 libsubid4 libaudit1 libcap-ng0 \
  libselinux1 libpcre2-8-0 libsemanage2 libsepol2 libbz2-1.0 libgcc-s1 gcc-12-base libglib2.0-0 libcrypt1 libpam0g libc6 \
  libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0; do
  hl_extract "$p:i386" "$pkgs"
done
for p in golang-github-containers-common golang-github-containers-image; do hl_extract "$p:all" "$pkgs"; done

mkdir -p "$layer"/{usr/bin,usr/sbin,usr/lib/podman,usr/libexec/podman,usr/share/containers,etc/containers,lib/i386-linux-gnu}
install -m 0755 "$pkgs/usr/bin/podman" "$pkgs/usr/bin/conmon" "$pkgs/usr/bin/catatonit" "$layer/usr/bin/"
ln -s ../../bin/catatonit "$layer/usr/libexec/podman/catatonit"
install -m 0755 "$pkgs/usr/lib/podman/netavark" "$pkgs/usr/lib/podman/aardvark-dns" "$layer/usr/lib/podman/"
# iptables: the nf_tables flavour (Debian's default alternative), its
# commands as links to the one program, and the xtables extensions it loads
# by name (IPv4 and protocol-independent ones: the guest kernel has no IPv6;
# netavark still opens ip6tables, and fails "No such file or directory"
# without it, though it writes no IPv6 rule for an IPv4 network).
install -m 0755 "$pkgs/usr/sbin/xtables-nft-multi" "$layer/usr/sbin/"
for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do ln -s xtables-nft-multi "$layer/usr/sbin/$c"; done
mkdir -p "$layer/usr/lib/i386-linux-gnu/xtables"
cp -a "$pkgs"/usr/lib/i386-linux-gnu/xtables/lib{xt,ipt}_* "$layer/usr/lib/i386-linux-gnu/xtables/"
cp "$pkgs/etc/containers/policy.json" "$pkgs/etc/containers/registries.conf" "$layer/etc/containers/"
cp -a "$pkgs/etc/containers/registries.conf.d" "$layer/etc/containers/"
cp "$pkgs/usr/share/containers/containers.conf" "$pkgs/usr/share/containers/seccomp.json" "$layer/usr/share/containers/"

# Shared libraries beyond what the default guest has (runtimes.cpio).
hl_needed_libs "$pkgs" "$layer/lib/i386-linux-gnu" "$HL_DEFAULT_LIBS" \
  "$layer"/usr/bin/{podman,conmon,catatonit} "$layer"/usr/lib/podman/* "$layer/usr/sbin/xtables-nft-multi" "$layer"/usr/lib/i386-linux-gnu/xtables/*.so
hl_log "podman profile libraries: $(cd "$layer/lib/i386-linux-gnu" && ls | tr '\n' ' ')"

# The engine's busybox image as an OCI image layout of its own (the boot step
# pulls it into podman's store, then deletes it).
node - "$HL_DIST/images" "$layer/usr/share/hyperlab/images" busybox:latest <<'JS'
const fs = require("node:fs"), path = require("node:path");
const [from, to, name] = process.argv.slice(2);
const index = JSON.parse(fs.readFileSync(path.join(from, "index.json"), "utf8"));
const entry = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === name);
if (!entry) { console.error(`[images] error: ${from} has no image ${name}; run: npm run images -- images`); process.exit(1); }
const blob = (d) => path.join("blobs", ...d.split(":"));
const manifest = JSON.parse(fs.readFileSync(path.join(from, blob(entry.digest)), "utf8"));
fs.mkdirSync(path.join(to, "blobs", "sha256"), { recursive: true });
for (const d of [entry.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) fs.copyFileSync(path.join(from, blob(d)), path.join(to, blob(d)));
fs.copyFileSync(path.join(from, "oci-layout"), path.join(to, "oci-layout"));
fs.writeFileSync(path.join(to, "index.json"), JSON.stringify({ ...index, manifests: [entry] }, null, 2) + "\n");
JS

cp -a files/. "$layer/"
hl_profile_layer podman "$layer" "$work"
hl_sha profile-podman.cpio
