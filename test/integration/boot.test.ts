import { beforeAll, describe, expect, it } from "vitest";
import type { SerialShell } from "../../src/guest/serial-shell.ts";
import type { BootReport, Machine } from "../../src/hardware/machine.ts";
import { loadNodeImage } from "../../src/hardware/node.ts";
import { bootGuest } from "./guest.ts";

describe("the default guest, booted in Node", () => {
  let machine: Machine;
  let shell: SerialShell;
  let report: BootReport;

  beforeAll(async () => {
    ({ machine, shell, report } = await bootGuest());
  });

  it("runs the kernel the image manifest names", async () => {
    const { release } = await loadNodeImage();
    const r = await shell.exec("uname -r");
    expect(r).toEqual({ exitCode: 0, output: `${release}\n` });
    expect(release).toMatch(/^6\.1\.\d+$/);
  });

  it("reports boot phases that add up and count emulated instructions", () => {
    const { firmware, kernel, init } = report.phases;
    expect(machine.state).toBe("running");
    expect(report.instructions).toBeGreaterThan(1_000_000);
    expect(firmware.instructions + kernel.instructions + init.instructions).toBe(report.instructions);
    expect(kernel.instructions).toBeGreaterThan(0);
    expect(init.instructions).toBeGreaterThan(0);
  });

  it("lists every namespace type in /proc/self/ns", async () => {
    const r = await shell.exec("ls /proc/self/ns");
    const kinds = r.output.split(/\s+/).filter(Boolean);
    for (const ns of ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]) expect(kinds).toContain(ns);
  });

  it("has cgroup v2 with the cpu, memory, pids and io controllers", async () => {
    const mounts = await shell.exec("grep cgroup2 /proc/mounts");
    expect(mounts.output).toMatch(/^cgroup2 \/sys\/fs\/cgroup cgroup2 /m);
    const r = await shell.exec("cat /sys/fs/cgroup/cgroup.controllers");
    expect(r.output.trim().split(" ")).toEqual(expect.arrayContaining(["cpu", "memory", "pids", "io"]));
  });

  it("gives a new PID namespace its own PID 1", async () => {
    const r = await shell.exec("unshare --pid --fork --mount-proc ps -o pid,comm");
    expect(r.exitCode).toBe(0);
    const rows = r.output.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));
    expect(rows).toContainEqual(["1", "ps"]);
    expect(rows.length).toBe(1);
  });

  it("hides a tmpfs mounted in a new mount namespace from the host", async () => {
    const inside = await shell.exec(
      "mkdir -p /mnt/ns && unshare --mount sh -c 'mount -t tmpfs none /mnt/ns && echo secret > /mnt/ns/f && cat /mnt/ns/f'",
    );
    expect(inside).toEqual({ exitCode: 0, output: "secret\n" });
    const outside = await shell.exec("ls -A /mnt/ns; grep -c ' /mnt/ns ' /proc/mounts");
    expect(outside.output).toBe("0\n");
    expect(outside.exitCode).toBe(1);
  });

  it("passes stdout, stderr and the exit status of a command back", async () => {
    const r = await shell.exec("echo to-out; echo to-err >&2; exit 7");
    expect(r).toEqual({ exitCode: 7, output: "to-out\nto-err\n" });
  });

  it("has a root that pivot_root accepts (containers need it)", async () => {
    const r = await shell.exec(
      "mkdir -p /tmp/new && unshare --mount sh -c 'mount -t tmpfs none /tmp/new && mkdir /tmp/new/old && cd /tmp/new && pivot_root . old && echo pivoted'",
    );
    expect(r).toEqual({ exitCode: 0, output: "pivoted\n" });
  });
});
