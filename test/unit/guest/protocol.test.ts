import { describe, expect, it } from "vitest";
import { FrameReader, MAX_PAYLOAD, MessageType, Tag, encodeFrame, field } from "../../../src/guest/protocol.ts";

describe("the agent protocol's frames", () => {
  it("round-trips every kind of field, repeated tags in order", () => {
    const bytes = encodeFrame(MessageType.EXEC, 42, [
      [Tag.ARG, "sh"],
      [Tag.ARG, "-c"],
      [Tag.ARG, "echo ünïcode"],
      [Tag.UID, 1000],
      [Tag.OFFSET, { u64: 2 ** 40 + 5 }],
      [Tag.DATA, new Uint8Array([0, 255, 104, 108])],
    ]);
    const [frame, ...rest] = new FrameReader().push(bytes);
    expect(rest).toEqual([]);
    expect(frame!.type).toBe(MessageType.EXEC);
    expect(frame!.id).toBe(42);
    expect(field.all(frame!, Tag.ARG)).toEqual(["sh", "-c", "echo ünïcode"]);
    expect(field.u32(frame!, Tag.UID)).toBe(1000);
    expect(field.u64(frame!, Tag.OFFSET)).toBe(2 ** 40 + 5);
    expect([...field.bytes(frame!, Tag.DATA)!]).toEqual([0, 255, 104, 108]);
    expect(field.str(frame!, Tag.CWD)).toBeUndefined();
  });

  it("writes negative i32 values that read back signed", () => {
    const [frame] = new FrameReader().push(encodeFrame(MessageType.EXITED, 1, [[Tag.CODE, -1]]));
    expect(field.i32(frame!, Tag.CODE)).toBe(-1);
    expect(field.u32(frame!, Tag.CODE)).toBe(0xffffffff);
  });

  it("lays out the header as the spec says: magic, type, id, length", () => {
    const bytes = encodeFrame(MessageType.PING, 0x01020304);
    expect([...bytes]).toEqual([0x68, 0x6c, 0x04, 0x00, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0]);
  });

  it("assembles frames split at every byte boundary", () => {
    const bytes = encodeFrame(MessageType.OUTPUT, 7, [
      [Tag.STREAM, 1],
      [Tag.DATA, new TextEncoder().encode("hello")],
    ]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const reader = new FrameReader();
      expect(reader.push(bytes.subarray(0, cut))).toEqual([]);
      const frames = reader.push(bytes.subarray(cut));
      expect(frames.map((f) => field.str(f, Tag.DATA))).toEqual(["hello"]);
    }
  });

  it("skips text and noise before a frame (boot lines on the same channel)", () => {
    const reader = new FrameReader();
    const noise = new TextEncoder().encode("hyperlab:init\r\nhyperlab:ready\r\nhh");
    const frames = reader.push(new Uint8Array([...noise, ...encodeFrame(MessageType.HELLO, 0, [[Tag.VERSION, 1]])]));
    expect(frames).toHaveLength(1);
    expect(field.u32(frames[0]!, Tag.VERSION)).toBe(1);
    expect(reader.stats.skippedBytes).toBe(noise.length);
  });

  it("drops a frame whose fields overrun its payload and reads the next one", () => {
    const bad = encodeFrame(MessageType.OK, 1, [[Tag.DATA, "abcd"]]);
    new DataView(bad.buffer).setUint32(14, 99, true); // the field claims 99 bytes
    const reader = new FrameReader();
    const frames = reader.push(new Uint8Array([...bad, ...encodeFrame(MessageType.OK, 2)]));
    expect(frames.map((f) => f.id)).toEqual([2]);
    expect(reader.stats.badFrames).toBe(1);
  });

  it("treats a header announcing more than 1 MiB as noise instead of waiting for it", () => {
    const huge = encodeFrame(MessageType.OK, 1);
    new DataView(huge.buffer).setUint32(8, MAX_PAYLOAD + 1, true);
    const frames = new FrameReader().push(new Uint8Array([...huge, ...encodeFrame(MessageType.OK, 3)]));
    expect(frames.map((f) => f.id)).toEqual([3]);
  });

  it("refuses to encode a payload over 1 MiB", () => {
    expect(() => encodeFrame(MessageType.WRITE_FILE, 1, [[Tag.DATA, new Uint8Array(MAX_PAYLOAD)]])).toThrow(/exceeds/);
  });
});
