// Byte streams through the guest agent (CONNECT, LISTEN) on a real guest:
// servers started in the guest with busybox, large transfers both ways,
// half-close, a peer that never reads, and the same through a VM's worker.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentClient, GuestProcess, GuestStream } from "../../src/guest/agent.ts";
import { FrameReader, MessageType, Tag, encodeFrame, field } from "../../src/guest/protocol.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import type { Vm } from "../../src/hypervisor/vm.ts";
import { errorOf, restoredGuest } from "./guest.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

/** Everything a stream delivers until its peer's EOF, and how it closed. */
function collect(stream: GuestStream): Promise<{ data: Buffer; closed: Promise<unknown> }> {
  const parts: Uint8Array[] = [];
  stream.onData((d) => parts.push(d));
  return new Promise((resolve) => stream.onEnd(() => resolve({ data: Buffer.concat(parts), closed: stream.closed })));
}

/** Writes `data` honouring the stream's window (waits for drain), then ends it. */
async function send(stream: GuestStream, data: Uint8Array, chunk = 100_000): Promise<void> {
  for (let at = 0; at < data.length; at += chunk) {
    if (!stream.write(data.subarray(at, at + chunk))) await new Promise<void>((r) => stream.onDrain(r));
  }
  stream.end();
}

/** A pattern that shows reordering or loss. */
function pattern(n: number): Buffer {
  return Buffer.from(new Uint8Array(n).map((_, i) => (i * 7919 + (i >> 13)) & 0xff));
}

/** Resolves once `check` holds, polling; fails naming `what` after `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("byte streams through the guest agent", () => {
  let agent: AgentClient;
  const servers: Array<{ proc: GuestProcess; over: boolean }> = [];
  /** Starts `nc -l -p PORT -e PROG` in the guest and waits until it listens. */
  async function ncServer(port: number, prog: string): Promise<void> {
    server(["nc", "-l", "-p", String(port), "-e", prog]);
    await until(`nc on port ${port}`, async () => (await agent.exec(["netstat", "-ltn"])).stdout.includes(`:${port} `));
  }
  /** A server process in the guest, killed after the tests unless it ended. */
  function server(argv: string[]): void {
    const entry = { proc: agent.spawn(argv, { timeoutMs: Infinity }), over: false };
    void entry.proc.exited.finally(() => (entry.over = true)).catch(() => {});
    servers.push(entry);
  }
  const agentRss = async () => Number(/VmRSS:\s+(\d+)/.exec(text(await agent.readFile(`/proc/${agent.agent.pid}/status`)))![1]);

  beforeAll(async () => {
    ({ agent } = await restoredGuest());
    await agent.writeFile("/tmp/upper.sh", "#!/bin/sh\nexec tr a-z A-Z\n", { mode: 0o755 });
    await agent.writeFile("/tmp/zero.sh", "#!/bin/sh\nexec cat /dev/zero\n", { mode: 0o755 });
    await agent.writeFile("/tmp/www/index.html", "<h1>from the guest</h1>\n");
  });
  afterAll(async () => {
    for (const s of servers) if (!s.over) await s.proc.kill(9).catch(() => {});
  });

  it("connects to a TCP server in the guest; bytes flow both ways and the host's half-close reaches it", async () => {
    await ncServer(7001, "/tmp/upper.sh");
    const stream = await agent.connect({ host: "127.0.0.1", port: 7001 });
    const got = collect(stream);
    stream.write(bytes("hello "));
    stream.write(bytes("guest\n"));
    // Only the host's EOF lets `tr` finish: the reply ends after it.
    stream.end();
    const { data, closed } = await got;
    expect(text(data)).toBe("HELLO GUEST\n");
    expect(await closed).toBeUndefined();
  });

  it("speaks HTTP to busybox httpd in the guest", async () => {
    server(["httpd", "-f", "-p", "8080", "-h", "/tmp/www"]);
    await until("httpd", async () => (await agent.exec(["netstat", "-ltn"])).stdout.includes(":8080 "));
    const stream = await agent.connect({ host: "127.0.0.1", port: 8080 });
    const got = collect(stream);
    stream.write(bytes("GET /index.html HTTP/1.0\r\nHost: guest\r\n\r\n"));
    const { data } = await got;
    expect(text(data)).toMatch(/^HTTP\/1\.[01] 200 OK\r\n/);
    expect(text(data)).toMatch(/\r\n\r\n<h1>from the guest<\/h1>\n$/);
  });

  it("reports a refused connection, a missing socket and a bad address with the errno", async () => {
    const refused = await errorOf(agent.connect({ host: "127.0.0.1", port: 7999 }));
    expect(refused.detail?.errno).toBe("ECONNREFUSED");
    expect(refused.message).toBe("connect to 127.0.0.1:7999 failed in the guest: connect 127.0.0.1:7999: Connection refused (ECONNREFUSED)");
    const missing = await errorOf(agent.connect({ path: "/run/no-such.sock" }));
    expect(missing.detail?.errno).toBe("ENOENT");
    const bad = await errorOf(agent.connect({ host: "not-an-address", port: 80 }));
    expect(bad.detail?.errno).toBe("EINVAL");
    // The agent serves on after each.
    await agent.ping();
  });

  it("carries 4 MiB through an echo server and back, in order, with the windows both ways", async () => {
    await ncServer(7002, "/bin/cat");
    const data = pattern(4 * 1024 * 1024 + 13);
    const stream = await agent.connect({ host: "127.0.0.1", port: 7002 });
    const got = collect(stream);
    await send(stream, data);
    const back = (await got).data;
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
  });

  it("listens on a Unix socket in the guest (mode 0600, parents made) and serves a guest client, both ways", async () => {
    const accepted: GuestStream[] = [];
    const listener = await agent.listen("/run/streams-test/agent.sock", (s) => accepted.push(s));
    const st = await agent.stat("/run/streams-test/agent.sock");
    expect(st.mode & 0o170000).toBe(0o140000);
    expect(st.mode & 0o777).toBe(0o600);
    // The client: a second agent in the guest, whose channel is our socket. It says hello first, then answers frames.
    const client = agent.spawn(["/sbin/hyperlab-agent", "/run/streams-test/agent.sock"], { timeoutMs: Infinity });
    await until("the guest client to connect", async () => accepted.length > 0);
    const conn = accepted[0]!;
    expect(conn.id >>> 31).toBe(1); // the agent picks ids of accepted connections with bit 31 set
    expect(conn.peer?.pid).toBe(await client.pid);
    const reader = new FrameReader();
    const frames: ReturnType<FrameReader["push"]> = [];
    conn.onData((d) => frames.push(...reader.push(d)));
    await until("the client's hello", async () => frames.some((f) => f.type === MessageType.HELLO));
    // 2.7 MB to the guest through the stream (WRITE_FILE frames to the nested agent), and read back through it
    // (a READ_FILE answers at most 1,000,000 bytes).
    const part = 900_000;
    const data = pattern(3 * part);
    for (let i = 0; i < 3; i++) {
      conn.write(encodeFrame(MessageType.WRITE_FILE, 10 + i, [[Tag.PATH, `/tmp/through-${i}`], [Tag.DATA, data.subarray(i * part, (i + 1) * part)]]));
    }
    await until("three OKs", async () => frames.filter((f) => f.type === MessageType.OK).length === 3);
    for (let i = 0; i < 3; i++) conn.write(encodeFrame(MessageType.READ_FILE, 20 + i, [[Tag.PATH, `/tmp/through-${i}`]]));
    await until("three DATA replies", async () => frames.filter((f) => f.type === MessageType.DATA).length === 3);
    const back = frames.filter((f) => f.type === MessageType.DATA).sort((a, b) => a.id - b.id).map((f) => Buffer.from(field.bytes(f, Tag.DATA)!));
    for (let i = 0; i < 3; i++) expect(back[i]!.equals(data.subarray(i * part, (i + 1) * part))).toBe(true);
    // Our EOF ends the client (its channel closed), so its side ends too and the stream closes cleanly.
    conn.end();
    expect(await client.exited).toEqual({ exitCode: 0, signal: 0 });
    expect(await conn.closed).toBeUndefined();
    await listener.close();
    expect(await listener.closed).toBeUndefined();
    expect((await errorOf(agent.stat("/run/streams-test/agent.sock"))).detail?.errno).toBe("ENOENT");
  });

  it("connects to a Unix socket it listens on itself: four windows in a loop, 2 MiB each way", async () => {
    const listener = await agent.listen("/run/streams-test/loop.sock", (server) => {
      // Echo with back-pressure: hold the client's bytes while the server side is full.
      server.onData((d) => {
        if (!server.write(d)) {
          server.pause();
          server.onDrain(() => server.resume());
        }
      });
      server.onEnd(() => server.end());
    });
    const client = await agent.connect({ path: "/run/streams-test/loop.sock" });
    const got = collect(client);
    const data = pattern(2 * 1024 * 1024 + 5);
    await send(client, data);
    const back = (await got).data;
    expect(back.equals(data)).toBe(true);
    expect(await client.closed).toBeUndefined();
    await listener.close();
  });

  it("keeps a peer that never reads from growing the agent: the host's writes wait, other requests go on", async () => {
    // (`nc -e` runs a program without arguments: a script gives sleep its own.)
    await agent.writeFile("/tmp/never-read.sh", "#!/bin/sh\nexec sleep 3600\n", { mode: 0o755 });
    await ncServer(7004, "/tmp/never-read.sh");
    const before = await agentRss();
    const stream = await agent.connect({ host: "127.0.0.1", port: 7004 });
    let accepted = 0;
    const chunk = new Uint8Array(64 * 1024);
    while (stream.write(chunk)) accepted += chunk.length;
    // The agent granted one window (256 KiB); the guest's socket buffers take some of it and then nothing more.
    expect(accepted).toBeLessThanOrEqual(256 * 1024);
    for (let i = 0; i < 64; i++) stream.write(chunk); // 4 MiB more waits on the host
    await new Promise((r) => setTimeout(r, 2000));
    expect((await agent.exec(["echo", "still serving"])).stdout).toBe("still serving\n");
    expect(await agentRss()).toBeLessThan(before + 1024); // KiB: no more than the window, not the 4 MiB
    stream.close();
    expect(await stream.closed).toBeUndefined();
  });

  it("holds a guest peer back while the host does not read (pause), without buffering in the agent", async () => {
    await ncServer(7005, "/tmp/zero.sh");
    const before = await agentRss();
    const stream = await agent.connect({ host: "127.0.0.1", port: 7005 });
    let received = 0;
    stream.onData((d) => (received += d.length));
    await until("some bytes", async () => received > 0);
    stream.pause();
    await new Promise((r) => setTimeout(r, 1500));
    const atPause = received;
    await new Promise((r) => setTimeout(r, 1500));
    expect(received).toBe(atPause);
    expect(await agentRss()).toBeLessThan(before + 1024);
    stream.resume();
    await until("bytes after resume", async () => received > atPause + 1024 * 1024);
    stream.close();
  });

  it("ends a stream whose guest peer resets it with the errno", async () => {
    await agent.writeFile("/tmp/reset.sh", "#!/bin/sh\nexec head -c 1\n", { mode: 0o755 });
    await ncServer(7006, "/tmp/reset.sh");
    const stream = await agent.connect({ host: "127.0.0.1", port: 7006 });
    stream.onData(() => {});
    // `head -c 1` exits after one byte with the rest unread: closing a socket with unread data resets it.
    for (let i = 0; i < 8; i++) stream.write(new Uint8Array(16 * 1024));
    const err = await stream.closed;
    expect(err?.detail?.errno).toMatch(/^(ECONNRESET|EPIPE)$/);
  });
});

describe("byte streams through a VM's worker", () => {
  let hv: Hypervisor;
  let vm: Vm;

  beforeAll(async () => {
    hv = await Hypervisor.create({ spareWorkers: 0 });
    vm = await hv.createVm({ name: "streams" });
  });
  afterAll(async () => {
    await hv?.close();
  });

  it("listens and connects through the worker, 2 MiB each way in order", async () => {
    const listener = await vm.listen("/run/vm-streams.sock", (server) => {
      server.onData((d) => {
        if (!server.write(d)) {
          server.pause();
          server.onDrain(() => server.resume());
        }
      });
      server.onEnd(() => server.end());
    });
    const client = await vm.connect({ path: "/run/vm-streams.sock" });
    const got = collect(client);
    const data = pattern(2 * 1024 * 1024 + 3);
    await send(client, data);
    expect((await got).data.equals(data)).toBe(true);
    expect(await client.closed).toBeUndefined();
    await listener.close();
    expect((await errorOf(vm.agentRequest("stat", "/run/vm-streams.sock"))).detail?.errno).toBe("ENOENT");
  });

  it("reports a refused connection through the worker with the errno", async () => {
    const err = await errorOf(vm.connect({ host: "127.0.0.1", port: 7999 }));
    expect(err.detail?.errno).toBe("ECONNREFUSED");
  });

  it("closes open streams and listeners with the reason when the VM stops", async () => {
    const listener = await vm.listen("/run/vm-stop.sock", () => {});
    const stream = await vm.connect({ path: "/run/vm-stop.sock" });
    await vm.stop();
    expect((await stream.closed)?.code).toBe("GUEST_STOPPED");
    expect((await listener.closed)?.code).toBe("GUEST_STOPPED");
  });
});
