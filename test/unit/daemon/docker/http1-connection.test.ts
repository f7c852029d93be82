// The HTTP/1.1 server that serves guest connections (src/daemon/docker/
// http1-connection.ts over llhttp's WebAssembly), driven by Node's own HTTP
// client and by raw bytes through a Unix socket: keep-alive, bodies with a
// length and chunked, answers with a length, chunked and close-delimited,
// upgrades hijacked into raw streams, pipelined requests, malformed input.
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { type Server, type Socket, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ByteStream, type RequestHandler, serveHttp1 } from "../../../../src/daemon/docker/http1-connection.ts";
import type { DockerRequest, DockerResponse } from "../../../../src/daemon/docker/http.ts";
import { Llhttp } from "../../../../src/daemon/docker/llhttp.ts";
import { nodeLlhttpModule } from "../../../../src/daemon/docker/llhttp-node.ts";

/** A Node socket in the shape of a guest stream. */
function byteStreamOf(socket: Socket): ByteStream {
  return {
    write: (chunk) => socket.write(chunk),
    end: () => void socket.end(),
    close: () => void socket.destroy(),
    onData: (l) => void socket.on("data", l),
    onEnd: (l) => void socket.on("end", l),
    onClose: (l) => void socket.on("close", () => l()),
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
  };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** What the test's handler answers, by path: enough to see each framing. */
const handler: RequestHandler = async (req: DockerRequest, res: DockerResponse) => {
  const path = new URL(req.url, "http://x").pathname;
  switch (path) {
    case "/echo": {
      const body = await req.body();
      res.head(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, bytes: body.length, body: text(body).slice(0, 64) }));
      return;
    }
    case "/slow": {
      res.head(200, { "Content-Type": "text/plain" });
      for (const part of ["one ", "two ", "three"]) {
        res.write(part);
        await new Promise((r) => setTimeout(r, 20));
      }
      res.end();
      return;
    }
    case "/empty":
      res.head(204, {});
      res.end();
      return;
    case "/forever":
      res.head(200, { "Content-Type": "application/json" });
      res.write("{}\n");
      await new Promise<void>((resolve) => res.onClose(resolve));
      closedForever++;
      return;
    case "/attach": {
      const body = text(await req.body());
      const io = res.hijack({ "Content-Type": "application/vnd.docker.raw-stream" });
      io.write(new TextEncoder().encode(`body=${body};`));
      io.onData((d) => io.write(new TextEncoder().encode(text(d).toUpperCase())));
      io.onEnd(() => {
        io.write(new TextEncoder().encode("bye"));
        io.end();
      });
      return;
    }
    default:
      res.head(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ message: `no ${path}` }));
  }
};
let closedForever = 0;

describe("the HTTP/1.1 server of guest connections", () => {
  let dir: string;
  let path: string;
  let server: Server;
  let connections = 0;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    const parsers = await Llhttp.instantiate(await nodeLlhttpModule());
    dir = mkdtempSync(join(tmpdir(), "hyperlab-http1-"));
    path = join(dir, "s.sock");
    server = createServer({ allowHalfOpen: true }, (socket) => {
      connections++;
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      serveHttp1(byteStreamOf(socket), parsers.requestParser(), handler);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
  });
  afterAll(async () => {
    // Node's client keeps idle connections open for a while: they are not what is tested.
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A request with Node's client; resolves with status, headers and body. */
  const send = (opts: { method?: string; path: string; body?: string | string[]; agent?: Agent; headers?: Record<string, string> }) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const req = request({ socketPath: path, method: opts.method ?? "GET", path: opts.path, agent: opts.agent, headers: opts.headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      for (const part of [opts.body ?? []].flat()) req.write(part);
      req.end();
    });

  /** Raw bytes to the server; resolves with all it sent back once it closes (or after `ms`). */
  const raw = (bytes: string, opts: { ms?: number; end?: boolean } = {}) =>
    new Promise<string>((resolve) => {
      const socket = connect(path);
      let got = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => (got += d));
      socket.on("close", () => resolve(got));
      socket.write(bytes);
      if (opts.end) socket.end();
      if (opts.ms) setTimeout(() => socket.destroy(), opts.ms);
    });

  it("answers a request with its length, on a connection kept alive for the next", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = connections;
    const a = await send({ path: "/echo?x=1", agent });
    const b = await send({ method: "POST", path: "/echo", body: '{"Image":"busybox"}', agent });
    agent.destroy();
    expect(a.status).toBe(200);
    expect(a.headers["content-length"]).toBe(String(a.body.length));
    expect(JSON.parse(a.body)).toMatchObject({ method: "GET", url: "/echo?x=1", host: "localhost", bytes: 0 });
    expect(JSON.parse(b.body)).toMatchObject({ method: "POST", bytes: 19, body: '{"Image":"busybox"}' });
    expect(connections - before).toBe(1);
  });

  it("reads a request that arrives a byte at a time", async () => {
    const wire = await new Promise<string>((resolve) => {
      const socket = connect(path);
      let got = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => (got += d));
      socket.on("close", () => resolve(got));
      const bytes = 'POST /echo?split=1 HTTP/1.1\r\nHost: split.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n';
      let i = 0;
      const next = () => {
        if (i < bytes.length) socket.write(bytes[i++]!, () => setImmediate(next));
      };
      next();
    });
    const body = JSON.parse(wire.slice(wire.indexOf("\r\n\r\n") + 4)) as Record<string, unknown>;
    expect(body).toMatchObject({ method: "POST", url: "/echo?split=1", host: "split.example", bytes: 5, body: "abcde" });
  });

  it("reads a chunked request body whole", async () => {
    const r = await send({ method: "POST", path: "/echo", body: ["abc", "defg", "h".repeat(100_000)], headers: { "Transfer-Encoding": "chunked" } });
    expect(JSON.parse(r.body)).toMatchObject({ bytes: 100_007, body: `abcdefg${"h".repeat(57)}` });
  });

  it("streams an answer that is not done yet in chunks, each as it is written", async () => {
    const r = await send({ path: "/slow" });
    expect(r.headers["transfer-encoding"]).toBe("chunked");
    expect(r.body).toBe("one two three");
    // On the wire: one chunk per write, then the last chunk.
    const wire = await raw("GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(wire).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(wire).toContain("\r\n\r\n4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n");
  });

  it("frames an answer to an HTTP/1.0 client by closing, and closes", async () => {
    const wire = await raw("GET /slow HTTP/1.0\r\n\r\n");
    expect(wire).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(wire).toMatch(/\r\nConnection: close\r\n/);
    expect(wire).not.toMatch(/Transfer-Encoding/i);
    expect(wire.endsWith("\r\n\r\none two three")).toBe(true);
  });

  it("answers pipelined requests in order, and a 204 without a body", async () => {
    const wire = await raw("GET /empty HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const statuses = [...wire.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    expect(statuses).toEqual(["204", "200", "404"]);
    expect(wire).toContain('"body":"hi"');
    expect(wire).toContain('{"message":"no /nope"}');
  });

  it("hijacks an upgrade: the body first, then the raw stream both ways, half-closed by the client", async () => {
    const wire = await raw("POST /attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 2\r\n\r\n{}stdin", { end: true });
    expect(wire).toMatch(/^HTTP\/1\.1 101 UPGRADED\r\n/);
    expect(wire).toMatch(/\r\nUpgrade: tcp\r\n/);
    expect(wire.slice(wire.indexOf("\r\n\r\n") + 4)).toBe("body={};STDINbye");
  });

  it("tells the handler when the client goes away in the middle of a long answer", async () => {
    const before = closedForever;
    const wire = await raw("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n", { ms: 200 });
    expect(wire).toContain("\r\n\r\n3\r\n{}\n\r\n");
    await expect.poll(() => closedForever).toBe(before + 1);
  });

  it("answers bytes that are not HTTP with 400 and Docker's message, and closes", async () => {
    const wire = await raw("HELLO\r\n\r\n");
    expect(wire).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(wire).toContain('{"message":"malformed HTTP request: ');
    const big = await raw(`GET / HTTP/1.1\r\nX: ${"a".repeat(70_000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
  });
});
