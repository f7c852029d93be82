// The OCI runtime configuration (config.json) of a container's bundle: what
// crun or runc reads to build the container. Namespaces and mounts are tables.
import type { Limits } from "./limits.ts";
import { type AppliedConfinement, DEVICE_RULES, applyConfinement } from "./confinement.ts";

/** What a bundle is made from. */
export interface BundleOptions {
  args: string[];
  env: string[];
  cwd: string;
  hostname: string;
  /** cgroup path relative to the cgroup2 root, e.g. /hyperlab/<id>/payload */
  cgroupsPath: string;
  limits: Limits;
  terminal: boolean;
  /** the user the process runs as (default root) */
  user?: { uid: number; gid: number; additionalGids?: number[] };
  /** a prestart hook that wires the network namespace (none: loopback only) */
  networkHook?: { path: string; args: string[] };
  /** files of the guest bind-mounted into the container (e.g. a user network's /etc/hosts) */
  binds?: Array<{ source: string; destination: string; readonly?: boolean }>;
  /** a file the runtime creates once the container's process has started (poststart hook) */
  startedMarker?: string;
  annotations?: Record<string, string>;
  /** capabilities, seccomp, no-new-privileges, read-only root, masked paths (default: Docker's default confinement) */
  confinement?: AppliedConfinement;
}

/** The namespaces every container gets: it sees its own processes, mounts, host name, IPC, network and cgroup root. */
export const NAMESPACES = ["pid", "mount", "uts", "ipc", "network", "cgroup"] as const;

/** The filesystems mounted into every container: [destination, type, source, options]. */
const MOUNTS: ReadonlyArray<readonly [string, string, string, string[]]> = [
  ["/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]],
  ["/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]],
  ["/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]],
  ["/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
  ["/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]],
  ["/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]],
  ["/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]],
];

/** Builds the config.json object for a bundle whose root filesystem is `rootfs/`. */
export function bundleConfig(o: BundleOptions): Record<string, unknown> {
  const resources: Record<string, unknown> = { devices: DEVICE_RULES };
  if (o.limits.memoryBytes !== undefined) resources.memory = { limit: o.limits.memoryBytes };
  if (o.limits.cpuQuotaUs !== undefined) resources.cpu = { quota: o.limits.cpuQuotaUs, period: o.limits.cpuPeriodUs };
  if (o.limits.cpuWeight !== undefined) resources.unified = { "cpu.weight": String(o.limits.cpuWeight) };
  if (o.limits.pidsLimit !== undefined) resources.pids = { limit: o.limits.pidsLimit };
  const confine = o.confinement ?? applyConfinement();
  const caps = confine.capabilities;
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: o.terminal,
      user: o.user ?? { uid: 0, gid: 0 },
      args: o.args,
      env: o.env,
      cwd: o.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: confine.noNewPrivileges,
    },
    root: { path: "rootfs", readonly: confine.readonlyRootfs },
    hostname: o.hostname,
    mounts: [
      ...MOUNTS.map(([destination, type, source, options]) => ({ destination, type, source, options })),
      ...(o.binds ?? []).map(({ source, destination, readonly }) => ({ destination, type: "bind", source, options: ["rbind", "rprivate", ...(readonly ? ["ro"] : [])] })),
    ],
    hooks: {
      ...(o.networkHook ? { prestart: [o.networkHook] } : {}),
      // The hook drains the state the runtime writes to its stdin before it exits: crun 1.8 fails the
      // whole run ("writing to pipe: Broken pipe") when a hook is gone before that write. cat reads
      // it in a few calls; the shell's `read` took one read(2) per byte of the state (its annotations
      // can be 12 KB: 22 M emulated instructions per start).
      ...(o.startedMarker ? { poststart: [{ path: "/bin/sh", args: ["sh", "-c", `: > ${o.startedMarker}; exec cat > /dev/null`] }] } : {}),
    },
    annotations: o.annotations ?? {},
    linux: {
      namespaces: NAMESPACES.map((type) => ({ type })),
      cgroupsPath: o.cgroupsPath,
      resources,
      maskedPaths: confine.maskedPaths,
      readonlyPaths: confine.readonlyPaths,
      ...(confine.seccomp ? { seccomp: confine.seccomp } : {}),
    },
  };
}
