import { describe, expect, it } from "vitest";
import {
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  MASKED_PATHS,
  READONLY_PATHS,
  applyConfinement,
  capabilitiesOf,
  confinementOf,
  normalizeCapabilities,
  parseSecurityOpts,
} from "../../../src/containers/confinement.ts";
import { bundleConfig } from "../../../src/containers/oci-spec.ts";

/** The capability mask /proc/self/status shows for a set (CapEff). */
const mask = (caps: readonly string[]) => caps.reduce((m, c) => m | (1n << BigInt(ALL_CAPABILITIES.indexOf(c as (typeof ALL_CAPABILITIES)[number]))), 0n).toString(16);

describe("capabilities", () => {
  it("keeps dockerd's default set: CapEff a80425fb, as the reference dockerd's busybox shows", () => {
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(mask(DEFAULT_CAPABILITIES)).toBe("a80425fb");
    expect(ALL_CAPABILITIES).toHaveLength(41);
    expect(ALL_CAPABILITIES[21]).toBe("CAP_SYS_ADMIN");
  });

  it("normalises names as dockerd does and refuses unknown ones in its words", () => {
    expect(normalizeCapabilities(["net_admin", "CAP_SYS_TIME", "all"], "CapAdd")).toEqual(["CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]);
    expect(() => normalizeCapabilities(["FOO"], "CapAdd")).toThrow('invalid CapAdd: unknown capability: "CAP_FOO"');
    expect(() => normalizeCapabilities([3], "CapDrop")).toThrow("invalid CapDrop");
  });

  it("adds and drops as dockerd's TweakCapabilities: ALL added, ALL dropped, and single names", () => {
    expect(capabilitiesOf()).toEqual([...DEFAULT_CAPABILITIES]);
    expect(capabilitiesOf(["CAP_NET_ADMIN"], ["CAP_CHOWN"])).toEqual([...DEFAULT_CAPABILITIES.filter((c) => c !== "CAP_CHOWN"), "CAP_NET_ADMIN"]);
    expect(capabilitiesOf(["CAP_NET_ADMIN"], ["ALL"])).toEqual(["CAP_NET_ADMIN"]);
    expect(capabilitiesOf([], ["ALL"])).toEqual([]);
    expect(capabilitiesOf(["ALL"], ["CAP_SYS_ADMIN"])).toEqual(ALL_CAPABILITIES.filter((c) => c !== "CAP_SYS_ADMIN"));
  });
});

describe("--security-opt", () => {
  it("reads no-new-privileges in its three forms, and false", () => {
    expect(parseSecurityOpts(["no-new-privileges"])).toEqual({ noNewPrivileges: true });
    expect(parseSecurityOpts(["no-new-privileges:true"])).toEqual({ noNewPrivileges: true });
    expect(parseSecurityOpts(["no-new-privileges=true", "no-new-privileges=false"])).toEqual({ noNewPrivileges: false });
  });

  it("reads seccomp=unconfined, a profile's JSON, and (for hyperlab's CLI) a profile's file", () => {
    expect(parseSecurityOpts(["seccomp=unconfined"])).toEqual({ seccomp: "unconfined" });
    expect(parseSecurityOpts(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'])).toEqual({ seccomp: { defaultAction: "SCMP_ACT_ALLOW" } });
    const files: string[] = [];
    const read = (p: string) => (files.push(p), '{"defaultAction":"SCMP_ACT_LOG"}');
    expect(parseSecurityOpts(["seccomp=/tmp/p.json"], read)).toEqual({ seccomp: { defaultAction: "SCMP_ACT_LOG" } });
    expect(files).toEqual(["/tmp/p.json"]);
  });

  it("refuses what dockerd refuses, in its words, and AppArmor or SELinux profiles the guest cannot apply", () => {
    expect(() => parseSecurityOpts(["bogus"])).toThrow('invalid --security-opt 1: "bogus"');
    expect(() => parseSecurityOpts(["bogus=1"])).toThrow('invalid --security-opt 2: "bogus=1"');
    expect(() => parseSecurityOpts(["no-new-privileges=maybe"])).toThrow('invalid --security-opt 2: "no-new-privileges=maybe"');
    expect(() => parseSecurityOpts(["seccomp=notjson"])).toThrow(/^Decoding seccomp profile failed: /);
    expect(() => parseSecurityOpts(["seccomp=[1]"])).toThrow("Decoding seccomp profile failed: the profile must be a JSON object");
    expect(() => parseSecurityOpts(["apparmor=docker-default"])).toThrow("the guest runs no AppArmor");
    expect(parseSecurityOpts(["apparmor=unconfined", "label=disable"])).toEqual({});
  });
});

describe("the OCI config's confinement", () => {
  const base = { args: ["true"], env: [], cwd: "/", hostname: "h", cgroupsPath: "/hyperlab/x/payload", limits: {}, terminal: false };
  type Spec = {
    process: { capabilities: Record<string, string[]>; noNewPrivileges: boolean };
    root: { readonly: boolean };
    linux: { maskedPaths: string[]; readonlyPaths: string[]; seccomp?: { defaultAction: string; architectures: string[]; syscalls: Array<{ names: string[]; action: string; args?: unknown[] }> } };
  };
  const spec = (o: Parameters<typeof confinementOf>[0]) => bundleConfig({ ...base, confinement: applyConfinement(confinementOf(o)) }) as unknown as Spec;
  const allowed = (s: Spec) => new Set(s.linux.seccomp!.syscalls.filter((r) => r.action === "SCMP_ACT_ALLOW" && !r.args).flatMap((r) => r.names));

  it("by default: Docker's capabilities in every set, its seccomp profile for x86, its masked and read-only paths, privileges may be gained", () => {
    const s = bundleConfig(base) as unknown as Spec;
    for (const set of ["bounding", "effective", "permitted"]) expect(s.process.capabilities[set]).toEqual([...DEFAULT_CAPABILITIES]);
    expect(s.process.noNewPrivileges).toBe(false);
    expect(s.root.readonly).toBe(false);
    expect(s.linux.maskedPaths).toEqual([...MASKED_PATHS]);
    expect(s.linux.maskedPaths).toEqual(expect.arrayContaining(["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/acpi", "/proc/scsi", "/sys/firmware"]));
    expect(s.linux.readonlyPaths).toEqual(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]);
    expect(s.linux.readonlyPaths).toEqual([...READONLY_PATHS]);
    // dockerd's device rules: everything denied, then null, zero, urandom, random, tty and console.
    const devices = (s as unknown as { linux: { resources: { devices: Array<{ allow: boolean; major?: number; minor?: number }> } } }).linux.resources.devices;
    expect(devices[0]).toEqual({ allow: false, access: "rwm" });
    expect(devices.filter((d) => d.allow).map((d) => `${d.major}:${d.minor}`)).toEqual(["1:5", "1:3", "1:9", "1:8", "5:0", "5:1"]);
    const sc = s.linux.seccomp!;
    expect(sc.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(sc.architectures).toEqual(["SCMP_ARCH_X86"]);
    const ok = allowed(s);
    // i386's own calls are allowed, other machines' are not named at all.
    for (const name of ["read", "write", "execve", "mmap2", "socketcall", "ipc", "_llseek", "modify_ldt", "chroot", "ptrace"]) expect(ok.has(name), name).toBe(true);
    for (const name of ["arch_prctl", "newfstatat", "set_tls", "riscv_flush_icache", "mount", "unshare", "setns", "reboot", "keyctl", "add_key"]) expect(ok.has(name), name).toBe(false);
    // Without CAP_SYS_ADMIN clone may not make namespaces, and clone3 is answered ENOSYS (38) so libc falls back to clone.
    expect(sc.syscalls.find((r) => r.names.includes("clone") && r.args)).toMatchObject({ args: [{ index: 0, value: 2114060288, op: "SCMP_CMP_MASKED_EQ" }] });
    expect(sc.syscalls.find((r) => r.names.includes("clone3"))).toMatchObject({ action: "SCMP_ACT_ERRNO", errnoRet: 38 });
  });

  it("follows the capabilities: --cap-add SYS_ADMIN allows mount and unshare, --cap-drop SYS_CHROOT forbids chroot", () => {
    const admin = spec({ capAdd: ["SYS_ADMIN"] });
    expect(admin.process.capabilities.bounding).toContain("CAP_SYS_ADMIN");
    expect(allowed(admin).has("mount")).toBe(true);
    expect(allowed(admin).has("unshare")).toBe(true);
    expect(admin.linux.seccomp!.syscalls.some((r) => r.names.includes("clone3") && r.action === "SCMP_ACT_ERRNO")).toBe(false);
    const noChroot = spec({ capDrop: ["sys_chroot"] });
    expect(noChroot.process.capabilities.effective).not.toContain("CAP_SYS_CHROOT");
    expect(allowed(noChroot).has("chroot")).toBe(false);
  });

  it("--read-only, no-new-privileges and seccomp=unconfined change only what they name", () => {
    const s = spec({ readOnly: true, noNewPrivileges: true, seccomp: "unconfined" });
    expect(s.root.readonly).toBe(true);
    expect(s.process.noNewPrivileges).toBe(true);
    expect(s.linux.seccomp).toBeUndefined();
    expect(s.process.capabilities.bounding).toEqual([...DEFAULT_CAPABILITIES]);
    expect(s.linux.maskedPaths).toEqual([...MASKED_PATHS]);
  });

  it("a custom profile is made for x86: its architectures replaced, names the guest lacks left out", () => {
    const s = spec({
      seccomp: {
        defaultAction: "SCMP_ACT_ALLOW",
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [
          { names: ["mkdir", "mkdirat", "newfstatat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 },
          { names: ["arch_prctl"], action: "SCMP_ACT_ERRNO", includes: { arches: ["amd64"] } },
          { names: ["ptrace"], action: "SCMP_ACT_ERRNO", excludes: { caps: ["CAP_SYS_PTRACE"] } },
          { names: ["io_uring_setup"], action: "SCMP_ACT_ERRNO", includes: { minKernel: "7.0" } },
        ],
      },
    });
    expect(s.linux.seccomp).toEqual({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86"],
      syscalls: [
        { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 },
        { names: ["ptrace"], action: "SCMP_ACT_ERRNO" },
      ],
    });
  });

  it("refuses a profile that cannot be applied at create, naming what is wrong", () => {
    expect(() => confinementOf({ seccomp: { syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] } })).toThrow("no defaultAction");
    expect(() => confinementOf({ seccomp: { defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86"], archMap: [{ architecture: "SCMP_ARCH_X86", subArchitectures: null }] } })).toThrow("both 'architectures' and 'archMap'");
    expect(() => confinementOf({ capDrop: ["NOPE"] })).toThrow('invalid CapDrop: unknown capability: "CAP_NOPE"');
    expect(confinementOf({})).toBeUndefined();
  });
});
