// hyperlab's control channel: port 1 of v86's virtio console (the guest's
// /dev/vport0p1), which carries boot events and then the agent's traffic.
// Bytes to the guest are paced by its receive buffers; bytes from it are kept
// for a listener that subscribes late.
import type { Emulator } from "./emulator.ts";

/** The port of v86's virtio console that carries hyperlab's control channel (guest: /dev/vport0p1). */
export const CONTROL_PORT = 1;
/** v86 puts each input message into one guest receive buffer; Linux posts page-sized ones. */
const CONTROL_CHUNK = 4096;
/** Control bytes kept for a listener that subscribes late (the agent's hello comes early). */
const CONTROL_BACKLOG_LIMIT = 1 << 20;
/** virtio-console's control event that makes a port a console (hvc) in the guest. */
const VIRTIO_CONSOLE_CONSOLE_PORT = 4;

/**
 * v86 announces every virtio-console port as a console, so Linux drives each
 * through the tty layer as /dev/hvcN, which moves at most 16 bytes per call
 * (about 45 emulated instructions a byte, ~0.5 MB/s). The control channel
 * carries bulk data (files, layers), so hyperlab's machine leaves out that
 * announcement for its port: the guest then sees an ordinary virtio-serial
 * port, /dev/vport0p1, which reads and writes whole buffers. Legal once v86
 * has loaded the emulator, before the guest runs.
 */
export function makeControlPortRaw(emulator: Emulator): void {
  const device = emulator.v86.cpu.devices.virtio_console;
  if (!device) return;
  const send = device.SendEvent.bind(device);
  device.SendEvent = (port, event, value) => {
    if (port === CONTROL_PORT && event === VIRTIO_CONSOLE_CONSOLE_PORT) return;
    send(port, event, value);
  };
}

/**
 * The host end of the control channel of the emulator `emulator()` returns
 * (undefined while there is none: output then waits, or is dropped by
 * `dropOutput()`). Legal in any state; the machine checks its own state
 * before it sends.
 */
export class ControlPort {
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();
  private backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private out: Uint8Array[] = [];
  private pump: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly emulator: () => Emulator | undefined) {}

  /** Takes bytes the guest wrote: to the listeners, or to the backlog (up to 1 MiB) while there are none. */
  receive(bytes: Uint8Array): void {
    if (this.listeners.size === 0) {
      if (this.backlogBytes + bytes.length <= CONTROL_BACKLOG_LIMIT) {
        this.backlog.push(bytes.slice());
        this.backlogBytes += bytes.length;
      }
      return;
    }
    for (const l of this.listeners) l(bytes);
  }

  /** Subscribes to the guest's bytes; the backlog is delivered first. Returns an unsubscribe function. */
  subscribe(listener: (bytes: Uint8Array) => void): () => void {
    const backlog = this.backlog;
    this.backlog = [];
    this.backlogBytes = 0;
    this.listeners.add(listener);
    for (const b of backlog) listener(b);
    return () => this.listeners.delete(listener);
  }

  /** Queues bytes for the guest, in order, delivered as fast as the guest posts receive buffers. */
  send(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length; at += CONTROL_CHUNK) this.out.push(bytes.slice(at, at + CONTROL_CHUNK));
    this.pumpOut();
  }

  /** Forgets the bytes not yet delivered and stops retrying (the machine is stopping). */
  dropOutput(): void {
    clearTimeout(this.pump);
    this.out = [];
  }

  private pumpOut(): void {
    const emulator = this.emulator();
    if (!emulator) return;
    const queue = emulator.v86.cpu.devices.virtio_console?.virtio.queues[CONTROL_PORT * 2 + 2];
    while (this.out.length && queue?.has_request()) {
      emulator.bus.send(`virtio-console${CONTROL_PORT}-input-bytes`, this.out.shift());
    }
    if (this.out.length && !this.pump) {
      this.pump = setTimeout(() => {
        this.pump = undefined;
        this.pumpOut();
      }, 1);
    }
  }
}
