// Snapshot files as hostile input (fast-check): random bytes, a valid whole
// or delta snapshot with bytes flipped, cut, inserted or duplicated, and
// valid files whose header JSON or payload was changed and then resealed
// (length and checksum rewritten, so the change itself reaches the parser).
// Decoding either gives a snapshot or fails with SNAPSHOT_CORRUPT or
// SNAPSHOT_MISMATCH, never a TypeError, a RangeError or a hang.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nodeCodec } from "../../../src/hypervisor/boot-snapshot-node.ts";
import { decodeSnapshot, makeDeltaSnapshot } from "../../../src/hypervisor/delta-snapshot.ts";
import { loadMemoryEngine } from "../../../src/hypervisor/memory-engine.ts";
import { type Snapshot, type SnapshotExpectation, type SnapshotHeader, encodeSnapshot, readSnapshotHeader, stateDigest, webCodec } from "../../../src/hypervisor/snapshot.ts";
import { anyJson, coded, hugeNumbers, mutatedBytes, mutatedJson, params } from "../properties.ts";
import { header, noise, v86State } from "./snapshot-fixtures.ts";

const PAGES = 64;
const MAGIC = [0x89, 0x48, 0x4c, 0x53, 0x4e, 0x41, 0x50, 0x0a];

/** A small base machine and the same machine later, as whole snapshots, and the delta snapshot file between them. */
async function fixture() {
  const baseRam = new Uint8Array(PAGES * 4096);
  for (let p = 0; p < PAGES; p += 3) baseRam.set(noise(4096, p + 1), p * 4096);
  const devices = [noise(32, 7), noise(8, 8), noise(6, 9)];
  const ram = baseRam.slice();
  for (const p of [0, 3, 30]) ram.set(noise(4096, 5000 + p), p * 4096);
  for (const p of [6, 9]) ram.fill(0, p * 4096, (p + 1) * 4096);
  for (const p of [1, 50, 63]) ram.set(noise(4096, 7000 + p), p * 4096);
  const headerOf = (state: Uint8Array): SnapshotHeader => ({
    ...header,
    vm: { ...header.vm, memoryMiB: 1 },
    state: { bytes: state.length, v86Format: 6 },
    payload: { compression: "none", bytes: state.length },
  });
  const baseState = v86State(baseRam, devices);
  const state = v86State(ram, [devices[0]!, noise(8, 88), devices[2]!]);
  const base: Snapshot = { header: headerOf(baseState), state: baseState };
  const full: Snapshot = { header: headerOf(state), state };
  const engine = await loadMemoryEngine();
  const delta = makeDeltaSnapshot(full, ram, { snapshot: base, key: "boot-test", sha256: await stateDigest(base, nodeCodec) }, engine);
  return {
    base,
    engine,
    whole: await encodeSnapshot(full, { compression: "none", codec: nodeCodec }),
    wholeDeflated: await encodeSnapshot(full, { compression: "deflate-raw", codec: nodeCodec }),
    delta: await encodeSnapshot(delta, { compression: "none", codec: nodeCodec }),
  };
}

const made = fixture();

/** What a restore asks of a snapshot: the header's own image, memory and firmware. */
const expectation: SnapshotExpectation = { image: header.image, memoryMiB: 1, firmware: "direct" };

/** A snapshot file from its parts, sealed as encodeSnapshot seals one (header length, checksum). */
async function sealed(format: number, headerJson: string, payload: Uint8Array): Promise<Uint8Array> {
  const json = new TextEncoder().encode(headerJson);
  const out = new Uint8Array(48 + json.length + payload.length);
  out.set(MAGIC);
  const view = new DataView(out.buffer);
  view.setUint32(8, format, true);
  view.setUint32(12, json.length, true);
  out.set(json, 48);
  out.set(payload, 48 + json.length);
  out.set(await nodeCodec.sha256(out.subarray(48)), 16);
  return out;
}

/** A file's header (parsed) and payload. */
function parts(bytes: Uint8Array): { format: number; header: Record<string, unknown>; payload: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const length = view.getUint32(12, true);
  return { format: view.getUint32(8, true), header: JSON.parse(new TextDecoder().decode(bytes.subarray(48, 48 + length))), payload: bytes.subarray(48 + length) };
}

/** Decodes with everything a real restore has: the Node codec (or the web one), the base, the memory engine. */
async function decode(bytes: Uint8Array, codec = nodeCodec, expected: SnapshotExpectation = {}) {
  const { base, engine } = await made;
  const out = await coded(() => decodeSnapshot(bytes, expected, { codec, engine, base: async () => ({ snapshot: base, key: "boot-test" }) }));
  if (!out.ok) expect(out.error.code).toMatch(/^SNAPSHOT_(CORRUPT|MISMATCH)$/);
  return out;
}

describe("snapshot files as hostile input", () => {
  it("decode as they were written (the properties below start from these)", async () => {
    const { whole, wholeDeflated, delta } = await made;
    for (const bytes of [whole, wholeDeflated, delta]) expect((await decode(bytes)).ok).toBe(true);
  });

  it("refuse random bytes, with and without the magic, with a coded error", async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 256 }),
      fc.tuple(fc.uint8Array({ minLength: 40, maxLength: 256 }), hugeNumbers, fc.integer({ min: 0, max: 3 })).map(([rest, length, format]) => {
        const out = new Uint8Array([...MAGIC, 0, 0, 0, 0, 0, 0, 0, 0, ...rest]);
        new DataView(out.buffer).setUint32(8, format, true);
        new DataView(out.buffer).setUint32(12, length >>> 0, true);
        return out;
      }),
    );
    await fc.assert(
      fc.asyncProperty(bytes, async (b) => {
        const out = await coded(() => readSnapshotHeader(b));
        expect(out.ok).toBe(false);
        await decode(b);
      }),
      params(),
    );
  });

  it("refuse a valid file with bytes flipped, cut, inserted or duplicated (whole, deflated, delta)", async () => {
    const { whole, wholeDeflated, delta } = await made;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(whole, wholeDeflated, delta).chain((f) => mutatedBytes(f)), async (b) => {
        await decode(b);
      }),
      params(),
    );
  });

  it("take or refuse a resealed file whose header JSON has fields of any type, missing or huge", async () => {
    const { whole, wholeDeflated, delta } = await made;
    const files = [whole, wholeDeflated, delta].map(parts);
    // The file by its index, so a counterexample prints the header, not a megabyte of payload.
    const mutated = fc.integer({ min: 0, max: files.length - 1 }).chain((file) => mutatedJson(files[file]!.header).map((h) => ({ file, header: h })));
    await fc.assert(
      fc.asyncProperty(mutated, fc.boolean(), fc.boolean(), async ({ file, header: h }, web, expect) => {
        const { format, payload } = files[file]!;
        await decode(await sealed(format, JSON.stringify(h), payload), web ? webCodec : nodeCodec, expect ? expectation : {});
      }),
      params(),
    );
  });

  it("refuses a header whose compression is not a string as corrupt (found by the property above)", async () => {
    const { whole } = await made;
    const { format, header: h, payload } = parts(whole);
    const bad = await sealed(format, JSON.stringify({ ...h, payload: { ...(h.payload as object), compression: [{ toString: null }] } }), payload);
    const out = await decode(bad);
    expect(out.ok || out.error.message).toMatch(/its header's payload\.compression is not a compression name \(none or deflate-raw\)/);
  });

  it("take or refuse a resealed file whose payload (v86's state, the RAM delta) was changed", async () => {
    const { whole, delta } = await made;
    const files = [whole, delta].map(parts);
    const mutated = fc.constantFrom(...files).chain((f) => mutatedBytes(f.payload).map((payload) => ({ ...f, payload })));
    await fc.assert(
      fc.asyncProperty(mutated, async ({ format, header: h, payload }) => {
        // The sizes follow the payload, as a writer that meant it would set them: the parts' own checks must catch the rest.
        const head = structuredClone(h) as { payload: { bytes: number }; state: { bytes: number }; delta?: { stateBytes: number; memoryBytes: number } };
        head.payload.bytes = payload.length;
        if (head.delta) head.delta.memoryBytes = payload.length - head.delta.stateBytes;
        else head.state.bytes = payload.length;
        await decode(await sealed(format, JSON.stringify(head), payload));
      }),
      params(),
    );
  });
});

describe("a delta snapshot's v86 description as hostile input", () => {
  it("takes or refuses a resealed delta whose v86 description (buffers, memory size, buffer ids) has fields of any type", async () => {
    const { delta } = await made;
    const { format, header: h, payload } = parts(delta);
    const stateBytes = (h.delta as { stateBytes: number }).stateBytes;
    const state = payload.subarray(0, stateBytes);
    const view = new DataView(state.buffer, state.byteOffset);
    const infoLength = view.getInt32(12, true);
    const info = JSON.parse(new TextDecoder().decode(state.subarray(16, 16 + infoLength))) as Record<string, unknown>;
    const rest = state.subarray((16 + infoLength + 3) & ~3);
    const description = fc.oneof(mutatedJson(info), anyJson);
    await fc.assert(
      fc.asyncProperty(description, async (d) => {
        const json = new TextEncoder().encode(JSON.stringify(d) ?? "");
        const blockStart = (16 + json.length + 3) & ~3;
        const newState = new Uint8Array(blockStart + rest.length);
        newState.set(state.subarray(0, 16));
        new DataView(newState.buffer).setInt32(12, json.length, true);
        newState.set(json, 16);
        newState.set(rest, blockStart);
        const newPayload = new Uint8Array(newState.length + payload.length - stateBytes);
        newPayload.set(newState);
        newPayload.set(payload.subarray(stateBytes), newState.length);
        const head = structuredClone(h) as { payload: { bytes: number }; delta: { stateBytes: number } };
        head.payload.bytes = newPayload.length;
        head.delta.stateBytes = newState.length;
        await decode(await sealed(format, JSON.stringify(head), newPayload));
      }),
      params(),
    );
  });
});

describe("found by the properties above", () => {
  it("refuses a delta whose v86 description is JSON null as corrupt (was: TypeError reading buffer_infos)", async () => {
    const { delta } = await made;
    const { format, header: h, payload } = parts(delta);
    const stateBytes = (h.delta as { stateBytes: number }).stateBytes;
    const infoLength = new DataView(payload.buffer, payload.byteOffset).getInt32(12, true);
    const state = payload.slice(0, stateBytes);
    const nul = new TextEncoder().encode("null".padEnd(infoLength, " "));
    state.set(nul, 16);
    const bytes = new Uint8Array(payload.length);
    bytes.set(state);
    bytes.set(payload.subarray(stateBytes), stateBytes);
    const out = await decode(await sealed(format, JSON.stringify(h), bytes));
    expect(out.ok || out.error.message).toMatch(/its description is not an object with buffer_infos and state lists/);
  });
});
