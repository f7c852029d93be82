// Container networks. Every network is a Linux bridge in the guest, and each
// container on one gets a veth pair with one end in its network namespace as
// eth0. The wiring runs in the guest as an OCI prestart hook: the runtime
// calls it after creating the container's namespaces and before running its
// process.
//
// The default network `bridge` is hl0 (10.88.0.1/16). User networks (Docker's
// `network create`) get a bridge of their own, br-<12 hex of their id>, and a
// subnet from 10.89.0.0/16 in /24s unless one is given (as Podman numbers its
// networks after its 10.88.0.0/16 default).
//
// Isolation: the guest's kernel has netfilter (the podman profile's netavark
// uses it), but the engine writes no rules; the guest simply does not forward
// IPv4 between its interfaces (ip_forward is 0, the kernel's default), so a
// packet from a container on one bridge to an address on another is dropped
// at the guest, which answers "host unreachable". Containers on one bridge
// talk at layer 2, without the guest's routing.
//
// Names: containers on a user network reach each other by container name,
// network alias, short id and host name (Docker's DNSNames) through an
// /etc/hosts of their own, bind-mounted from the bundle and rewritten in
// place as the network's containers start and stop. The images' busybox is
// static glibc, whose resolver reads /etc/hosts without NSS modules or
// nsswitch.conf (glibc ≥ 2.34 has its "files" and "dns" sources built in),
// so `ping NAME` and `wget http://NAME/` resolve. A DNS responder would be a
// process per network in the guest for what one file write per member does.
import { HyperlabError } from "../errors.ts";

/** The default network's bridge in the guest. */
export const DEFAULT_BRIDGE = "hl0";
/** The default bridge's address: the containers' gateway. */
export const BRIDGE_GATEWAY = "10.88.0.1";
/** The default bridge's subnet. */
export const BRIDGE_SUBNET = "10.88.0.0/16";
/** Containers on the default bridge get BRIDGE_PREFIX.N (N from 2). */
export const BRIDGE_PREFIX = "10.88.0";
/** Where user networks' subnets come from when none is given: /24s of this. */
export const USER_POOL = "10.89.0.0/16";
const USER_POOL_PREFIX = 24;

/**
 * The OCI prestart hook that wires a container to a bridge:
 * `hyperlab-net-hook bridge ADDRESS/PREFIX HOST_IF [BRIDGE GATEWAY [internal]]`,
 * the container's OCI state on stdin. One static program in the guest image
 * (guest-images/agent/net-hook.c) that talks netlink: it makes sure the bridge
 * (default hl0 with 10.88.0.1) exists with the gateway address, creates a veth
 * pair whose host end HOST_IF joins it and whose other end is created inside
 * the container's network namespace as eth0, then gives eth0 its address and
 * a default route (none on an internal network).
 * (A shell script doing the same with `ip` and `nsenter` started about a
 * dozen processes: 11 M emulated instructions per container against ~1 M.)
 * With `--network none` no hook runs: the runtimes bring loopback up themselves.
 */
export const NETWORK_HOOK_PATH = "/sbin/hyperlab-net-hook";

/** The hook's arguments (argv, program name first): on the default bridge, or on `net`'s. */
export function networkHookArgs(address: string, prefix: number, hostInterface: string, net?: Network): string[] {
  const args = [NETWORK_HOOK_PATH, "bridge", `${address}/${prefix}`, hostInterface];
  if (net && net.builtin !== "bridge") args.push(bridgeName(net), net.gateway, ...(net.internal ? ["internal"] : []));
  return args;
}

/** The drivers a network has: `bridge` (a Linux bridge in the guest) or `null` (Docker's driver of `none`). */
export type NetworkDriver = "bridge" | "null";

/** One network of an engine: the two predefined ones (`bridge`, `none`) or a user network. */
export interface Network {
  id: string;
  name: string;
  driver: NetworkDriver;
  /** set on the predefined networks: which one */
  builtin?: "bridge" | "none";
  /** A.B.C.D/N (empty for `none`) */
  subnet: string;
  /** the bridge's address in the subnet (empty for `none`) */
  gateway: string;
  /** the subnet was given at create (Docker allows a fixed container address only then) */
  subnetGiven: boolean;
  /** no default route in its containers: they reach their own subnet only */
  internal: boolean;
  /** Docker's swarm flag, kept as given (it changes nothing on one machine) */
  attachable: boolean;
  labels: Record<string, string>;
  createdAt: Date;
}

/** A network's record as it is kept in a VM's snapshot (JSON). */
export interface NetworkRecord extends Omit<Network, "createdAt"> {
  createdAt: string;
}

/** What `createNetwork` takes (Docker's `network create`). */
export interface NetworkOptions {
  name: string;
  /** A.B.C.D/N (default: the first free /24 of 10.89.0.0/16) */
  subnet?: string;
  /** default: the subnet's first address */
  gateway?: string;
  internal?: boolean;
  attachable?: boolean;
  labels?: Record<string, string>;
}

/** A network's bridge in the guest: Docker's br-<12 hex> (15 characters, the most an interface name takes). */
export function bridgeName(net: Network): string {
  return net.builtin === "bridge" ? DEFAULT_BRIDGE : `br-${net.id.slice(0, 12)}`;
}

/** The subnet's prefix length (0 for none). */
export function prefixOf(net: Network): number {
  return net.subnet ? Number(net.subnet.split("/")[1]) : 0;
}

/** An IPv4 address as a number; undefined when `s` is not one. */
export function ipToInt(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

/** A number as an IPv4 address. */
export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** A subnet's first address and size. */
interface Range {
  base: number;
  size: number;
  prefix: number;
}

/** `A.B.C.D/N` as its range, normalized to the network's address; INVALID_ARGUMENT in Docker's words otherwise. */
export function parseSubnet(cidr: string): Range {
  const [addr, bits, extra] = cidr.split("/");
  const ip = ipToInt(addr ?? "");
  const prefix = Number(bits);
  if (ip === undefined || extra !== undefined || !/^\d{1,2}$/.test(bits ?? "") || prefix > 32) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid subnet ${cidr}: invalid CIDR address: ${cidr} (use A.B.C.D/N, e.g. 10.90.0.0/24)`);
  }
  if (prefix < 8 || prefix > 30) throw new HyperlabError("INVALID_ARGUMENT", `invalid subnet ${cidr}: use a prefix from /8 to /30 (a gateway and at least one container)`);
  const size = 2 ** (32 - prefix);
  return { base: ip - (ip % size), size, prefix };
}

function overlaps(a: Range, b: Range): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

function formatRange(r: Range): string {
  return `${intToIp(r.base)}/${r.prefix}`;
}

/**
 * The subnet and gateway of a new network: as given (checked, normalized,
 * not overlapping `existing`), else the first /24 of 10.89.0.0/16 that
 * overlaps none of them.
 */
export function planSubnet(opts: { subnet?: string; gateway?: string }, existing: Network[]): { subnet: string; gateway: string } {
  const taken = existing.filter((n) => n.subnet).map((n) => parseSubnet(n.subnet));
  let range: Range | undefined;
  if (opts.subnet) {
    range = parseSubnet(opts.subnet);
    if (taken.some((t) => overlaps(t, range!))) {
      const other = existing.find((n) => n.subnet && overlaps(parseSubnet(n.subnet), range!))!;
      throw new HyperlabError("INVALID_ARGUMENT", `Pool overlaps with other one on this address space: ${formatRange(range)} overlaps network ${other.name} (${other.subnet}); choose another --subnet`);
    }
  } else {
    if (opts.gateway) throw new HyperlabError("INVALID_ARGUMENT", "every ip-range or gateway must have a corresponding subnet: give --subnet with --gateway");
    const pool = parseSubnet(USER_POOL);
    const step = 2 ** (32 - USER_POOL_PREFIX);
    for (let base = pool.base; base < pool.base + pool.size && !range; base += step) {
      const candidate = { base, size: step, prefix: USER_POOL_PREFIX };
      if (!taken.some((t) => overlaps(t, candidate))) range = candidate;
    }
    if (!range) throw new HyperlabError("RESOURCE_EXHAUSTED", `could not find an available, non-overlapping IPv4 address pool among the defaults (${USER_POOL} in /${USER_POOL_PREFIX}s) to assign to the network; remove a network or give --subnet`);
  }
  let gateway = range.base + 1;
  if (opts.gateway) {
    const g = ipToInt(opts.gateway);
    if (g === undefined) throw new HyperlabError("INVALID_ARGUMENT", `invalid gateway '${opts.gateway}': use A.B.C.D`);
    if (g <= range.base || g >= range.base + range.size - 1) {
      throw new HyperlabError("INVALID_ARGUMENT", `no matching subnet for gateway ${opts.gateway}: it must be a host address inside ${formatRange(range)}`);
    }
    gateway = g;
  }
  return { subnet: formatRange(range), gateway: intToIp(gateway) };
}

/**
 * A container's address on `net`: `wanted` (checked: inside the subnet, not
 * its network, broadcast or gateway address, not `used`), else the lowest
 * free one, as Docker's IPAM hands them out.
 */
export function allocateAddress(net: Network, used: Iterable<string>, wanted?: string): string {
  const range = parseSubnet(net.subnet);
  const busy = new Set([...used, net.gateway]);
  if (wanted !== undefined) {
    const w = ipToInt(wanted);
    if (w === undefined) throw new HyperlabError("INVALID_ARGUMENT", `invalid IPv4 address '${wanted}'`);
    if (w <= range.base || w >= range.base + range.size - 1) {
      throw new HyperlabError("INVALID_ARGUMENT", `no configured subnet or ip-range contain the IP address ${wanted}: network ${net.name} is ${net.subnet}`);
    }
    if (busy.has(wanted)) throw new HyperlabError("CONTAINER_EXISTS", `Address already in use: ${wanted} on network ${net.name}`);
    return wanted;
  }
  for (let n = range.base + 1; n < range.base + range.size - 1; n++) {
    const ip = intToIp(n);
    if (!busy.has(ip)) return ip;
  }
  throw new HyperlabError("RESOURCE_EXHAUSTED", `no address left on network ${net.name} (${net.subnet}): remove a container from it`);
}

/** Docker's network names: letters, digits, '_', '.' and '-', starting with a letter or digit. */
const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function randomId(): string {
  const b = new Uint8Array(32);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The networks of one engine's guest, host-side: names, ids, subnets. The guest's side (bridges) is the hook's and the engine's. */
export class NetworkTable {
  private readonly byId = new Map<string, Network>();

  constructor(records?: NetworkRecord[]) {
    const restored = (records ?? []).map((r) => ({ ...r, createdAt: new Date(r.createdAt) }));
    const now = new Date();
    // The predefined networks, with ids of their own as in dockerd (kept in the records, so they survive a snapshot).
    const bridge = restored.find((n) => n.builtin === "bridge") ?? {
      id: randomId(), name: "bridge", driver: "bridge", builtin: "bridge", subnet: BRIDGE_SUBNET, gateway: BRIDGE_GATEWAY,
      subnetGiven: false, internal: false, attachable: false, labels: {}, createdAt: now,
    };
    const none = restored.find((n) => n.builtin === "none") ?? {
      id: randomId(), name: "none", driver: "null", builtin: "none", subnet: "", gateway: "", subnetGiven: false, internal: false, attachable: false, labels: {}, createdAt: now,
    };
    for (const n of [bridge, none, ...restored.filter((r) => !r.builtin)]) this.byId.set(n.id, n);
  }

  /** Every network: the predefined ones first, then user networks oldest first. */
  list(): Network[] {
    return [...this.byId.values()];
  }

  /** The network with this id (undefined when it was removed). */
  withId(id: string): Network | undefined {
    return this.byId.get(id);
  }

  /** A network by full id, name or unique id prefix; NETWORK_NOT_FOUND in dockerd's words otherwise. */
  get(ref: string): Network {
    const all = this.list();
    const found = this.byId.get(ref) ?? all.find((n) => n.name === ref);
    if (found) return found;
    const prefixed = ref ? all.filter((n) => n.id.startsWith(ref)) : [];
    if (prefixed.length === 1) return prefixed[0]!;
    if (prefixed.length > 1) throw new HyperlabError("INVALID_ARGUMENT", `network ${ref} is ambiguous (${prefixed.length} matches); give more of the id`);
    throw new HyperlabError("NETWORK_NOT_FOUND", `network ${ref} not found`, { network: ref });
  }

  /** Adds a user network (checked, its subnet planned); NETWORK_EXISTS when the name is taken. */
  create(opts: NetworkOptions): Network {
    const name = opts.name;
    if (typeof name !== "string" || !name) throw new HyperlabError("INVALID_ARGUMENT", "a network needs a name");
    if (name === "host") throw new HyperlabError("INVALID_ARGUMENT", "host is a pre-defined network name (Docker's --network host), which hyperlab does not offer; choose another name");
    if (!NETWORK_NAME_RE.test(name)) throw new HyperlabError("INVALID_ARGUMENT", `invalid network name '${name}': use letters, digits, '_', '.' and '-', starting with a letter or digit`);
    const taken = this.list().find((n) => n.name === name);
    if (taken) throw new HyperlabError("NETWORK_EXISTS", `network with name ${name} already exists`, { id: taken.id, name });
    for (const [k, v] of Object.entries(opts.labels ?? {})) {
      if (typeof v !== "string") throw new HyperlabError("INVALID_ARGUMENT", `label '${k}' must be a string`);
    }
    const { subnet, gateway } = planSubnet(opts, this.list());
    const net: Network = {
      id: randomId(),
      name,
      driver: "bridge",
      subnet,
      gateway,
      subnetGiven: !!opts.subnet,
      internal: opts.internal === true,
      attachable: opts.attachable === true,
      labels: { ...opts.labels },
      createdAt: new Date(),
    };
    this.byId.set(net.id, net);
    return net;
  }

  /** Forgets a user network (the caller has checked it is not in use). */
  delete(net: Network): void {
    if (net.builtin) throw new HyperlabError("NETWORK_IN_USE", `${net.name} is a pre-defined network and cannot be removed`, { network: net.name });
    this.byId.delete(net.id);
  }

  /** The networks' records, for the VM's snapshot. */
  records(): NetworkRecord[] {
    return this.list().map((n) => ({ ...n, createdAt: n.createdAt.toISOString() }));
  }
}

/**
 * A container that is on its network now (Docker's "active endpoint"): one
 * that has started and not exited (running, or paused: its interface stays).
 */
export function isAttached(c: { status: string }): boolean {
  return c.status !== "created" && c.status !== "exited";
}

/** One container as its network's /etc/hosts names it. */
export interface HostsEntry {
  address: string;
  /** the names it answers to: container name, aliases, short id, host name */
  names: string[];
}

/**
 * A user-network container's /etc/hosts: loopback, the container's own
 * address with its host name (as Docker writes the file), then every running
 * container of its network with its names. IPv4 only: the guest's kernel has
 * no IPv6, and a `::1 localhost` line would send programs that try it first
 * to an address family that fails.
 */
export function hostsFile(own: { address: string; hostname: string }, network: string, members: HostsEntry[]): string {
  const lines = ["127.0.0.1\tlocalhost", `${own.address}\t${own.hostname}`, `# the running containers of network ${network} (hyperlab rewrites this as they start and stop)`];
  for (const m of members) lines.push(`${m.address}\t${[...new Set(m.names)].join(" ")}`);
  return lines.join("\n") + "\n";
}
