// Shared by the snapshot and delta-snapshot unit tests: a stand-in v86
// state, a snapshot header, and helpers to reseal a changed file and to
// catch the coded error a decode fails with.
import { expect } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import type { Snapshot, SnapshotCodec, SnapshotHeader } from "../../../src/hypervisor/snapshot.ts";

/**
 * A stand-in for v86's state: its 16-byte header (magic, format 6, length,
 * info length), then runs of zero pages and of pseudo-random pages, as saved
 * RAM has. Real states come from booted guests in test/integration/snapshot.test.ts.
 */
export function fakeState(bytes = 1 << 20): Uint8Array {
  const state = new Uint8Array(bytes);
  new Int32Array(state.buffer, 0, 4).set([-2039052682, 6, bytes, 0]);
  let x = 0x9e3779b9;
  for (let page = 1; page < bytes / 4096; page++) {
    if (page % 3 === 0) continue;
    for (let i = page * 4096; i < (page + 1) * 4096; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      state[i] = page % 3 === 1 ? x & 0xff : i & 0x0f;
    }
  }
  return state;
}

export const header: SnapshotHeader = {
  format: 1,
  image: { id: "0123456789abcdef", sha256: "ab".repeat(32) },
  vm: { memoryMiB: 128, firmware: "direct", cmdline: "init_on_free=1" },
  kernelCmdline: "console=ttyS0 init_on_free=1",
  agent: { version: 1, name: "hyperlab-agent 1", pid: 42 },
  createdAt: "2026-01-01T00:00:00.000Z",
  state: { bytes: 0, v86Format: 6 },
  payload: { compression: "none", bytes: 0 },
};

export const snapshot: Snapshot = { header, state: fakeState() };

/** Rewrites the checksum after a deliberate change, so the change itself is what gets detected. */
export async function resealed(bytes: Uint8Array, codec: SnapshotCodec): Promise<Uint8Array> {
  const out = bytes.slice();
  out.set(await codec.sha256(out.subarray(48)), 16);
  return out;
}

export async function failure(p: Promise<unknown>): Promise<HyperlabError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HyperlabError);
  return err as HyperlabError;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

