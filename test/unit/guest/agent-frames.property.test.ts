// The agent protocol's frames as hostile input (fast-check): what a guest
// sends the host may be anything (a compromised or broken agent, noise on
// the control port). The frame reader is fed random bytes and valid reply
// sequences with bytes flipped, cut, inserted or duplicated, in pieces of any
// size; a connected AgentClient with requests in flight (ping, exec, read,
// stat, mkdir, a stream) is fed frames of any type with fields of any size.
// Nothing may throw out of the channel's listener, nothing may reject
// unhandled, every request must settle with a value or a HyperlabError once
// the client closes, and what the reader keeps stays bounded.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { type AgentChannel, AgentClient } from "../../../src/guest/agent.ts";
import { type FieldValue, FrameReader, MAX_PAYLOAD, MessageType, STREAM_WINDOW, Tag, encodeFrame } from "../../../src/guest/protocol.ts";
import { hugeNumbers, mutatedBytes, params } from "../properties.ts";

const types = Object.values(MessageType);
const tags = Object.values(Tag);

/** A frame of any known (or unknown) type and id, its fields of known tags with values of any size (wrong sizes too). */
const anyFrame = fc
  .record({
    type: fc.oneof(fc.constantFrom(...types), fc.integer({ min: 0, max: 0xffff })),
    id: fc.oneof(fc.integer({ min: 0, max: 8 }), hugeNumbers.map((n) => n >>> 0)),
    fields: fc.array(
      fc.tuple(
        fc.oneof(fc.constantFrom(...tags), fc.integer({ min: 0, max: 0xffff })),
        fc.oneof(fc.uint8Array({ maxLength: 12 }), hugeNumbers.map((n) => n >>> 0), fc.string({ maxLength: 8 })),
      ),
      { maxLength: 6 },
    ),
  })
  .map(({ type, id, fields }) => encodeFrame(type, id, fields as Array<[number, FieldValue]>));

/** The replies a well-behaved agent gives the requests `inFlight` makes (ids 1 to 6), in order. */
function validReplies(): Uint8Array {
  const frames = [
    encodeFrame(MessageType.OK, 1),
    encodeFrame(MessageType.STARTED, 2, [[Tag.PID, 42]]),
    encodeFrame(MessageType.OUTPUT, 2, [[Tag.STREAM, 1], [Tag.DATA, "hello\n"]]),
    encodeFrame(MessageType.EXITED, 2, [[Tag.CODE, 0], [Tag.SIGNAL, 0]]),
    encodeFrame(MessageType.DATA, 3, [[Tag.DATA, "file"], [Tag.SIZE, { u64: 4 }]]),
    encodeFrame(MessageType.STAT_RESULT, 4, [[Tag.MODE, 0o40755], [Tag.SIZE, { u64: 4096 }], [Tag.MTIME, { u64: 1 }], [Tag.UID, 0], [Tag.GID, 0]]),
    encodeFrame(MessageType.ERROR, 5, [[Tag.CODE, "EEXIST"], [Tag.MESSAGE, "exists"]]),
    encodeFrame(MessageType.CONNECTED, 6, [[Tag.WINDOW, STREAM_WINDOW]]),
    encodeFrame(MessageType.STREAM_DATA, 6, [[Tag.DATA, "bytes"]]),
    encodeFrame(MessageType.STREAM_EOF, 6),
    encodeFrame(MessageType.STREAM_CLOSE, 6),
  ];
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) out.set(f, (at += f.length) - f.length);
  return out;
}

/** `bytes` cut into pieces at the given points. */
function pieces(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  return out;
}

/** A connected client on a channel the test plays the agent's side of. */
async function connected() {
  let toHost: (bytes: Uint8Array) => void = () => {};
  const channel: AgentChannel = {
    onControl: (l) => ((toHost = l), () => {}),
    writeControl: () => {},
    onStopped: () => () => {},
  };
  const client = AgentClient.connect(channel, { timeoutMs: 1000 });
  toHost(encodeFrame(MessageType.HELLO, 0, [[Tag.VERSION, 1], [Tag.AGENT, "played"]]));
  return { client: await client, send: (bytes: Uint8Array) => toHost(bytes) };
}

/** Requests of every kind in flight on `client` (ids 1 to 6, as validReplies answers them), each observed from the start (as a caller awaits it). */
function inFlight(client: AgentClient): Array<Promise<PromiseSettledResult<unknown>>> {
  const ping = client.ping({ timeoutMs: 5000 });
  const proc = client.spawn(["sh", "-c", "echo hello"], { timeoutMs: 5000 });
  proc.onOutput(() => {});
  const read = client.readFile("/etc/hostname");
  const stat = client.stat("/");
  const mkdir = client.mkdir("/tmp/x");
  const stream = client.connect({ path: "/run/x.sock" }).then((s) => {
    s.onData(() => {});
    return s.closed;
  });
  return [ping, proc.pid, proc.exited, read, stat, mkdir, stream].map((p) =>
    p.then(
      (value): PromiseSettledResult<unknown> => ({ status: "fulfilled", value }),
      (reason: unknown): PromiseSettledResult<unknown> => ({ status: "rejected", reason }),
    ),
  );
}

let unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => void unhandled.push(err);
beforeEach(() => {
  unhandled = [];
  process.on("unhandledRejection", onUnhandled);
});
afterEach(() => {
  process.off("unhandledRejection", onUnhandled);
});

describe("the agent's frames as hostile input", () => {
  it("the frame reader decodes the same frames however the bytes are cut, and keeps at most one frame's bytes", async () => {
    const valid = validReplies();
    const whole = new FrameReader().push(valid);
    expect(whole.map((f) => f.type)).toEqual([2, 0x11, 0x12, 0x13, 0x22, 0x24, 3, 0x41, 0x42, 0x44, 0x45]);
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutatedBytes(valid), fc.uint8Array({ maxLength: 200 }), fc.constant(valid)), fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cuts) => {
        const once = new FrameReader().push(bytes);
        const reader = new FrameReader();
        const inPieces = pieces(bytes, cuts).flatMap((p) => reader.push(p));
        expect(inPieces).toEqual(once);
        // What it holds back is at most one frame's header and payload.
        expect((reader as unknown as { buf: Uint8Array }).buf.length).toBeLessThanOrEqual(12 + MAX_PAYLOAD);
      }),
      params(),
    );
  });

  it("a client with requests in flight takes any frames without throwing, and every request settles with a value or a coded error", async () => {
    const valid = validReplies();
    const traffic = fc.oneof(
      mutatedBytes(valid).map((b) => [b]),
      fc.array(anyFrame, { maxLength: 12 }),
      fc.tuple(fc.array(anyFrame, { maxLength: 4 }), fc.constant(valid), fc.array(anyFrame, { maxLength: 4 })).map(([a, v, b]) => [...a, v, ...b]),
    );
    await fc.assert(
      fc.asyncProperty(traffic, fc.array(fc.nat(), { maxLength: 6 }), async (frames, cuts) => {
        const { client, send } = await connected();
        const requests = inFlight(client);
        for (const f of frames) for (const p of pieces(f, cuts)) expect(() => send(p)).not.toThrow();
        await new Promise((r) => setTimeout(r, 0));
        client.close();
        const names = ["ping", "exec's pid", "exec's exit", "readFile", "stat", "mkdir", "stream"];
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<string>((r) => (timer = setTimeout(() => r("late"), 1000)));
        const settled = await Promise.all(requests.map(async (p, i) => {
          const s = await Promise.race([p, late]);
          if (s === "late") throw new Error(`${names[i]} did not settle after the client closed`);
          return s as PromiseSettledResult<unknown>;
        })).finally(() => clearTimeout(timer));
        for (const s of settled) {
          if (s.status === "rejected") expect(s.reason, String((s.reason as Error)?.stack)).toBeInstanceOf(HyperlabError);
        }
        await new Promise((r) => setTimeout(r, 0));
        expect(unhandled.map((e) => String((e as Error)?.stack ?? e))).toEqual([]);
      }),
      params(),
    );
  });

  it("a stream whose guest side sends past its window is closed with a coded error instead of buffering without bound", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 64 }), fc.boolean(), async (extraKiB, paused) => {
        const { client, send } = await connected();
        const opening = client.connect({ path: "/run/x.sock" });
        send(encodeFrame(MessageType.CONNECTED, 1, [[Tag.WINDOW, STREAM_WINDOW]]));
        const stream = await opening;
        if (paused) stream.pause();
        // Nobody reads (or the reader paused): the guest may send one window's worth, not more.
        const chunk = new Uint8Array(64 * 1024);
        for (let sent = 0; sent < STREAM_WINDOW + extraKiB * 1024; sent += chunk.length) send(encodeFrame(MessageType.STREAM_DATA, 1, [[Tag.DATA, chunk]]));
        const err = await stream.closed;
        expect(err).toBeInstanceOf(HyperlabError);
        expect(err!.message).toMatch(/^stream 1 was closed: the other side sent \d+ bytes without waiting for credit \(the window is 262144 bytes\)$/);
        client.close();
      }),
      params(50),
    );
  });
});

describe("found by the properties above", () => {
  it("an exec whose EXITED comes without a STARTED rejects its pid with a coded error (was: the pid promise never settled)", async () => {
    const { client, send } = await connected();
    const proc = client.spawn(["true"], { timeoutMs: 5000 });
    send(encodeFrame(MessageType.EXITED, 1, [[Tag.CODE, 0]]));
    expect(await proc.exited).toEqual({ exitCode: 0, signal: 0 });
    await expect(proc.pid).rejects.toMatchObject({ code: "AGENT_ERROR", message: "the guest agent reported the exit of exec true before its start, so its pid is unknown" });
    client.close();
  });

  it("a stream nobody reads yet is closed once the guest sends past its window (was: buffered without bound)", async () => {
    const { client, send } = await connected();
    const opening = client.connect({ path: "/run/x.sock" });
    send(encodeFrame(MessageType.CONNECTED, 1, [[Tag.WINDOW, STREAM_WINDOW]]));
    const stream = await opening;
    for (let i = 0; i < 5; i++) send(encodeFrame(MessageType.STREAM_DATA, 1, [[Tag.DATA, new Uint8Array(64 * 1024)]]));
    expect((await stream.closed)?.message).toBe("stream 1 was closed: the other side sent 327680 bytes without waiting for credit (the window is 262144 bytes)");
    client.close();
  });
});
