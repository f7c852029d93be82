// Our snapshot format (src/hypervisor/snapshot.ts): header, payload codecs,
// checksum and the coded errors of damaged or mismatched files, read through
// the decoder every restore uses.
import { describe, expect, it } from "vitest";
import type { GuestImage } from "../../../src/hardware/guest-image.ts";
import { nodeCodec } from "../../../src/hypervisor/boot-snapshot-node.ts";
import { decodeSnapshot } from "../../../src/hypervisor/delta-snapshot.ts";
import { type SnapshotCodec, encodeSnapshot, imageDigest, readSnapshotHeader, webCodec } from "../../../src/hypervisor/snapshot.ts";
import { failure, fakeState, header, resealed, sameBytes, snapshot } from "./snapshot-fixtures.ts";

describe.each([
  ["the web codec", webCodec],
  ["the Node codec", nodeCodec],
] as Array<[string, SnapshotCodec]>)("snapshot files with %s", (_, codec) => {
  it.each(["none", "deflate-raw"] as const)("round-trip the state and header with compression %s", async (compression) => {
    const bytes = await encodeSnapshot(snapshot, { compression, codec });
    const back = await decodeSnapshot(bytes, { memoryMiB: 128, firmware: "direct", image: header.image }, { codec });
    expect(sameBytes(back.state, snapshot.state)).toBe(true);
    // v86 takes the state as a whole ArrayBuffer: no view into the file.
    expect(back.state.byteOffset).toBe(0);
    expect(back.state.buffer.byteLength).toBe(snapshot.state.length);
    expect(back.header).toEqual({
      ...header,
      state: { bytes: snapshot.state.length, v86Format: 6 },
      payload: { compression, bytes: bytes.length - 48 - JSON.stringify(back.header).length },
    });
    if (compression === "deflate-raw") expect(bytes.length).toBeLessThan(snapshot.state.length * 0.6);
  });

  it("reject a changed payload byte with SNAPSHOT_CORRUPT (checksum)", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "deflate-raw", codec });
    bytes[bytes.length - 10]! ^= 0x40;
    const err = await failure(decodeSnapshot(bytes, {}, { codec }));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    expect(err.message).toMatch(/checksum does not match its contents/);
    expect(err.message).toMatch(/Take the snapshot again/);
  });

  it("reject a changed header byte with SNAPSHOT_CORRUPT, not as another memory size", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "none", codec });
    const text = new TextDecoder().decode(bytes.subarray(48, 48 + 400));
    const at = 48 + text.indexOf('"memoryMiB":128') + '"memoryMiB":'.length;
    bytes[at] = "9".charCodeAt(0); // 128 → 928
    const err = await failure(decodeSnapshot(bytes, { memoryMiB: 128 }, { codec }));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
  });

  it("reject a truncated file with SNAPSHOT_CORRUPT saying so", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "none", codec });
    for (const length of [bytes.length - 1, 100, 20]) {
      const err = await failure(decodeSnapshot(bytes.subarray(0, length), {}, { codec }));
      expect(err.code).toBe("SNAPSHOT_CORRUPT");
      expect(err.message).toMatch(/truncated|shorter than/);
    }
  });

  it("reject a payload that does not decompress with SNAPSHOT_CORRUPT", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "deflate-raw", codec });
    const start = bytes.length - JSON.parse(new TextDecoder().decode(bytes.subarray(48, 48 + new DataView(bytes.buffer).getUint32(12, true)))).payload.bytes;
    bytes.fill(0xff, start, start + 64); // deflate block type 3: invalid
    const err = await failure(decodeSnapshot(await resealed(bytes, codec), {}, { codec }));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    expect(err.message).toMatch(/does not decompress/);
  });

  it("reject a payload that is not a v86 state with SNAPSHOT_CORRUPT", async () => {
    const notState = fakeState(8192);
    notState[0] = 0;
    const bytes = await encodeSnapshot({ header, state: notState }, { compression: "none", codec });
    const err = await failure(decodeSnapshot(bytes, {}, { codec }));
    expect(err).toMatchObject({ code: "SNAPSHOT_CORRUPT", message: expect.stringMatching(/not a v86 machine state/) });
  });
});

describe("snapshot headers", () => {
  it("reject a file without the magic with SNAPSHOT_CORRUPT", async () => {
    const bytes = new TextEncoder().encode("this is not a snapshot, just a text file that is long enough for a header");
    const err = await failure(decodeSnapshot(bytes));
    expect(err).toMatchObject({ code: "SNAPSHOT_CORRUPT", message: expect.stringMatching(/magic/) });
  });

  it("reject another format version with SNAPSHOT_MISMATCH naming both versions", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "none" });
    new DataView(bytes.buffer).setUint32(8, 3, true);
    const err = await failure(decodeSnapshot(bytes));
    expect(err.code).toBe("SNAPSHOT_MISMATCH");
    expect(err.message).toMatch(/format version 3; this hyperlab reads formats 1 \(whole\) and 2 \(delta\)/);
  });

  it("reject another memory size, firmware or image with SNAPSHOT_MISMATCH naming both values", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "none" });
    const memory = await failure(decodeSnapshot(bytes, { memoryMiB: 96 }));
    expect(memory).toMatchObject({ code: "SNAPSHOT_MISMATCH", message: expect.stringMatching(/128 MiB, but 96 MiB was asked for/) });
    const firmware = await failure(decodeSnapshot(bytes, { firmware: "seabios" }));
    expect(firmware).toMatchObject({ code: "SNAPSHOT_MISMATCH", message: expect.stringMatching(/firmware direct, but seabios/) });
    const image = await failure(decodeSnapshot(bytes, { image: { id: "fedcba9876543210", sha256: "cd".repeat(32) } }));
    expect(image.code).toBe("SNAPSHOT_MISMATCH");
    expect(image.message).toMatch(/0123456789abcdef \(sha256 abababababab…\).*fedcba9876543210 \(sha256 cdcdcdcdcdcd…\)/);
  });

  it("can be read without checking or unpacking the payload", async () => {
    const bytes = await encodeSnapshot(snapshot, { compression: "deflate-raw" });
    expect(readSnapshotHeader(bytes)).toMatchObject({ image: header.image, vm: header.vm, payload: { compression: "deflate-raw" } });
  });
});

describe("imageDigest", () => {
  const image = (files: Record<string, string>) =>
    ({ manifest: { files: Object.fromEntries(Object.entries(files).map(([n, sha256]) => [n, { sha256, size: 1, what: "" }])) } }) as unknown as GuestImage;

  it("depends on every file's sha256 but not on the manifest's order", async () => {
    const a = await imageDigest(image({ "bzImage": "11", "base.cpio": "22" }));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(await imageDigest(image({ "base.cpio": "22", "bzImage": "11" }))).toBe(a);
    expect(await imageDigest(image({ "bzImage": "11", "base.cpio": "23" }))).not.toBe(a);
  });
});

