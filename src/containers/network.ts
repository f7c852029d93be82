// Container networks: a bridge in the guest (hl0, 10.88.0.1/16), and for each
// container a veth pair with one end in its network namespace as eth0. The
// wiring runs in the guest as an OCI prestart hook: the runtime calls it after
// creating the container's namespaces and before running its process.

/** The bridge's address: the containers' gateway. */
export const BRIDGE_GATEWAY = "10.88.0.1";
/** Containers get BRIDGE_PREFIX.N (N from 2). */
export const BRIDGE_PREFIX = "10.88.0";
/**
 * The OCI prestart hook that wires a container to the bridge:
 * `hyperlab-net-hook bridge ADDRESS/PREFIX HOST_IF`, the container's OCI
 * state on stdin. One static program in the guest image
 * (guest-images/agent/net-hook.c) that talks netlink: it makes sure the bridge
 * hl0 exists with the gateway address, creates a veth pair whose host end
 * HOST_IF joins hl0 and whose other end is created inside the container's
 * network namespace as eth0, then gives eth0 its address and a default route.
 * (A shell script doing the same with `ip` and `nsenter` started about a
 * dozen processes: 11 M emulated instructions per container against ~1 M.)
 * With `--network none` no hook runs: the runtimes bring loopback up themselves.
 */
export const NETWORK_HOOK_PATH = "/sbin/hyperlab-net-hook";

/** The hook's arguments (argv, program name first) for a container on the bridge. */
export function networkHookArgs(address: string, prefix: number, hostInterface: string): string[] {
  return [NETWORK_HOOK_PATH, "bridge", `${address}/${prefix}`, hostInterface];
}
