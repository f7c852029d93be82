// The hypervisor with real guests: VMs in worker threads, lifecycle, budget,
// isolation, a worker that dies, CPU shares.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HyperlabError } from "../../src/errors.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import { type VmWorker, spawnVmWorker } from "../../src/hypervisor/rpc.ts";
import type { Vm, VmEvent } from "../../src/hypervisor/vm.ts";
import { errorOf } from "./guest.ts";

const MIB = 96;
const BUDGET = 10 * MIB;

/** Resolves once `check` holds, polling; fails naming `what` after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Instructions each VM executes over `ms` of wall time. */
async function executed(vms: Vm[], ms: number): Promise<number[]> {
  const before = vms.map((v) => v.sample!.instructions);
  await new Promise((r) => setTimeout(r, ms));
  return vms.map((v, i) => v.sample!.instructions - before[i]!);
}

describe("Hypervisor", () => {
  let hv: Hypervisor;
  const workers: VmWorker[] = [];
  const events: VmEvent[] = [];

  beforeAll(async () => {
    hv = await Hypervisor.create({
      memoryBudgetMiB: BUDGET,
      // No spares: a VM that does not come from the warm pool gets the worker spawned last.
      spareWorkers: 0,
      warmPool: 1,
      warmPoolMemoryMiB: MIB,
      // Keeps each worker's handle, so a test can make one die.
      platform: {
        spawnWorker: async () => {
          const w = await spawnVmWorker();
          workers.push(w);
          return w;
        },
      },
    });
    hv.onEvent((e) => events.push(e));
  });

  afterAll(async () => {
    await hv?.close();
  });

  it("walks a VM through its lifecycle and refuses illegal moves naming the current state", async () => {
    const vm = await hv.createVm({ name: "life", memoryMiB: MIB, start: false });
    expect(vm.state).toBe("created");
    expect((await errorOf(vm.exec(["true"]))).message).toBe("cannot exec: VM life is created (exec is legal while running)");
    expect((await errorOf(vm.pause())).message).toBe("cannot pause: VM life is created (pause is legal while running)");

    await vm.start();
    expect(vm.state).toBe("running");
    const start = await errorOf(vm.start());
    expect(start.code).toBe("VM_INVALID_STATE");
    expect(start.message).toBe("cannot start: VM life is running (start is legal while created)");
    expect((await errorOf(vm.resume())).message).toBe("cannot resume: VM life is running (resume is legal while paused)");

    await vm.pause();
    expect(vm.state).toBe("paused");
    expect((await errorOf(vm.pause())).message).toBe("cannot pause: VM life is paused (pause is legal while running)");
    expect((await errorOf(vm.exec(["true"]))).message).toBe("cannot exec: VM life is paused (exec is legal while running)");
    // A paused guest does not run: its instruction count stands still.
    const frozen = vm.sample!.instructions;
    await new Promise((r) => setTimeout(r, 300));
    expect(vm.sample!.instructions).toBe(frozen);

    await vm.resume();
    expect(await vm.exec(["echo", "back"])).toMatchObject({ exitCode: 0, stdout: "back\n" });

    await vm.stop();
    expect(vm.state).toBe("stopped");
    expect(vm.stopReason?.code).toBe("GUEST_STOPPED");
    expect((await errorOf(vm.resume())).message).toBe("cannot resume: VM life is stopped (resume is legal while paused)");

    await hv.destroy("life");
    expect(vm.state).toBe("destroyed");
    expect((await errorOf(Promise.resolve().then(() => hv.get("life")))).code).toBe("VM_NOT_FOUND");

    const moves = events.filter((e) => e.vm === "life" && e.type === "state").map((e) => (e.type === "state" ? e.state : ""));
    expect(moves).toEqual(["booting", "running", "paused", "running", "stopped", "destroyed"]);
  });

  it("refuses a VM the memory budget cannot hold, stating asked and free, and takes it once memory is returned", async () => {
    const free = hv.budget.freeMiB;
    const a = await hv.createVm({ name: "fill-a", memoryMiB: free - 100, start: false });
    const b = await hv.createVm({ name: "fill-b", memoryMiB: 50, start: false });
    const err = await errorOf(hv.createVm({ name: "too-much", memoryMiB: 51, start: false }));
    expect(err.code).toBe("RESOURCE_EXHAUSTED");
    expect(err.message).toBe(
      `cannot create VM too-much: it asks for 51 MiB of memory but only 50 MiB of the host budget (${BUDGET} MiB) is free. ` +
        "Destroy a VM, ask for less memory, or give the hypervisor a larger budget.",
    );
    expect(hv.list().map((v) => v.name)).not.toContain("too-much");

    await b.destroy();
    const c = await hv.createVm({ name: "too-much", memoryMiB: 51, start: false });
    expect(hv.budget.freeMiB).toBe(49);
    await Promise.all([a.destroy(), c.destroy()]);
    expect(hv.budget.freeMiB).toBe(free);
  });

  describe("two running VMs", () => {
    let a: Vm;
    let b: Vm;

    beforeAll(async () => {
      await hv.ready();
      [a, b] = await Promise.all([hv.createVm({ name: "a", memoryMiB: MIB }), hv.createVm({ name: "b", memoryMiB: MIB })]);
    });

    it("starts one from the warm pool and the other from the boot snapshot", () => {
      expect([a.origin, b.origin].sort()).toEqual(["pool", "snapshot"]);
      expect(hv.startInfo(a)?.origin).toBe(a.origin);
    });

    it("cannot see each other's files", async () => {
      await a.writeFile("/tmp/only-in-a", "secret of a\n");
      expect(new TextDecoder().decode(await a.readFile("/tmp/only-in-a"))).toBe("secret of a\n");
      const inB = await b.exec(["cat", "/tmp/only-in-a"]);
      expect(inB.exitCode).toBe(1);
      expect(inB.stderr).toContain("No such file or directory");
    });

    it("cannot see each other's processes", async () => {
      await a.exec(["sh", "-c", "sleep 1234 </dev/null >/dev/null 2>&1 &"]);
      expect((await a.exec(["ps", "-o", "args"])).stdout).toContain("sleep 1234");
      expect((await b.exec(["ps", "-o", "args"])).stdout).not.toContain("sleep 1234");
    });

    it("carries the guest's errors across the worker boundary with their code", async () => {
      const err = await errorOf(a.exec([]));
      expect(err).toBeInstanceOf(HyperlabError);
      expect(err.code).toBe("INVALID_ARGUMENT");
      expect(err.message).toBe("exec needs a program to run (argv is empty)");
      const missing = await errorOf(a.readFile("/no/such/file"));
      expect(missing.code).toBe("AGENT_ERROR");
      expect(missing.detail).toEqual({ errno: "ENOENT" });
    });

    it("reports allocated memory against what the guest uses, instructions, and device bytes", async () => {
      const m = await a.metrics();
      expect(m.memory.allocatedMiB).toBe(MIB);
      expect(m.memory.guest!.usedKiB).toBeGreaterThan(1024);
      expect(m.memory.guest!.totalKiB).toBeLessThanOrEqual(MIB * 1024);
      // Counted since the machine started (booted, or restored from a snapshot).
      expect(m.cpu.instructions).toBeGreaterThan(100_000);
      expect(m.devices.controlIn).toBeGreaterThan(0);
      expect(m.devices.controlOut).toBeGreaterThan(0);
      const stats = await hv.stats();
      expect(stats.budget).toEqual({ totalMiB: BUDGET, usedMiB: 3 * MIB, freeMiB: BUDGET - 3 * MIB, warmPoolMiB: MIB });
      expect(stats.vms.map((v) => v.name)).toEqual(["a", "b"]);
    });

    it("batches console output into few events", async () => {
      const chunks: string[] = [];
      const off = a.onEvent((e) => e.type === "console" && chunks.push(e.data));
      await a.writeConsole("for i in $(seq 1 500); do echo line-$i; done\n");
      await until("the console to print line-500", () => chunks.join("").includes("line-500\r\n"));
      off();
      const text = chunks.join("");
      expect(text.length).toBeGreaterThan(4000);
      expect((await a.metrics()).devices.consoleOut).toBeGreaterThanOrEqual(text.length);
      // Per-byte messages would be thousands, per-line ones 500 (a line is ~9 bytes): batches hold many lines.
      expect(chunks.length).toBeLessThan(text.length / 40);
    });

    it("enforces CPU shares 3:1 by emulated instructions and applies a new share live", async () => {
      const loops: string[] = [];
      for (const vm of [a, b]) loops.push((await vm.exec(["sh", "-c", "(while :; do :; done) </dev/null >/dev/null 2>&1 & echo $!"])).stdout.trim());
      a.setCpuShare(3);
      await new Promise((r) => setTimeout(r, 500));
      const [ia, ib] = await executed([a, b], 4000);
      expect(ia! / ib!).toBeGreaterThan(2.5);
      expect(ia! / ib!).toBeLessThan(3.5);

      b.setCpuShare(3);
      await new Promise((r) => setTimeout(r, 500));
      const [ja, jb] = await executed([a, b], 3000);
      expect(ja! / jb!).toBeGreaterThan(0.8);
      expect(ja! / jb!).toBeLessThan(1.25);
      for (const [i, vm] of [a, b].entries()) expect((await vm.exec(["kill", loops[i]!])).exitCode).toBe(0);
    });

    it("keeps a file written before a snapshot when the snapshot is restored", async () => {
      await a.writeFile("/root/before-snapshot", "kept\n");
      const bytes = await a.snapshot();
      await a.writeFile("/root/before-snapshot", "changed after\n");
      const restored = await hv.restore(bytes, { name: "restored" });
      expect(restored.origin).toBe("restore");
      expect(restored.memoryMiB).toBe(MIB);
      expect((await restored.exec(["cat", "/root/before-snapshot"])).stdout).toBe("kept\n");
      expect((await a.exec(["cat", "/root/before-snapshot"])).stdout).toBe("changed after\n");
      await restored.destroy();
    });

    it("refuses a snapshot restored with other options or damaged, before any VM exists", async () => {
      const bytes = await b.snapshot();
      const used = hv.budget.usedMiB;
      const mismatch = await errorOf(hv.restore(bytes, { memoryMiB: 2 * MIB }));
      expect(mismatch.code).toBe("SNAPSHOT_MISMATCH");
      expect(mismatch.message).toContain(`the snapshot was taken with memory of ${MIB} MiB, but ${2 * MIB} MiB was asked for`);
      const damaged = bytes.slice();
      const middle = damaged.length >> 1;
      damaged[middle] = damaged[middle]! ^ 0xff;
      const corrupt = await errorOf(hv.restore(damaged));
      expect(corrupt.code).toBe("SNAPSHOT_CORRUPT");
      expect(corrupt.message).toContain("its checksum does not match its contents");
      expect(hv.budget.usedMiB).toBe(used);
    });

    it("forks a VM into independent running copies", async () => {
      await a.writeFile("/root/shared", "from a\n");
      const forks = await a.fork(2);
      expect(forks.map((f) => [f.state, f.origin, f.memoryMiB])).toEqual([
        ["running", "fork", MIB],
        ["running", "fork", MIB],
      ]);
      const [f1, f2] = forks as [Vm, Vm];
      for (const f of forks) expect((await f.exec(["cat", "/root/shared"])).stdout).toBe("from a\n");
      await f1.writeFile("/root/shared", "changed in f1\n");
      await f1.exec(["sh", "-c", "sleep 4321 </dev/null >/dev/null 2>&1 &"]);
      expect((await f2.exec(["cat", "/root/shared"])).stdout).toBe("from a\n");
      expect((await a.exec(["cat", "/root/shared"])).stdout).toBe("from a\n");
      expect((await f2.exec(["ps", "-o", "args"])).stdout).not.toContain("sleep 4321");
      expect((await f1.exec(["ps", "-o", "args"])).stdout).toContain("sleep 4321");
      await Promise.all(forks.map((f) => f.destroy()));
    });

    it("fails a call cut off by the guest stopping with why it stopped, not with its worker's end", async () => {
      const gone = await hv.createVm({ name: "gone", memoryMiB: MIB, cold: true });
      const inFlight = errorOf(gone.exec(["sleep", "30"]));
      await new Promise((r) => setTimeout(r, 200));
      void gone.exec(["/bin/sh", "-c", "sleep 0.2; poweroff -f"]).catch(() => {});
      const err = await inFlight;
      expect(err.code).toBe("GUEST_STOPPED");
      expect(err.message).toBe("the guest powered off");
      await until("the VM to be marked stopped", () => gone.state === "stopped");
      expect(gone.stopReason?.message).toBe("the guest powered off");
      await gone.destroy();
    });

    it("marks a VM whose worker dies stopped with WORKER_DIED and leaves the other running", async () => {
      // Cold: not from the warm pool, so its worker is the one spawned last.
      const victim = await hv.createVm({ name: "victim", memoryMiB: MIB, cold: true });
      expect(victim.origin).toBe("boot");
      const worker = workers.at(-1);
      expect(worker).toBeDefined();
      const inFlight = errorOf(victim.exec(["sleep", "30"]));
      await new Promise((r) => setTimeout(r, 200));
      // The worker thread exits as a crash would (process.exit inside it).
      void worker!.api.crash(7).catch(() => {});

      const err = await inFlight;
      expect(err.code).toBe("WORKER_DIED");
      await until("the victim to be marked stopped", () => victim.state === "stopped");
      expect(victim.stopReason?.code).toBe("WORKER_DIED");
      expect(victim.stopReason?.message).toBe("the VM's worker died unexpectedly (exit code 7); the VM is stopped");
      expect(events).toContainEqual(
        expect.objectContaining({ type: "state", vm: "victim", state: "stopped", previous: "running", reason: expect.objectContaining({ code: "WORKER_DIED" }) }),
      );
      expect((await errorOf(victim.exec(["true"]))).message).toBe("cannot exec: VM victim is stopped (exec is legal while running)");

      expect(a.state).toBe("running");
      expect(await a.exec(["echo", "still here"])).toMatchObject({ exitCode: 0, stdout: "still here\n" });
      expect(await b.exec(["echo", "me too"])).toMatchObject({ exitCode: 0, stdout: "me too\n" });
      await victim.destroy();
    });
  });
});
