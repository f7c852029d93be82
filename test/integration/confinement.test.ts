// Docker's default confinement, proven from inside containers with crun and
// with runc: through the real docker CLI and through `hyperlab run`, against
// one daemon. Each run prints what the kernel says (its status line, a
// syscall's error), and the tests read that.
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

const bin = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));

/**
 * What a container tries: each line `name=exit status`, the kernel's words on
 * stderr (2>&1). `unshare -U` makes a user namespace, which the kernel lets
 * anyone do: only seccomp refuses it.
 */
const PROBE = [
  `grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status`,
  `ip link add hl0 type bridge 2>&1; echo ip=$?`,
  `mount -t tmpfs t /tmp 2>&1; echo mount=$?`,
  `unshare -U true 2>&1; echo unshare=$?`,
  `touch /dev/shm/f && chown 1 /dev/shm/f 2>&1; echo chown=$?`,
  `touch /probe 2>&1; echo touch=$?`,
  `echo shm=$(echo x > /dev/shm/g && cat /dev/shm/g)`,
  `stat -c '%n %F %t:%T' /proc/keys /proc/timer_list`,
  `echo firmware=$(ls -A /sys/firmware | wc -l)`,
  `grep -E ' /proc/(sys|bus|irq) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1`,
  // The guest's real-time clock (c 254:0): CAP_MKNOD makes the node, the device cgroup refuses to open it.
  `mknod /tmp/rtc c 254 0 2>&1 && (exec 3</tmp/rtc) 2>&1; echo rtc=$?`,
].join("; ");

/** The probe's output as name → value (`Name:\tvalue` and `name=value` lines) and the other lines. */
function parse(out: string): { v: Record<string, string>; text: string } {
  const v: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^(\w+):\s+(\S+)$/.exec(line) ?? /^(\w+)=(.*)$/.exec(line);
    if (m) v[m[1]!] = m[2]!;
  }
  return { v, text: out };
}

// One daemon (one VM) for the whole file.
let lab: DockerLab;
const docker = (...args: string[]) => lab.docker(args);
beforeAll(async () => {
  lab = await dockerLab();
}, 120_000);
afterAll(async () => {
  await lab?.close();
});

describe.each(["crun", "runc"])("Docker's default confinement with %s", (runtime) => {
  it("by default: dockerd's capabilities only, its seccomp filter, masked and read-only /proc and /sys paths", async () => {
    const r = await docker("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", PROBE);
    expect(r.code).toBe(0);
    const { v, text } = parse(r.stdout);
    // The reference dockerd's busybox shows the same mask: 14 capabilities.
    expect(v).toMatchObject({ CapEff: "00000000a80425fb", CapBnd: "00000000a80425fb", NoNewPrivs: "0", Seccomp: "2" });
    // NET_ADMIN is not among them: no interface can be made.
    expect(v.ip).not.toBe("0");
    expect(text).toContain("ip: RTNETLINK answers: Operation not permitted");
    // Neither SYS_ADMIN: mount is refused.
    expect(v.mount).toBe("1");
    expect(text).toMatch(/mount: permission denied/);
    // The default profile blocks unshare: EPERM (the unconfined run below makes the same namespace).
    expect(v.unshare).toBe("1");
    expect(text).toContain("unshare: unshare(0x10000000): Operation not permitted");
    expect(v).toMatchObject({ chown: "0", touch: "0", shm: "x", firmware: "0" });
    // Masked: /dev/null over them.
    expect(text).toContain("/proc/keys character special file 1:3");
    expect(text).toContain("/proc/timer_list character special file 1:3");
    expect(text).toMatch(/^\/proc\/sys ro$/m);
    expect(text).toMatch(/^\/proc\/bus ro$/m);
    expect(v.rtc).toBe("1");
    expect(text).toContain("can't open /tmp/rtc: Operation not permitted");
  });

  it("--cap-drop, --cap-add, --read-only, no-new-privileges and seccomp=unconfined each change what they name", async () => {
    const r = await docker(
      "run", "--rm", "--runtime", runtime,
      "--cap-drop", "chown", "--cap-add", "NET_ADMIN", "--read-only",
      "--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined",
      "busybox", "sh", "-c", PROBE,
    );
    expect(r.code).toBe(0);
    const { v, text } = parse(r.stdout);
    // a80425fb without CHOWN (bit 0), with NET_ADMIN (bit 12).
    expect(v).toMatchObject({ CapEff: "00000000a80435fa", NoNewPrivs: "1", Seccomp: "0" });
    expect(v).toMatchObject({ ip: "0", unshare: "0", shm: "x" });
    expect(v.chown).toBe("1");
    expect(text).toContain("chown: /dev/shm/f: Operation not permitted");
    expect(v.touch).toBe("1");
    expect(text).toContain("touch: /probe: Read-only file system");
    // Still no SYS_ADMIN (the kernel refuses now, not seccomp), and the paths stay masked.
    expect(v.mount).not.toBe("0");
    expect(text).toMatch(/mount: permission denied/);
    expect(text).toContain("/proc/keys character special file 1:3");
  });

  it("--cap-drop ALL leaves no capability; --cap-add ALL every one but those dropped", async () => {
    const none = await docker("run", "--rm", "--runtime", runtime, "--cap-drop", "ALL", "busybox", "sh", "-c", "grep CapEff /proc/self/status; chown 1 /tmp 2>&1");
    expect(none.stdout).toBe("CapEff:\t0000000000000000\nchown: /tmp: Operation not permitted\n");
    const all = await docker("run", "--rm", "--runtime", runtime, "--cap-add", "ALL", "--cap-drop", "SYS_ADMIN", "busybox", "grep", "CapEff", "/proc/self/status");
    // Linux 6.1's 41 capabilities (bits 0-40) but SYS_ADMIN (bit 21).
    expect(all.stdout).toBe("CapEff:\t000001ffffdfffff\n");
  });

  it("exec runs with the container's confinement", async () => {
    const run = await docker("run", "-d", "--runtime", runtime, "--security-opt", "no-new-privileges:true", "--cap-drop", "KILL", "busybox", "sleep", "300");
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    const r = await docker("exec", id, "sh", "-c", PROBE);
    const { v } = parse(r.stdout);
    expect(v).toMatchObject({ CapEff: "00000000a80425db", NoNewPrivs: "1", Seccomp: "2", mount: "1", unshare: "1" });
    expect((await docker("rm", "-f", id)).code).toBe(0);
  });
});

describe("confinement through the docker CLI and hyperlab run: profiles, inspect, refusals", () => {
  /** `hyperlab ARGS` against the lab's daemon. */
  const hyperlab = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [bin, ...args], { timeout: 120_000, env: { ...process.env, HYPERLAB_SOCKET: lab.socket } }, (err, stdout, stderr) => {
        const code = err ? (err as { code?: number }).code : 0;
        resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
      });
    });
  let profile: string;

  beforeAll(async () => {
    // Allows everything but mkdir: the docker CLI (and hyperlab's) read the file and send the profile.
    profile = join(lab.dir, "no-mkdir.json");
    await writeFile(profile, JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }] }));
  });

  it("applies a profile from a file: its blocked syscall returns EPERM, and what Docker's default blocks runs", async () => {
    const script = "mkdir /made 2>&1; echo mkdir=$?; unshare -U true; echo unshare=$?";
    for (const runtime of ["crun", "runc"]) {
      const r = await docker("run", "--rm", "--runtime", runtime, "--security-opt", `seccomp=${profile}`, "busybox", "sh", "-c", script);
      expect(r.stdout).toBe("mkdir: can't create directory '/made': Operation not permitted\nmkdir=1\nunshare=0\n");
    }
    const h = await hyperlab("run", "--rm", "--security-opt", `seccomp=${profile}`, "busybox", "sh", "-c", script);
    expect(h.stdout).toBe("mkdir: can't create directory '/made': Operation not permitted\nmkdir=1\nunshare=0\n");
  });

  it("hyperlab run takes Docker's flags: --cap-add, --cap-drop, --read-only, --security-opt", async () => {
    const d = await hyperlab("run", "--rm", "busybox", "sh", "-c", PROBE);
    expect(parse(d.stdout).v).toMatchObject({ CapEff: "00000000a80425fb", NoNewPrivs: "0", Seccomp: "2", ip: "2", mount: "1", unshare: "1" });
    const r = await hyperlab(
      "run", "--rm", "--runtime", "runc", "--cap-drop", "ALL", "--cap-add", "net_admin", "--read-only",
      "--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", PROBE,
    );
    const { v, text } = parse(r.stdout);
    expect(v).toMatchObject({ CapEff: "0000000000001000", NoNewPrivs: "1", Seccomp: "0", ip: "0", unshare: "0", touch: "1", chown: "1" });
    expect(text).toContain("touch: /probe: Read-only file system");
  });

  it("docker inspect reports the confinement in HostConfig as dockerd does", async () => {
    const c = await docker("create", "--cap-add", "net_admin", "--cap-drop", "ALL", "--read-only", "--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "busybox", "true");
    expect(c.code).toBe(0);
    const id = c.stdout.trim();
    const r = await docker("inspect", id, "--format", "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}}");
    // The docker CLI sends the names normalised; dockerd keeps them as sent.
    expect(r.stdout).toBe('["CAP_NET_ADMIN"] ["ALL"] ["no-new-privileges","seccomp=unconfined"] true false\n');
    const paths = await docker("inspect", id, "--format", "{{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}}");
    expect(paths.stdout).toContain('"/proc/kcore","/proc/keys"');
    expect(paths.stdout).toContain('["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]');
    const plain = await docker("create", "busybox", "true");
    const p = await docker("inspect", plain.stdout.trim(), "--format", "{{json .HostConfig.CapAdd}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.ReadonlyRootfs}}");
    expect(p.stdout).toBe("null null false\n");
    await docker("rm", id, plain.stdout.trim());
  });

  it("refuses unknown capabilities, bad security options and --privileged, in Docker's words", async () => {
    const cap = await docker("run", "--rm", "--cap-add", "FOO", "busybox", "true");
    expect(cap.code).toBe(125);
    expect(cap.stderr).toContain('Error response from daemon: invalid CapAdd: unknown capability: "CAP_FOO"');
    const priv = await docker("run", "--rm", "--privileged", "busybox", "true");
    expect(priv.code).toBe(125);
    expect(priv.stderr).toContain("HostConfig.Privileged is not supported by hyperlab");
    const h = await hyperlab("run", "--rm", "--security-opt", "no-new-privileges=maybe", "busybox", "true");
    expect(h.code).toBe(125);
    expect(h.stderr).toContain('invalid --security-opt 2: "no-new-privileges=maybe"');
    const missing = await hyperlab("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", "busybox", "true");
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("opening seccomp profile (/nonexistent.json) failed");
    const hp = await hyperlab("run", "--rm", "--privileged", "busybox", "true");
    expect(hp.code).toBe(125);
    expect(hp.stderr).toContain("--privileged is not supported");
  });
});
