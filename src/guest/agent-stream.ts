// One end of a byte stream to a socket in the guest (the agent's CONNECT and
// LISTEN, docs/agent-protocol.md): bytes both ways, half-close, close, and
// the per-stream window that keeps either side from buffering without bound.
// The end does the accounting; a transport carries what it sends (frames to
// the agent, or messages to another thread). Pure code: Node and browsers.
import { HyperlabError } from "../errors.ts";
import { MAX_STREAM_DATA, STREAM_WINDOW } from "./protocol.ts";

/** A connection to a socket in the guest: what `AgentClient.connect`, a listener and a VM's `connect` give. */
export interface GuestStream {
  /** the stream's id in the agent protocol */
  readonly id: number;
  /** the process that connected, for a connection a listener accepted (SO_PEERCRED in the guest) */
  readonly peer?: { pid: number; uid: number; gid: number };
  /**
   * Sends bytes. Returns false once the window the guest side granted is
   * used up: the bytes wait here, and `onDrain` says when to write more
   * (as Node's writable streams do). Legal until `end` or `close`.
   */
  write(chunk: Uint8Array): boolean;
  /** No more bytes from this side (half-close): the guest's peer reads EOF after what was written. Legal once. */
  end(): void;
  /** Ends the stream both ways at once; what is not delivered yet is dropped. Legal any time; twice is a no-op. */
  close(): void;
  /** Bytes from the guest's peer, in order. Bytes that arrive before a listener wait for it. */
  onData(listener: (chunk: Uint8Array) => void): void;
  /** The guest's peer will send no more (after the last onData). */
  onEnd(listener: () => void): void;
  /** The stream is over: both sides ended, `close()`, an error (ECONNRESET, the VM stopping), once. */
  onClose(listener: (err?: HyperlabError) => void): void;
  /** The window opened again after `write` returned false. */
  onDrain(listener: () => void): void;
  /** Holds delivery: what arrives waits here (at most the window), and the guest's peer is held back once the window is used. */
  pause(): void;
  /** Delivers what waited and lets the peer send again. */
  resume(): void;
  /** Settles when the stream is over: undefined for a clean end, else the error. */
  readonly closed: Promise<HyperlabError | undefined>;
}

/** Where one stream end's messages go: the agent's frames, or a port to another thread. */
export interface StreamTransport {
  data(chunk: Uint8Array): void;
  eof(): void;
  /** abort: the other side drops the stream */
  close(): void;
  /** this end consumed `bytes` more: the other side may send as many more */
  grant(bytes: number): void;
}

/** How a stream end is set up. */
export interface StreamEndOptions {
  /** bytes this end may send before the other grants more (the window the other side announced) */
  credit: number;
  /** the window this end announced to the other (default STREAM_WINDOW); credit goes back in quarters of it */
  window?: number;
  /**
   * "auto" (default): bytes count as consumed once delivered to the data
   * listeners. "manual": only through `consumed(n)` (a relay to another
   * thread, whose far end says when its consumer took them).
   */
  grant?: "auto" | "manual";
  peer?: { pid: number; uid: number; gid: number };
}

/**
 * One end of a stream: implements GuestStream over a transport and takes
 * what the other side sends through the `receive*` methods.
 */
export class StreamEnd implements GuestStream {
  readonly peer?: { pid: number; uid: number; gid: number };
  readonly closed: Promise<HyperlabError | undefined>;
  private credit: number;
  private readonly window: number;
  private readonly manual: boolean;
  private readonly outbox: Uint8Array[] = [];
  private readonly inbox: Uint8Array[] = [];
  private ending = false;
  private eofSent = false;
  private eofReceived = false;
  private endEmitted = false;
  private remoteClosed = false;
  private over = false;
  private paused = false;
  private blocked = false;
  private ungranted = 0;
  /** bytes the other side sent that this end has not granted back yet: never more than the window */
  private outstanding = 0;
  private readonly dataListeners: Array<(chunk: Uint8Array) => void> = [];
  private readonly endListeners: Array<() => void> = [];
  private readonly closeListeners: Array<(err?: HyperlabError) => void> = [];
  private readonly drainListeners: Array<() => void> = [];
  private readonly creditListeners: Array<(bytes: number) => void> = [];
  private settle!: (err: HyperlabError | undefined) => void;

  constructor(
    readonly id: number,
    private readonly transport: StreamTransport,
    opts: StreamEndOptions,
  ) {
    this.credit = opts.credit;
    this.window = opts.window ?? STREAM_WINDOW;
    this.manual = opts.grant === "manual";
    this.peer = opts.peer;
    this.closed = new Promise((resolve) => (this.settle = resolve));
  }

  /** True once the stream is over (closed either way). */
  get isClosed(): boolean {
    return this.over;
  }

  /** Bytes this end may send now (a relay hands it on to its far end). */
  get sendCredit(): number {
    return this.credit;
  }

  /** Credit the other side granted, as it comes (a relay hands it on to its far end). */
  onCredit(listener: (bytes: number) => void): void {
    this.creditListeners.push(listener);
  }

  write(chunk: Uint8Array): boolean {
    if (this.over || this.ending || chunk.length === 0) return !this.over && !this.ending && this.outbox.length === 0;
    this.outbox.push(chunk);
    this.flushOut();
    if (this.outbox.length > 0) this.blocked = true;
    return this.outbox.length === 0;
  }

  end(): void {
    if (this.over || this.ending) return;
    this.ending = true;
    this.flushOut();
  }

  close(): void {
    if (this.over) return;
    this.transport.close();
    this.finish(undefined);
  }

  onData(listener: (chunk: Uint8Array) => void): void {
    this.dataListeners.push(listener);
    this.flushIn();
  }

  onEnd(listener: () => void): void {
    if (this.endEmitted) listener();
    else this.endListeners.push(listener);
  }

  onClose(listener: (err?: HyperlabError) => void): void {
    this.closeListeners.push(listener);
  }

  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flushIn();
  }

  /** With grant "manual": the consumer took `bytes` more (credit goes back to the other side in quarters of the window). */
  consumed(bytes: number): void {
    if (this.over) return;
    this.ungranted += bytes;
    if (this.ungranted >= this.window / 4) {
      this.transport.grant(this.ungranted);
      this.outstanding = Math.max(0, this.outstanding - this.ungranted);
      this.ungranted = 0;
    }
  }

  /** Bytes from the other side. */
  receiveData(chunk: Uint8Array): void {
    if (this.over || this.eofReceived) return;
    this.outstanding += chunk.length;
    if (this.outstanding > this.window) {
      // A peer that ignores the window would have this end buffer without bound (a paused stream, one nobody reads yet).
      this.transport.close();
      this.finish(
        new HyperlabError("AGENT_ERROR", `stream ${this.id} was closed: the other side sent ${this.outstanding} bytes without waiting for credit (the window is ${this.window} bytes)`, { errno: "EPROTO" }),
      );
      return;
    }
    this.inbox.push(chunk);
    this.flushIn();
  }

  /** The other side will send no more. */
  receiveEof(): void {
    if (this.over) return;
    this.eofReceived = true;
    this.flushIn();
  }

  /** The other side consumed `bytes`: as many more may be sent. */
  receiveCredit(bytes: number): void {
    if (this.over) return;
    this.credit += bytes;
    for (const l of this.creditListeners) l(bytes);
    this.flushOut();
  }

  /** The other side ended the stream: cleanly (after both EOFs; what waits is still delivered) or with `err` (dropped). */
  receiveClose(err?: HyperlabError): void {
    if (this.over) return;
    this.remoteClosed = true;
    if (err) this.finish(err);
    else this.flushIn();
  }

  private flushOut(): void {
    while (this.outbox.length > 0 && this.credit > 0 && !this.over) {
      const head = this.outbox[0]!;
      const n = Math.min(head.length, this.credit, MAX_STREAM_DATA);
      if (n === head.length) this.outbox.shift();
      else this.outbox[0] = head.subarray(n);
      this.credit -= n;
      this.transport.data(n === head.length ? head : head.subarray(0, n));
    }
    if (this.outbox.length > 0 || this.over) return;
    if (this.ending && !this.eofSent) {
      this.eofSent = true;
      this.transport.eof();
    }
    if (this.blocked) {
      this.blocked = false;
      for (const l of this.drainListeners) l();
    }
  }

  private flushIn(): void {
    while (!this.paused && !this.over && this.dataListeners.length > 0 && this.inbox.length > 0) {
      const chunk = this.inbox.shift()!;
      for (const l of this.dataListeners) l(chunk);
      if (!this.manual) this.consumed(chunk.length);
    }
    if (this.over || this.inbox.length > 0) return;
    if (this.eofReceived && !this.endEmitted && (this.dataListeners.length > 0 || this.endListeners.length > 0)) {
      this.endEmitted = true;
      for (const l of this.endListeners.splice(0)) l();
    }
    if (this.remoteClosed && (this.endEmitted || !this.eofReceived)) this.finish(undefined);
  }

  private finish(err: HyperlabError | undefined): void {
    if (this.over) return;
    this.over = true;
    this.outbox.length = 0;
    this.inbox.length = 0;
    this.settle(err);
    for (const l of this.closeListeners.splice(0)) l(err);
  }
}

/** The error an agent's STREAM_CLOSE (or a failed CONNECT) carries, in hyperlab's words. */
export function streamError(what: string, code: string, message: string): HyperlabError {
  return new HyperlabError("AGENT_ERROR", `${what} failed in the guest: ${message || code} (${code})`, { errno: code });
}
