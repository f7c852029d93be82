// Guest streams across the worker boundary (stream-port.ts): the worker's
// end of an agent stream relayed over a real MessageChannel to the host's
// end, windows kept end to end.
import { describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { StreamEnd, type StreamTransport } from "../../../src/guest/agent-stream.ts";
import { STREAM_WINDOW } from "../../../src/guest/protocol.ts";
import { announceConnection, announceListenerClosed, portListener, portStream, relayStream } from "../../../src/hypervisor/stream-port.ts";

/** What the worker's end sends to the agent. */
function toAgent(): StreamTransport & { data: (c: Uint8Array) => void; sent: number; log: string[] } {
  const t = {
    sent: 0,
    log: [] as string[],
    data: (c: Uint8Array) => void (t.sent += c.length),
    eof: () => void t.log.push("eof"),
    close: () => void t.log.push("close"),
    grant: (n: number) => void t.log.push(`grant ${n}`),
  };
  return t;
}

/** Lets the ports deliver what was posted. */
const settle = () => new Promise((r) => setTimeout(r, 20));

/** Waits until `cond` holds (a loaded machine delivers port messages late), failing after 5 s naming `what`. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`waited 5 s for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function relayed() {
  const agent = toAgent();
  const worker = new StreamEnd(7, agent, { credit: STREAM_WINDOW, grant: "manual" });
  const { port1, port2 } = new MessageChannel();
  relayStream(worker, port1);
  const host = portStream({ id: 7, credit: worker.sendCredit }, port2);
  return { agent, worker, host };
}

describe("a guest stream across the worker boundary", () => {
  it("sends no more than the agent's window from the host, and the rest as the agent grants it", async () => {
    const { agent, worker, host } = relayed();
    expect(host.write(new Uint8Array(STREAM_WINDOW + 1000))).toBe(false);
    await until(() => agent.sent >= STREAM_WINDOW, "the window to reach the agent");
    await settle();
    expect(agent.sent).toBe(STREAM_WINDOW);
    let drained = false;
    host.onDrain(() => (drained = true));
    worker.receiveCredit(4096); // the agent wrote some into the guest socket
    await until(() => agent.sent >= STREAM_WINDOW + 1000 && drained, "the rest to be sent and the host drained");
    expect(agent.sent).toBe(STREAM_WINDOW + 1000);
    host.end();
    await until(() => agent.log.includes("eof"), "the host's end to reach the agent");
  });

  it("grants the agent credit only when the host's consumer took the bytes", async () => {
    const { agent, worker, host } = relayed();
    worker.receiveData(new Uint8Array(100_000));
    await settle();
    expect(agent.log).toEqual([]); // delivered to the port is not consumed
    let got = 0;
    host.onData((d) => (got += d.length));
    await until(() => got >= 100_000 && agent.log.length > 0, "the bytes and the grant");
    expect(got).toBe(100_000);
    expect(agent.log).toEqual(["grant 100000"]);
  });

  it("carries the guest's EOF, a clean end, and an error end to the host", async () => {
    const a = relayed();
    const events: string[] = [];
    a.host.onData((d) => events.push(`data ${d.length}`));
    a.host.onEnd(() => events.push("end"));
    a.worker.receiveData(new Uint8Array(5));
    a.worker.receiveEof();
    a.worker.receiveClose();
    expect(await a.host.closed).toBeUndefined();
    expect(events).toEqual(["data 5", "end"]);

    const b = relayed();
    b.worker.receiveClose(new HyperlabError("AGENT_ERROR", "read failed in the guest: reset (ECONNRESET)", { errno: "ECONNRESET" }));
    const err = await b.host.closed;
    expect(err).toBeInstanceOf(HyperlabError);
    expect(err?.detail?.errno).toBe("ECONNRESET");
  });

  it("aborts the agent's stream when the host closes", async () => {
    const { agent, worker, host } = relayed();
    host.close();
    await settle();
    expect(agent.log).toEqual(["close"]);
    expect(worker.isClosed).toBe(true);
  });

  it("announces accepted connections on a listener's port, each with its own port, and the listener's end", async () => {
    const { port1, port2 } = new MessageChannel();
    const got: number[] = [];
    let unlistened = false;
    const listener = portListener(3, "/var/run/docker.sock", port2, (s) => got.push(s.id), async () => void (unlistened = true));
    const conn = new StreamEnd(0x80000001, toAgent(), { credit: 10, grant: "manual", peer: { pid: 1, uid: 0, gid: 0 } });
    announceConnection(conn, port1);
    await settle();
    expect(got).toEqual([0x80000001]);
    announceListenerClosed(port1, new HyperlabError("AGENT_GONE", "the guest agent is gone"));
    expect((await listener.closed)?.code).toBe("AGENT_GONE");
    await listener.close();
    expect(unlistened).toBe(false); // it was gone already
  });
});
