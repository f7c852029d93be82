// The hypervisor's networks: named L2 segments with an IPv4 subnet, whose
// members are VMs' switch ports (switch-port.ts, in the VMs' workers). This
// file assigns each VM a MAC and an address, wires a MessageChannel between
// every two members' workers (the frames never come back here), and keeps
// each member's /etc/hosts naming every member (`b`, `b.hyperlab.internal`).
import { transfer } from "comlink";
import ipaddr from "ipaddr.js";
import { HyperlabError } from "../errors.ts";
import type { VmWorker } from "./rpc.ts";

/** The network every VM joins unless told otherwise. */
export const DEFAULT_NETWORK = "default";
/** The default network's subnet. */
export const DEFAULT_SUBNET = "10.100.0.0/24";
/** Where networks created without `--subnet` get theirs: the next free /24 of this. */
export const NETWORK_POOL = "10.100.0.0/16";
/** The domain VM names resolve under (besides the bare name). */
export const NETWORK_DOMAIN = "hyperlab.internal";
/** What `--net none` names: no network (the VM's card is left unplugged). */
export const NO_NETWORK = "none";
/** The guest's container networks (src/containers/network.ts: 10.88.0.0/16 and 10.89.0.0/16): a VM network there would shadow them. */
const GUEST_RESERVED = { cidr: "10.88.0.0/15", what: "the guest's container networks (10.88.0.0/16, 10.89.0.0/16)" };

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** A VM on a network. */
export interface NetworkMember {
  vm: string;
  mac: string;
  address: string;
}

/** What `vm net inspect` shows. */
export interface NetworkInfo {
  name: string;
  subnet: string;
  /** the address kept for the gateway (the NAT, later) */
  gateway: string;
  /** no way out of the network (the only kind there is yet: NAT comes later) */
  isolated: boolean;
  createdAt: string;
  vms: NetworkMember[];
}

interface Member extends NetworkMember {
  worker: VmWorker;
  /** the /etc/hosts to write next (the newest list; older ones not yet written are skipped) */
  wantHosts?: string;
  /** the writes of wantHosts under way, one at a time */
  hostsWriter?: Promise<void>;
}

/** How long a membership change waits for the other members' /etc/hosts (a busy or dying guest must not hold up a VM's start; the write goes on). */
const HOSTS_WAIT_MS = 10_000;

interface Network {
  name: string;
  /** [first, last] address of the subnet as 32-bit numbers */
  range: [number, number];
  prefix: number;
  isolated: boolean;
  createdAt: Date;
  members: Map<string, Member>;
  /** the tail of this network's membership changes: they run one at a time, so every guest's /etc/hosts ends with the last member list */
  changes: Promise<unknown>;
}

/** A CIDR split and checked: each wrong part is named. */
export function parseSubnet(cidr: string): { range: [number, number]; prefix: number; text: string } {
  const m = /^([^/]*)\/(.*)$/.exec(cidr);
  if (!m) throw new HyperlabError("INVALID_ARGUMENT", `invalid subnet '${cidr}': expected an IPv4 CIDR such as 10.100.7.0/24 (address/prefix length); the '/prefix' part is missing`);
  const [, addr, len] = m as unknown as [string, string, string];
  if (!ipaddr.IPv4.isValidFourPartDecimal(addr)) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid subnet '${cidr}': the address '${addr}' is not an IPv4 address (four numbers 0-255, such as 10.100.7.0)`);
  }
  const prefix = /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 8 && prefix <= 30)) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid subnet '${cidr}': the prefix length '${len}' must be a number from 8 to 30 (a network needs room for a gateway and VMs)`);
  }
  const base = toNumber(addr);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  if ((base & mask) >>> 0 !== base) {
    const net = fromNumber((base & mask) >>> 0);
    throw new HyperlabError("INVALID_ARGUMENT", `invalid subnet '${cidr}': the address '${addr}' has host bits set for a /${prefix}; did you mean ${net}/${prefix}?`);
  }
  return { range: [base, (base | ~mask) >>> 0], prefix, text: `${addr}/${prefix}` };
}

function toNumber(addr: string): number {
  return ipaddr.IPv4.parse(addr).toByteArray().reduce((n, b) => n * 256 + b, 0);
}

function fromNumber(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function overlaps(a: [number, number], b: [number, number]): boolean {
  return a[0] <= b[1] && b[0] <= a[1];
}

function randomMac(): string {
  // 02: locally administered, unicast; then "hl" and three random bytes.
  const tail = globalThis.crypto.getRandomValues(new Uint8Array(3));
  return ["02", "68", "6c", ...Array.from(tail, (b) => b.toString(16).padStart(2, "0"))].join(":");
}

/** The hypervisor's networks. Every method is legal until the hypervisor closes. */
export class Networks {
  private readonly networks = new Map<string, Network>();

  constructor() {
    this.create(DEFAULT_NETWORK, { subnet: DEFAULT_SUBNET });
  }

  /** Creates a network; its subnet defaults to the next free /24 of NETWORK_POOL. Refuses a taken name or an overlapping subnet (naming both). */
  create(name: string, opts: { subnet?: string; isolated?: boolean } = {}): NetworkInfo {
    if (!NAME.test(name) || name === NO_NETWORK) {
      throw new HyperlabError("INVALID_ARGUMENT", `invalid network name '${name}': use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit ('${NO_NETWORK}' means no network)`);
    }
    if (this.networks.has(name)) throw new HyperlabError("NETWORK_EXISTS", `a network named ${name} already exists; choose another name or remove it first`);
    const subnet = opts.subnet !== undefined ? parseSubnet(opts.subnet) : this.freeSubnet();
    const reserved = parseSubnet(GUEST_RESERVED.cidr);
    if (overlaps(subnet.range, reserved.range)) {
      throw new HyperlabError("INVALID_ARGUMENT", `subnet ${subnet.text} overlaps ${GUEST_RESERVED.cidr}, ${GUEST_RESERVED.what}; choose another, e.g. under ${NETWORK_POOL}`);
    }
    for (const other of this.networks.values()) {
      if (overlaps(subnet.range, other.range)) {
        throw new HyperlabError("INVALID_ARGUMENT", `subnet ${subnet.text} of network ${name} overlaps subnet ${this.cidr(other)} of network ${other.name}; choose a subnet that does not`);
      }
    }
    const network: Network = { name, range: subnet.range, prefix: subnet.prefix, isolated: opts.isolated ?? false, createdAt: new Date(), members: new Map(), changes: Promise.resolve() };
    this.networks.set(name, network);
    return this.info(network);
  }

  /** Every network, oldest first. */
  list(): NetworkInfo[] {
    return [...this.networks.values()].map((n) => this.info(n));
  }

  /** One network; NETWORK_NOT_FOUND listing the known ones otherwise. */
  inspect(name: string): NetworkInfo {
    return this.info(this.get(name));
  }

  /** Removes a network no VM is on (CONFLICT naming its VMs otherwise). */
  remove(name: string): void {
    const network = this.get(name);
    if (network.members.size > 0) {
      const vms = [...network.members.keys()].sort();
      throw new HyperlabError("NETWORK_IN_USE", `network ${name} is in use by VM${vms.length > 1 ? "s" : ""} ${vms.join(", ")}; destroy ${vms.length > 1 ? "them" : "it"} first`, { vms });
    }
    this.networks.delete(name);
  }

  /** Throws NETWORK_NOT_FOUND (listing the known networks) unless `name` is a network or `none`. Legal any time: called before a VM is created. */
  check(name: string): void {
    if (name !== NO_NETWORK) this.get(name);
  }

  /** The network `vm` is on, if any. */
  networkOf(vm: string): { network: string; member: NetworkMember } | undefined {
    for (const n of this.networks.values()) {
      const m = n.members.get(vm);
      if (m) return { network: n.name, member: { vm: m.vm, mac: m.mac, address: m.address } };
    }
    return undefined;
  }

  /**
   * Puts a running VM on network `name`: a fresh MAC and the next free
   * address, its guest's eth0 and /etc/hosts configured through its worker,
   * a port to every other member's worker, and every member's /etc/hosts
   * naming it. `none` does nothing.
   */
  async attach(vm: string, worker: VmWorker, name: string): Promise<NetworkMember | undefined> {
    if (name === NO_NETWORK) return undefined;
    const network = this.get(name);
    return this.serially(network, () => this.join(network, vm, worker));
  }

  private async join(network: Network, vm: string, worker: VmWorker): Promise<NetworkMember> {
    const name = network.name;
    if (network.members.has(vm)) throw new HyperlabError("VM_INVALID_STATE", `VM ${vm} is on network ${name} already`);
    const taken = new Set([...network.members.values()].map((m) => m.mac));
    let mac = randomMac();
    while (taken.has(mac)) mac = randomMac();
    const member: Member = { vm, mac, address: this.freeAddress(network), worker };
    network.members.set(vm, member);
    try {
      await worker.api.plugNetwork({ network: name, mac, address: member.address, prefix: network.prefix, hosts: this.hosts(network) });
    } catch (err) {
      network.members.delete(vm);
      throw err;
    }
    const others = [...network.members.values()].filter((m) => m.vm !== vm);
    await Promise.all(
      others.map(async (other) => {
        const { port1, port2 } = new MessageChannel();
        await worker.api.addNetworkPeer(other.vm, transfer(port1, [port1]));
        // A member that is going away (its VM destroyed as this one starts) is not this VM's failure: its detach drops the port.
        await other.worker.api.addNetworkPeer(vm, transfer(port2, [port2])).catch(() => port1.close());
      }),
    );
    await this.refreshHosts(network, vm);
    return { vm, mac, address: member.address };
  }

  /** Takes a VM off its network (it stopped or was destroyed): the other members drop their port to it and its name. Legal any time. */
  async detach(vm: string): Promise<void> {
    for (const network of this.networks.values()) {
      if (!network.members.has(vm)) continue;
      await this.serially(network, async () => {
        if (!network.members.delete(vm)) return;
        await Promise.all([...network.members.values()].map((m) => m.worker.api.dropNetworkPeer(vm).catch(() => {})));
        await this.refreshHosts(network);
      });
    }
  }

  /**
   * Runs a membership change after the network's earlier ones. VMs started
   * together join at once; without this, a guest's /etc/hosts written when it
   * plugged in could land after the newer list a later member sent it.
   */
  private serially<T>(network: Network, change: () => Promise<T>): Promise<T> {
    const next = network.changes.then(change, change);
    network.changes = next.catch(() => {});
    return next;
  }

  /**
   * Gives every member but `except` the network's current /etc/hosts,
   * waiting at most HOSTS_WAIT_MS: a member that is paused, busy or dying gets
   * it when it can (the newest list wins) and holds up no one.
   */
  private async refreshHosts(network: Network, except?: string): Promise<void> {
    const hosts = this.hosts(network);
    const writes = [...network.members.values()].filter((m) => m.vm !== except).map((m) => this.writeHosts(m, hosts));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, HOSTS_WAIT_MS)));
    await Promise.race([Promise.all(writes), waited]).finally(() => clearTimeout(timer));
  }

  /** Writes `hosts` into the member's guest after the writes under way; a list superseded before its turn is not written. */
  private writeHosts(member: Member, hosts: string): Promise<void> {
    member.wantHosts = hosts;
    member.hostsWriter ??= this.drainHosts(member);
    return member.hostsWriter;
  }

  private async drainHosts(member: Member): Promise<void> {
    try {
      while (member.wantHosts !== undefined) {
        const text = member.wantHosts;
        member.wantHosts = undefined;
        await member.worker.api.setHosts(text).catch(() => {});
      }
    } finally {
      // Synchronous with the loop's last check: a list set after it starts a new writer.
      member.hostsWriter = undefined;
    }
  }

  private hosts(network: Network): string {
    const lines = ["127.0.0.1 localhost", "::1 localhost"];
    for (const m of network.members.values()) lines.push(`${m.address} ${m.vm} ${m.vm}.${NETWORK_DOMAIN}`);
    return `${lines.join("\n")}\n`;
  }

  private get(name: string): Network {
    const network = this.networks.get(name);
    if (network) return network;
    const known = [...this.networks.keys()];
    throw new HyperlabError("NETWORK_NOT_FOUND", `no network named '${name}' (there are: ${known.join(", ") || "none"}; or '${NO_NETWORK}' for no network)`, { name, known });
  }

  private cidr(n: Network): string {
    return `${fromNumber(n.range[0])}/${n.prefix}`;
  }

  private info(n: Network): NetworkInfo {
    return {
      name: n.name,
      subnet: this.cidr(n),
      gateway: fromNumber(n.range[0] + 1),
      isolated: n.isolated,
      createdAt: n.createdAt.toISOString(),
      vms: [...n.members.values()].map((m) => ({ vm: m.vm, mac: m.mac, address: m.address })),
    };
  }

  /** The first address after the gateway no member holds. */
  private freeAddress(n: Network): string {
    const used = new Set([...n.members.values()].map((m) => m.address));
    for (let a = n.range[0] + 2; a < n.range[1]; a++) {
      const addr = fromNumber(a);
      if (!used.has(addr)) return addr;
    }
    throw new HyperlabError("RESOURCE_EXHAUSTED", `network ${n.name} (${this.cidr(n)}) has no free address left; create a network with a larger subnet`);
  }

  private freeSubnet(): { range: [number, number]; prefix: number; text: string } {
    const pool = parseSubnet(NETWORK_POOL);
    for (let base = pool.range[0]; base < pool.range[1]; base += 256) {
      const range: [number, number] = [base, base + 255];
      if (![...this.networks.values()].some((n) => overlaps(range, n.range))) return { range, prefix: 24, text: `${fromNumber(base)}/24` };
    }
    throw new HyperlabError("RESOURCE_EXHAUSTED", `no free /24 left in ${NETWORK_POOL}; give the network a --subnet`);
  }
}
