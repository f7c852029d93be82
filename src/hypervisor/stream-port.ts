// Guest streams across the worker boundary: each stream (and each listener)
// gets its own MessagePort, so bytes go straight between the VM's worker and
// the host, one message per chunk, with no Comlink round trip. The agent's
// window is kept end to end: the worker's end of a stream grants the agent
// credit only when the host's end says its consumer took the bytes, and the
// host's end may send only what the agent granted, so nothing in between
// buffers more than one window.
import { HyperlabError } from "../errors.ts";
import { type GuestStream, StreamEnd } from "../guest/agent-stream.ts";
import type { GuestListener } from "../guest/agent.ts";

/** What crosses a stream's port, both ways: bytes, the sender's EOF, the end (an abort from the host), credit. */
export type StreamPortMessage =
  | { t: "data"; data: Uint8Array }
  | { t: "eof" }
  | { t: "close"; error?: { code: HyperlabError["code"]; message: string; detail?: Record<string, unknown> } }
  | { t: "grant"; bytes: number };

/** What a listener's port carries from the worker: a new connection (with its own port), or the listener's end. */
export type ListenerPortMessage =
  | { t: "connection"; id: number; credit: number; peer?: GuestStream["peer"]; port: MessagePort }
  | { t: "closed"; error?: { code: HyperlabError["code"]; message: string; detail?: Record<string, unknown> } };

/** What the worker answers when a stream is opened: its id and the credit the agent granted. */
export interface OpenedStream {
  id: number;
  credit: number;
}

type Port = MessagePort & { unref?: () => void };

function errorOf(e: { code: HyperlabError["code"]; message: string; detail?: Record<string, unknown> } | undefined): HyperlabError | undefined {
  return e && new HyperlabError(e.code, e.message, e.detail);
}

function plainError(err: HyperlabError | undefined): StreamPortMessage & { t: "close" } {
  return { t: "close", error: err && { code: err.code, message: err.message, detail: err.detail } };
}

/**
 * Worker side: carries `stream` (an agent stream opened with grant "manual")
 * over `port`. Its bytes go to the host as they arrive; credit goes back to
 * the agent as the host's consumer takes them.
 */
export function relayStream(stream: StreamEnd, port: MessagePort): void {
  const post = (m: StreamPortMessage, transfer: Transferable[] = []) => port.postMessage(m, transfer);
  stream.onData((data) => {
    // Each chunk has its own buffer (the client copies it out of the frame): moved, not copied.
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    const own = whole ? data : data.slice();
    post({ t: "data", data: own }, [own.buffer as ArrayBuffer]);
  });
  stream.onEnd(() => post({ t: "eof" }));
  stream.onCredit((bytes) => post({ t: "grant", bytes }));
  stream.onClose((err) => {
    post(plainError(err));
    port.close();
  });
  port.addEventListener("message", (e: MessageEvent<StreamPortMessage>) => {
    const m = e.data;
    switch (m.t) {
      case "data":
        stream.write(m.data);
        return;
      case "eof":
        stream.end();
        return;
      case "close":
        stream.close();
        port.close();
        return;
      case "grant":
        stream.consumed(m.bytes);
        return;
    }
  });
  port.start();
}

/**
 * Host side: the stream the worker relays on `port`, as a GuestStream.
 * `onGone` is called once when it is over (the VM forgets it then).
 */
export function portStream(opened: OpenedStream, port: MessagePort, peer?: GuestStream["peer"]): StreamEnd {
  const p = port as Port;
  const stream = new StreamEnd(
    opened.id,
    {
      // Copied (not moved): the caller keeps its buffer.
      data: (chunk) => p.postMessage({ t: "data", data: chunk } satisfies StreamPortMessage),
      eof: () => p.postMessage({ t: "eof" } satisfies StreamPortMessage),
      close: () => {
        p.postMessage({ t: "close" } satisfies StreamPortMessage);
        p.close();
      },
      grant: (bytes) => p.postMessage({ t: "grant", bytes } satisfies StreamPortMessage),
    },
    { credit: opened.credit, peer },
  );
  p.addEventListener("message", (e: MessageEvent<StreamPortMessage>) => {
    const m = e.data;
    switch (m.t) {
      case "data":
        return stream.receiveData(m.data);
      case "eof":
        return stream.receiveEof();
      case "grant":
        return stream.receiveCredit(m.bytes);
      case "close":
        p.close();
        return stream.receiveClose(errorOf(m.error));
    }
  });
  p.start();
  // A stream's port must not keep a Node process alive on its own (the daemon's server does that).
  p.unref?.();
  return stream;
}

/** Worker side: announces each connection `listen` accepts on the listener's `port`, each with a port of its own. */
export function announceConnection(stream: StreamEnd, port: MessagePort): void {
  const { port1, port2 } = new MessageChannel();
  relayStream(stream, port1);
  const m: ListenerPortMessage = { t: "connection", id: stream.id, credit: stream.sendCredit, peer: stream.peer, port: port2 };
  port.postMessage(m, [port2]);
}

/** Worker side: the listener is gone (`err`: why, when it was not closed by the host). */
export function announceListenerClosed(port: MessagePort, err: HyperlabError | undefined): void {
  port.postMessage({ t: "closed", error: err && { code: err.code, message: err.message, detail: err.detail } } satisfies ListenerPortMessage);
  port.close();
}

/**
 * Host side: the listener the worker serves on `port`: each connection goes
 * to `onConnection` as a GuestStream. `unlisten` asks the worker to stop.
 */
export function portListener(
  id: number,
  path: string,
  port: MessagePort,
  onConnection: (stream: StreamEnd) => void,
  unlisten: () => Promise<void>,
): GuestListener & { fail(err: HyperlabError): void } {
  const p = port as Port;
  let settle!: (err: HyperlabError | undefined) => void;
  const closed = new Promise<HyperlabError | undefined>((r) => (settle = r));
  let over = false;
  const end = (err: HyperlabError | undefined) => {
    if (over) return;
    over = true;
    p.close();
    settle(err);
  };
  p.addEventListener("message", (e: MessageEvent<ListenerPortMessage>) => {
    const m = e.data;
    if (m.t === "closed") return end(errorOf(m.error));
    const stream = portStream({ id: m.id, credit: m.credit }, m.port, m.peer);
    if (over) stream.close();
    else onConnection(stream);
  });
  p.start();
  p.unref?.();
  let closing: Promise<void> | undefined;
  return {
    id,
    path,
    closed,
    close: () =>
      (closing ??= (async () => {
        if (over) return;
        end(undefined);
        await unlisten();
      })()),
    fail: (err) => end(err),
  };
}
