#!/usr/bin/env bash
# Builds every guest artifact into dist/ and writes dist/manifest.json.
# Usage: guest-images/build.sh [step...]   steps: firmware kernel loader rootfs images tools profiles (default: all)
# Needs Debian bookworm with apt (run as root): it installs its build tools and
# downloads i386 packages with apt-get; nothing else is fetched.
set -euo pipefail; cd "$(dirname "$0")"
. ./lib.sh
steps=("$@"); [ ${#steps[@]} -gt 0 ] || steps=(firmware kernel loader rootfs images tools profiles)

tools=(linux-source-6.1 flex bison bc cpio libelf-dev libssl-dev gcc gcc-multilib binutils make lz4 xz-utils)
missing=$(for p in "${tools[@]}"; do dpkg-query -W --showformat='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
  apt-get update -q || hl_log "apt-get update reported errors; continuing with the lists it has"
fi
if [ -n "$missing" ]; then
  hl_log "installing build tools: $missing"
  # shellcheck disable=SC2086
  apt-get install -y -q $missing >&2
fi
for s in "${steps[@]}"; do
  hl_log "== $s"
  rm -f "$HL_CACHE/packages-$s.txt"
  "./$s/build.sh"
done
node manifest.mjs
(cd dist && sha256sum manifest.json)
