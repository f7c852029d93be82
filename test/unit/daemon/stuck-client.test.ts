import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { guardStuckClient } from "../../../src/daemon/stuck-client.ts";

/** A connection whose client reads nothing: what was written stays queued. */
function unreadStream() {
  const s = new PassThrough({ highWaterMark: 16 });
  return s;
}

describe("guardStuckClient", () => {
  afterEach(() => vi.useRealTimers());

  it("closes a connection whose client stays too far behind for too long", () => {
    vi.useFakeTimers();
    const s = unreadStream();
    const stuck = guardStuckClient(s, { bytes: 1000, ms: 5000 });
    s.write(Buffer.alloc(2000));
    expect(stuck()).toBe(false);
    vi.advanceTimersByTime(4000);
    s.write(Buffer.alloc(100));
    expect(stuck()).toBe(false);
    vi.advanceTimersByTime(1000);
    expect(stuck()).toBe(true);
    expect(s.destroyed).toBe(true);
  });

  it("lets a client that falls behind and catches up stay", () => {
    vi.useFakeTimers();
    const s = unreadStream();
    const stuck = guardStuckClient(s, { bytes: 1000, ms: 5000 });
    s.write(Buffer.alloc(2000));
    expect(stuck()).toBe(false);
    vi.advanceTimersByTime(4000);
    s.read(); // the client reads what was queued
    expect(stuck()).toBe(false);
    s.write(Buffer.alloc(2000));
    vi.advanceTimersByTime(4000);
    expect(stuck()).toBe(false);
    expect(s.destroyed).toBe(false);
  });

  it("starts the clock again after the connection drained", () => {
    vi.useFakeTimers();
    let length = 2000;
    const events = new EventEmitter();
    const stream = { get writableLength() { return length; }, destroyed: false, destroy: vi.fn(), on: (e: "drain", l: () => void) => events.on(e, l) };
    const stuck = guardStuckClient(stream, { bytes: 1000, ms: 5000 });
    expect(stuck()).toBe(false);
    vi.advanceTimersByTime(4000);
    length = 0;
    events.emit("drain");
    length = 2000;
    vi.advanceTimersByTime(4000);
    expect(stuck()).toBe(false);
    expect(stream.destroy).not.toHaveBeenCalled();
  });
});
