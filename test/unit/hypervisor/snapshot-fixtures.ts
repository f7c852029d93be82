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

/**
 * A v86 state laid out as v86 0.5 saves one: header, description (memory
 * size at state[0], packed pages at state[77], their bitmap at state[78]),
 * then the buffers at 4-byte-aligned offsets: the devices', then RAM's.
 */
export function v86State(ram: Uint8Array, devices: Uint8Array[]): Uint8Array {
  const pages = ram.length / 4096;
  const bitmap = new Uint8Array(pages / 8);
  const nonZero: number[] = [];
  for (let p = 0; p < pages; p++) {
    if (ram.subarray(p * 4096, (p + 1) * 4096).some((b) => b !== 0)) {
      bitmap[p >> 3]! |= 1 << (p & 7);
      nonZero.push(p);
    }
  }
  const packed = new Uint8Array(nonZero.length * 4096);
  nonZero.forEach((p, i) => packed.set(ram.subarray(p * 4096, (p + 1) * 4096), i * 4096));
  const buffers = [...devices, packed, bitmap];
  const state: unknown[] = [ram.length];
  devices.forEach((_, id) => (state[1 + id] = { __state_type__: "Uint8Array", buffer_id: id }));
  state[77] = { __state_type__: "Uint8Array", buffer_id: devices.length };
  state[78] = { __state_type__: "Uint8Array", buffer_id: devices.length + 1 };
  let offset = 0;
  const infos = buffers.map((b) => {
    const info = { offset, length: b.length };
    offset = (offset + b.length + 3) & ~3;
    return info;
  });
  const json = new TextEncoder().encode(JSON.stringify({ buffer_infos: infos, state }));
  const blockStart = (16 + json.length + 3) & ~3;
  const out = new Uint8Array(blockStart + offset);
  new Int32Array(out.buffer, 0, 4).set([-2039052682, 6, out.length, json.length]);
  out.set(json, 16);
  buffers.forEach((b, id) => out.set(b, blockStart + infos[id]!.offset));
  return out;
}

/** Pseudo-random bytes from a seed. */
export function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
