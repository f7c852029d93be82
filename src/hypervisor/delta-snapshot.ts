// Delta snapshots: a VM started from the boot snapshot differs from it in a
// few hundred pages of RAM and a few device buffers, so its snapshot stores
// only those. Taking one takes v86's state apart (src/hardware/v86-state.ts):
// guest RAM becomes a page delta against the base's RAM (the memory engine's
// encodeDelta), the buffers equal to the base's are left out, the rest of
// v86's state is kept as it is. Applying one puts v86's state back together
// byte for byte, working on the base's packed pages (never on a whole RAM
// image), after the engine's digests have checked that the base is the
// delta's base and that the delta is whole. The file format (the header, the
// payload's two parts) is snapshot.ts's; this file builds on it, and decodes
// any snapshot file, whole or delta, back to a whole snapshot. Format:
// docs/snapshots.md.
import { HyperlabError } from "../errors.ts";
import { V86_PAGE_SIZE, type V86StateLayout, readV86State, v86Buffer } from "../hardware/v86-state.ts";
import { DELTA_HEADER_SIZE, type MemoryKernels, type MemoryOps, PAGE_SIZE, ZERO_PAGE_HASH, loadMemoryEngine, readDeltaHeader } from "./memory-engine.ts";
import {
  DELTA_SNAPSHOT_FORMAT,
  type DeltaSnapshot,
  SNAPSHOT_FORMAT,
  type Snapshot,
  type SnapshotBase,
  type SnapshotCodec,
  type SnapshotExpectation,
  type SnapshotHeader,
  stateDigest,
  unpackSnapshot,
  webCodec,
} from "./snapshot.ts";

/** A base as the VM worker needs it to take a delta snapshot. */
export interface DeltaBase {
  snapshot: Snapshot;
  /** the boot snapshot's key ("" when it has none) */
  key: string;
  /** sha256 (hex) of `snapshot.state` (see stateDigest in snapshot.ts) */
  sha256: string;
}

/**
 * Finds the base a delta snapshot was taken against (normally the boot
 * snapshot of its image and memory size), or undefined when there is none.
 * The decoder checks its sha256 itself.
 */
export type BaseResolver = (base: SnapshotBase, header: SnapshotHeader) => Promise<{ snapshot: Snapshot; key?: string } | undefined>;

/** Options of decodeSnapshot. */
export interface DecodeOptions {
  codec?: SnapshotCodec;
  /** where a delta snapshot's base comes from (without one, a delta snapshot fails with SNAPSHOT_MISMATCH) */
  base?: BaseResolver;
  /** the memory engine that checks a delta against its base (default: this thread's Wasm engine) */
  engine?: MemoryKernels;
}

/** Set in a RAM delta's index entry when the page became all zero (memory-engine.ts). */
const ZEROED = 0x80000000;

const align4 = (n: number) => (n + 3) & ~3;

function mismatch(what: string, detail?: Record<string, unknown>): HyperlabError {
  return new HyperlabError("SNAPSHOT_MISMATCH", `the delta snapshot does not fit its base: ${what}. Restore it where it was taken, or take a whole snapshot (vm.snapshot({ full: true }), hyperlab vm snapshot --full).`, detail);
}

function corrupt(what: string): HyperlabError {
  return new HyperlabError("SNAPSHOT_CORRUPT", `the snapshot is damaged: ${what}. Take the snapshot again.`);
}

function hex64(x: bigint): string {
  return x.toString(16).padStart(16, "0");
}

function bit(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3]! >> (i & 7)) & 1) === 1;
}

/** Byte equality, a word at a time where both sides are aligned (they are, in v86 states). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let i = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const words = a.length >> 2;
    const wa = new Int32Array(a.buffer, a.byteOffset, words);
    const wb = new Int32Array(b.buffer, b.byteOffset, words);
    for (; i < words; i++) if (wa[i] !== wb[i]) return false;
    i = words << 2;
  }
  for (; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A state's guest RAM as one array: its packed pages placed where its bitmap says (the rest stays zero). */
export function expandRam(state: Uint8Array, layout: V86StateLayout): Uint8Array {
  const ram = new Uint8Array(layout.memoryBytes);
  const bits = v86Buffer(state, layout, layout.bitmapId);
  const packed = v86Buffer(state, layout, layout.packedId);
  const pages = layout.memoryBytes / V86_PAGE_SIZE;
  let from = 0;
  for (let page = 0; page < pages; ) {
    if (!bit(bits, page)) {
      page++;
      continue;
    }
    let end = page + 1;
    while (end < pages && bit(bits, end)) end++;
    const bytes = (end - page) * V86_PAGE_SIZE;
    if (from + bytes > packed.length) throw corrupt("its page bitmap lists more pages than it holds");
    ram.set(packed.subarray(from, from + bytes), page * V86_PAGE_SIZE);
    from += bytes;
    page = end;
  }
  if (from !== packed.length) throw corrupt("it holds more pages than its page bitmap lists");
  return ram;
}

/**
 * A delta snapshot of `full` against `base`: `ram` is the machine's guest RAM
 * as `full` saved it (the live view of the machine, still paused). Throws
 * SNAPSHOT_MISMATCH when the base has another memory size.
 */
export function makeDeltaSnapshot(full: Snapshot, ram: Uint8Array, base: DeltaBase, engine: MemoryOps): DeltaSnapshot {
  const cur = readV86State(full.state);
  const old = readV86State(base.snapshot.state);
  if (old.memoryBytes !== cur.memoryBytes || ram.byteLength !== cur.memoryBytes) {
    throw mismatch(`the base has ${old.memoryBytes >> 20} MiB of RAM, the machine ${cur.memoryBytes >> 20} MiB`);
  }
  const memory = engine.encodeDelta(expandRam(base.snapshot.state, old), ram);
  const delta = readDeltaHeader(memory);

  const omitted = new Set([cur.packedId, cur.bitmapId]);
  const baseBuffers: number[] = [];
  if (old.buffers.length === cur.buffers.length) {
    for (let id = 0; id < cur.buffers.length; id++) {
      if (omitted.has(id) || id === old.packedId || id === old.bitmapId) continue;
      if (sameBytes(v86Buffer(full.state, cur, id), v86Buffer(base.snapshot.state, old, id))) {
        baseBuffers.push(id);
        omitted.add(id);
      }
    }
  }
  let size = cur.blockStart;
  for (const [id, b] of cur.buffers.entries()) if (!omitted.has(id)) size += align4(b.length);
  const state = new Uint8Array(size);
  state.set(full.state.subarray(0, cur.blockStart));
  let at = cur.blockStart;
  for (const [id, b] of cur.buffers.entries()) {
    if (omitted.has(id)) continue;
    state.set(v86Buffer(full.state, cur, id), at);
    at += align4(b.length);
  }
  const header = {
    ...full.header,
    format: DELTA_SNAPSHOT_FORMAT,
    state: { bytes: full.state.length, v86Format: cur.version },
    payload: { compression: "none" as const, bytes: state.length + memory.length },
    delta: {
      base: { key: base.key, sha256: base.sha256, memoryDigest: hex64(delta.baseDigest) },
      stateBytes: state.length,
      memoryBytes: memory.length,
      baseBuffers,
      changedPages: delta.changedPages,
    },
  };
  return { header, state, memory };
}

/** Page hashes and digest of a base's RAM, per base state (a base is applied to many times). */
const baseHashes = new WeakMap<ArrayBufferLike, { hashes: BigUint64Array; digest: bigint }>();

/** The page hashes of a state's RAM, from its packed pages alone: a page not in the bitmap is zero. */
function ramHashes(state: Uint8Array, layout: V86StateLayout, engine: MemoryKernels): { hashes: BigUint64Array; digest: bigint } {
  const key = state.buffer;
  const known = state.byteOffset === 0 ? baseHashes.get(key) : undefined;
  if (known) return known;
  const pages = layout.memoryBytes / PAGE_SIZE;
  const bits = v86Buffer(state, layout, layout.bitmapId);
  const packed = v86Buffer(state, layout, layout.packedId);
  const stored = packed.length ? engine.hashPages(packed) : new BigUint64Array(0);
  const hashes = new BigUint64Array(pages).fill(ZERO_PAGE_HASH);
  let s = 0;
  for (let page = 0; page < pages; page++) {
    if (!bit(bits, page)) continue;
    if (s >= stored.length) throw corrupt("the base's page bitmap lists more pages than it holds");
    hashes[page] = stored[s++]!;
  }
  if (s !== stored.length) throw corrupt("the base holds more pages than its page bitmap lists");
  const result = { hashes, digest: engine.digest(hashes) };
  if (state.byteOffset === 0) baseHashes.set(key, result);
  return result;
}

/**
 * The whole snapshot a delta snapshot stands for, given its base (the caller
 * has checked the base's sha256 against the header). The memory engine
 * checks that the base's RAM is the delta's base (SNAPSHOT_MISMATCH) and
 * that the delta gives the RAM it was taken from (SNAPSHOT_CORRUPT) before
 * anything is built. The state returned spans its own ArrayBuffer.
 */
export function applyDeltaSnapshot(delta: DeltaSnapshot, base: Snapshot, engine: MemoryKernels): Snapshot {
  const info = delta.header.delta;
  const mem = readDeltaHeader(delta.memory);
  if (hex64(mem.baseDigest) !== info.base.memoryDigest) throw corrupt("its RAM delta names another base than its header");
  const cur = readV86State(delta.state);
  if (cur.totalBytes !== delta.header.state.bytes) throw corrupt(`its state says ${cur.totalBytes} bytes, its header ${delta.header.state.bytes}`);
  const old = readV86State(base.state);
  const pages = cur.memoryBytes / PAGE_SIZE;
  if (old.memoryBytes !== cur.memoryBytes || mem.pageCount !== pages) {
    throw mismatch(`it holds ${cur.memoryBytes >> 20} MiB of RAM, the base ${old.memoryBytes >> 20} MiB`);
  }

  // The checks first, on hashes: nothing is built for a wrong base or a damaged delta.
  const baseRam = ramHashes(base.state, old, engine);
  if (baseRam.digest !== mem.baseDigest) {
    throw mismatch(`its RAM was taken against a base whose page digest is ${hex64(mem.baseDigest)}, and this base's is ${hex64(baseRam.digest)}`);
  }
  const dataStart = DELTA_HEADER_SIZE + mem.changedPages * 4;
  const storedHashes = mem.storedPages ? engine.hashPages(delta.memory.subarray(dataStart)) : new BigUint64Array(0);
  const hashes = baseRam.hashes.slice();
  let s = 0;
  for (const e of mem.index) hashes[e & ~ZEROED] = e & ZEROED ? ZERO_PAGE_HASH : storedHashes[s++]!;
  const digest = engine.digest(hashes);
  if (digest !== mem.resultDigest) {
    throw corrupt(`its RAM delta does not give the RAM it was taken from (page digest ${hex64(digest)}, expected ${hex64(mem.resultDigest)})`);
  }

  const out = new Uint8Array(delta.header.state.bytes);
  out.set(delta.state.subarray(0, cur.blockStart));
  const fromBase = new Set(info.baseBuffers);
  let at = cur.blockStart;
  for (const [id, b] of cur.buffers.entries()) {
    if (id === cur.packedId || id === cur.bitmapId) continue;
    if (fromBase.has(id)) {
      const src = id < old.buffers.length ? v86Buffer(base.state, old, id) : undefined;
      if (!src || src.length !== b.length) throw mismatch(`v86 buffer ${id} of the base is ${src?.length ?? "missing"}, the snapshot needs ${b.length} bytes`);
      out.set(src, b.start);
    } else {
      if (at + b.length > delta.state.length) throw corrupt("its state part is shorter than its buffers");
      out.set(delta.state.subarray(at, at + b.length), b.start);
      at += align4(b.length);
    }
  }
  if (at !== delta.state.length) throw corrupt("its state part is longer than its buffers");
  mergeRam(out, cur, base.state, old, delta.memory, mem.index, dataStart);
  return { header: wholeHeader(delta.header), state: out };
}

/**
 * Checks and unpacks snapshot bytes (unpackSnapshot: magic, format,
 * checksum, what `expected` asks for, the payload). A delta snapshot is put
 * back together with its base (`opts.base`), so the result is always a whole
 * snapshot. Throws SNAPSHOT_CORRUPT (bad magic, truncated, checksum
 * mismatch, payload that does not decompress or is not a v86 state, a RAM
 * delta that does not give the RAM it was taken from) or SNAPSHOT_MISMATCH
 * (other format, image, memory or firmware; a delta whose base is missing).
 */
export async function decodeSnapshot(bytes: Uint8Array, expected: SnapshotExpectation = {}, opts: DecodeOptions = {}): Promise<Snapshot> {
  const codec = opts.codec ?? webCodec;
  const unpacked = await unpackSnapshot(bytes, expected, { codec });
  if (!("memory" in unpacked)) return unpacked;
  const delta = unpacked.header.delta;
  const base = await opts.base?.(delta.base, unpacked.header);
  const has = base ? await stateDigest(base.snapshot, codec) : undefined;
  if (!base || has !== delta.base.sha256) {
    const wanted = `${delta.base.key || "a boot snapshot"} (sha256 ${delta.base.sha256.slice(0, 12)}…)`;
    const found = base ? `the boot snapshot here for this image and memory size is ${base.key || "another one"} (sha256 ${has!.slice(0, 12)}…): boot snapshots differ from one build to the next` : "there is no boot snapshot here to apply it to";
    throw new HyperlabError(
      "SNAPSHOT_MISMATCH",
      `the snapshot stores only what changed since ${wanted}, and that base is missing: ${found}. ` +
        "Restore it where it was taken, or take a whole snapshot there (vm.snapshot({ full: true }), hyperlab vm snapshot --full).",
      { base: delta.base, found: base ? { key: base.key, sha256: has } : null },
    );
  }
  const engine = opts.engine ?? (await loadMemoryEngine());
  return applyDeltaSnapshot(unpacked, base.snapshot, engine);
}

/** The header of the whole snapshot a delta snapshot stands for. */
function wholeHeader(header: DeltaSnapshot["header"]): SnapshotHeader {
  const { delta: _delta, ...rest } = header;
  return { ...rest, format: SNAPSHOT_FORMAT, payload: { compression: "none", bytes: header.state.bytes } };
}

/**
 * Writes the RAM buffers of `out` (bitmap and packed pages, laid out as
 * `cur` says): the base's pages, with the delta's changed pages in place and
 * its zeroed pages left out.
 */
function mergeRam(out: Uint8Array, cur: V86StateLayout, baseState: Uint8Array, old: V86StateLayout, delta: Uint8Array, index: Uint32Array, dataStart: number): void {
  const pages = cur.memoryBytes / PAGE_SIZE;
  const baseBits = v86Buffer(baseState, old, old.bitmapId);
  const basePacked = v86Buffer(baseState, old, old.packedId);
  const bitsAt = cur.buffers[cur.bitmapId]!;
  const packedAt = cur.buffers[cur.packedId]!;
  const bits = out.subarray(bitsAt.start, bitsAt.start + bitsAt.length);
  bits.set(baseBits.subarray(0, Math.min(baseBits.length, bits.length)));
  for (const e of index) {
    const page = e & ~ZEROED;
    if (e & ZEROED) bits[page >> 3]! &= ~(1 << (page & 7));
    else bits[page >> 3]! |= 1 << (page & 7);
  }
  let count = 0;
  for (let page = 0; page < pages; page++) if (bit(bits, page)) count++;
  if (count * PAGE_SIZE !== packedAt.length) {
    throw corrupt(`its RAM holds ${count} non-zero pages, its state has room for ${packedAt.length / PAGE_SIZE}`);
  }

  const packed = out.subarray(packedAt.start, packedAt.start + packedAt.length);
  let o = 0; // next page of `packed`
  let b = 0; // next page of `basePacked`
  let d = 0; // next entry of `index`
  let data = dataStart;
  // A run of base pages copied together: [runFrom, b) of the base to [runTo, …) of packed.
  let runFrom = 0;
  let runTo = 0;
  const flush = () => {
    if (b > runFrom) packed.set(basePacked.subarray(runFrom * PAGE_SIZE, b * PAGE_SIZE), runTo * PAGE_SIZE);
  };
  let next = index.length ? index[0]! & ~ZEROED : pages;
  for (let page = 0; page < pages; page++) {
    const inBase = bit(baseBits, page);
    if (page === next) {
      flush();
      const e = index[d++]!;
      if (!(e & ZEROED)) {
        packed.set(delta.subarray(data, data + PAGE_SIZE), o++ * PAGE_SIZE);
        data += PAGE_SIZE;
      }
      if (inBase) b++;
      runFrom = b;
      runTo = o;
      next = d < index.length ? index[d]! & ~ZEROED : pages;
    } else if (inBase) {
      b++;
      o++;
    }
  }
  flush();
}
