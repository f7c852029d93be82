import { describe, expect, it } from "vitest";
import { CONTROL_PORT, ControlPort, makeControlPortRaw } from "../../../src/hardware/control-port.ts";
import type { Emulator } from "../../../src/hardware/emulator.ts";

/** An emulator with only a virtio console whose control-port receive queue holds `buffers` guest buffers. */
function fakeEmulator(buffers = 0) {
  const sent: Array<{ event: string; data: Uint8Array }> = [];
  const events: number[][] = [];
  const queue = { buffers, has_request: () => queue.buffers > 0 };
  const queues: Array<{ has_request(): boolean }> = Array.from({ length: CONTROL_PORT * 2 + 3 }, () => ({ has_request: () => false }));
  queues[CONTROL_PORT * 2 + 2] = queue;
  const emulator = {
    bus: {
      send(event: string, data: unknown) {
        sent.push({ event, data: data as Uint8Array });
        queue.buffers--;
      },
    },
    v86: {
      cpu: {
        devices: {
          virtio_console: {
            virtio: { queues },
            SendEvent: (port: number, event: number, value: number) => events.push([port, event, value]),
          },
        },
      },
    },
  } as unknown as Emulator;
  return { emulator, sent, events, queue };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("ControlPort", () => {
  it("keeps the guest's bytes for a listener that subscribes late, then delivers directly", () => {
    const port = new ControlPort(() => undefined);
    port.receive(new Uint8Array([1, 2]));
    port.receive(new Uint8Array([3]));
    const got: number[][] = [];
    port.subscribe((b) => got.push([...b]));
    port.receive(new Uint8Array([4]));
    expect(got).toEqual([[1, 2], [3], [4]]);
  });

  it("keeps at most 1 MiB of backlog, dropping what does not fit", () => {
    const port = new ControlPort(() => undefined);
    port.receive(new Uint8Array((1 << 20) - 10));
    port.receive(new Uint8Array(11));
    port.receive(new Uint8Array(10));
    const sizes: number[] = [];
    port.subscribe((b) => sizes.push(b.length));
    expect(sizes).toEqual([(1 << 20) - 10, 10]);
  });

  it("copies backlog bytes, so a reused buffer of the sender does not change them", () => {
    const port = new ControlPort(() => undefined);
    const reused = new Uint8Array([7]);
    port.receive(reused);
    reused[0] = 9;
    const got: number[] = [];
    port.subscribe((b) => got.push(...b));
    expect(got).toEqual([7]);
  });

  it("sends in page-sized pieces, one per guest receive buffer, and the rest once the guest posts more", async () => {
    const { emulator, sent, queue } = fakeEmulator(1);
    const port = new ControlPort(() => emulator);
    const data = new Uint8Array(4096 * 2 + 5).map((_, i) => i & 0xff);
    port.send(data);
    expect(sent.map((s) => s.data.length)).toEqual([4096]);
    expect(sent[0]!.event).toBe(`virtio-console${CONTROL_PORT}-input-bytes`);
    queue.buffers = 5;
    await sleep(20);
    expect(sent.map((s) => s.data.length)).toEqual([4096, 4096, 5]);
    expect(new Uint8Array(sent.flatMap((s) => [...s.data]))).toEqual(data);
  });

  it("delivers nothing queued after dropOutput", async () => {
    const { emulator, sent, queue } = fakeEmulator(0);
    const port = new ControlPort(() => emulator);
    port.send(new Uint8Array(10));
    port.dropOutput();
    queue.buffers = 5;
    await sleep(20);
    expect(sent).toEqual([]);
  });
});

describe("makeControlPortRaw", () => {
  it("withholds only the console announcement of the control port", () => {
    const { emulator, events } = fakeEmulator();
    makeControlPortRaw(emulator);
    const device = emulator.v86.cpu.devices.virtio_console!;
    device.SendEvent(CONTROL_PORT, 4, 1);
    device.SendEvent(CONTROL_PORT, 6, 1);
    device.SendEvent(0, 4, 1);
    expect(events).toEqual([
      [CONTROL_PORT, 6, 1],
      [0, 4, 1],
    ]);
  });
});
