// A container's log in the host's memory is bounded (MAX_LOG_BYTES): a
// container that prints without end keeps its newest output, not all of it.
import { describe, expect, it } from "vitest";
import { type LogEntry, MAX_LOG_BYTES, trimLog } from "../../../src/containers/engine.ts";

const entry = (n: number, fill: number): LogEntry => ({ stream: 1, data: new Uint8Array(n).fill(fill), time: fill });

describe("a container's log", () => {
  it("is left alone up to its bound", () => {
    const logs = [entry(10, 1), entry(20, 2)];
    expect(trimLog(logs, 30)).toBe(30);
    expect(logs.map((l) => l.time)).toEqual([1, 2]);
  });

  it("drops its oldest output past its bound, down to three quarters of it, keeping the newest in order", () => {
    const logs = Array.from({ length: 10 }, (_, i) => entry(100, i));
    expect(trimLog(logs, 999)).toBe(700);
    expect(logs.map((l) => l.time)).toEqual([3, 4, 5, 6, 7, 8, 9]);
  });

  it("holds at most MAX_LOG_BYTES (16 MiB) of a container that prints 1 MiB chunks without end", () => {
    const logs: LogEntry[] = [];
    let bytes = 0;
    for (let i = 0; i < 100; i++) {
      logs.push(entry(1 << 20, i));
      bytes += 1 << 20;
      if (bytes > MAX_LOG_BYTES) bytes = trimLog(logs);
    }
    expect(MAX_LOG_BYTES).toBe(16 * 1024 * 1024);
    expect(logs.reduce((n, l) => n + l.data.length, 0)).toBeLessThanOrEqual(MAX_LOG_BYTES);
    expect(logs.at(-1)!.time).toBe(99);
  });
});
