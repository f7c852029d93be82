// Docker's multiplexed stream (what its Go client calls stdcopy): without a
// terminal, stdout and stderr share one connection as frames, each an 8-byte
// header (stream 0/1/2, three zero bytes, length as u32 big-endian) then that
// many bytes. With a terminal the stream is raw bytes.

/** Stream numbers in a frame header. */
export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;

/** One frame: header and payload. */
export function frame(stream: 0 | 1 | 2, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + data.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, data.length, false);
  out.set(data, 8);
  return out;
}

/** Splits multiplexed bytes back into frames, whatever the chunking (for clients and tests). */
export class FrameReader {
  private buf = new Uint8Array(0);

  /** Adds bytes; calls `onFrame` for each whole frame they complete. */
  push(chunk: Uint8Array, onFrame: (stream: number, data: Uint8Array) => void): void {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    let at = 0;
    while (joined.length - at >= 8) {
      const size = new DataView(joined.buffer, joined.byteOffset + at + 4, 4).getUint32(0, false);
      if (joined.length - at - 8 < size) break;
      onFrame(joined[at]!, joined.slice(at + 8, at + 8 + size));
      at += 8 + size;
    }
    this.buf = joined.slice(at);
  }
}
