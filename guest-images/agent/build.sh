#!/usr/bin/env bash
# Builds hyperlab-agent (agent.c), the guest's end of the agent protocol
# (docs/agent-protocol.md), and beside it hyperlab-net-hook (net-hook.c), the
# containers' network hook: static i386, like /init.
# Usage: agent/build.sh [OUT]   (default: $HL_CACHE/agent/hyperlab-agent)
# rootfs/build.sh calls it to put the agent at /sbin/hyperlab-agent.
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step agent
hl_need_tools gcc:gcc-multilib
dpkg-query -W --showformat='${Package} ${Version} ${Architecture}\n' gcc-12 libc6-dev-i386 >> "$HL_CACHE/packages-agent.txt"
out=${1:-$HL_CACHE/agent/hyperlab-agent}
mkdir -p "$(dirname "$out")"
gcc -m32 -march=i686 -static -Os -s -Wall -Wextra -Werror -o "$out" agent.c
# Its companion: the OCI prestart hook that wires a container to the bridge (net-hook.c).
hook=$(dirname "$out")/hyperlab-net-hook
gcc -m32 -march=i686 -static -Os -s -Wall -Wextra -Werror -o "$hook" net-hook.c
sha256sum "$out" "$hook"
