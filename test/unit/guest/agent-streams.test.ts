// Streams in the agent protocol, host side: the frames the client sends and
// takes for CONNECT and LISTEN (against a scripted agent), and the window
// accounting of a stream end.
import { describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { type GuestStream, StreamEnd, type StreamTransport } from "../../../src/guest/agent-stream.ts";
import { type AgentChannel, AgentClient } from "../../../src/guest/agent.ts";
import { type Frame, FrameReader, MAX_STREAM_DATA, MessageType, STREAM_WINDOW, Tag, encodeFrame, field } from "../../../src/guest/protocol.ts";

/** An agent played by the test: sees the host's frames, sends its own. */
function scriptedAgent() {
  const reader = new FrameReader();
  const sent: Frame[] = [];
  let toHost: (bytes: Uint8Array) => void = () => {};
  const waiters: Array<() => void> = [];
  const channel: AgentChannel = {
    onControl: (l) => ((toHost = l), () => {}),
    writeControl: (bytes) => {
      sent.push(...reader.push(bytes));
      for (const w of waiters.splice(0)) w();
    },
    onStopped: () => () => {},
  };
  const say = (type: number, id: number, fields: Array<[number, string | number | Uint8Array]> = []) => toHost(encodeFrame(type, id, fields));
  /** The next frame the host sends of `type`. */
  const next = async (type: number): Promise<Frame> => {
    for (;;) {
      const i = sent.findIndex((f) => f.type === type);
      if (i >= 0) return sent.splice(i, 1)[0]!;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { channel, sent, say, next };
}

async function connected() {
  const a = scriptedAgent();
  const client = AgentClient.connect(a.channel);
  a.say(MessageType.HELLO, 0, [[Tag.VERSION, 1], [Tag.AGENT, "scripted"]]);
  return { ...a, client: await client };
}

/** A transport that records what an end sends. */
function recorder(): StreamTransport & { log: string[]; bytes: number } {
  const t = {
    log: [] as string[],
    bytes: 0,
    data: (c: Uint8Array) => {
      t.log.push(`data ${c.length}`);
      t.bytes += c.length;
    },
    eof: () => void t.log.push("eof"),
    close: () => void t.log.push("close"),
    grant: (n: number) => void t.log.push(`grant ${n}`),
  };
  return t;
}

describe("the agent protocol's stream frames", () => {
  it("sends CONNECT with the target and the host's window, and makes the stream on CONNECTED", async () => {
    const { client, say, next } = await connected();
    const pending = client.connect({ host: "172.17.0.2", port: 80 });
    const req = await next(MessageType.CONNECT);
    expect(field.str(req, Tag.ADDRESS)).toBe("172.17.0.2");
    expect(field.u32(req, Tag.PORT)).toBe(80);
    expect(field.u32(req, Tag.WINDOW)).toBe(STREAM_WINDOW);
    expect(field.str(req, Tag.PATH)).toBeUndefined();
    // The first bytes come in the same read as CONNECTED: they must not be lost.
    say(MessageType.CONNECTED, req.id, [[Tag.WINDOW, 100]]);
    say(MessageType.STREAM_DATA, req.id, [[Tag.DATA, new TextEncoder().encode("hi")]]);
    const stream = await pending;
    expect(stream.id).toBe(req.id);
    const got: string[] = [];
    stream.onData((d) => got.push(new TextDecoder().decode(d)));
    expect(got).toEqual(["hi"]);
  });

  it("sends a Unix path for a path target and turns ERROR into AGENT_ERROR with the errno", async () => {
    const { client, say, next } = await connected();
    const pending = client.connect({ path: "/var/run/docker.sock" }).catch((e: unknown) => e);
    const req = await next(MessageType.CONNECT);
    expect(field.str(req, Tag.PATH)).toBe("/var/run/docker.sock");
    expect(field.str(req, Tag.ADDRESS)).toBeUndefined();
    say(MessageType.ERROR, req.id, [[Tag.CODE, "ECONNREFUSED"], [Tag.MESSAGE, "connect /var/run/docker.sock: Connection refused"]]);
    const err = (await pending) as HyperlabError;
    expect(err).toBeInstanceOf(HyperlabError);
    expect(err.detail?.errno).toBe("ECONNREFUSED");
    expect(err.message).toBe("connect to /var/run/docker.sock failed in the guest: connect /var/run/docker.sock: Connection refused (ECONNREFUSED)");
  });

  it("never sends more than the agent's window, in frames of at most 64 KiB, and sends the rest as credit comes", async () => {
    const { client, say, next, sent } = await connected();
    const pending = client.connect({ path: "/s" });
    const req = await next(MessageType.CONNECT);
    say(MessageType.CONNECTED, req.id, [[Tag.WINDOW, 100_000]]);
    const stream = await pending;
    expect(stream.write(new Uint8Array(150_000))).toBe(false);
    const frames = sent.filter((f) => f.type === MessageType.STREAM_DATA);
    expect(frames.map((f) => field.bytes(f, Tag.DATA)!.length)).toEqual([MAX_STREAM_DATA, 100_000 - MAX_STREAM_DATA]);
    let drained = false;
    stream.onDrain(() => (drained = true));
    stream.end(); // waits behind the data
    expect(sent.some((f) => f.type === MessageType.STREAM_EOF)).toBe(false);
    say(MessageType.STREAM_WINDOW, req.id, [[Tag.LENGTH, 60_000]]);
    const more = sent.filter((f) => f.type === MessageType.STREAM_DATA).slice(2);
    expect(more.map((f) => field.bytes(f, Tag.DATA)!.length)).toEqual([50_000]);
    expect(drained).toBe(true);
    expect(sent.filter((f) => f.type === MessageType.STREAM_EOF).map((f) => f.id)).toEqual([req.id]);
  });

  it("grants the agent credit in quarters of the window as data is delivered, not while paused", async () => {
    const { client, say, next, sent } = await connected();
    const pending = client.connect({ path: "/s" });
    const req = await next(MessageType.CONNECT);
    say(MessageType.CONNECTED, req.id, [[Tag.WINDOW, STREAM_WINDOW]]);
    const stream = await pending;
    let got = 0;
    stream.onData((d) => (got += d.length));
    stream.pause();
    for (let i = 0; i < 2; i++) say(MessageType.STREAM_DATA, req.id, [[Tag.DATA, new Uint8Array(40_000)]]);
    expect(got).toBe(0);
    expect(sent.filter((f) => f.type === MessageType.STREAM_WINDOW)).toEqual([]);
    stream.resume();
    expect(got).toBe(80_000);
    const grants = sent.filter((f) => f.type === MessageType.STREAM_WINDOW).map((f) => field.u32(f, Tag.LENGTH));
    expect(grants).toEqual([80_000]); // one grant once a quarter (64 KiB) was consumed
  });

  it("closes a stream with the agent's errno, and ends it cleanly after EOF and CLOSE", async () => {
    const { client, say, next } = await connected();
    const p1 = client.connect({ path: "/a" });
    const r1 = await next(MessageType.CONNECT);
    say(MessageType.CONNECTED, r1.id, [[Tag.WINDOW, 10]]);
    const s1 = await p1;
    say(MessageType.STREAM_CLOSE, r1.id, [[Tag.CODE, "ECONNRESET"], [Tag.MESSAGE, "read: Connection reset by peer"]]);
    expect((await s1.closed)?.detail?.errno).toBe("ECONNRESET");

    const p2 = client.connect({ path: "/b" });
    const r2 = await next(MessageType.CONNECT);
    say(MessageType.CONNECTED, r2.id, [[Tag.WINDOW, 10]]);
    const s2 = await p2;
    const events: string[] = [];
    s2.onData((d) => events.push(`data ${d.length}`));
    s2.onEnd(() => events.push("end"));
    s2.onClose((err) => events.push(`close ${err ?? "clean"}`));
    say(MessageType.STREAM_DATA, r2.id, [[Tag.DATA, new Uint8Array(3)]]);
    say(MessageType.STREAM_EOF, r2.id);
    say(MessageType.STREAM_CLOSE, r2.id);
    expect(events).toEqual(["data 3", "end", "close clean"]);
  });

  it("answers frames of a stream nobody here follows with STREAM_CLOSE (a restored guest's streams)", async () => {
    const { say, next } = await connected();
    say(MessageType.STREAM_DATA, 0x80000005, [[Tag.DATA, new Uint8Array(1)]]);
    expect((await next(MessageType.STREAM_CLOSE)).id).toBe(0x80000005);
    say(MessageType.ACCEPTED, 0x80000006, [[Tag.LISTENER, 999], [Tag.WINDOW, 10]]);
    expect((await next(MessageType.STREAM_CLOSE)).id).toBe(0x80000006);
  });

  it("listens, takes ACCEPTED connections with their peer, and UNLISTENs by the listener's id", async () => {
    const { client, say, next } = await connected();
    const conns: GuestStream[] = [];
    const pending = client.listen("/var/run/docker.sock", (s) => conns.push(s), { mode: 0o660 });
    const req = await next(MessageType.LISTEN);
    expect(field.str(req, Tag.PATH)).toBe("/var/run/docker.sock");
    expect(field.u32(req, Tag.MODE)).toBe(0o660);
    say(MessageType.OK, req.id);
    const listener = await pending;
    say(MessageType.ACCEPTED, 0x80000001, [[Tag.LISTENER, req.id], [Tag.WINDOW, 1000], [Tag.PID, 42], [Tag.UID, 0], [Tag.GID, 0]]);
    expect(conns.map((c) => [c.id, c.peer?.pid])).toEqual([[0x80000001, 42]]);
    const closing = listener.close();
    const un = await next(MessageType.UNLISTEN);
    expect(field.u32(un, Tag.LISTENER)).toBe(req.id);
    say(MessageType.OK, un.id);
    await closing;
    expect(await listener.closed).toBeUndefined();
  });

  it("closes every stream and listener when a new agent says hello", async () => {
    const { client, say, next } = await connected();
    const p = client.connect({ path: "/a" });
    const r = await next(MessageType.CONNECT);
    say(MessageType.CONNECTED, r.id, [[Tag.WINDOW, 10]]);
    const stream = await p;
    const pl = client.listen("/l", () => {});
    say(MessageType.OK, (await next(MessageType.LISTEN)).id);
    const listener = await pl;
    say(MessageType.HELLO, 0, [[Tag.VERSION, 1]]);
    expect((await stream.closed)?.code).toBe("AGENT_GONE");
    expect((await listener.closed)?.code).toBe("AGENT_GONE");
  });
});

describe("a stream end", () => {
  it("delivers what arrived before a listener, then EOF, then a clean close", () => {
    const t = recorder();
    const end = new StreamEnd(1, t, { credit: 10 });
    end.receiveData(new Uint8Array(2));
    end.receiveEof();
    end.receiveClose();
    expect(end.isClosed).toBe(false); // the data still waits for someone to take it
    const seen: string[] = [];
    end.onEnd(() => seen.push("end"));
    end.onData((d) => seen.push(`data ${d.length}`));
    expect(seen).toEqual(["data 2", "end"]);
    expect(end.isClosed).toBe(true);
  });

  it("with manual grants, gives credit back only through consumed()", () => {
    const t = recorder();
    const end = new StreamEnd(1, t, { credit: 10, window: 100, grant: "manual" });
    end.onData(() => {});
    end.receiveData(new Uint8Array(60));
    expect(t.log).toEqual([]);
    end.consumed(20);
    expect(t.log).toEqual([]);
    end.consumed(10); // 30 >= a quarter of 100
    expect(t.log).toEqual(["grant 30"]);
  });

  it("half-closes: EOF after the queued bytes, and still receives", () => {
    const t = recorder();
    const end = new StreamEnd(1, t, { credit: 4 });
    end.write(new Uint8Array(6));
    end.end();
    expect(t.log).toEqual(["data 4"]);
    end.receiveCredit(2);
    expect(t.log).toEqual(["data 4", "data 2", "eof"]);
    let got = 0;
    end.onData((d) => (got += d.length));
    end.receiveData(new Uint8Array(5));
    expect(got).toBe(5);
    expect(end.write(new Uint8Array(1))).toBe(false); // nothing after end()
  });

  it("drops what waits when closed, tells the other side once, and settles closed", async () => {
    const t = recorder();
    const end = new StreamEnd(1, t, { credit: 0 });
    end.write(new Uint8Array(5));
    end.close();
    end.close();
    end.receiveCredit(10);
    expect(t.log).toEqual(["close"]);
    expect(await end.closed).toBeUndefined();
  });
});
