// Delta snapshots (src/hypervisor/delta-snapshot.ts): only the pages and
// buffers that differ from a base, applied back bit for bit, with the memory
// engine and the plain TypeScript reference; a wrong base or a damaged delta
// refused with its coded error.
import { describe, expect, it } from "vitest";
import { nodeCodec } from "../../../src/hypervisor/boot-snapshot-node.ts";
import { type DeltaBase, applyDeltaSnapshot, decodeSnapshot, makeDeltaSnapshot } from "../../../src/hypervisor/delta-snapshot.ts";
import { type MemoryOps, loadMemoryEngine } from "../../../src/hypervisor/memory-engine.ts";
import { memoryReference } from "../../../src/hypervisor/memory-reference.ts";
import { type DeltaSnapshot, type Snapshot, type SnapshotHeader, encodeSnapshot, readSnapshotHeader, stateDigest } from "../../../src/hypervisor/snapshot.ts";
import { failure, header, noise, resealed, sameBytes, snapshot, v86State } from "./snapshot-fixtures.ts";

const PAGES = 1024; // 4 MiB of guest RAM

let fixture: ReturnType<typeof buildMachines> | undefined;

/** A base machine (every third page in use) and the same machine later (built once: tests only read them). */
function machines(): ReturnType<typeof buildMachines> {
  return (fixture ??= buildMachines());
}

/** The base machine and the same machine later: pages changed, zeroed and newly used, one device buffer changed. */
function buildMachines() {
  const baseRam = new Uint8Array(PAGES * 4096);
  for (let p = 0; p < PAGES; p += 3) baseRam.set(noise(4096, p + 1), p * 4096);
  const devices = [noise(32, 7), noise(8, 8), new Uint8Array(65536), noise(6, 9)];
  const ram = baseRam.slice();
  for (const p of [0, 3, 300, 999]) ram.set(noise(4096, 5000 + p), p * 4096); // changed
  for (const p of [6, 9, 1020]) ram.fill(0, p * 4096, (p + 1) * 4096); // zeroed
  for (const p of [1, 2, 500, 1023]) ram.set(noise(4096, 7000 + p), p * 4096); // newly used
  const later = [devices[0]!, noise(8, 88), devices[2]!, devices[3]!];
  const header = (state: Uint8Array): SnapshotHeader => ({
    ...snapshotHeader,
    vm: { ...snapshotHeader.vm, memoryMiB: 4 },
    state: { bytes: state.length, v86Format: 6 },
    payload: { compression: "none", bytes: state.length },
  });
  const baseState = v86State(baseRam, devices);
  const state = v86State(ram, later);
  return { base: { header: header(baseState), state: baseState } as Snapshot, full: { header: header(state), state } as Snapshot, ram, baseRam };
}

const snapshotHeader = header;

async function deltaBase(base: Snapshot): Promise<DeltaBase> {
  return { snapshot: base, key: "boot-0123456789abcdef-4m-0011223344556677", sha256: await stateDigest(base, nodeCodec) };
}

describe.each([
  ["the memory engine", () => loadMemoryEngine()],
  ["the plain TypeScript reference", async () => memoryReference],
] as Array<[string, () => Promise<MemoryOps>]>)("delta snapshots with %s", (_, engineOf) => {
  it.each(["none", "deflate-raw"] as const)("hold only the changed pages and buffers, and decode to the very state (compression %s)", async (compression) => {
    const engine = await engineOf();
    const { base, full, ram } = machines();
    const delta = makeDeltaSnapshot(full, ram, await deltaBase(base), engine);
    expect(delta.header.delta).toMatchObject({ changedPages: 11, baseBuffers: [0, 2, 3], base: { key: "boot-0123456789abcdef-4m-0011223344556677" } });
    expect(delta.memory.length).toBe(32 + 11 * 4 + 8 * 4096);
    const bytes = await encodeSnapshot(delta, { compression, codec: nodeCodec });
    expect(readSnapshotHeader(bytes)).toMatchObject({ format: 2, state: { bytes: full.state.length }, payload: { compression } });
    expect(bytes.length).toBeLessThan(full.state.length * 0.3);
    const back = await decodeSnapshot(bytes, { memoryMiB: 4 }, { codec: nodeCodec, engine, base: async () => ({ snapshot: base }) });
    expect(sameBytes(back.state, full.state)).toBe(true);
    expect(back.state.byteOffset).toBe(0);
    expect(back.state.buffer.byteLength).toBe(full.state.length);
    expect(back.header).toMatchObject({ format: 1, state: { bytes: full.state.length } });
    expect(back.header.delta).toBeUndefined();
  });

  it("refuse another base: by its sha256 before anything else, by the RAM digest in the memory engine", async () => {
    const engine = await engineOf();
    const { base, full, ram, baseRam } = machines();
    const bytes = await encodeSnapshot(makeDeltaSnapshot(full, ram, await deltaBase(base), engine), { compression: "none", codec: nodeCodec });
    const otherRam = baseRam.slice();
    otherRam[5 * 4096 + 17]! ^= 1;
    const other: Snapshot = { header: base.header, state: v86State(otherRam, [noise(32, 7), noise(8, 8), new Uint8Array(65536), noise(6, 9)]) };

    const wrong = await failure(decodeSnapshot(bytes, {}, { codec: nodeCodec, engine, base: async () => ({ snapshot: other, key: "boot-rebuilt" }) }));
    expect(wrong.code).toBe("SNAPSHOT_MISMATCH");
    expect(wrong.message).toMatch(/^the snapshot stores only what changed since boot-0123456789abcdef-4m-0011223344556677 \(sha256 [0-9a-f]{12}…\), and that base is missing: the boot snapshot here for this image and memory size is boot-rebuilt/);
    expect(wrong.message).toMatch(/take a whole snapshot there \(vm\.snapshot\(\{ full: true \}\), hyperlab vm snapshot --full\)\.$/);
    const none = await failure(decodeSnapshot(bytes, {}, { codec: nodeCodec, engine }));
    expect(none).toMatchObject({ code: "SNAPSHOT_MISMATCH", message: expect.stringMatching(/there is no boot snapshot here to apply it to/) });

    // Past the sha256 (as if it matched), the engine's digest of the base's RAM still refuses it.
    const parts = deltaParts(bytes);
    const digest = await failure(Promise.resolve().then(() => applyDeltaSnapshot(parts, other, engine)));
    expect(digest.code).toBe("SNAPSHOT_MISMATCH");
    expect(digest.message).toMatch(/its RAM was taken against a base whose page digest is [0-9a-f]{16}, and this base's is [0-9a-f]{16}/);
  });

  it("refuse a damaged RAM delta with SNAPSHOT_CORRUPT", async () => {
    const engine = await engineOf();
    const { base, full, ram } = machines();
    const bytes = await encodeSnapshot(makeDeltaSnapshot(full, ram, await deltaBase(base), engine), { compression: "none", codec: nodeCodec });
    const h = readSnapshotHeader(bytes).delta!;
    const start = bytes.length - h.memoryBytes;
    const resolver = async () => ({ snapshot: base });

    const page = bytes.slice();
    page[start + 32 + 4 * h.changedPages + 4096 + 5]! ^= 0x10; // a byte of the second stored page
    const digest = await failure(decodeSnapshot(await resealed(page, nodeCodec), {}, { codec: nodeCodec, engine, base: resolver }));
    expect(digest).toMatchObject({ code: "SNAPSHOT_CORRUPT", message: expect.stringMatching(/its RAM delta does not give the RAM it was taken from/) });

    const index = bytes.slice();
    new DataView(index.buffer).setUint32(start + 32, PAGES + 7, true); // a page past the end
    const badIndex = await failure(decodeSnapshot(await resealed(index, nodeCodec), {}, { codec: nodeCodec, engine, base: resolver }));
    expect(badIndex).toMatchObject({ code: "SNAPSHOT_CORRUPT", message: expect.stringMatching(/memory delta is damaged: page index entry 0/) });

    const device = bytes.slice();
    device[start - 3]! ^= 0xff; // the last kept device buffer: caught by the checksum only
    expect((await failure(decodeSnapshot(device, {}, { codec: nodeCodec, engine, base: resolver }))).message).toMatch(/checksum does not match/);
  });
});

/** A delta snapshot file (compression none) taken apart again. */
function deltaParts(bytes: Uint8Array): DeltaSnapshot {
  const header = readSnapshotHeader(bytes) as DeltaSnapshot["header"];
  const start = bytes.length - header.payload.bytes;
  return { header, state: bytes.subarray(start, start + header.delta.stateBytes), memory: bytes.subarray(start + header.delta.stateBytes) };
}

describe("delta snapshot headers", () => {
  it("reject format 2 without its delta section, and format 1 with one, as corrupt", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "none" });
    new DataView(bytes.buffer).setUint32(8, 2, true);
    expect((await failure(decodeSnapshot(bytes))).message).toMatch(/delta snapshot \(format 2\) whose header lacks its base or its sizes/);

    const { base, full, ram } = machines();
    const delta = await encodeSnapshot(makeDeltaSnapshot(full, ram, await deltaBase(base), memoryReference), { compression: "none" });
    new DataView(delta.buffer).setUint32(8, 1, true);
    const err = await failure(decodeSnapshot(delta));
    expect(err).toMatchObject({ code: "SNAPSHOT_CORRUPT", message: expect.stringMatching(/whole snapshot \(format 1\) with a delta section/) });
  });
});
