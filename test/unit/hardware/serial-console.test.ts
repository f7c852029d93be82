import { describe, expect, it } from "vitest";
import { SerialConsole } from "../../../src/hardware/serial-console.ts";

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("SerialConsole", () => {
  it("delivers the bytes of one tick as one chunk, to the window, then the listeners, then the watcher", async () => {
    const order: string[] = [];
    const serial = new SerialConsole((chunk) => order.push(`watch ${chunk} window=${serial.text.tail()}`));
    serial.subscribe((chunk) => order.push(`listen ${chunk}`));
    for (const b of new TextEncoder().encode("hello")) serial.receive(b);
    expect(order).toEqual([]);
    await nextTick();
    expect(order).toEqual(["listen hello", "watch hello window=hello"]);
  });

  it("keeps a character split across ticks whole", async () => {
    const chunks: string[] = [];
    const serial = new SerialConsole();
    serial.subscribe((c) => chunks.push(c));
    const bytes = new TextEncoder().encode("é!"); // c3 a9 21
    serial.receive(bytes[0]!);
    await nextTick();
    serial.receive(bytes[1]!);
    serial.receive(bytes[2]!);
    await nextTick();
    expect(chunks.join("")).toBe("é!");
    expect(serial.text.tail()).toBe("é!");
  });

  it("flushes at once when asked, and then has nothing left for the scheduled flush", async () => {
    const chunks: string[] = [];
    const serial = new SerialConsole();
    serial.subscribe((c) => chunks.push(c));
    serial.receive(0x41);
    serial.flush();
    expect(chunks).toEqual(["A"]);
    await nextTick();
    expect(chunks).toEqual(["A"]);
  });

  it("stops delivering to a listener that unsubscribed", async () => {
    const chunks: string[] = [];
    const serial = new SerialConsole();
    const off = serial.subscribe((c) => chunks.push(c));
    serial.receive(0x41);
    await nextTick();
    off();
    serial.receive(0x42);
    await nextTick();
    expect(chunks).toEqual(["A"]);
    expect(serial.text.tail()).toBe("AB");
  });
});
