// Seccomp for containers: a profile in Docker's form (its default, or one a
// user gives with --security-opt seccomp=FILE) made into the OCI runtime
// config's `linux.seccomp` for the guest, as dockerd's setupSeccomp does for
// its own machine: entries for other architectures, for capabilities the
// container lacks or for newer kernels are left out. The guest is 32-bit x86
// on Linux 6.1, so the filter is for SCMP_ARCH_X86 and names the guest's
// kernel does not have are dropped (libseccomp would refuse or ignore them).
import { HyperlabError } from "../errors.ts";
import { I386_SYSCALLS } from "./seccomp-default.ts";

/** One argument test of a rule (OCI's LinuxSeccompArg). */
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

/** When a rule of a Docker profile applies: capabilities the container must have, architectures, a minimum kernel. */
export interface SeccompFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

/** One rule of a profile in Docker's form. */
export interface DockerSeccompRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  comment?: string;
  includes?: SeccompFilter;
  excludes?: SeccompFilter;
}

/** A seccomp profile in Docker's JSON form (moby/profiles/seccomp). */
export interface DockerSeccompProfile {
  defaultAction?: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures: string[] | null }>;
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: DockerSeccompRule[] | null;
}

/** The OCI runtime config's `linux.seccomp`. */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls: Array<{ names: string[]; action: string; errnoRet?: number; args?: SeccompArg[] }>;
}

/** The guest's architecture in Docker's words (Go's 386 is libseccomp's "x86") and as libseccomp names it. */
const GUEST_ARCH = "x86";
const GUEST_SCMP_ARCH = "SCMP_ARCH_X86";
/** The guest's kernel (guest-images/kernel: Linux 6.1), for rules with minKernel. */
export const GUEST_KERNEL: readonly [number, number] = [6, 1];

const KNOWN = new Set(I386_SYSCALLS);

function kernelAtLeast(v: string): boolean {
  const m = /^(\d+)\.(\d+)$/.exec(v);
  if (!m) throw new HyperlabError("INVALID_ARGUMENT", `Decoding seccomp profile failed: invalid kernel version: "${v}", expected "<kernel>.<major>"`);
  const [k, major] = [Number(m[1]), Number(m[2])];
  return GUEST_KERNEL[0] > k || (GUEST_KERNEL[0] === k && GUEST_KERNEL[1] >= major);
}

/** Whether a rule applies to a container with `caps` (its bounding set) in the guest. */
function applies(rule: DockerSeccompRule, caps: ReadonlySet<string>): boolean {
  const ex = rule.excludes;
  if (ex?.arches?.includes(GUEST_ARCH)) return false;
  if (ex?.caps?.some((c) => caps.has(c))) return false;
  if (ex?.minKernel && kernelAtLeast(ex.minKernel)) return false;
  const inc = rule.includes;
  if (inc?.arches?.length && !inc.arches.includes(GUEST_ARCH)) return false;
  if (inc?.caps?.length && !inc.caps.every((c) => caps.has(c))) return false;
  if (inc?.minKernel && !kernelAtLeast(inc.minKernel)) return false;
  return true;
}

/**
 * The OCI seccomp filter of `profile` for a container whose bounding set is
 * `capabilities`; undefined when the profile confines nothing (no default
 * action and no rules: Docker runs such a container unconfined).
 */
export function ociSeccomp(profile: DockerSeccompProfile, capabilities: readonly string[]): OciSeccomp | undefined {
  if (!profile.defaultAction && !profile.syscalls?.length) return undefined;
  if (profile.architectures?.length && profile.archMap?.length) {
    throw new HyperlabError("INVALID_ARGUMENT", "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'");
  }
  if (!profile.defaultAction) throw new HyperlabError("INVALID_ARGUMENT", "the seccomp profile has rules and no defaultAction: say what other syscalls get (SCMP_ACT_ERRNO in Docker's default)");
  const caps = new Set(capabilities);
  const syscalls: OciSeccomp["syscalls"] = [];
  for (const rule of profile.syscalls ?? []) {
    if (rule.name && rule.names?.length) throw new HyperlabError("INVALID_ARGUMENT", "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'");
    if (!applies(rule, caps)) continue;
    const names = (rule.name ? [rule.name] : (rule.names ?? [])).filter((n) => KNOWN.has(n));
    if (!names.length) continue;
    syscalls.push({
      names,
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args?.length ? { args: rule.args } : {}),
    });
  }
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    // A profile's architectures are other machines' (x86_64 and its sub-architectures): the guest runs x86 alone.
    architectures: [GUEST_SCMP_ARCH],
    ...(profile.flags?.length ? { flags: profile.flags } : {}),
    ...(profile.listenerPath ? { listenerPath: profile.listenerPath, listenerMetadata: profile.listenerMetadata } : {}),
    syscalls,
  };
}

/**
 * A profile given as JSON text (docker's --security-opt seccomp=FILE sends the
 * file's contents), checked for shape; INVALID_ARGUMENT in Docker's words.
 */
export function parseSeccompProfile(text: string): DockerSeccompProfile {
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `Decoding seccomp profile failed: ${(err as Error).message}`);
  }
  const bad = (why: string) => new HyperlabError("INVALID_ARGUMENT", `Decoding seccomp profile failed: ${why}`);
  if (typeof p !== "object" || p === null || Array.isArray(p)) throw bad("the profile must be a JSON object ({\"defaultAction\": …, \"syscalls\": […]})");
  const o = p as DockerSeccompProfile;
  if (o.defaultAction !== undefined && typeof o.defaultAction !== "string") throw bad("defaultAction must be a string such as SCMP_ACT_ERRNO");
  if (o.syscalls !== undefined && o.syscalls !== null && !Array.isArray(o.syscalls)) throw bad("syscalls must be a list of rules");
  for (const [i, r] of (o.syscalls ?? []).entries()) {
    if (typeof r !== "object" || r === null) throw bad(`syscalls[${i}] must be an object`);
    if (typeof r.action !== "string") throw bad(`syscalls[${i}].action must be a string such as SCMP_ACT_ALLOW`);
    if (r.names !== undefined && r.names !== null && (!Array.isArray(r.names) || r.names.some((n) => typeof n !== "string"))) throw bad(`syscalls[${i}].names must be a list of syscall names`);
  }
  return o;
}
