// One stack in the daemon: its containers live in the hypervisor's VMs (the
// VM named `default` unless --vm names another), each VM with its own kernel;
// containers travel with their VM through fork, snapshot and restore; a
// paused VM says so; and the daemon's thread answers while guests spin.
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, hyperlab, startDaemon } from "./daemon-process.ts";

/** One GET on the daemon's socket: status and wall ms. */
function get(socket: string, path: string): Promise<{ status: number; ms: number; body: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: "GET", timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer to GET ${path} within 5 s`)));
    req.on("error", reject);
    req.end();
  });
}

describe("the daemon's containers live in its VMs", () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;
  const hl = (...args: string[]) => hyperlab(socket, args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-vms-"));
    socket = join(dir, "hyperlab.sock");
    daemon = await startDaemon(socket, ["--warm-pool", "0"]);
    expect((await hl("vm", "create", "--name", "b")).code).toBe(0);
  });

  afterAll(async () => {
    await daemon?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs containers in the VM named `default`, which vm ls shows and the budget counts", async () => {
    const ls = await hl("vm", "ls");
    expect(ls.stdout).toMatch(/^default\s+[0-9a-f]{12}\s+running\s+default\s+128 MiB/m);
    const stats = await hl("stats");
    expect(stats.stdout).toMatch(/memory budget: 256 MiB of \d+ MiB reserved/);
  });

  // The next two tests start a dozen CLI processes each: minutes on a busy 2-core machine.
  it("keeps containers of two VMs apart: each VM its own kernel, a name may repeat across VMs", async () => {
    expect((await hl("run", "-d", "--name", "same", "busybox", "sleep", "600")).code).toBe(0);
    expect((await hl("run", "-d", "--vm", "b", "--name", "same", "busybox", "sleep", "600")).code).toBe(0);
    // Each VM's kernel: a boot id of its own, and a file written in one VM's guest is not in the other's.
    const bootA = await hl("exec", "same", "cat", "/proc/sys/kernel/random/boot_id");
    const bootB = await hl("exec", "--vm", "b", "same", "cat", "/proc/sys/kernel/random/boot_id");
    expect(bootA.stdout).toMatch(/^[0-9a-f-]{36}\n$/);
    expect(bootB.stdout).toMatch(/^[0-9a-f-]{36}\n$/);
    expect(bootA.stdout).not.toBe(bootB.stdout);
    expect((await hl("vm", "exec", "default", "sh", "-c", "echo only-in-default > /tmp/mark")).code).toBe(0);
    expect((await hl("vm", "exec", "b", "cat", "/tmp/mark")).code).not.toBe(0);

    const all = await hl("ps", "--all-vms");
    expect(all.stdout.split("\n")[0]).toMatch(/^VM\s+CONTAINER ID\s+IMAGE/);
    expect(all.stdout).toMatch(/^default\s+[0-9a-f]{12}\s+busybox:latest\s+.*\s+same$/m);
    expect(all.stdout).toMatch(/^b\s+[0-9a-f]{12}\s+busybox:latest\s+.*\s+same$/m);
    expect((await hl("ps", "--vm", "b")).stdout).toMatch(/\bsame$/m);

    // `hyperlab stats` shows each container under the VM that hosts it.
    const stats = (await hl("stats")).stdout;
    expect(stats).toMatch(/^default\s+running.*\n\s+└ same\s+running/m);
    expect(stats).toMatch(/^b\s+running.*\n\s+└ same\s+running/m);
    expect((await hl("rm", "-f", "same")).code).toBe(0);
    expect((await hl("ps", "--vm", "b")).stdout).toMatch(/\bsame$/m);
  }, 180_000);

  it("names the VMs there are when --vm names none", async () => {
    for (const args of [["ps", "--vm", "nope"], ["run", "--rm", "--vm", "nope", "busybox", "true"], ["exec", "--vm", "nope", "x", "true"]]) {
      const r = await hl(...args);
      expect(r.code, args.join(" ")).toBe(125);
      expect(r.stderr).toContain("no VM named or with id 'nope' (there are: default, b");
    }
  });

  it("forks a VM with its running container: the copy lists it running and can exec into it", async () => {
    expect((await hl("run", "-d", "--vm", "b", "--name", "svc", "busybox", "sh", "-c", "echo hello from svc; exec sleep 600")).code).toBe(0);
    const fork = await hl("vm", "fork", "b");
    expect(fork).toMatchObject({ code: 0, stdout: "b-fork-1\n" });
    expect((await hl("ps", "--vm", "b-fork-1")).stdout).toMatch(/Up .*\s+svc$/m);
    const exec = await hl("exec", "--vm", "b-fork-1", "svc", "sh", "-c", "echo $$; ps -o comm | grep -c sleep");
    expect(exec).toMatchObject({ code: 0 });
    expect(exec.stdout).toMatch(/^\d+\n1\n$/);
    expect((await hl("logs", "--vm", "b-fork-1", "svc")).stdout).toBe("hello from svc\n");
    // Its exit is followed in the copy as in the original.
    expect((await hl("kill", "--vm", "b-fork-1", "svc")).code).toBe(0);
    expect((await hl("ps", "-a", "--vm", "b-fork-1")).stdout).toMatch(/Exited \(137\) .*svc$/m);
    expect((await hl("ps", "--vm", "b")).stdout).toMatch(/Up .*\s+svc$/m);
    const rm = await hl("vm", "rm", "b-fork-1");
    expect(rm.stdout).toBe("b-fork-1 (with its containers: svc, same)\n");
  }, 180_000);

  it("restores a VM's containers from its snapshot", async () => {
    const file = join(dir, "b.snap");
    expect((await hl("vm", "snapshot", "b", file)).code).toBe(0);
    expect((await hl("vm", "restore", file, "--name", "b2")).stdout).toBe("b2\n");
    expect((await hl("ps", "--vm", "b2")).stdout).toMatch(/Up .*\s+svc$/m);
    expect((await hl("exec", "--vm", "b2", "svc", "true")).code).toBe(0);
    expect((await hl("vm", "rm", "b2")).code).toBe(0);
  });

  it("answers a paused VM's container requests with its state", async () => {
    expect((await hl("vm", "pause", "b")).code).toBe(0);
    const exec = await hl("exec", "--vm", "b", "svc", "true");
    expect(exec.code).toBe(125);
    expect(exec.stderr).toContain("cannot reach the containers of VM b: it is paused; resume it with 'hyperlab vm resume b' [VM_INVALID_STATE]");
    // Listing reads the host's records: a paused VM's containers still show.
    expect((await hl("ps", "--vm", "b")).stdout).toMatch(/\bsvc$/m);
    expect((await hl("vm", "resume", "b")).code).toBe(0);
    expect((await hl("exec", "--vm", "b", "svc", "true")).code).toBe(0);
  });

  it("answers the API while a container spins in each of two VMs", async () => {
    expect((await hl("run", "-d", "--name", "spin", "busybox", "sh", "-c", "while :; do :; done")).code).toBe(0);
    expect((await hl("run", "-d", "--vm", "b", "--name", "spin", "busybox", "sh", "-c", "while :; do :; done")).code).toBe(0);
    // No emulator runs on the daemon's thread: each request is answered (5 s limit each), however busy the guests are.
    for (let i = 0; i < 20; i++) {
      expect((await get(socket, "/v1/version")).status).toBe(200);
      const list = await get(socket, "/v1/containers?allVms=1");
      expect(list.status).toBe(200);
      expect((JSON.parse(list.body) as Array<{ name: string }>).filter((c) => c.name === "spin")).toHaveLength(2);
    }
    expect((await hl("rm", "-f", "spin")).code).toBe(0);
    expect((await hl("rm", "-f", "--vm", "b", "spin")).code).toBe(0);
  });
});
