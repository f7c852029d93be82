// The serial console (ttyS0, the human console): v86 hands out its output a
// byte at a time, so bytes are gathered and decoded once per tick, then kept
// in a window for waits and passed to subscribers as one chunk.
import { ConsoleWindow } from "./console-window.ts";

/** Receives serial console output, one decoded chunk per tick. */
export type ConsoleListener = (chunk: string) => void;

/**
 * The host side of a machine's serial console output: `receive()` each byte
 * v86 emits; a chunk is delivered on the next turn of the event loop. Legal
 * in any state; after the machine stops, `flush()` delivers what is left.
 */
export class SerialConsole {
  /** the console's recent text, for waits */
  readonly text = new ConsoleWindow();
  private readonly listeners = new Set<ConsoleListener>();
  private pending: number[] = [];
  private flushScheduled = false;
  private readonly decoder = new TextDecoder();

  /** `afterChunk` sees each chunk after the window and the subscribers have (the machine looks for a panic there). */
  constructor(private readonly afterChunk: (chunk: string) => void = () => {}) {}

  /** Takes one byte of output; the first of a tick schedules a flush. */
  receive(byte: number): void {
    this.pending.push(byte);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Delivers the bytes received so far now (a byte sequence cut mid-character waits for its rest). */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const chunk = this.decoder.decode(new Uint8Array(this.pending), { stream: true });
    this.pending = [];
    this.text.push(chunk);
    for (const l of this.listeners) l(chunk);
    this.afterChunk(chunk);
  }

  /** Subscribes to output chunks. Returns an unsubscribe function. */
  subscribe(listener: ConsoleListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
