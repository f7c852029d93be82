import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentClient } from "../../src/guest/agent.ts";
import { Machine } from "../../src/hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../../src/hardware/node.ts";
import { bootSnapshot, bootSnapshotKey, dropBootSnapshots } from "../../src/hypervisor/boot-snapshot.ts";
import { fileSnapshotStore, nodeCodec } from "../../src/hypervisor/boot-snapshot-node.ts";
import { decodeSnapshot } from "../../src/hypervisor/delta-snapshot.ts";
import { startGuest } from "../../src/hypervisor/local-guest.ts";
import { type Snapshot, captureSnapshot, encodeSnapshot, imageDigest, restoreSnapshot } from "../../src/hypervisor/snapshot.ts";
import { errorOf, newMachine } from "./guest.ts";

/** Byte equality without vitest's element-by-element diff (states are tens of MB). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

const machines = new Set<Machine>();
afterAll(async () => {
  await Promise.all([...machines].map((m) => m.stop()));
});

async function restore(snapshot: Snapshot, paused = false): Promise<Machine> {
  const { machine } = await restoreSnapshot(snapshot, { image: await loadNodeImage(), wasm: v86Wasm(), timeoutMs: 30_000, paused });
  machines.add(machine);
  return machine;
}

describe("a snapshot of a running guest", () => {
  let original: Machine;
  let agent: AgentClient;
  let snapshot: Snapshot;
  let bytes: Uint8Array;

  beforeAll(async () => {
    original = await newMachine({ cmdline: "init_on_free=1" });
    await original.boot({ timeoutMs: 60_000 });
    agent = await AgentClient.connect(original);
    await agent.writeFile("/root/before-snapshot.txt", "written before the snapshot\n");
    await original.pause();
    snapshot = await captureSnapshot(original, { image: await loadNodeImage(), agent: agent.agent });
    bytes = await encodeSnapshot(snapshot, { codec: nodeCodec });
  });

  it("says what it must be restored with", async () => {
    const image = await loadNodeImage();
    expect(snapshot.header).toMatchObject({
      format: 1,
      image: { id: image.id, sha256: await imageDigest(image) },
      vm: { memoryMiB: 128, firmware: "direct", cmdline: "init_on_free=1" },
      agent: { version: 1, name: expect.stringMatching(/hyperlab-agent/) },
      state: { bytes: snapshot.state.length, v86Format: 6 },
    });
    expect(snapshot.header.kernelCmdline).toBe(original.cmdline);
  });

  it("restores guest RAM exactly as it was saved, paused until resumed", async () => {
    const restored = await restore(snapshot, true);
    expect(restored.state).toBe("paused");
    const a = original.memory();
    const b = restored.memory();
    expect(b.length).toBe(a.length);
    let differing = 0;
    for (let at = 0; at < a.length; at += 4096) {
      if (Buffer.compare(a.subarray(at, at + 4096), b.subarray(at, at + 4096)) !== 0) differing++;
    }
    expect(differing).toBe(0);
    await restored.resume();
    await (await AgentClient.attach(restored, { timeoutMs: 10_000 })).ping();
    await restored.stop();
  });

  it("restores into a machine prepared ahead (emulator built, pages faulted in) with the same RAM, and refuses to boot one", async () => {
    const machine = new Machine({ image: await loadNodeImage(), wasm: v86Wasm(), memoryMiB: 128, cmdline: "init_on_free=1" });
    machines.add(machine);
    await machine.prepare({ pagesOf: snapshot.state });
    expect(machine.state).toBe("created");
    expect(await errorOf(machine.boot())).toMatchObject({ code: "VM_INVALID_STATE", message: expect.stringMatching(/prepared for a restore/) });
    const report = await machine.restore(snapshot.state, { paused: true });
    expect(report.phases.emulator.wallMs).toBeLessThan(5);
    const a = original.memory();
    const b = machine.memory();
    let differing = 0;
    for (let at = 0; at < a.length; at += 4096) {
      if (Buffer.compare(a.subarray(at, at + 4096), b.subarray(at, at + 4096)) !== 0) differing++;
    }
    expect(differing).toBe(0);
    await machine.resume();
    await (await AgentClient.attach(machine, { timeoutMs: 10_000 })).ping();
    await machine.pause();
    expect(machine.state).toBe("paused");
    await machine.stop();
  });

  it("round-trips through its encoded bytes, and the restored guest has the file written before it", async () => {
    const decoded = await decodeSnapshot(bytes, { memoryMiB: 128 }, { codec: nodeCodec });
    expect(sameBytes(decoded.state, snapshot.state)).toBe(true);
    const restored = await restore(decoded);
    expect(restored.state).toBe("running");
    const client = await AgentClient.attach(restored, { timeoutMs: 10_000, agent: decoded.header.agent });
    expect(client.agent.version).toBe(1);
    expect(new TextDecoder().decode(await client.readFile("/root/before-snapshot.txt"))).toBe("written before the snapshot\n");
    const r = await client.exec(["echo", "ok"]);
    expect(r).toEqual({ exitCode: 0, signal: 0, stdout: "ok\n", stderr: "" });
  });

  it("gives restored guests their own memory: a change in one is absent in the other and in the original", async () => {
    const [a, b] = [await restore(snapshot), await restore(snapshot)];
    const [ca, cb] = [await AgentClient.attach(a, { timeoutMs: 10_000 }), await AgentClient.attach(b, { timeoutMs: 10_000 })];
    await ca.writeFile("/root/only-in-a", "a");
    expect((await cb.exec(["ls", "/root"])).stdout.split("\n")).not.toContain("only-in-a");
    await original.resume();
    expect((await agent.exec(["ls", "/root"])).stdout.split("\n")).not.toContain("only-in-a");
    await original.pause();
    await Promise.all([a.stop(), b.stop()]);
  });

  it("keeps the console, instruction count and power-off detection working after a restore", async () => {
    const restored = await restore(snapshot);
    const before = restored.instructions();
    const out: string[] = [];
    restored.onConsole((c) => out.push(c));
    restored.write("\r");
    await restored.console.waitFor(/# (?:\x1b\[6n)?$/, { timeoutMs: 10_000, what: "a fresh prompt after the restore" });
    const stopped = new Promise((resolve) => restored.onStopped(resolve));
    restored.write("poweroff\r");
    const reason = await stopped;
    expect(reason).toMatchObject({ code: "GUEST_STOPPED", message: "the guest powered off" });
    expect(out.join("")).toMatch(/reboot: (System halted|Power down)/);
    expect(restored.instructions()).toBeGreaterThan(before);
  });

  it("fails with SNAPSHOT_CORRUPT naming the checksum when one byte of the file changed", async () => {
    const damaged = bytes.slice();
    damaged[damaged.length - 1000]! ^= 0x01;
    const err = await errorOf(decodeSnapshot(damaged, {}, { codec: nodeCodec }));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    expect(err.message).toMatch(/checksum does not match/);
  });

  it("fails with SNAPSHOT_CORRUPT when the file is truncated", async () => {
    const err = await errorOf(decodeSnapshot(bytes.subarray(0, bytes.length - 4096), {}, { codec: nodeCodec }));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    expect(err.message).toMatch(/truncated/);
  });

  it("fails with SNAPSHOT_MISMATCH naming both sizes when asked for other memory", async () => {
    const err = await errorOf(decodeSnapshot(bytes, { memoryMiB: 96 }, { codec: nodeCodec }));
    expect(err.code).toBe("SNAPSHOT_MISMATCH");
    expect(err.message).toMatch(/128 MiB.*96 MiB/);
  });

  it("refuses to load a state into a machine with other memory, and leaves that machine stopped", async () => {
    const machine = new Machine({ image: await loadNodeImage(), wasm: v86Wasm(), memoryMiB: 96 });
    machines.add(machine);
    const err = await errorOf(machine.restore(snapshot.state));
    expect(err.code).toBe("SNAPSHOT_MISMATCH");
    expect(err.message).toMatch(/128 MiB.*96 MiB/);
    expect(machine.state).toBe("stopped");
  });

  it("rejects a restore into a machine that has already started", async () => {
    const machine = await restore(snapshot);
    const err = await errorOf(machine.restore(snapshot.state));
    expect(err).toMatchObject({ code: "VM_INVALID_STATE", message: expect.stringMatching(/machine is running/) });
  });
});

describe("instant start from the boot snapshot", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-snapshots-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("starts the default guest from the snapshot, with a working agent and the host's time", async () => {
    const guest = await startGuest();
    try {
      expect(guest.started.from).toBe("snapshot");
      expect(guest.machine.state).toBe("running");
      const r = await guest.agent.exec(["/bin/sh", "-c", "date +%s; echo ok"]);
      const [seconds, ok] = r.stdout.trim().split("\n");
      expect(ok).toBe("ok");
      expect(Math.abs(Number(seconds) - Date.now() / 1000)).toBeLessThan(5);
    } finally {
      await guest.stop();
    }
  });

  it("boots cold when asked to", async () => {
    const guest = await startGuest({ cold: true });
    try {
      expect(guest.started.from).toBe("boot");
      expect((await guest.agent.exec(["echo", "ok"])).stdout).toBe("ok\n");
    } finally {
      await guest.stop();
    }
  });

  it("is built once, stored under a key of the image and options, replaces an outdated one, and is rebuilt when its file is damaged", async () => {
    const image = await loadNodeImage();
    const store = fileSnapshotStore(dir);
    const opts = { image, wasm: v86Wasm(), memoryMiB: 96, store, codec: nodeCodec, keyExtra: "test" };
    const key = await bootSnapshotKey(opts);
    expect(key).toMatch(new RegExp(`^boot-${image.id}-96m-[0-9a-f]{16}$`));
    expect(await bootSnapshotKey({ ...opts, memoryMiB: 128 })).not.toBe(key);

    // Left by an older image: replaced by the new snapshot of the same memory size; other sizes stay.
    await writeFile(join(dir, "boot-0000000000000000-96m-0123456789abcdef.hlsnap"), "old");
    await writeFile(join(dir, "boot-0000000000000000-128m-0123456789abcdef.hlsnap"), "old");
    const built = await bootSnapshot(opts);
    expect(built.header.vm).toEqual({ memoryMiB: 96, firmware: "direct", cmdline: "init_on_free=1" });
    expect((await bootSnapshot(opts)) === built).toBe(true); // kept decoded in this process
    expect((await readdir(dir)).sort()).toEqual(["boot-0000000000000000-128m-0123456789abcdef.hlsnap", `${key}.hlsnap`].sort());
    const file = join(dir, `${key}.hlsnap`);
    const stored = await readFile(file);

    dropBootSnapshots();
    const reread = await bootSnapshot(opts);
    expect(reread === built).toBe(false);
    expect(sameBytes(reread.state, built.state)).toBe(true);
    expect(sameBytes(await readFile(file), stored)).toBe(true); // read, not rebuilt

    const damaged = new Uint8Array(stored);
    damaged[damaged.length >> 1]! ^= 0xff;
    await writeFile(file, damaged);
    dropBootSnapshots();
    const rebuilt = await bootSnapshot(opts);
    expect(rebuilt.header.createdAt).not.toBe(built.header.createdAt);
    expect((await decodeSnapshot(new Uint8Array(await readFile(file)), { memoryMiB: 96 }, { codec: nodeCodec })).header.createdAt).toBe(
      rebuilt.header.createdAt,
    );

    const machine = await restore(rebuilt);
    const agent = await AgentClient.attach(machine, { timeoutMs: 10_000, agent: rebuilt.header.agent });
    expect((await agent.exec(["/bin/sh", "-c", "cat /proc/cmdline; free -m | awk '/Mem:/ {print $2}'"])).stdout).toMatch(/init_on_free=1[^]*\n\d+\n$/);
    await machine.stop();
  });
});
