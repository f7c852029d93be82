// Docker's default confinement of a container, and the ways to change it that
// Docker has: --cap-add/--cap-drop, --read-only and --security-opt
// (no-new-privileges, seccomp). What is applied: the capability set below
// (everything else dropped), Docker's default seccomp profile (seccomp.ts),
// the masked and read-only paths of /proc and /sys, as dockerd sets them.
import { HyperlabError } from "../errors.ts";
import { DOCKER_DEFAULT_SECCOMP } from "./seccomp-default.ts";
import { type DockerSeccompProfile, type OciSeccomp, ociSeccomp, parseSeccompProfile } from "./seccomp.ts";

/** Every capability of the guest's kernel (Linux 6.1), in the kernel's order (bit 0 first). */
export const ALL_CAPABILITIES = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
  "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
  "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
] as const;

/** The capabilities a container's root keeps by default: dockerd's default set (`CapEff: a80425fb`). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
  "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/** Paths of /proc and /sys hidden from a container (an empty file or directory over them), as dockerd's default list. */
export const MASKED_PATHS: readonly string[] = [
  "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/sched_debug",
  "/proc/scsi", "/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
];

/** Paths of /proc a container sees read-only, as dockerd's default list. */
export const READONLY_PATHS: readonly string[] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/**
 * The device cgroup's rules (dockerd's default): no device may be opened
 * except null, zero, urandom, random, tty and console (the runtimes add the
 * other standard ones, full, ptmx and the terminals, and allow making nodes);
 * a device node a layer carries or a container makes with CAP_MKNOD opens to
 * "Operation not permitted".
 */
export const DEVICE_RULES: ReadonlyArray<{ allow: boolean; type?: "c" | "b"; major?: number; minor?: number; access: string }> = [
  { allow: false, access: "rwm" },
  ...([[1, 5], [1, 3], [1, 9], [1, 8], [5, 0], [5, 1]] as const).map(([major, minor]) => ({ allow: true, type: "c" as const, major, minor, access: "rwm" })),
  { allow: false, type: "c", major: 10, minor: 229, access: "rwm" },
];

/** How a container's confinement differs from Docker's default (what create keeps; all absent: the default). */
export interface Confinement {
  /** capabilities added to the default set, normalised (CAP_ prefix, upper case; `ALL`: every one) */
  capAdd?: string[];
  /** capabilities dropped from it, normalised (`ALL`: every one, then capAdd's added) */
  capDrop?: string[];
  /** the root filesystem read-only (docker --read-only) */
  readOnly?: boolean;
  /** the process cannot gain privileges through setuid files or file capabilities (no-new-privileges) */
  noNewPrivileges?: boolean;
  /** `unconfined`, or a profile in Docker's form; absent: Docker's default profile */
  seccomp?: "unconfined" | DockerSeccompProfile;
}

/** What the OCI config says of the container's confinement (see oci-spec.ts). */
export interface AppliedConfinement {
  capabilities: string[];
  noNewPrivileges: boolean;
  readonlyRootfs: boolean;
  seccomp?: OciSeccomp;
  maskedPaths: readonly string[];
  readonlyPaths: readonly string[];
}

const KNOWN_CAPS = new Set<string>(ALL_CAPABILITIES);

/**
 * `caps` as Docker normalises --cap-add and --cap-drop: upper case, a CAP_
 * prefix added, `ALL` kept; an unknown name is refused in dockerd's words
 * (`field`: CapAdd or CapDrop).
 */
export function normalizeCapabilities(caps: readonly unknown[], field: "CapAdd" | "CapDrop"): string[] {
  return caps.map((raw) => {
    if (typeof raw !== "string") throw new HyperlabError("INVALID_ARGUMENT", `invalid ${field}: capabilities are names such as NET_ADMIN, got ${JSON.stringify(raw)}`);
    const c = raw.toUpperCase();
    if (c === "ALL") return c;
    const name = c.startsWith("CAP_") ? c : `CAP_${c}`;
    if (!KNOWN_CAPS.has(name)) throw new HyperlabError("INVALID_ARGUMENT", `invalid ${field}: unknown capability: "${name}"`);
    return name;
  });
}

/** The capabilities a container gets: Docker's default set with `add` added and `drop` dropped (dockerd's TweakCapabilities). */
export function capabilitiesOf(add: readonly string[] = [], drop: readonly string[] = []): string[] {
  if (add.includes("ALL")) return ALL_CAPABILITIES.filter((c) => !drop.includes(c));
  if (drop.includes("ALL")) return [...new Set(add)];
  return [...new Set([...DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c)), ...add])];
}

/**
 * Docker's --security-opt values as a confinement: `no-new-privileges`
 * (`=true|false`, or `:` for `=`), `seccomp=unconfined|default|PROFILE_JSON`
 * (the docker CLI sends a file's contents, and so does hyperlab's: with
 * `readFile`, a value that is not JSON is a file to read).
 * `apparmor=unconfined` and `label=disable` ask for nothing the guest has (it
 * runs no LSM) and pass; other AppArmor and SELinux options are refused, as
 * is anything else, in dockerd's words.
 */
export function parseSecurityOpts(opts: readonly unknown[], readFile?: (path: string) => string): Pick<Confinement, "noNewPrivileges" | "seccomp"> {
  const out: Pick<Confinement, "noNewPrivileges" | "seccomp"> = {};
  for (const opt of opts) {
    if (typeof opt !== "string") throw new HyperlabError("INVALID_ARGUMENT", `invalid --security-opt: ${JSON.stringify(opt)} is not a string`);
    if (opt === "no-new-privileges") {
      out.noNewPrivileges = true;
      continue;
    }
    if (opt === "disable") continue;
    const sep = opt.includes("=") ? "=" : opt.includes(":") ? ":" : undefined;
    if (!sep) throw new HyperlabError("INVALID_ARGUMENT", `invalid --security-opt 1: "${opt}"`);
    const key = opt.slice(0, opt.indexOf(sep));
    const value = opt.slice(opt.indexOf(sep) + 1);
    switch (key) {
      case "no-new-privileges": {
        const b = parseBool(value);
        if (b === undefined) throw new HyperlabError("INVALID_ARGUMENT", `invalid --security-opt 2: "${opt}"`);
        out.noNewPrivileges = b;
        break;
      }
      case "seccomp":
        if (value === "unconfined") out.seccomp = "unconfined";
        else if (value === "default" || value === "builtin") delete out.seccomp;
        else if (readFile && !value.trimStart().startsWith("{")) out.seccomp = parseSeccompProfile(readFile(value));
        else out.seccomp = parseSeccompProfile(value);
        break;
      case "apparmor":
        if (value !== "unconfined") throw new HyperlabError("NOT_SUPPORTED", `--security-opt ${opt}: the guest runs no AppArmor; drop it (apparmor=unconfined is accepted)`);
        break;
      case "label":
        if (value !== "disable") throw new HyperlabError("NOT_SUPPORTED", `--security-opt ${opt}: the guest runs no SELinux; drop it (label=disable is accepted)`);
        break;
      default:
        throw new HyperlabError("INVALID_ARGUMENT", `invalid --security-opt 2: "${opt}"`);
    }
  }
  return out;
}

/** Go's strconv.ParseBool, as dockerd reads no-new-privileges=VALUE. */
function parseBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

/** The confinement the OCI config applies for `c` (absent: Docker's default). */
export function applyConfinement(c: Confinement = {}): AppliedConfinement {
  const capabilities = capabilitiesOf(c.capAdd, c.capDrop);
  return {
    capabilities,
    noNewPrivileges: c.noNewPrivileges === true,
    readonlyRootfs: c.readOnly === true,
    seccomp: c.seccomp === "unconfined" ? undefined : ociSeccomp(c.seccomp ?? DOCKER_DEFAULT_SECCOMP, capabilities),
    maskedPaths: MASKED_PATHS,
    readonlyPaths: READONLY_PATHS,
  };
}

/**
 * The confinement asked for in create's options, checked: capabilities
 * normalised (unknown ones refused), a seccomp profile checked for shape and
 * made once for the guest so that a bad one fails at create, not at start.
 */
export function confinementOf(o: { capAdd?: unknown[]; capDrop?: unknown[]; readOnly?: boolean; noNewPrivileges?: boolean; seccomp?: "unconfined" | DockerSeccompProfile }): Confinement | undefined {
  const c: Confinement = {};
  if (o.capAdd?.length) c.capAdd = normalizeCapabilities(o.capAdd, "CapAdd");
  if (o.capDrop?.length) c.capDrop = normalizeCapabilities(o.capDrop, "CapDrop");
  if (o.readOnly) c.readOnly = true;
  if (o.noNewPrivileges) c.noNewPrivileges = true;
  if (o.seccomp !== undefined) {
    c.seccomp = o.seccomp === "unconfined" ? "unconfined" : parseSeccompProfile(JSON.stringify(o.seccomp));
    if (c.seccomp !== "unconfined") ociSeccomp(c.seccomp, capabilitiesOf(c.capAdd, c.capDrop));
  }
  return Object.keys(c).length ? c : undefined;
}
