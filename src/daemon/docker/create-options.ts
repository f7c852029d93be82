// Docker's container-create body (Config + HostConfig) as the engine's
// CreateOptions. Nothing is silently ignored: a field that would change what
// runs and that hyperlab does not do is refused with 400 naming the field and
// what to do instead; fields at their default values pass.
import type { CreateOptions, Runtime } from "../../containers/engine.ts";
import { RUNTIMES } from "../../containers/engine.ts";
import { CPU_PERIOD_US, cpuSharesToWeight } from "../../containers/limits.ts";
import { HyperlabError } from "../../errors.ts";
import { MASKED_PATHS, READONLY_PATHS, parseSecurityOpts } from "../../containers/confinement.ts";
import { type GoType, checkTypes, fits, jsonKind } from "./body-types.ts";
import { bindingsOfDocker, exposedPorts } from "../../containers/ports.ts";
import { type DockerMountSpec, type MountRequest, mountOfDocker, parseVolumeSpec } from "../../containers/mounts.ts";

/** The parts of Docker's create body hyperlab reads. */
export interface DockerCreateBody {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | string | null;
  Entrypoint?: string[] | string | null;
  Image?: string;
  Labels?: Record<string, string> | null;
  WorkingDir?: string;
  StopSignal?: string;
  StopTimeout?: number | null;
  Volumes?: Record<string, unknown> | null;
  ExposedPorts?: Record<string, unknown> | null;
  Healthcheck?: { Test?: string[] } | null;
  HostConfig?: Record<string, unknown> | null;
  NetworkingConfig?: { EndpointsConfig?: Record<string, unknown> | null } | null;
  [key: string]: unknown;
}

/** What the Docker adapter keeps with a container beyond the engine's options (in the engine's `meta`). */
export interface DockerMeta {
  config: DockerCreateBody;
  hostConfig: Record<string, unknown>;
  networkMode: string;
}

/**
 * HostConfig fields hyperlab does not do: each with the test that says it was
 * asked for (a value other than Docker's default) and what to say.
 */
const UNSUPPORTED_HOST: Array<[field: string, asked: (v: unknown) => boolean, instead: string]> = [
  ["Privileged", truthy, "containers run with Docker's default confinement; drop --privileged (--cap-add ALL and --security-opt seccomp=unconfined lift most of it)"],
  ["Devices", nonEmpty, "no host devices reach a container in hyperlab; drop --device"],
  ["DeviceRequests", nonEmpty, "there are no GPUs or other devices to request; drop --gpus/--device"],
  ["DeviceCgroupRules", nonEmpty, "drop --device-cgroup-rule"],
  ["VolumesFrom", nonEmpty, "name the volumes with -v NAME:/path instead of --volumes-from"],
  ["RestartPolicy", (v) => !!v && !["", "no"].includes(String((v as { Name?: string }).Name ?? "")), "restart policies are not supported; drop --restart"],
  ["MaskedPaths", (v) => Array.isArray(v) && !sameList(v, MASKED_PATHS), "the masked paths of /proc and /sys are Docker's default ones; drop --security-opt systempaths=unconfined"],
  ["ReadonlyPaths", (v) => Array.isArray(v) && !sameList(v, READONLY_PATHS), "the read-only paths of /proc are Docker's default ones; drop --security-opt systempaths=unconfined"],
  ["Links", nonEmpty, "links are not supported; put the containers on one user network and use their names"],
  ["ExtraHosts", nonEmpty, "--add-host is not supported yet"],
  ["Dns", nonEmpty, "containers have no DNS server to set; drop --dns"],
  ["DnsOptions", nonEmpty, "drop --dns-option"],
  ["DnsSearch", nonEmpty, "drop --dns-search"],
  ["GroupAdd", nonEmpty, "drop --group-add"],
  ["IpcMode", nonDefaultMode, "containers always get their own IPC namespace; drop --ipc"],
  ["PidMode", nonDefaultMode, "containers always get their own PID namespace; drop --pid"],
  ["UTSMode", nonDefaultMode, "containers always get their own UTS namespace; drop --uts"],
  ["UsernsMode", nonDefaultMode, "user namespaces are not supported; drop --userns"],
  ["CgroupnsMode", (v) => nonDefaultMode(v) && v !== "private", "containers always get their own cgroup namespace; drop --cgroupns"],
  ["Cgroup", truthy, "drop --cgroup"],
  ["CgroupParent", truthy, "containers' cgroups live under hyperlab's; drop --cgroup-parent"],
  ["CpusetCpus", truthy, "the guest has one CPU; drop --cpuset-cpus"],
  ["CpusetMems", truthy, "drop --cpuset-mems"],
  ["CpuRealtimePeriod", truthy, "drop --cpu-rt-period"],
  ["CpuRealtimeRuntime", truthy, "drop --cpu-rt-runtime"],
  ["BlkioWeight", truthy, "block I/O limits are not supported; drop --blkio-weight"],
  ["BlkioWeightDevice", nonEmpty, "drop --blkio-weight-device"],
  ["BlkioDeviceReadBps", nonEmpty, "drop --device-read-bps"],
  ["BlkioDeviceWriteBps", nonEmpty, "drop --device-write-bps"],
  ["BlkioDeviceReadIOps", nonEmpty, "drop --device-read-iops"],
  ["BlkioDeviceWriteIOps", nonEmpty, "drop --device-write-iops"],
  ["MemoryReservation", truthy, "drop --memory-reservation (only --memory is enforced)"],
  ["MemorySwap", (v) => typeof v === "number" && v > 0, "the guest has no swap; drop --memory-swap"],
  ["MemorySwappiness", (v) => typeof v === "number" && v >= 0, "the guest has no swap; drop --memory-swappiness"],
  ["KernelMemory", truthy, "drop --kernel-memory"],
  ["OomKillDisable", truthy, "an out-of-memory container is always killed; drop --oom-kill-disable"],
  ["OomScoreAdj", truthy, "drop --oom-score-adj"],
  ["Ulimits", nonEmpty, "drop --ulimit"],
  ["ShmSize", truthy, "/dev/shm is 64 MiB; drop --shm-size"],
  ["Sysctls", nonEmpty, "drop --sysctl"],
  ["Tmpfs", nonEmpty, "drop --tmpfs"],
  ["StorageOpt", nonEmpty, "drop --storage-opt"],
  ["VolumeDriver", truthy, "drop --volume-driver"],
  ["LogConfig", (v) => !!v && !["", "json-file"].includes(String((v as { Type?: string }).Type ?? "")), "logs are kept in hyperlab's json-file way only; drop --log-driver"],
  ["Isolation", (v) => !!v && v !== "default", "drop --isolation"],
  ["Runtime", (v) => !!v && !(RUNTIMES as readonly string[]).includes(String(v)), `the runtimes are ${RUNTIMES.join(" and ")}; use --runtime crun or --runtime runc`],
];

function sameList(a: unknown[], b: readonly string[]): boolean {
  return a.length === b.length && b.every((x) => a.includes(x));
}

function truthy(v: unknown): boolean {
  return v !== undefined && v !== null && v !== false && v !== 0 && v !== "";
}

function nonEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return truthy(v);
}

function nonDefaultMode(v: unknown): boolean {
  return typeof v === "string" && v !== "" && v !== "private";
}

function unsupported(field: string, instead: string): HyperlabError {
  return new HyperlabError("NOT_SUPPORTED", `${field} is not supported by hyperlab: ${instead}`, { field });
}

/** A string-or-list field (Docker accepts both for Cmd and Entrypoint). */
function argv(v: string[] | string | null | undefined): string[] | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === "string" ? ["/bin/sh", "-c", v] : v;
}

/** Docker's per-network endpoint settings (NetworkingConfig.EndpointsConfig) of one network. */
interface EndpointSettings {
  Aliases?: string[] | null;
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] | null } | null;
  Links?: string[] | null;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
  [key: string]: unknown;
}

/**
 * The aliases and fixed address asked for the container's network
 * (--network-alias, --ip). A container joins one network here: settings for
 * another network, and what hyperlab does not do (IPv6, MAC addresses,
 * links, driver options), are refused naming the field.
 */
function endpointOptions(config: DockerCreateBody["NetworkingConfig"], mode: string, network: string): Pick<CreateOptions, "aliases" | "ipAddress"> {
  const entries = Object.entries(config?.EndpointsConfig ?? {}) as Array<[string, EndpointSettings | null]>;
  if (entries.length > 1) {
    throw unsupported("NetworkingConfig.EndpointsConfig", `a container joins one network in hyperlab (asked: ${entries.map(([n]) => n).join(", ")}); give one --network`);
  }
  if (!entries.length) return {};
  const [name, e] = entries[0]!;
  if (name !== mode && name !== network) {
    throw unsupported("NetworkingConfig.EndpointsConfig", `settings for network ${name} while the container joins ${network}; a container joins one network in hyperlab`);
  }
  const field = (f: string) => `NetworkingConfig.EndpointsConfig.${name}.${f}`;
  if (nonEmpty(e?.IPAMConfig?.IPv6Address)) throw unsupported(field("IPAMConfig.IPv6Address"), "the guest's kernel has no IPv6; drop --ip6");
  if (nonEmpty(e?.IPAMConfig?.LinkLocalIPs)) throw unsupported(field("IPAMConfig.LinkLocalIPs"), "drop --link-local-ip");
  if (nonEmpty(e?.Links)) throw unsupported(field("Links"), "links are not supported; put the containers on one user network and use their names");
  if (nonEmpty(e?.MacAddress)) throw unsupported(field("MacAddress"), "MAC addresses are chosen by the guest's kernel; drop --mac-address");
  if (nonEmpty(e?.DriverOpts)) throw unsupported(field("DriverOpts"), "drop --driver-opt");
  return {
    aliases: e?.Aliases?.length ? e.Aliases : undefined,
    ipAddress: e?.IPAMConfig?.IPv4Address || undefined,
  };
}

/**
 * The container's mounts from Docker's three fields: HostConfig.Binds (-v
 * strings), HostConfig.Mounts (--mount), and Config.Volumes (-v /path: an
 * anonymous volume each, unless another mount has that target).
 */
function dockerMounts(body: DockerCreateBody, host: Record<string, unknown>): MountRequest[] | undefined {
  const binds = host.Binds ?? [];
  const mounts = host.Mounts ?? [];
  if (!Array.isArray(binds) || binds.some((b) => typeof b !== "string")) throw new HyperlabError("INVALID_ARGUMENT", "HostConfig.Binds must be a list of strings (-v's form: NAME:/path[:ro] or /host/dir:/path[:ro])");
  if (!Array.isArray(mounts) || mounts.some((m) => typeof m !== "object" || m === null)) throw new HyperlabError("INVALID_ARGUMENT", "HostConfig.Mounts must be a list of mount objects ({Type, Source, Target, ReadOnly})");
  const out: MountRequest[] = [...(binds as string[]).map((b) => parseVolumeSpec(b)), ...(mounts as DockerMountSpec[]).map(mountOfDocker)];
  for (const target of Object.keys(body.Volumes ?? {})) {
    const clean = target.replace(/\/+$/, "");
    if (!out.some((m) => m.target.replace(/\/+$/, "") === clean)) out.push(parseVolumeSpec(target));
  }
  return out.length ? out : undefined;
}

/** The Go types of the create body's fields hyperlab reads (Config, HostConfig, an endpoint's settings). */
const CONFIG_TYPES: ReadonlyArray<readonly [field: string, type: GoType]> = [
  ["Hostname", "string"], ["Domainname", "string"], ["User", "string"], ["Image", "string"], ["WorkingDir", "string"], ["StopSignal", "string"], ["MacAddress", "string"],
  ["AttachStdin", "bool"], ["AttachStdout", "bool"], ["AttachStderr", "bool"], ["Tty", "bool"], ["OpenStdin", "bool"], ["StdinOnce", "bool"],
  ["Env", "[]string"], ["Cmd", "strslice"], ["Entrypoint", "strslice"], ["Labels", "map[string]string"], ["StopTimeout", "int64"],
  ["Volumes", "object"], ["ExposedPorts", "object"], ["Healthcheck", "object"], ["HostConfig", "object"], ["NetworkingConfig", "object"],
];

const HOST_TYPES: ReadonlyArray<readonly [field: string, type: GoType]> = [
  ["NetworkMode", "string"], ["Runtime", "string"], ["IpcMode", "string"], ["PidMode", "string"], ["UTSMode", "string"], ["UsernsMode", "string"], ["CgroupnsMode", "string"],
  ["AutoRemove", "bool"], ["Init", "bool"], ["PublishAllPorts", "bool"], ["Privileged", "bool"], ["ReadonlyRootfs", "bool"],
  ["Memory", "int64"], ["NanoCpus", "int64"], ["CpuQuota", "int64"], ["CpuPeriod", "int64"], ["CpuShares", "int64"], ["PidsLimit", "int64"], ["MemorySwap", "int64"], ["MemorySwappiness", "int64"],
  ["ConsoleSize", "[]int64"], ["Binds", "[]string"], ["CapAdd", "strslice"], ["CapDrop", "strslice"], ["SecurityOpt", "[]string"], ["MaskedPaths", "[]string"], ["ReadonlyPaths", "[]string"], ["Mounts", "[]object"], ["PortBindings", "object"], ["RestartPolicy", "object"], ["LogConfig", "object"],
];

const ENDPOINT_TYPES: ReadonlyArray<readonly [field: string, type: GoType]> = [["Aliases", "[]string"], ["IPAMConfig", "object"], ["MacAddress", "string"]];

/** Refuses a create body whose fields hyperlab reads have another JSON type than dockerd decodes (see GoType). */
function checkCreateTypes(body: DockerCreateBody): void {
  checkTypes(body, CONFIG_TYPES, "Config.");
  const host = body.HostConfig ?? {};
  checkTypes(host, HOST_TYPES, "HostConfig.");
  for (const [port, list] of Object.entries((host.PortBindings ?? {}) as Record<string, unknown>)) {
    if (!fits(list, "[]object")) throw new HyperlabError("INVALID_ARGUMENT", `json: cannot unmarshal ${jsonKind(list)} into Go value of type []nat.PortBinding (HostConfig.PortBindings '${port}')`, { field: "HostConfig.PortBindings" });
    for (const b of (list ?? []) as Array<Record<string, unknown>>) checkTypes(b, [["HostIp", "string"], ["HostPort", "string"]], `HostConfig.PortBindings.${port}.`);
  }
  for (const m of (host.Mounts ?? []) as Array<Record<string, unknown>>) {
    checkTypes(m, [["Type", "string"], ["Source", "string"], ["Target", "string"], ["ReadOnly", "bool"], ["VolumeOptions", "object"], ["BindOptions", "object"]], "HostConfig.Mounts.");
    const volume = m.VolumeOptions as Record<string, unknown> | null | undefined;
    if (volume) checkTypes(volume, [["NoCopy", "bool"], ["Labels", "map[string]string"], ["DriverConfig", "object"]], "HostConfig.Mounts.VolumeOptions.");
    const driver = volume?.DriverConfig as Record<string, unknown> | null | undefined;
    if (driver) checkTypes(driver, [["Name", "string"]], "HostConfig.Mounts.VolumeOptions.DriverConfig.");
    if (m.BindOptions) checkTypes(m.BindOptions as Record<string, unknown>, [["CreateMountpoint", "bool"]], "HostConfig.Mounts.BindOptions.");
  }
  if (host.RestartPolicy) checkTypes(host.RestartPolicy as Record<string, unknown>, [["Name", "string"], ["MaximumRetryCount", "int64"]], "HostConfig.RestartPolicy.");
  if (host.LogConfig) checkTypes(host.LogConfig as Record<string, unknown>, [["Type", "string"], ["Config", "map[string]string"]], "HostConfig.LogConfig.");
  if (body.Healthcheck) checkTypes(body.Healthcheck, [["Test", "[]string"]], "Config.Healthcheck.");
  const endpoints = body.NetworkingConfig?.EndpointsConfig;
  if (!fits(endpoints, "object")) throw new HyperlabError("INVALID_ARGUMENT", `json: cannot unmarshal ${jsonKind(endpoints)} into Go struct field NetworkingConfig.EndpointsConfig of type map[string]*network.EndpointSettings`, { field: "NetworkingConfig.EndpointsConfig" });
  for (const [name, e] of Object.entries(endpoints ?? {})) {
    if (!fits(e, "object")) throw new HyperlabError("INVALID_ARGUMENT", `json: cannot unmarshal ${jsonKind(e)} into Go value of type network.EndpointSettings (NetworkingConfig.EndpointsConfig '${name}')`, { field: "NetworkingConfig.EndpointsConfig" });
    if (!e) continue;
    const where = `NetworkingConfig.EndpointsConfig.${name}.`;
    checkTypes(e as Record<string, unknown>, ENDPOINT_TYPES, where);
    const ipam = (e as { IPAMConfig?: Record<string, unknown> | null }).IPAMConfig;
    if (ipam) checkTypes(ipam, [["IPv4Address", "string"], ["IPv6Address", "string"], ["LinkLocalIPs", "[]string"]], `${where}IPAMConfig.`);
  }
}

/**
 * The engine's create options for Docker's create body (name from the
 * query). `platform` must be empty or linux/386 (the guest is 32-bit x86).
 */
export function createOptions(body: DockerCreateBody, query: { name?: string | null; platform?: string | null }): { options: CreateOptions; meta: DockerMeta } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HyperlabError("INVALID_ARGUMENT", "the request body must be a JSON object (Docker's container config)");
  checkCreateTypes(body);
  if (!body.Image || typeof body.Image !== "string") throw new HyperlabError("INVALID_ARGUMENT", "Config.Image is required: name the image to run");
  const platform = query.platform ?? "";
  if (platform && !["linux/386", "linux/i386", "linux"].includes(platform)) {
    throw unsupported("platform", `the guest is 32-bit x86 (linux/386); '${platform}' cannot run here. Drop --platform or use linux/386`);
  }
  const host = body.HostConfig ?? {};
  for (const [field, asked, instead] of UNSUPPORTED_HOST) if (asked(host[field])) throw unsupported(`HostConfig.${field}`, instead);
  if (body.Healthcheck?.Test?.length && body.Healthcheck.Test[0] !== "NONE") throw unsupported("Config.Healthcheck", "health checks are not run; drop --health-cmd");
  if (body.Domainname) throw unsupported("Config.Domainname", "drop --domainname");
  if (body.MacAddress) throw unsupported("Config.MacAddress", "MAC addresses are chosen by the guest's kernel; drop --mac-address");

  const mode = String(host.NetworkMode ?? "default") || "default";
  // default, bridge, none, or a user network by name or id (the engine answers "network X not found").
  const network = mode === "default" ? "bridge" : mode;
  if (mode === "host") throw unsupported("HostConfig.NetworkMode", "--network host would share the VM's own network; use the default bridge, a user network or none");
  if (mode.startsWith("container:")) throw unsupported("HostConfig.NetworkMode", "sharing another container's network namespace (--network container:NAME) is not supported; put both containers on one user network and use their names");
  const endpoint = endpointOptions(body.NetworkingConfig, mode, network);

  const limits: NonNullable<CreateOptions["limits"]> = {};
  const memory = Number(host.Memory ?? 0);
  if (memory > 0) {
    if (memory < 6 * 1024 * 1024) throw new HyperlabError("INVALID_ARGUMENT", "Minimum memory limit allowed is 6MB");
    limits.memoryBytes = memory;
  }
  const nano = Number(host.NanoCpus ?? 0);
  const quota = Number(host.CpuQuota ?? 0);
  const period = Number(host.CpuPeriod ?? 0);
  if (nano > 0 && (quota > 0 || period > 0)) throw new HyperlabError("INVALID_ARGUMENT", "Conflicting options: Nano CPUs and CPU Period cannot both be set");
  if (nano > 0) {
    if (nano > 1e9) throw new HyperlabError("INVALID_ARGUMENT", `Range of CPUs is from 0.01 to 1.00, as there is only 1 CPU available`);
    limits.cpuQuotaUs = Math.max(1000, Math.round((nano / 1e9) * CPU_PERIOD_US));
    limits.cpuPeriodUs = CPU_PERIOD_US;
  } else if (quota > 0) {
    limits.cpuQuotaUs = quota;
    limits.cpuPeriodUs = period > 0 ? period : CPU_PERIOD_US;
  }
  const shares = Number(host.CpuShares ?? 0);
  if (shares > 0) limits.cpuWeight = cpuSharesToWeight(shares);
  const pids = host.PidsLimit;
  if (typeof pids === "number" && pids > 0) limits.pidsLimit = pids;

  // Docker's confinement: --cap-add/--cap-drop, --read-only, --security-opt (the engine checks the names).
  const list = (field: string): unknown[] | undefined => {
    const v = host[field];
    if (v === undefined || v === null) return undefined;
    // CapAdd and CapDrop are Docker's StrSlice: one string is a list of one (the types were checked above).
    return Array.isArray(v) ? v : [v];
  };
  const security = parseSecurityOpts(list("SecurityOpt") ?? []);
  const console = Array.isArray(host.ConsoleSize) ? (host.ConsoleSize as number[]) : [0, 0];
  const runtime = host.Runtime ? (String(host.Runtime) as Runtime) : undefined;
  const entrypoint = argv(body.Entrypoint);
  const options: CreateOptions = {
    image: body.Image,
    command: argv(body.Cmd),
    // `--entrypoint ""` clears the image's entrypoint.
    entrypoint: entrypoint && entrypoint.length === 1 && entrypoint[0] === "" ? [] : entrypoint,
    name: query.name || undefined,
    env: body.Env ?? undefined,
    hostname: body.Hostname || undefined,
    workingDir: body.WorkingDir || undefined,
    user: body.User || undefined,
    labels: body.Labels ?? undefined,
    stopSignal: body.StopSignal || undefined,
    limits,
    network,
    ...endpoint,
    runtime,
    autoRemove: host.AutoRemove === true,
    init: host.Init === true,
    interactive: body.OpenStdin === true,
    tty: body.Tty ? { rows: console[0] || 24, cols: console[1] || 80 } : undefined,
    // -p and -P (the docker CLI sends -p's ports in ExposedPorts too, as dockerd records them).
    ports: bindingsOfDocker(host.PortBindings as Parameters<typeof bindingsOfDocker>[0]),
    publishAll: host.PublishAllPorts === true,
    exposedPorts: exposedPorts(body.ExposedPorts, "Config.ExposedPorts"),
    mounts: dockerMounts(body, host),
    capAdd: list("CapAdd") as string[] | undefined,
    capDrop: list("CapDrop") as string[] | undefined,
    readOnly: host.ReadonlyRootfs === true,
    ...security,
  };
  return { options, meta: { config: body, hostConfig: host, networkMode: mode } };
}
