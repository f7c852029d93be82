// The framing of an upgraded two-way stream (run -i/-t, exec -i/-t through
// the daemon): [type u8][length u32 big-endian][payload]. The daemon's
// attach.ts and the CLI's client both speak it.

/** The protocol named in the Upgrade header. */
export const STREAM_PROTOCOL = "hyperlab-stream";

/** Frame types. */
export const Frame = {
  /** client → daemon: bytes for the process's stdin */
  STDIN: 0,
  /** daemon → client: stdout bytes */
  STDOUT: 1,
  /** daemon → client: stderr bytes */
  STDERR: 2,
  /** daemon → client, last: JSON {"exitCode": n} or {"error": {code, message}} */
  EXIT: 3,
  /** client → daemon: no more stdin */
  STDIN_EOF: 4,
  /** client → daemon: terminal size, rows u16 then cols u16 (big-endian) */
  RESIZE: 5,
} as const;

const HEADER = 5;

/** One frame's bytes. */
export function encodeStreamFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt8(type, 0);
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER);
  return out;
}

/** Splits a byte stream into frames, whatever the chunking. */
export class StreamFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Adds bytes; calls `onFrame` for each whole frame they complete. */
  push(chunk: Buffer, onFrame: (type: number, payload: Buffer) => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < HEADER + len) break;
      const type = this.buf.readUInt8(0);
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      onFrame(type, payload);
    }
  }
}
