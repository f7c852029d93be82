// The agent protocol's wire format (docs/agent-protocol.md): frames of typed
// fields. Pure data code: no I/O, usable in Node and the browser.

/** Frame types, by name. */
export const MessageType = {
  HELLO: 0x0001,
  OK: 0x0002,
  ERROR: 0x0003,
  PING: 0x0004,
  EXEC: 0x0010,
  STARTED: 0x0011,
  OUTPUT: 0x0012,
  EXITED: 0x0013,
  STDIN: 0x0014,
  SIGNAL: 0x0015,
  RESIZE: 0x0016,
  WRITE_FILE: 0x0020,
  READ_FILE: 0x0021,
  DATA: 0x0022,
  STAT: 0x0023,
  STAT_RESULT: 0x0024,
  MKDIR: 0x0025,
  REMOVE: 0x0026,
  MOUNT: 0x0027,
  UMOUNT: 0x0028,
  SET_TIME: 0x0030,
  CONNECT: 0x0040,
  CONNECTED: 0x0041,
  STREAM_DATA: 0x0042,
  STREAM_WINDOW: 0x0043,
  STREAM_EOF: 0x0044,
  STREAM_CLOSE: 0x0045,
  LISTEN: 0x0046,
  ACCEPTED: 0x0047,
  UNLISTEN: 0x0048,
} as const;

/** Field tags, by name. */
export const Tag = {
  VERSION: 1,
  AGENT: 2,
  MAX_FRAME: 3,
  PID: 4,
  CODE: 5,
  ERRNO: 6,
  MESSAGE: 7,
  ARG: 10,
  ENV: 11,
  CWD: 12,
  UID: 13,
  GID: 14,
  STDIN: 20,
  ROWS: 21,
  COLS: 22,
  STREAM: 23,
  DATA: 24,
  EOF: 25,
  SIGNAL: 26,
  PATH: 30,
  MODE: 31,
  APPEND: 32,
  OFFSET: 33,
  LENGTH: 34,
  SIZE: 35,
  MTIME: 36,
  RECURSIVE: 37,
  SOURCE: 38,
  FSTYPE: 39,
  FLAGS: 40,
  OPTIONS: 41,
  TIME_NS: 42,
  ADDRESS: 43,
  PORT: 44,
  WINDOW: 45,
  LISTENER: 46,
} as const;

/** The protocol version this host speaks. */
export const PROTOCOL_VERSION = 1;
/** Largest DATA a STREAM_DATA frame may carry. */
export const MAX_STREAM_DATA = 65536;
/** The window a side grants by default on each stream: bytes the other may send before more credit comes. */
export const STREAM_WINDOW = 256 * 1024;
/** Stream ids the agent picks (accepted connections) have this bit set; the host's never do. */
export const ACCEPTED_ID_BIT = 0x80000000;
/** Largest payload a frame may carry. */
export const MAX_PAYLOAD = 1 << 20;
const MAGIC0 = 0x68; // "h"
const MAGIC1 = 0x6c; // "l"
const HEADER = 12;

/** A field value: text, a 32-bit integer, a 64-bit integer, or bytes. */
export type FieldValue = string | number | { u64: number | bigint } | Uint8Array;

/** One decoded frame. */
export interface Frame {
  type: number;
  id: number;
  fields: Map<number, Uint8Array[]>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function valueBytes(value: FieldValue): Uint8Array {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  const out = new Uint8Array(typeof value === "number" ? 4 : 8);
  const view = new DataView(out.buffer);
  if (typeof value === "number") view.setUint32(0, value >>> 0, true);
  else view.setBigUint64(0, BigInt(value.u64), true);
  return out;
}

/** Encodes one frame. Repeated tags are given as repeated entries. */
export function encodeFrame(type: number, id: number, fields: ReadonlyArray<readonly [number, FieldValue]> = []): Uint8Array {
  const values = fields.map(([tag, v]) => [tag, valueBytes(v)] as const);
  const length = values.reduce((n, [, v]) => n + 6 + v.length, 0);
  if (length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${length} bytes exceeds ${MAX_PAYLOAD}`);
  const out = new Uint8Array(HEADER + length);
  const view = new DataView(out.buffer);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  view.setUint16(2, type, true);
  view.setUint32(4, id >>> 0, true);
  view.setUint32(8, length, true);
  let at = HEADER;
  for (const [tag, v] of values) {
    view.setUint16(at, tag, true);
    view.setUint32(at + 2, v.length, true);
    out.set(v, at + 6);
    at += 6 + v.length;
  }
  return out;
}

function decodeFields(payload: Uint8Array): Map<number, Uint8Array[]> | undefined {
  const fields = new Map<number, Uint8Array[]>();
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  while (at < payload.length) {
    if (at + 6 > payload.length) return undefined;
    const tag = view.getUint16(at, true);
    const size = view.getUint32(at + 2, true);
    if (at + 6 + size > payload.length) return undefined;
    const list = fields.get(tag) ?? [];
    list.push(payload.subarray(at + 6, at + 6 + size));
    fields.set(tag, list);
    at += 6 + size;
  }
  return fields;
}

/** What a FrameReader found besides good frames (for diagnostics). */
export interface ReaderStats {
  skippedBytes: number;
  badFrames: number;
}

/**
 * Turns a byte stream into frames. Bytes before a frame's magic are skipped
 * (resynchronization); a frame whose fields overrun its payload is dropped
 * and counted.
 */
export class FrameReader {
  private buf = new Uint8Array(0);
  readonly stats: ReaderStats = { skippedBytes: 0, badFrames: 0 };

  /** Adds bytes; returns every frame they complete. */
  push(bytes: Uint8Array): Frame[] {
    const joined = new Uint8Array(this.buf.length + bytes.length);
    joined.set(this.buf);
    joined.set(bytes, this.buf.length);
    const frames: Frame[] = [];
    let at = 0;
    for (;;) {
      // Find the magic.
      let start = at;
      while (start + 1 < joined.length && !(joined[start] === MAGIC0 && joined[start + 1] === MAGIC1)) start++;
      if (start + 1 >= joined.length && joined[start] !== MAGIC0) start = joined.length;
      this.stats.skippedBytes += start - at;
      at = start;
      if (joined.length - at < HEADER) break;
      const view = new DataView(joined.buffer, joined.byteOffset + at, HEADER);
      const length = view.getUint32(8, true);
      if (length > MAX_PAYLOAD) {
        // Not a frame we accept: treat the magic as noise and look further.
        this.stats.badFrames++;
        at += 1;
        continue;
      }
      if (joined.length - at < HEADER + length) break;
      const fields = decodeFields(joined.subarray(at + HEADER, at + HEADER + length));
      if (fields) frames.push({ type: view.getUint16(2, true), id: view.getUint32(4, true), fields });
      else this.stats.badFrames++;
      at += HEADER + length;
    }
    this.buf = joined.slice(at);
    return frames;
  }
}

/** Field accessors for decoded frames. */
export const field = {
  bytes(f: Frame, tag: number): Uint8Array | undefined {
    return f.fields.get(tag)?.[0];
  },
  str(f: Frame, tag: number): string | undefined {
    const v = f.fields.get(tag)?.[0];
    return v && decoder.decode(v);
  },
  u32(f: Frame, tag: number): number | undefined {
    const v = f.fields.get(tag)?.[0];
    return v && v.length >= 4 ? new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true) : undefined;
  },
  i32(f: Frame, tag: number): number | undefined {
    const v = f.fields.get(tag)?.[0];
    return v && v.length >= 4 ? new DataView(v.buffer, v.byteOffset, 4).getInt32(0, true) : undefined;
  },
  u64(f: Frame, tag: number): number | undefined {
    const v = f.fields.get(tag)?.[0];
    return v && v.length >= 8 ? Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true)) : undefined;
  },
  all(f: Frame, tag: number): string[] {
    return (f.fields.get(tag) ?? []).map((v) => decoder.decode(v));
  },
};
