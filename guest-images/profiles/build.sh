#!/usr/bin/env bash
# Builds every guest profile's initramfs layer (profiles/NAME/build.sh), each
# an extra layer on top of the default guest's three: see docs/profiles.md.
# Usage: guest-images/profiles/build.sh [NAME...]   (default: every profile)
set -euo pipefail; cd "$(dirname "$0")"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in */build.sh; do names+=("${d%/build.sh}"); done
fi
for n in "${names[@]}"; do
  [ -x "$n/build.sh" ] || { printf '[images] error: no profile %s (profiles: %s)\n' "$n" "$(ls -d */ | tr -d / | tr '\n' ' ')" >&2; exit 1; }
  "./$n/build.sh"
done
