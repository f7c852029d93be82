// Containers as users get them: in a hypervisor VM (its guest in a worker
// thread, restored from the boot snapshot), driven by the VM's engine through
// the worker, under crun and under runc.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContainerEngine, CreateOptions, Runtime } from "../../src/containers/engine.ts";
import { nodeImageStore } from "../../src/containers/node-store.ts";
import { VmContainers } from "../../src/containers/vm-containers.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import type { Vm } from "../../src/hypervisor/vm.ts";
import { errorOf } from "./guest.ts";


describe.each(["crun", "runc"] as Runtime[])("containers with %s", (runtime) => {
  let engine: ContainerEngine;
  let hypervisor: Hypervisor;
  let vm: Vm;

  /** Runs a container to completion; returns its exit code and output. */
  async function run(opts: Omit<CreateOptions, "runtime">): Promise<{ code: number; stdout: string; stderr: string; id: string }> {
    const { container, attachment } = await engine.run({ runtime, ...opts });
    const out = ["", ""];
    attachment.onOutput((s, d) => (out[s - 1] += new TextDecoder().decode(d)));
    const code = await attachment.exited;
    return { code, stdout: out[0]!, stderr: out[1]!, id: container.id };
  }
  const host = async (cmd: string) => (await vm.exec(["/bin/sh", "-c", cmd])).stdout;

  beforeAll(async () => {
    hypervisor = await Hypervisor.create({ spareWorkers: 0, warmPool: 0 });
    vm = await hypervisor.createVm({ name: `containers-${runtime}` });
    engine = new VmContainers(hypervisor, nodeImageStore()).engine(vm.name);
  });
  afterAll(async () => {
    await hypervisor?.close();
  });

  it("runs the command as PID 1 with the container's own host name", async () => {
    const r = await run({ image: "busybox", command: ["sh", "-c", "echo $$; hostname"], hostname: "box1", autoRemove: true });
    expect(r).toMatchObject({ code: 0, stdout: "1\nbox1\n" });
  });

  it("sees only its own processes", async () => {
    const r = await run({ image: "busybox", command: ["ps", "-o", "pid,comm"], autoRemove: true });
    expect(r.stdout.trim().split("\n").slice(1).map((l) => l.trim())).toEqual(["1 ps"]);
  });

  it("has a private mount table on an overlay root", async () => {
    const r = await run({ image: "busybox", command: ["cat", "/proc/self/mounts"], autoRemove: true });
    const inside = r.stdout.trim().split("\n").map((l) => l.split(" ")[1]);
    expect(r.stdout).toMatch(/^overlay \/ overlay /);
    const hostOnly = (await host("cut -d' ' -f2 /proc/self/mounts")).trim().split("\n").filter((m) => !["/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"].includes(m));
    expect(hostOnly).toContain("/run");
    for (const m of hostOnly) expect(inside).not.toContain(m);
  });

  it("has its own IPC, UTS, network and cgroup namespaces, and sees its own cgroup root", async () => {
    const kinds = ["ipc", "uts", "net", "cgroup", "pid", "mnt"];
    const inside = await run({ image: "busybox", command: ["sh", "-c", `for k in ${kinds.join(" ")}; do readlink /proc/self/ns/$k; done; cat /proc/self/cgroup`], autoRemove: true });
    const outside = await host(`for k in ${kinds.join(" ")}; do readlink /proc/self/ns/$k; done`);
    const inNs = inside.stdout.trim().split("\n");
    const outNs = outside.trim().split("\n");
    kinds.forEach((k, i) => expect(inNs[i], k).not.toBe(outNs[i]));
    expect(inNs[kinds.length]).toBe("0::/");
  });

  it("has only loopback with --network none, and eth0 on the bridge by default", async () => {
    // The runtime itself brings loopback up (no network hook runs for --network none).
    const none = await run({ image: "busybox", command: ["sh", "-c", "ip -o addr && ping -c 1 -W 2 127.0.0.1"], network: "none", autoRemove: true });
    expect(none.stdout).toMatch(/^1: lo /m);
    expect(none.stdout).toMatch(/1 packets received/);
    expect(none.stdout).not.toMatch(/eth0/);
    expect(none.stdout).toMatch(/inet 127\.0\.0\.1/);
    const bridged = await run({ image: "busybox", command: ["ip", "-o", "addr"], autoRemove: true });
    expect(bridged.stdout).toMatch(/eth0\s+inet 10\.88\.0\.\d+\/16/);
  });

  it("reaches another container on the bridge by address, but not from --network none", async () => {
    const { container: server, attachment } = await engine.run({ runtime, image: "busybox", command: ["cat"], interactive: true, name: `server-${runtime}` });
    const ip = server.ipAddress!;
    const ping = await run({ image: "busybox", command: ["ping", "-c", "1", "-W", "2", ip], autoRemove: true });
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/1 packets received/);
    const isolated = await run({ image: "busybox", command: ["ping", "-c", "1", "-W", "1", ip], network: "none", autoRemove: true });
    expect(isolated.code).not.toBe(0);
    await engine.remove(server.id, { force: true });
    await attachment.exited;
  });

  it("keeps a write inside one container out of the image and its siblings", async () => {
    const a = await run({ image: "busybox", command: ["sh", "-c", "echo mine > /etc/written; cat /etc/written"], autoRemove: true });
    expect(a.stdout).toBe("mine\n");
    const b = await run({ image: "busybox", command: ["cat", "/etc/written"], autoRemove: true });
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/No such file/);
  });

  it("runs two versions of the same language side by side (lua:5.1 and lua:5.4)", async () => {
    const [v51, v54] = await Promise.all([
      run({ image: "lua:5.1", command: ["lua", "-e", "print(_VERSION)"], autoRemove: true }),
      run({ image: "lua:5.4", command: ["lua", "-e", "print(_VERSION)"], autoRemove: true }),
    ]);
    expect(v51.stdout).toBe("Lua 5.1\n");
    expect(v54.stdout).toBe("Lua 5.4\n");
  });

  it("kills a container at its memory limit and reports OOMKilled with exit code 137", async () => {
    // dd's 32 MiB buffer, filled from /dev/zero, cannot fit under a 16 MiB limit: the kernel kills it (PID 1 here).
    const r = await run({ image: "busybox", command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1"], limits: { memoryBytes: 16 * 1024 ** 2 } });
    expect(r.code).toBe(137);
    expect(r.stderr).not.toMatch(/records out/);
    const info = engine.inspect(r.id) as { State: { OOMKilled: boolean; ExitCode: number } };
    expect(info.State).toMatchObject({ OOMKilled: true, ExitCode: 137 });
    await engine.remove(r.id);
  });

  it("refuses to fork past the pids limit", async () => {
    const r = await run({ image: "busybox", command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait; echo done"], limits: { pidsLimit: 4 }, autoRemove: true });
    expect(r.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
  });

  it("throttles a busy container under --cpus 0.2 (cpu.stat)", async () => {
    const r = await run({
      image: "busybox",
      command: ["sh", "-c", "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done; cat /sys/fs/cgroup/cpu.stat"],
      limits: { cpuQuotaUs: 20_000, cpuPeriodUs: 100_000 },
      autoRemove: true,
    });
    const throttled = Number(/^nr_throttled (\d+)/m.exec(r.stdout)?.[1]);
    expect(throttled).toBeGreaterThan(0);
  });

  it("reports memory, CPU and pids usage of a running container", async () => {
    const { container, attachment } = await engine.run({ runtime, image: "busybox", command: ["cat"], interactive: true, limits: { memoryBytes: 32 * 1024 ** 2, pidsLimit: 10 } });
    const s = await engine.stats(container.id);
    expect(s.memoryBytes).toBeGreaterThan(0);
    expect(s.memoryPeakBytes).toBeGreaterThanOrEqual(s.memoryBytes);
    expect(s.memoryLimitBytes).toBe(32 * 1024 ** 2);
    expect(s.pids).toBeGreaterThanOrEqual(1);
    expect(s.cpuUsageUs).toBeGreaterThan(0);
    await engine.stop(container.id, { timeoutS: 1 });
    expect(await attachment.exited).toBe(137);
    await engine.remove(container.id);
  });

  it("execs into a running container, and refuses to exec into a stopped one", async () => {
    const { container, attachment } = await engine.run({ runtime, image: "busybox", command: ["cat"], interactive: true, name: `exec-${runtime}` });
    const proc = await engine.exec(container.id, ["sh", "-c", "hostname; ps -o pid,comm"]);
    let out = "";
    proc.onOutput((_s, d) => (out += new TextDecoder().decode(d)));
    expect((await proc.exited).exitCode).toBe(0);
    expect(out.split("\n")[0]).toBe(container.hostname);
    expect(out).toMatch(/^\s*1 cat$/m);
    expect(engine.ps().map((c) => c.name)).toContain(`exec-${runtime}`);
    // -e adds to the container's environment (PATH still finds programs); -t gives a terminal with TERM.
    const withEnv = await engine.exec(container.id, ["sh", "-c", "echo $GREETING $TERM; tty"], { env: ["GREETING=hi"], tty: { rows: 24, cols: 80 } });
    let envOut = "";
    withEnv.onOutput((_s, d) => (envOut += new TextDecoder().decode(d)));
    expect((await withEnv.exited).exitCode).toBe(0);
    expect(envOut).toMatch(/^hi xterm\r\n\/dev\/pts\/\d+\r\n$/);
    // Each exec's pid file went with it: none is left in the guest's RAM-backed /run.
    await expect.poll(() => host(`ls /run/hyperlab/containers/${container.id}`), { timeout: 5_000 }).not.toMatch(/exec-/);
    attachment.write("echo through stdin\n");
    await new Promise((r) => setTimeout(r, 300));
    const logged = engine.logs(container.id).map((l) => new TextDecoder().decode(l.data)).join("");
    expect(logged).toBe("echo through stdin\n");
    await engine.kill(container.id);
    await attachment.exited;
    expect(engine.ps().map((c) => c.name)).not.toContain(`exec-${runtime}`);
    expect(engine.ps({ all: true }).find((c) => c.name === `exec-${runtime}`)?.status).toBe("exited");
    const err = await errorOf(engine.exec(container.id, ["true"]));
    expect(err.code).toBe("CONTAINER_INVALID_STATE");
    expect(err.message).toBe(`cannot exec in container exec-${runtime}: it is exited, not running`);
    await engine.remove(container.id);
  });

  it("rejects bad input with clear errors and leaves nothing half-created", async () => {
    const before = await host("ls /run/hyperlab/containers | wc -l; ls /sys/fs/cgroup/hyperlab | grep -c '^[0-9a-f]\\{64\\}$'");
    const unknown = await errorOf(engine.create({ runtime, image: "nginx" }));
    expect(unknown.code).toBe("IMAGE_NOT_FOUND");
    expect(unknown.message).toMatch(/^no such image: nginx\. Images available: busybox:latest, lua:5\.1, lua:5\.4/);

    const { container, attachment } = await engine.run({ runtime, image: "busybox", command: ["cat"], interactive: true, name: `dup-${runtime}` });
    const dup = await errorOf(engine.create({ runtime, image: "busybox", name: `dup-${runtime}` }));
    expect(dup.code).toBe("CONTAINER_EXISTS");
    const rm = await errorOf(engine.remove(`dup-${runtime}`));
    expect(rm.code).toBe("CONTAINER_INVALID_STATE");
    expect(rm.message).toMatch(/it is running\. Stop it first, or force removal with -f/);
    await engine.remove(container.id, { force: true });
    await attachment.exited;
    expect(await host("ls /run/hyperlab/containers | wc -l; ls /sys/fs/cgroup/hyperlab | grep -c '^[0-9a-f]\\{64\\}$'")).toBe(before);
  });

  it("leaves no mount, cgroup, veth or process behind when a container is removed", async () => {
    const { container, attachment } = await engine.run({ runtime, image: "busybox", command: ["cat"], interactive: true });
    const id = container.id;
    expect(await host(`grep -c ${id} /proc/mounts; ls -d /sys/fs/cgroup/hyperlab/${id}; ip -o link | grep -c hl${id.slice(0, 8)}`)).toMatch(/^1\n.*\n1\n$/);
    await engine.remove(id, { force: true });
    await attachment.exited;
    const left = await host(`grep -c ${id} /proc/mounts; ls -d /sys/fs/cgroup/hyperlab/${id} 2>/dev/null | wc -l; ip -o link | grep -c hl${id.slice(0, 8)}; ${runtime} list | grep -c ${id}; ps -o args | grep -v grep | grep -c ${id}`);
    expect(left).toBe("0\n0\n0\n0\n0\n");
  });
});
