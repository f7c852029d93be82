// The Wasm memory engine (both builds of assembly/) against the plain
// TypeScript reference, on the RAM of a real booted guest, plus the edge cases
// of deltas and page sharing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isHyperlabError } from "../../../src/errors.ts";
import {
  bitmapHas,
  DELTA_HEADER_SIZE,
  type EngineBuild,
  loadMemoryEngine,
  type MemoryEngine,
  PAGE_SIZE,
  ZERO_PAGE_HASH,
} from "../../../src/hypervisor/memory-engine.ts";
import { startGuest } from "../../../src/hypervisor/local-guest.ts";
import { memoryReference as reference, xxh3Page } from "../../../src/hypervisor/memory-reference.ts";

/** Guest RAM (128 MiB) right after boot, and after `echo hi`; both read while paused. */
let before: Uint8Array;
let after: Uint8Array;

beforeAll(async () => {
  const g = await startGuest();
  try {
    await g.machine.pause();
    before = g.machine.memory().slice();
    await g.machine.resume();
    expect((await g.agent.exec(["echo", "hi"])).stdout).toBe("hi\n");
    await g.machine.pause();
    after = g.machine.memory().slice();
  } finally {
    await g.stop();
  }
}, 60_000);

/** Deterministic bytes (an LCG), so failures reproduce. */
function pseudoRandom(bytes: number, seed = 1): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = seed;
  for (let i = 0; i < bytes; i++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    out[i] = x >>> 16;
  }
  return out;
}

function page(fill: (i: number) => number): Uint8Array {
  return Uint8Array.from({ length: PAGE_SIZE }, (_, i) => fill(i));
}

/** XXH3_64bits(page, 4096) from xxHash's own implementation (xxhsum, v0.8.3). */
const XXH3_VECTORS: Array<[string, Uint8Array, bigint]> = [
  ["zeros", page(() => 0), 0x93d76fe148c689ban],
  ["(7i + 3) mod 256", page((i) => (i * 7 + 3) & 255), 0xd7428746842be37en],
  ["0xff", page(() => 255), 0x074cfac273851dd6n],
  ["zeros but the last byte 1", page((i) => (i === 4095 ? 1 : 0)), 0xae1b0b159552488en],
  ["LCG bytes", pseudoRandom(PAGE_SIZE), 0x869423345af97371n],
];

/** The digest's definition, in BigInt: XXH64's 8-byte round and avalanche over the hashes. */
function digestSpec(hashes: BigUint64Array): bigint {
  const M = (1n << 64n) - 1n;
  const [P1, P2, P3, P4, P5] = [0x9e3779b185ebca87n, 0xc2b2ae3d27d4eb4fn, 0x165667b19e3779f9n, 0x85ebca77c2b2ae63n, 0x27d4eb2f165667c5n];
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M;
  let h = (P5 + BigInt(hashes.length) * 8n) & M;
  for (const x of hashes) {
    h ^= (rotl((x * P2) & M, 31n) * P1) & M;
    h = (rotl(h, 27n) * P1 + P4) & M;
  }
  h ^= h >> 33n;
  h = (h * P2) & M;
  h ^= h >> 29n;
  h = (h * P3) & M;
  return h ^ (h >> 32n);
}

/** Byte equality through memcmp (vitest's deep equality is far too slow for 128 MiB). */
function expectBytes(got: Uint8Array, want: Uint8Array): void {
  expect(got.byteLength).toBe(want.byteLength);
  expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true);
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isHyperlabError(err), `expected HyperlabError ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}

describe("memory reference (plain TypeScript)", () => {
  it.each(XXH3_VECTORS)("hashes a page of %s to xxHash's XXH3-64", (_name, bytes, want) => {
    expect(xxh3Page(bytes)).toBe(want);
    expect(reference.hashPages(bytes)[0]).toBe(want);
  });

  it("defines the digest as XXH64's round over the page hashes", () => {
    const hashes = reference.hashPages(pseudoRandom(64 * PAGE_SIZE, 7));
    expect(reference.digest(hashes)).toBe(digestSpec(hashes));
    expect(reference.digest(new BigUint64Array(0))).toBe(digestSpec(new BigUint64Array(0)));
  });
});

describe.each<EngineBuild>(["release", "debug"])("memory engine, %s build", (build) => {
  let engine: MemoryEngine;
  beforeAll(async () => {
    engine = await loadMemoryEngine(build);
  });

  it("hashes every page of real guest memory as the reference does", () => {
    const want = reference.hashPages(before);
    expect(want.length).toBe(before.length / PAGE_SIZE);
    expectBytes(new Uint8Array(engine.hashPages(before).buffer), new Uint8Array(want.buffer));
    const image = engine.load(before);
    try {
      expectBytes(new Uint8Array(engine.hashPages(image).buffer), new Uint8Array(want.buffer));
    } finally {
      image.free();
    }
    // the guest has both kinds of page
    const zeros = want.filter((h) => h === ZERO_PAGE_HASH).length;
    expect(zeros).toBeGreaterThan(1000);
    expect(want.length - zeros).toBeGreaterThan(1000);
  });

  it.each(XXH3_VECTORS)("hashes a page of %s to xxHash's XXH3-64", (_name, bytes, want) => {
    expect(engine.hashPages(bytes)[0]).toBe(want);
  });

  it("hashes views at any byte offset", () => {
    const bytes = pseudoRandom(8 * PAGE_SIZE + 3, 3);
    const view = bytes.subarray(3);
    expect(engine.hashPages(view)).toEqual(reference.hashPages(view));
    expect(engine.hashPages(view)[7]).toBe(xxh3Page(view.slice(7 * PAGE_SIZE)));
  });

  it("finds the same zero pages as the reference in real guest memory", () => {
    const want = reference.zeroPages(before);
    const got = engine.zeroPages(before);
    expect(got.count).toBe(want.count);
    expectBytes(got.bits, want.bits);
    const hashes = reference.hashPages(before);
    const fromBitmap = Array.from({ length: got.pages }, (_, i) => bitmapHas(got, i));
    expect(fromBitmap).toEqual(Array.from(hashes, (h) => h === ZERO_PAGE_HASH));
  });

  it("encodes the delta of `echo hi` as the reference does, and decodes it back exactly", () => {
    const delta = engine.encodeDelta(before, after);
    expectBytes(delta, reference.encodeDelta(before, after));
    expect(delta.byteLength).toBeLessThan(0.05 * before.byteLength);
    expectBytes(engine.decodeDelta(before, delta), after);
    expectBytes(reference.decodeDelta(before, delta), after);
    const base = engine.load(before);
    const current = engine.load(after);
    try {
      expectBytes(engine.encodeDelta(base, current), delta);
      expectBytes(engine.encodeDelta(base, after), delta); // resident base, streamed current
      engine.decodeDelta(base, delta, base); // in place
      expectBytes(base.view(), after);
    } finally {
      base.free();
      current.free();
    }
  });

  it("computes the same digest as the reference and its definition", () => {
    const hashes = engine.hashPages(after);
    expect(engine.digest(hashes)).toBe(reference.digest(hashes));
    expect(engine.digest(hashes)).toBe(digestSpec(hashes));
  });

  it("encodes an empty delta for identical memories", () => {
    const mem = pseudoRandom(16 * PAGE_SIZE);
    const delta = engine.encodeDelta(mem, mem.slice());
    expect(delta.byteLength).toBe(DELTA_HEADER_SIZE);
    expectBytes(delta, reference.encodeDelta(mem, mem.slice()));
    expectBytes(engine.decodeDelta(mem, delta), mem);
  });

  it("stores every page when all pages changed", () => {
    const base = pseudoRandom(40 * PAGE_SIZE, 1);
    const current = pseudoRandom(40 * PAGE_SIZE, 2);
    const delta = engine.encodeDelta(base, current);
    expect(delta.byteLength).toBe(DELTA_HEADER_SIZE + 40 * 4 + 40 * PAGE_SIZE);
    expectBytes(delta, reference.encodeDelta(base, current));
    expectBytes(engine.decodeDelta(base, delta), current);
  });

  it("stores no bytes for pages that became zero", () => {
    const base = pseudoRandom(9 * PAGE_SIZE);
    const current = base.slice();
    current.fill(0, 2 * PAGE_SIZE, 4 * PAGE_SIZE); // pages 2, 3 zeroed
    current[8 * PAGE_SIZE + 5]! ^= 1; // page 8 changed
    const delta = engine.encodeDelta(base, current);
    expect(delta.byteLength).toBe(DELTA_HEADER_SIZE + 3 * 4 + PAGE_SIZE);
    expectBytes(delta, reference.encodeDelta(base, current));
    expectBytes(engine.decodeDelta(base, delta), current);
  });

  it("rejects memory that is not a whole number of pages", () => {
    expectCode(() => engine.hashPages(new Uint8Array(PAGE_SIZE + 1)), "INVALID_ARGUMENT", /4097 bytes, not a whole number of 4096-byte pages/);
    expectCode(() => engine.zeroPages(new Uint8Array(100)), "INVALID_ARGUMENT");
    expectCode(() => engine.hashPages(new Uint8Array(0)), "INVALID_ARGUMENT");
    expectCode(() => engine.encodeDelta(new Uint8Array(PAGE_SIZE), new Uint8Array(2 * PAGE_SIZE)), "INVALID_ARGUMENT", /same size/);
    expectCode(() => reference.hashPages(new Uint8Array(PAGE_SIZE - 1)), "INVALID_ARGUMENT");
  });

  it("rejects a delta applied to another base", () => {
    const delta = engine.encodeDelta(before, after);
    const other = before.slice();
    other[12345]! ^= 0x40;
    expectCode(() => engine.decodeDelta(other, delta), "SNAPSHOT_MISMATCH", /made against another base/);
    expectCode(() => reference.decodeDelta(other, delta), "SNAPSHOT_MISMATCH", /made against another base/);
    expectCode(() => engine.decodeDelta(before.subarray(PAGE_SIZE), delta), "SNAPSHOT_MISMATCH", /32768 pages/);
  });

  it("rejects a damaged delta before writing anything", () => {
    const base = pseudoRandom(8 * PAGE_SIZE, 5);
    const current = pseudoRandom(8 * PAGE_SIZE, 6);
    const delta = engine.encodeDelta(base, current);
    const flipped = delta.slice();
    flipped[flipped.length - 100]! ^= 1;
    const into = new Uint8Array(base.length);
    expectCode(() => engine.decodeDelta(base, flipped, into), "SNAPSHOT_CORRUPT", /do not give the memory it was made from/);
    expect(into.every((b) => b === 0)).toBe(true);
    expectCode(() => engine.decodeDelta(base, delta.subarray(0, delta.length - 1)), "SNAPSHOT_CORRUPT");
    expectCode(() => engine.decodeDelta(base, new Uint8Array(8)), "SNAPSHOT_CORRUPT", /shorter than its 32-byte header/);
    const magic = delta.slice();
    magic[0] = 0;
    expectCode(() => engine.decodeDelta(base, magic), "SNAPSHOT_CORRUPT", /HLMD/);
    const index = delta.slice();
    new DataView(index.buffer).setUint32(DELTA_HEADER_SIZE, 99, true);
    expectCode(() => engine.decodeDelta(base, index), "SNAPSHOT_CORRUPT", /page index entry 0/);
  });

  it("counts pages shared across VMs as the reference does", () => {
    const vms = [engine.hashPages(before), engine.hashPages(after), engine.hashPages(pseudoRandom(64 * PAGE_SIZE))];
    const stats = engine.sharingStats(vms);
    expect(stats).toEqual(reference.sharingStats(vms));
    expect(stats.totalPages).toBe(2 * 32768 + 64);
    expect(stats.crossVmPages).toBeGreaterThan(60_000); // two nearly identical guests
  });

  it("counts what KSM would merge in a small example", () => {
    const [a, b] = [pseudoRandom(PAGE_SIZE, 1), pseudoRandom(PAGE_SIZE, 2)];
    const zero = new Uint8Array(PAGE_SIZE);
    const hashes = (...pages: Uint8Array[]) => engine.hashPages(Uint8Array.from(pages.flatMap((p) => [...p])));
    // VM 0: a a 0, VM 1: a b 0
    const stats = engine.sharingStats([hashes(a, a, zero), hashes(a, b, zero)]);
    expect(stats).toEqual({ vms: 2, totalPages: 6, zeroPages: 2, uniquePages: 3, shareablePages: 5, savedPages: 3, crossVmPages: 5 });
    expect(reference.sharingStats([hashes(a, a, zero), hashes(a, b, zero)])).toEqual(stats);
    expect(engine.sharingStats([hashes(a, a)]).crossVmPages).toBe(0);
    expect(engine.sharingStats([])).toMatchObject({ totalPages: 0, uniquePages: 0 });
  });

  it("keeps memory images apart and refuses one after it is freed", () => {
    const x = engine.load(pseudoRandom(4 * PAGE_SIZE, 1));
    const y = engine.allocate(4 * PAGE_SIZE);
    expect(y.view().every((b) => b === 0)).toBe(true);
    y.set(x.view());
    expect(engine.hashPages(y)).toEqual(engine.hashPages(x));
    x.free();
    expectCode(() => x.view(), "INVALID_ARGUMENT", /freed/);
    y.free();
    expectCode(() => engine.allocate(2 ** 32), "RESOURCE_EXHAUSTED", /4096 MiB/);
  });
});

afterAll(() => {
  before = after = new Uint8Array(0);
});
