// Delta snapshots and page sharing with real guests: VMs started from the
// boot snapshot store only what differs from it, restore from it, and refuse
// another base or a damaged delta; hypervisor.stats() counts the pages the
// running VMs could share, as a plain count of the same hashes does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadNodeImage } from "../../src/hardware/node.ts";
import { readV86State, v86Buffer } from "../../src/hardware/v86-state.ts";
import { nodeBootSnapshot, nodeCodec } from "../../src/hypervisor/boot-snapshot-node.ts";
import { decodeSnapshot } from "../../src/hypervisor/delta-snapshot.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import { ZERO_PAGE_HASH } from "../../src/hypervisor/memory-engine.ts";
import { type Snapshot, readSnapshotHeader } from "../../src/hypervisor/snapshot.ts";
import type { Vm } from "../../src/hypervisor/vm.ts";
import { errorOf } from "./guest.ts";

const MIB = 96;
const decoder = new TextDecoder();

/** Where a snapshot file's payload starts (after the fixed prefix and the header JSON). */
function payloadStart(bytes: Uint8Array): number {
  return 48 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
}

/** The same bytes with a new checksum, so that a deliberate change reaches the checks behind it. */
async function resealed(bytes: Uint8Array): Promise<Uint8Array> {
  const out = bytes.slice();
  out.set(await nodeCodec.sha256(out.subarray(48)), 16);
  return out;
}

/** Page sharing counted the plain way: a Map from page hash to its pages and their VMs. */
function referenceSharing(vms: BigUint64Array[]) {
  const seen = new Map<bigint, { pages: number; vms: Set<number> }>();
  let totalPages = 0;
  vms.forEach((hashes, vm) => {
    totalPages += hashes.length;
    for (const h of hashes) {
      let e = seen.get(h);
      if (!e) seen.set(h, (e = { pages: 0, vms: new Set() }));
      e.pages++;
      e.vms.add(vm);
    }
  });
  let shareablePages = 0;
  let crossVmPages = 0;
  for (const e of seen.values()) {
    if (e.pages > 1) shareablePages += e.pages;
    if (e.vms.size > 1) crossVmPages += e.pages;
  }
  return {
    vms: vms.length,
    totalPages,
    zeroPages: seen.get(ZERO_PAGE_HASH)?.pages ?? 0,
    uniquePages: seen.size,
    shareablePages,
    savedPages: totalPages - seen.size,
    crossVmPages,
  };
}

describe("delta snapshots of a VM started from the boot snapshot", () => {
  let hv: Hypervisor;
  let vm: Vm;
  let delta: Uint8Array;
  let whole: Uint8Array;

  beforeAll(async () => {
    hv = await Hypervisor.create({ memoryBudgetMiB: 6 * MIB, spareWorkers: 0 });
    vm = await hv.createVm({ name: "origin", memoryMiB: MIB });
    await vm.writeFile("/root/before-snapshot", "kept\n");
    expect((await vm.exec(["echo", "hi"])).stdout).toBe("hi\n");
    // Paused, so that both snapshots hold the same machine.
    await vm.pause();
    delta = await vm.snapshot({ compression: "none" });
    whole = await vm.snapshot({ full: true, compression: "none" });
    await vm.resume();
  });

  afterAll(async () => {
    await hv?.close();
  });

  it("store only what differs from the boot snapshot, naming it as their base", () => {
    expect(vm.origin).toBe("snapshot");
    const header = readSnapshotHeader(delta);
    expect(header.format).toBe(2);
    expect(header.delta).toMatchObject({
      base: { key: expect.stringMatching(new RegExp(`^boot-[0-9a-f]{16}-${MIB}m-[0-9a-f]{16}$`)), sha256: expect.stringMatching(/^[0-9a-f]{64}$/), memoryDigest: expect.stringMatching(/^[0-9a-f]{16}$/) },
    });
    expect(header.delta!.changedPages).toBeGreaterThan(0);
    expect(header.delta!.changedPages).toBeLessThan(1000);
    expect(header.state.bytes).toBe(readSnapshotHeader(whole).state.bytes);
    expect(readSnapshotHeader(whole)).toMatchObject({ format: 1 });
    expect(readSnapshotHeader(whole).delta).toBeUndefined();
    // The target: at most 5 % of the whole state.
    expect(delta.length).toBeLessThan(0.05 * whole.length);
  });

  it("restore with the file written before the snapshot, and their VMs take deltas again", async () => {
    await vm.writeFile("/root/before-snapshot", "changed after\n");
    const restored = await hv.restore(delta, { name: "from-delta" });
    expect(restored.origin).toBe("restore");
    expect((await restored.exec(["cat", "/root/before-snapshot"])).stdout).toBe("kept\n");
    expect((await vm.exec(["cat", "/root/before-snapshot"])).stdout).toBe("changed after\n");
    expect(readSnapshotHeader(await restored.snapshot()).format).toBe(2);
    await restored.destroy();
  });

  it("decode to the very state a whole snapshot holds", async () => {
    const base = await nodeBootSnapshot(await loadNodeImage(), { memoryMiB: MIB });
    const a = await decodeSnapshot(delta, {}, { codec: nodeCodec, base: async () => ({ snapshot: base }) });
    const b = await decodeSnapshot(whole, {}, { codec: nodeCodec });
    expect(a.header.delta).toBeUndefined();
    expect(a.state.length).toBe(b.state.length);
    const [la, lb] = [readV86State(a.state), readV86State(b.state)];
    expect(Buffer.compare(a.state.subarray(0, la.blockStart), b.state.subarray(0, lb.blockStart))).toBe(0);
    const differing = la.buffers.map((_, id) => id).filter((id) => Buffer.compare(v86Buffer(a.state, la, id), v86Buffer(b.state, lb, id)) !== 0);
    // Guest RAM and every device alike; v86 reads the TSC (an 8-byte buffer) from the host's clock at each save, even paused.
    expect(differing.length).toBeLessThanOrEqual(1);
    for (const id of differing) expect(la.buffers[id]!.length).toBe(8);
  });

  it("are what forks of it take too, while a VM booted cold takes whole ones", async () => {
    const [fork] = await vm.fork(1);
    expect(readSnapshotHeader(await fork!.snapshot({ compression: "none" })).format).toBe(2);
    await fork!.destroy();
    const cold = await hv.createVm({ name: "cold", memoryMiB: MIB, cold: true });
    expect(readSnapshotHeader(await cold.snapshot({ compression: "none" }))).toMatchObject({ format: 1 });
    await cold.destroy();
  });

  it("restore whole when asked for, as before", async () => {
    const restored = await hv.restore(whole, { name: "from-whole" });
    expect((await restored.exec(["cat", "/root/before-snapshot"])).stdout).toBe("kept\n");
    await restored.destroy();
  });

  it("fail with SNAPSHOT_MISMATCH on another base, saying the base is missing and how to take a whole snapshot", async () => {
    // A hypervisor whose "boot snapshot" is another state of the same image and memory size.
    const other: Snapshot = await decodeSnapshot(whole, {}, { codec: nodeCodec });
    const elsewhere = await Hypervisor.create({ memoryBudgetMiB: 2 * MIB, spareWorkers: 0, platform: { bootSnapshot: async () => other } });
    try {
      const err = await errorOf(elsewhere.restore(delta));
      expect(err.code).toBe("SNAPSHOT_MISMATCH");
      expect(err.message).toMatch(/^the snapshot stores only what changed since boot-\S+ \(sha256 [0-9a-f]{12}…\), and that base is missing: /);
      expect(err.message).toContain("vm.snapshot({ full: true }), hyperlab vm snapshot --full");
      expect(elsewhere.list()).toEqual([]);
      expect(elsewhere.budget.usedMiB).toBe(0);
      // The whole snapshot needs no base.
      const restored = await elsewhere.restore(whole, { name: "whole-elsewhere" });
      expect((await restored.exec(["cat", "/root/before-snapshot"])).stdout).toBe("kept\n");
    } finally {
      await elsewhere.close();
    }
  });

  it("fail with SNAPSHOT_CORRUPT when the RAM delta is damaged, before any VM exists", async () => {
    const header = readSnapshotHeader(delta);
    const d = header.delta!;
    // A byte in the first stored page of the RAM delta (past its 32-byte header and its page index).
    const at = payloadStart(delta) + d.stateBytes + 32 + 4 * d.changedPages + 100;
    const damaged = delta.slice();
    damaged[at]! ^= 0x5a;
    const used = hv.budget.usedMiB;
    const checksum = await errorOf(hv.restore(damaged));
    expect(checksum.code).toBe("SNAPSHOT_CORRUPT");
    expect(checksum.message).toMatch(/checksum does not match/);
    // With the checksum rewritten, the memory engine's digest catches it.
    const digest = await errorOf(hv.restore(await resealed(damaged)));
    expect(digest.code).toBe("SNAPSHOT_CORRUPT");
    expect(digest.message).toMatch(/its RAM delta does not give the RAM it was taken from/);
    expect(hv.budget.usedMiB).toBe(used);
    expect(hv.list().map((v) => v.name)).toEqual(["origin"]);
  });
});

describe("pages shareable across VMs", () => {
  let hv: Hypervisor;
  let vms: Vm[];

  beforeAll(async () => {
    hv = await Hypervisor.create({ memoryBudgetMiB: 4 * MIB, spareWorkers: 0 });
    vms = await Promise.all(["s1", "s2", "s3"].map((name) => hv.createVm({ name, memoryMiB: MIB })));
    await vms[0]!.writeFile("/root/only-in-s1", "x".repeat(64 * 1024));
  });

  afterAll(async () => {
    await hv?.close();
  });

  it("are counted by the memory engine from hashes each VM's worker took, as a plain count of the same hashes gives", async () => {
    // Paused, so every reading of their RAM sees the same pages.
    await Promise.all(vms.map((v) => v.pause()));
    const hashes = await Promise.all(vms.map((v) => v.pageHashes()));
    expect(hashes.map((h) => h.length)).toEqual([0, 0, 0].map(() => (MIB << 20) / 4096));
    const stats = await hv.stats();
    const sharing = stats.sharing!;
    expect(sharing).toMatchObject(referenceSharing(hashes));
    expect(sharing.names).toEqual(["s1", "s2", "s3"]);
    expect(sharing.pageSize).toBe(4096);
    expect(sharing.shareablePages).toBeGreaterThan(0);
    expect(sharing.shareablePages).toBeLessThanOrEqual(sharing.totalPages);
    // Started from one snapshot: most of their non-zero pages (the kernel, the root filesystem) are alike.
    expect(sharing.crossVmPages - sharing.zeroPages).toBeGreaterThan(3 * 4000);
    expect(sharing.uniquePages).toBeLessThan(sharing.totalPages / 2);
    await Promise.all(vms.map((v) => v.resume()));
  });

  it("leave out VMs that are not running or paused", async () => {
    await vms[2]!.stop();
    const sharing = (await hv.stats()).sharing!;
    expect(sharing.names).toEqual(["s1", "s2"]);
    expect(sharing.totalPages).toBe(2 * ((MIB << 20) / 4096));
    expect((await hv.stats({ sharing: false })).sharing).toBeUndefined();
  });
});
