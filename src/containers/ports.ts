// Published ports: Docker's `-p [IP:][HOSTPORT:]CONTAINERPORT[/tcp]` and `-P`
// as data. The engine keeps what was asked (PortBinding) with a container and
// what a host made of it while the container runs (PublishedPort); who makes
// it is a PortPublisher: the daemon listens on the host's ports and relays
// each connection through the VM's agent (src/daemon/port-relay.ts), the page
// offers each port as a link its service worker relays (src/web/page-ports.ts).
// Pure code: the CLI, the Docker API, the daemon and the page share it.
import { HyperlabError } from "../errors.ts";

/** The only protocol published ports carry: TCP (the agent's streams are TCP). */
export type PortProtocol = "tcp";

/** A port published as asked (`-p`): hostPort 0 = any free port, hostIp "" = the default address. */
export interface PortBinding {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
}

/** A binding as a host made it, while the container runs: the address and port that answer. */
export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
}

/**
 * Publishes a container's ports while it runs. `publish` is called as the
 * container starts, before its process runs: it resolves with every port
 * open, or refuses (a port in use, one the host may not bind) with nothing
 * left open. `unpublish` closes what `publish` opened (the container stopped
 * or went); twice is a no-op.
 */
export interface PortPublisher {
  publish(target: PortTarget): Promise<PublishedPort[]>;
  unpublish(containerId: string): void;
}

/** What a publisher relays to: the container's address in its VM's guest and its bindings. */
export interface PortTarget {
  containerId: string;
  containerName: string;
  /** the container's address in the guest (bridge or user network) */
  ipAddress: string;
  bindings: PortBinding[];
}

/** The address a binding without one listens on: this machine only (Docker's default is every address). */
export const DEFAULT_HOST_IP = "127.0.0.1";

const FORMS = "use -p [IP:][HOSTPORT:]CONTAINERPORT[/tcp] (e.g. -p 8080:80, -p 127.0.0.1:8080:80, -p 80 for any free host port; ranges as -p 8080-8081:80-81)";

function badPublish(spec: string, what: string): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", `invalid -p '${spec}': ${what}; ${FORMS}`, { field: "publish" });
}

/** A port or a range of ports ("80", "8000-8010"); [] for "" (not given). */
function portRange(spec: string, part: string, which: string): number[] {
  if (part === "") return [];
  const m = /^(\d+)(?:-(\d+))?$/.exec(part);
  const first = m ? Number(m[1]) : NaN;
  const last = m?.[2] !== undefined ? Number(m[2]) : first;
  if (!m || first < 1 || last > 65535 || last < first) throw badPublish(spec, `${which} '${part}' is not a port (1-65535) or a range of them (low-high)`);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** Whether `ip` is an IPv4 address (dotted quad, each part 0-255). */
function isIpv4(ip: string): boolean {
  const parts = ip.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/**
 * Reads one `-p` value: `[IP:][HOSTPORT:]CONTAINERPORT[/tcp]`, where a port
 * may be a range (`8080-8081:80-81`: as many host ports as container ports).
 * A malformed value is INVALID_ARGUMENT naming the part that is wrong and
 * showing the accepted forms; `/udp` and `/sctp` are refused (NOT_SUPPORTED).
 */
export function parsePublish(spec: string): PortBinding[] {
  const [addr, proto = "tcp", ...extraSlash] = spec.trim().split("/");
  if (extraSlash.length) throw badPublish(spec, "more than one '/'");
  if (proto === "udp" || proto === "sctp") {
    throw new HyperlabError("NOT_SUPPORTED", `invalid -p '${spec}': ${proto.toUpperCase()} ports are not supported by hyperlab (the guest agent relays TCP connections only); publish a TCP port`, { field: "publish" });
  }
  if (proto !== "tcp") throw badPublish(spec, `the protocol '${proto}' is not tcp`);
  // An IPv6 address comes in brackets ([::1]:8080:80); an IPv4 address has dots, so the last two colons split the rest.
  let ip = "";
  let rest = addr!;
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(rest);
  if (v6) {
    throw badPublish(spec, `the host address '${v6[1]}' is IPv6, which the relay does not listen on; give an IPv4 address such as 127.0.0.1`);
  }
  const parts = rest.split(":");
  if (parts.length > 3) throw badPublish(spec, "too many ':'");
  if (parts.length === 3) {
    ip = parts[0]!;
    rest = `${parts[1]}:${parts[2]}`;
    if (!isIpv4(ip)) throw badPublish(spec, `the host address '${ip}' is not an IPv4 address`);
  }
  const [hostPart, containerPart] = rest.includes(":") ? (rest.split(":") as [string, string]) : ["", rest];
  if (containerPart === "") throw badPublish(spec, "the container port is missing");
  const container = portRange(spec, containerPart, "the container port");
  const host = portRange(spec, hostPart, "the host port");
  if (host.length && host.length !== container.length) {
    throw badPublish(spec, `the host ports (${hostPart}) and container ports (${containerPart}) are ranges of different lengths`);
  }
  return container.map((containerPort, i) => ({ hostIp: ip, hostPort: host[i] ?? 0, containerPort, protocol: "tcp" as const }));
}

/** One `--expose` value: PORT, PORT/tcp or a range LOW-HIGH[/tcp]. */
export function parseExpose(spec: string): number[] {
  const [ports, proto = "tcp", ...more] = spec.trim().split("/");
  if (proto === "udp" || proto === "sctp") throw new HyperlabError("NOT_SUPPORTED", `invalid --expose '${spec}': ${proto.toUpperCase()} ports are not supported by hyperlab (the guest agent relays TCP only)`, { field: "expose" });
  const m = /^(\d+)(?:-(\d+))?$/.exec(ports!);
  const first = m ? Number(m[1]) : NaN;
  const last = m?.[2] !== undefined ? Number(m[2]) : first;
  if (more.length || proto !== "tcp" || !m || first < 1 || last > 65535 || last < first) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid --expose '${spec}': use PORT[/tcp] or LOW-HIGH[/tcp] with ports from 1 to 65535`, { field: "expose" });
  }
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** "80/tcp" → 80; a Docker port key (ExposedPorts, PortBindings). UDP and SCTP are refused naming the field. */
export function parsePortKey(key: string, field: string): number {
  const m = /^(\d+)(?:\/(\w+))?$/.exec(key);
  const proto = m?.[2] ?? "tcp";
  if (m && (proto === "udp" || proto === "sctp")) {
    throw new HyperlabError("NOT_SUPPORTED", `${field} '${key}': ${proto.toUpperCase()} ports are not supported by hyperlab (the guest agent relays TCP connections only); publish a TCP port`, { field });
  }
  const port = m ? Number(m[1]) : NaN;
  if (!m || proto !== "tcp" || port < 1 || port > 65535) throw new HyperlabError("INVALID_ARGUMENT", `invalid ${field} '${key}': use PORT/tcp with a port from 1 to 65535`, { field });
  return port;
}

/** Docker's HostConfig.PortBindings ({"80/tcp": [{HostIp, HostPort}]}) as bindings. */
export function bindingsOfDocker(portBindings: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null | undefined): PortBinding[] {
  const out: PortBinding[] = [];
  for (const [key, list] of Object.entries(portBindings ?? {})) {
    const containerPort = parsePortKey(key, "HostConfig.PortBindings");
    for (const b of list?.length ? list : [{}]) {
      const hostIp = b.HostIp ?? "";
      if (hostIp !== "" && !isIpv4(hostIp)) {
        throw new HyperlabError("INVALID_ARGUMENT", `invalid HostConfig.PortBindings '${key}': the host address '${hostIp}' is not an IPv4 address`, { field: "HostConfig.PortBindings" });
      }
      const hostPort = b.HostPort ? Number(b.HostPort) : 0;
      if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) {
        throw new HyperlabError("INVALID_ARGUMENT", `invalid HostConfig.PortBindings '${key}': invalid hostPort: ${b.HostPort}`, { field: "HostConfig.PortBindings" });
      }
      out.push({ hostIp, hostPort, containerPort, protocol: "tcp" });
    }
  }
  return out;
}

/** Docker's ExposedPorts ({"80/tcp": {}}) as port numbers, ascending. */
export function exposedPorts(exposed: Record<string, unknown> | null | undefined, field = "ExposedPorts"): number[] {
  return Object.keys(exposed ?? {})
    .map((k) => parsePortKey(k, field))
    .sort((a, b) => a - b);
}

/** An image's EXPOSEd TCP ports, ascending (its UDP ones are left out: hyperlab relays TCP only, and they need not stop the image from running). */
export function imageTcpPorts(exposed: Record<string, unknown> | null | undefined): number[] {
  return Object.keys(exposed ?? {})
    .map((k) => /^(\d+)(?:\/tcp)?$/.exec(k))
    .filter((m): m is RegExpExecArray => !!m && Number(m[1]) >= 1 && Number(m[1]) <= 65535)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/**
 * The bindings a container gets: those asked for, then with `publishAll`
 * (-P) every exposed port not bound already, on a free host port.
 */
export function withPublishAll(bindings: PortBinding[], exposed: number[], publishAll: boolean): PortBinding[] {
  if (!publishAll) return bindings;
  const bound = new Set(bindings.map((b) => b.containerPort));
  return [...bindings, ...exposed.filter((p) => !bound.has(p)).map((containerPort) => ({ hostIp: "", hostPort: 0, containerPort, protocol: "tcp" as const }))];
}

/** Two bindings that ask for the same host address and port: refused before anything listens. */
export function checkDuplicates(bindings: PortBinding[]): void {
  const seen = new Map<string, PortBinding>();
  for (const b of bindings) {
    if (b.hostPort === 0) continue;
    const key = `${b.hostIp || DEFAULT_HOST_IP}:${b.hostPort}`;
    const other = seen.get(key);
    if (other) throw new HyperlabError("INVALID_ARGUMENT", `host port ${key} is asked for twice (for container ports ${other.containerPort} and ${b.containerPort}); give each its own host port`, { field: "publish" });
    seen.set(key, b);
  }
}

/** `127.0.0.1:8080->80/tcp, 90/tcp`: the PORTS column of `ps` (published first by container port, then exposed-only). */
export function portsColumn(published: readonly PublishedPort[], exposedOnly: readonly number[] = []): string {
  const sorted = [...published].sort((a, b) => a.containerPort - b.containerPort || a.hostPort - b.hostPort);
  return [...exposedOnly.map((p) => `${p}/tcp`), ...sorted.map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.protocol}`)].join(", ");
}

/** `80/tcp -> 127.0.0.1:8080` lines, as `docker port` prints them (only `port` when given: 80 or 80/tcp). */
export function portLines(published: readonly PublishedPort[], port?: string): string[] {
  const sorted = [...published].sort((a, b) => a.containerPort - b.containerPort || a.hostPort - b.hostPort);
  if (port === undefined) return sorted.map((p) => `${p.containerPort}/${p.protocol} -> ${p.hostIp}:${p.hostPort}`);
  const wanted = parsePortKey(port, "port");
  return sorted.filter((p) => p.containerPort === wanted).map((p) => `${p.hostIp}:${p.hostPort}`);
}

/** Docker's NetworkSettings.Ports of a running container: each exposed or bound port with its host ends (null: exposed only). */
export function dockerPortMap(published: readonly PublishedPort[], exposed: readonly number[]): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const p of exposed) out[`${p}/tcp`] = null;
  for (const p of published) (out[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  return out;
}
