// Snapshots: v86's saved machine state inside hyperlab's header, which says
// what the state must be restored with (guest image, memory size, firmware,
// kernel arguments) and carries a checksum, so a damaged file or one taken
// with other options fails with a clear error instead of a confused guest.
// This file owns the file format, of whole snapshots and of delta snapshots
// (format 2: only what differs from a boot snapshot). Taking a delta and
// putting the whole state back together from one is delta-snapshot.ts's work.
import { HyperlabError } from "../errors.ts";
import type { GuestImage } from "../hardware/guest-image.ts";
import { type Firmware, Machine, type RestoreReport } from "../hardware/machine.ts";

/** The file format of whole snapshots (delta snapshots are DELTA_SNAPSHOT_FORMAT, 2); this hyperlab reads both. */
export const SNAPSHOT_FORMAT = 1;

/** The snapshot file format version of delta snapshots (whole snapshots stay format 1). */
export const DELTA_SNAPSHOT_FORMAT = 2;

/** How the state is stored after the header. */
export type Compression = "none" | "deflate-raw";

/** What a snapshot says of itself (stored as JSON in its header). */
export interface SnapshotHeader {
  /** file format version (SNAPSHOT_FORMAT when written) */
  format: number;
  /** the guest image the saved RAM came from: its manifest id and the sha256 of its manifest's file list */
  image: { id: string; sha256: string };
  /** the machine options a restore must use */
  vm: { memoryMiB: number; firmware: Firmware; cmdline: string };
  /** the whole kernel command line the guest booted with (informational) */
  kernelCmdline: string;
  /** the guest agent that was running, when one was; `nextRequestId`: the host's next request id (a restored host starts above the ids the agent still serves) */
  agent: SnapshotAgent | null;
  /** host time when the state was saved (ISO 8601); the guest's clock stopped then */
  createdAt: string;
  /** v86's state: its size and v86's own state format version */
  state: { bytes: number; v86Format: number };
  /** how the state is stored after the header, and how many bytes that takes */
  payload: { compression: Compression; bytes: number };
  /** only in a delta snapshot (format 2): its base, and how its payload is split */
  delta?: SnapshotDeltaInfo;
  /**
   * What the layers above the hypervisor keep about this VM that its memory
   * does not hold (e.g. the container engine's records), by key; a restored
   * or forked VM hands it back (`Vm.records`). Opaque to the hypervisor.
   */
  records?: Record<string, unknown>;
}

/** The guest agent a snapshot was taken with. */
export interface SnapshotAgent {
  version: number;
  name: string;
  pid: number;
  /** the next request id of the host that was connected (absent in older snapshots) */
  nextRequestId?: number;
}

/** What a delta snapshot was taken against: a boot snapshot, identified three ways. */
export interface SnapshotBase {
  /** the boot snapshot's key (`bootSnapshotKey`), for messages and for finding it; "" when it has none */
  key: string;
  /** sha256 (hex) of the base's v86 state: what a restore compares first */
  sha256: string;
  /** the memory engine's digest of the base RAM's page hashes (16 hex digits), which the RAM delta checks again */
  memoryDigest: string;
}

/** The header section of a delta snapshot: its base and how its payload is split. */
export interface SnapshotDeltaInfo {
  base: SnapshotBase;
  /** bytes of the payload's first part: v86's state without guest RAM and without the buffers equal to the base's */
  stateBytes: number;
  /** bytes of the payload's second part: the RAM delta, in the memory engine's format */
  memoryBytes: number;
  /** ids of v86 buffers taken unchanged from the base */
  baseBuffers: number[];
  /** pages of RAM that differ from the base's */
  changedPages: number;
}

/** A snapshot in memory: the header and v86's state, decoded (uncompressed, spanning its own ArrayBuffer). */
export interface Snapshot {
  header: SnapshotHeader;
  state: Uint8Array;
}

/** A delta snapshot in memory: the header, the rest of v86's state, and the RAM delta. */
export interface DeltaSnapshot {
  header: SnapshotHeader & { delta: SnapshotDeltaInfo };
  /** v86's header and description, then the buffers neither RAM nor equal to the base's, each padded to 4 bytes */
  state: Uint8Array;
  /** guest RAM against the base's, as `MemoryOps.encodeDelta` writes it */
  memory: Uint8Array;
}

/** What a caller requires of a snapshot; anything else fails with SNAPSHOT_MISMATCH. */
export interface SnapshotExpectation {
  image?: { id: string; sha256: string };
  memoryMiB?: number;
  firmware?: Firmware;
}

/**
 * The byte work of snapshots: compression and the checksum. `webCodec` uses
 * CompressionStream and WebCrypto, which Node and browsers both have; Node
 * can pass a faster one (see boot-snapshot-node.ts).
 */
export interface SnapshotCodec {
  compress(data: Uint8Array, compression: Exclude<Compression, "none">): Promise<Uint8Array>;
  /** returns exactly `size` bytes spanning their own ArrayBuffer, or throws */
  decompress(data: Uint8Array, compression: Exclude<Compression, "none">, size: number): Promise<Uint8Array>;
  sha256(data: Uint8Array): Promise<Uint8Array>;
}

/*
 * File layout (integers little-endian):
 *   0   8  magic: 0x89 "HLSNAP" 0x0a (the high byte and newline catch text-mode transfers)
 *   8   4  format version (u32)
 *  12   4  header length (u32): bytes of UTF-8 JSON (a SnapshotHeader)
 *  16  32  sha256 of everything from offset 48 to the end (header JSON and payload)
 *  48   …  header JSON, then the payload (v86's state, stored as header.payload says)
 */
const MAGIC = new Uint8Array([0x89, 0x48, 0x4c, 0x53, 0x4e, 0x41, 0x50, 0x0a]);
const PREFIX = 48;
const MAX_HEADER = 1 << 20;

/** A byte count or id in a header: a whole number from 0 to 2^53. */
function isSize(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}

/**
 * The header fields a decode reads, each with what it must be: a header
 * that passed the checksum was written by some program, not necessarily by
 * hyperlab, and a field of another type must be named, not crash the reader.
 */
const HEADER_FIELDS: ReadonlyArray<readonly [what: string, ok: (v: unknown) => boolean, path: readonly string[]]> = [
  ["a string", (v) => typeof v === "string", ["image", "id"]],
  ["a string", (v) => typeof v === "string", ["image", "sha256"]],
  ["a whole number of MiB", isSize, ["vm", "memoryMiB"]],
  ["a string", (v) => typeof v === "string", ["vm", "firmware"]],
  ["a string", (v) => v === undefined || typeof v === "string", ["vm", "cmdline"]],
  ["a byte count", isSize, ["state", "bytes"]],
  ["a byte count", isSize, ["payload", "bytes"]],
  ["a compression name (none or deflate-raw)", (v) => typeof v === "string", ["payload", "compression"]],
  ["an object or null", (v) => v === undefined || typeof v === "object", ["agent"]],
  ["an object", (v) => v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v)), ["records"]],
];

/** The first bytes of v86's saved state: magic, then its state format version. */
const V86_STATE_MAGIC = -2039052682;

function corrupt(what: string, detail?: Record<string, unknown>): HyperlabError {
  return new HyperlabError(
    "SNAPSHOT_CORRUPT",
    `the snapshot is damaged: ${what}. Take the snapshot again; a cached boot snapshot is rebuilt once its file is deleted.`,
    detail,
  );
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

const digests = new WeakMap<GuestImage, Promise<string>>();

/** The sha256 (hex) of an image's manifest file list: changes whenever any artifact of the image changes. */
export function imageDigest(image: GuestImage): Promise<string> {
  let digest = digests.get(image);
  if (!digest) {
    const list = Object.entries(image.manifest.files)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, f]) => `${f.sha256}  ${name}\n`)
      .join("");
    digest = globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(list)).then(hex);
    digests.set(image, digest);
  }
  return digest;
}

const stateDigests = new WeakMap<Snapshot, Promise<string>>();

/** The sha256 (hex) of a snapshot's v86 state: what identifies a delta snapshot's base. Computed once per snapshot object. */
export function stateDigest(snapshot: Snapshot, codec: SnapshotCodec = webCodec): Promise<string> {
  let digest = stateDigests.get(snapshot);
  if (!digest) {
    digest = codec.sha256(snapshot.state).then((sum) => hex(sum.buffer.slice(sum.byteOffset, sum.byteOffset + sum.byteLength) as ArrayBuffer));
    stateDigests.set(snapshot, digest);
  }
  return digest;
}

/**
 * Saves a machine's state with the header a restore needs. Legal while the
 * machine is running or paused (it stays as it was); pause it first for a
 * state no guest activity races with.
 */
export async function captureSnapshot(
  machine: Machine,
  opts: { image: GuestImage; agent?: SnapshotAgent | null },
): Promise<Snapshot> {
  const state = await machine.saveState();
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT,
    image: { id: opts.image.id, sha256: await imageDigest(opts.image) },
    vm: { memoryMiB: machine.memoryMiB, firmware: machine.firmware, cmdline: machine.extraCmdline },
    kernelCmdline: machine.cmdline,
    agent: opts.agent ?? null,
    createdAt: new Date().toISOString(),
    state: { bytes: state.length, v86Format: new Int32Array(state.buffer, 0, 2)[1]! },
    payload: { compression: "none", bytes: state.length },
  };
  return { header, state };
}

/** The codec that works everywhere: CompressionStream, DecompressionStream and WebCrypto. */
export const webCodec: SnapshotCodec = {
  async sha256(data) {
    return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  },
  async compress(data, compression) {
    const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream(compression));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  },
  async decompress(data, compression, size) {
    const out = new Uint8Array(size);
    const reader = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream(compression)).getReader();
    let at = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (at + value.length > size) {
        await reader.cancel();
        throw new Error(`it inflates to more than the ${size} bytes the header states`);
      }
      out.set(value, at);
      at += value.length;
    }
    if (at !== size) throw new Error(`it inflates to ${at} bytes, the header states ${size}`);
    return out;
  },
};

/**
 * The snapshot as one file's bytes: header, checksum and the state, stored
 * uncompressed or compressed (`deflate-raw`, about a third of the size, but
 * slower to restore: see docs/snapshots.md). A delta snapshot is written as
 * format 2, its payload the rest of v86's state followed by the RAM delta.
 */
export async function encodeSnapshot(snapshot: Snapshot | DeltaSnapshot, opts: { compression?: Compression; codec?: SnapshotCodec } = {}): Promise<Uint8Array> {
  const compression = opts.compression ?? "deflate-raw";
  const codec = opts.codec ?? webCodec;
  let raw = snapshot.state;
  let header: SnapshotHeader;
  if ("memory" in snapshot) {
    raw = new Uint8Array(snapshot.state.length + snapshot.memory.length);
    raw.set(snapshot.state);
    raw.set(snapshot.memory, snapshot.state.length);
    header = { ...snapshot.header, format: DELTA_SNAPSHOT_FORMAT, delta: { ...snapshot.header.delta, stateBytes: snapshot.state.length, memoryBytes: snapshot.memory.length } };
  } else {
    const { delta: _delta, ...whole } = snapshot.header;
    header = { ...whole, format: SNAPSHOT_FORMAT, state: { ...snapshot.header.state, bytes: snapshot.state.length } };
  }
  const payload = compression === "none" ? raw : await codec.compress(raw, compression);
  header.payload = { compression, bytes: payload.length };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(PREFIX + json.length + payload.length);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, header.format, true);
  view.setUint32(12, json.length, true);
  out.set(json, PREFIX);
  out.set(payload, PREFIX + json.length);
  out.set(await codec.sha256(out.subarray(PREFIX)), 16);
  return out;
}

/**
 * Reads only the header of snapshot bytes (no checksum, no payload): enough
 * to tell what a file is. Throws SNAPSHOT_CORRUPT or SNAPSHOT_MISMATCH (other format).
 */
export function readSnapshotHeader(bytes: Uint8Array): SnapshotHeader {
  if (bytes.length < PREFIX) throw corrupt(`it is ${bytes.length} bytes long, shorter than a snapshot's fixed header (${PREFIX} bytes)`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw corrupt("it does not start with the hyperlab snapshot magic (is it a snapshot file?)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = view.getUint32(8, true);
  if (format !== SNAPSHOT_FORMAT && format !== DELTA_SNAPSHOT_FORMAT) {
    throw new HyperlabError(
      "SNAPSHOT_MISMATCH",
      `the snapshot has format version ${format}; this hyperlab reads formats ${SNAPSHOT_FORMAT} (whole) and ${DELTA_SNAPSHOT_FORMAT} (delta). Take the snapshot again with this hyperlab.`,
      { format, expected: [SNAPSHOT_FORMAT, DELTA_SNAPSHOT_FORMAT] },
    );
  }
  const length = view.getUint32(12, true);
  if (length > MAX_HEADER || PREFIX + length > bytes.length) {
    throw corrupt(`its header claims ${length} bytes but the file holds ${Math.max(0, bytes.length - PREFIX)} after the fixed header (truncated?)`);
  }
  let header: SnapshotHeader;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + length))) as SnapshotHeader;
  } catch (err) {
    throw corrupt(`its header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || !header.vm || !header.image || !header.payload || !header.state) {
    throw corrupt("its header lacks the image, vm, state or payload section");
  }
  const wrong = HEADER_FIELDS.find(([, ok, path]) => !ok(path.reduce<unknown>((v, k) => (v as Record<string, unknown> | null | undefined)?.[k], header)));
  if (wrong) throw corrupt(`its header's ${wrong[2].join(".")} is not ${wrong[0]}`);
  const d = header.delta;
  if (format === DELTA_SNAPSHOT_FORMAT) {
    const sizes = [d?.stateBytes, d?.memoryBytes, d?.changedPages];
    if (!d?.base || typeof d.base.sha256 !== "string" || !Array.isArray(d.baseBuffers) || !sizes.every(isSize)) {
      throw corrupt("it is a delta snapshot (format 2) whose header lacks its base or its sizes");
    }
    if (typeof d.base.key !== "string" || typeof d.base.memoryDigest !== "string" || !d.baseBuffers.every(isSize)) {
      throw corrupt("it is a delta snapshot (format 2) whose base is not named by key, sha256 and memory digest strings, or whose base buffers are not buffer ids");
    }
  } else if (d !== undefined) {
    throw corrupt("it is a whole snapshot (format 1) with a delta section");
  }
  return header;
}

/** Throws SNAPSHOT_MISMATCH when `header` does not satisfy `expected`, naming both values. */
export function checkSnapshot(header: SnapshotHeader, expected: SnapshotExpectation): void {
  const mismatch = (what: string, has: unknown, wants: unknown, todo: string) =>
    new HyperlabError("SNAPSHOT_MISMATCH", `the snapshot was taken with ${what} ${String(has)}, but ${String(wants)} was asked for. ${todo}`, {
      field: what,
      snapshot: has,
      expected: wants,
    });
  if (expected.image && (header.image.sha256 !== expected.image.sha256 || header.image.id !== expected.image.id)) {
    throw mismatch(
      "guest image",
      `${header.image.id} (sha256 ${header.image.sha256.slice(0, 12)}…)`,
      `image ${expected.image.id} (sha256 ${expected.image.sha256.slice(0, 12)}…)`,
      "Restore it with the image it was taken from, or take a new snapshot of this image.",
    );
  }
  if (expected.memoryMiB !== undefined && header.vm.memoryMiB !== expected.memoryMiB) {
    throw mismatch(
      "memory of",
      `${header.vm.memoryMiB} MiB`,
      `${expected.memoryMiB} MiB`,
      `Restore it with ${header.vm.memoryMiB} MiB: v86 cannot resize a saved machine's RAM.`,
    );
  }
  if (expected.firmware !== undefined && header.vm.firmware !== expected.firmware) {
    throw mismatch("firmware", header.vm.firmware, expected.firmware, `Restore it with firmware ${header.vm.firmware}.`);
  }
}

/**
 * Checks snapshot bytes and unpacks their payload: magic, format, checksum,
 * then what `expected` asks for, then the payload. A whole snapshot comes
 * back as a Snapshot; a delta snapshot as its parts, to be put back together
 * with its base (decodeSnapshot in delta-snapshot.ts does both). Throws
 * SNAPSHOT_CORRUPT (bad magic, truncated, checksum mismatch, payload that
 * does not decompress or is not a v86 state) or SNAPSHOT_MISMATCH (other
 * format, image, memory or firmware).
 */
export async function unpackSnapshot(bytes: Uint8Array, expected: SnapshotExpectation = {}, opts: { codec?: SnapshotCodec } = {}): Promise<Snapshot | DeltaSnapshot> {
  const codec = opts.codec ?? webCodec;
  const header = readSnapshotHeader(bytes);
  const start = PREFIX + new DataView(bytes.buffer, bytes.byteOffset + 12, 4).getUint32(0, true);
  const stored = bytes.length - start;
  if (stored !== header.payload.bytes) {
    throw corrupt(`it holds ${stored} bytes of state, its header says ${header.payload.bytes} (${stored < header.payload.bytes ? "truncated" : "trailing data"})`, {
      bytes: bytes.length,
      expectedBytes: start + header.payload.bytes,
    });
  }
  const sum = await codec.sha256(bytes.subarray(PREFIX));
  if (!sum.every((b, i) => bytes[16 + i] === b)) {
    throw corrupt("its checksum does not match its contents (a byte changed since it was written)");
  }
  checkSnapshot(header, expected);

  const delta = header.delta;
  const size = delta ? delta.stateBytes + delta.memoryBytes : header.state.bytes;
  const payload = bytes.subarray(start);
  let raw: Uint8Array;
  const compression = header.payload.compression;
  if (compression === "none") {
    // A whole state must span its own ArrayBuffer (v86 takes it whole); a delta is rebuilt into a new one anyway.
    raw = delta ? payload : payload.slice();
  } else if (compression === "deflate-raw") {
    try {
      raw = await codec.decompress(payload, compression, size);
    } catch (err) {
      throw corrupt(`its ${compression} payload does not decompress: ${(err as Error).message}`);
    }
  } else {
    throw corrupt(`its payload uses unknown compression '${String(compression)}'`);
  }
  if (raw.length !== size) throw corrupt(`its payload is ${raw.length} bytes, its header says ${size}`);
  if (raw.length < 16 || new DataView(raw.buffer, raw.byteOffset, 4).getInt32(0, true) !== V86_STATE_MAGIC) {
    throw corrupt("its payload is not a v86 machine state");
  }
  if (!delta) return { header, state: raw };
  return { header: { ...header, delta }, state: raw.subarray(0, delta.stateBytes), memory: raw.subarray(delta.stateBytes) };
}

/**
 * Builds a machine with the options `snapshot` needs and starts it from the
 * saved state; resolves with it running (or paused). Throws SNAPSHOT_MISMATCH
 * when `image` is not the image the snapshot was taken from.
 */
export async function restoreSnapshot(
  snapshot: Snapshot,
  opts: { image: GuestImage; wasm: WebAssembly.Module | Promise<WebAssembly.Module>; timeoutMs?: number; paused?: boolean },
): Promise<{ machine: Machine; report: RestoreReport }> {
  checkSnapshot(snapshot.header, { image: { id: opts.image.id, sha256: await imageDigest(opts.image) } });
  const { memoryMiB, firmware, cmdline } = snapshot.header.vm;
  const machine = new Machine({ image: opts.image, wasm: opts.wasm, memoryMiB, firmware, cmdline });
  const report = await machine.restore(snapshot.state, { timeoutMs: opts.timeoutMs, paused: opts.paused });
  return { machine, report };
}
