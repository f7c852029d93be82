// Container networks: a bridge in the guest (hl0, 10.88.0.1/16), and for each
// container a veth pair with one end in its network namespace as eth0. The
// wiring runs in the guest as an OCI prestart hook: the runtime calls it after
// creating the container's namespaces and before running its process.

/** The bridge's address: the containers' gateway. */
export const BRIDGE_GATEWAY = "10.88.0.1";
/** Containers get BRIDGE_PREFIX.N (N from 2). */
export const BRIDGE_PREFIX = "10.88.0";
/** Where the engine installs the hook in the guest. */
export const NETWORK_HOOK_PATH = "/run/hyperlab/network-hook";

/**
 * The hook (busybox sh). Arguments: MODE (bridge|none) ADDRESS/PREFIX HOST_IF.
 * stdin: the OCI state of the container, whose "pid" names its namespaces.
 * busybox `ip` ignores `peer name`, so the pair is made inside the container's
 * namespace (where the peer's automatic name is surely veth0), renamed, and
 * the host end moved out to PID 1's namespace.
 */
export const NETWORK_HOOK_SCRIPT = `#!/bin/sh
set -e
mode=$1 address=$2 host_if=$3
pid=$(sed -n 's/.*"pid" *: *\\([0-9][0-9]*\\).*/\\1/p')
[ -n "$pid" ] || { echo "network hook: no pid in the container state" >&2; exit 1; }
in_ns() { nsenter --net=/proc/$pid/ns/net "$@"; }
in_ns ip link set lo up
[ "$mode" = bridge ] || exit 0
if ! ip link show hl0 >/dev/null 2>&1; then
  ip link add hl0 type bridge
  ip addr add ${BRIDGE_GATEWAY}/16 dev hl0
  ip link set hl0 up
fi
in_ns ip link add eth0 type veth
in_ns ip link set veth0 name "$host_if"
in_ns ip link set "$host_if" netns 1
ip link set "$host_if" master hl0
ip link set "$host_if" up
in_ns ip addr add "$address" dev eth0
in_ns ip link set eth0 up
in_ns ip route add default via ${BRIDGE_GATEWAY}
`;
