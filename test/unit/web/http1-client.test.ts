import { createRequire } from "node:module";
import { beforeAll, describe, expect, it } from "vitest";
import { StreamEnd } from "../../../src/guest/agent-stream.ts";
import { Http1Connection, type ResponseHead, ResponseParsers, requestBytes } from "../../../src/web/http1-client.ts";

let parsers: ResponseParsers;
beforeAll(async () => {
  const bytes = createRequire(import.meta.url)("undici/lib/llhttp/llhttp-wasm.js") as Uint8Array;
  parsers = await ResponseParsers.instantiate(await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>));
});

/** A connection whose server side the test drives: what the client wrote, and a way to answer. */
function connection() {
  let server!: StreamEnd;
  const client: StreamEnd = new StreamEnd(1, { data: (d) => server.receiveData(d), eof: () => server.receiveEof(), close: () => server.receiveClose(), grant: (n) => server.receiveCredit(n) }, { credit: 1 << 20 });
  server = new StreamEnd(1, { data: (d) => client.receiveData(d), eof: () => client.receiveEof(), close: () => client.receiveClose(), grant: (n) => client.receiveCredit(n) }, { credit: 1 << 20 });
  let written = "";
  server.onData((d) => (written += new TextDecoder().decode(d)));
  const conn = new Http1Connection(client, parsers);
  return { conn, server, written: () => written, answer: (text: string) => server.write(new TextEncoder().encode(text)) };
}

/** Sends one GET and collects the answer. */
function get(conn: Http1Connection, method = "GET") {
  return new Promise<{ head: ResponseHead; body: string }>((resolve, reject) => {
    let head: ResponseHead | undefined;
    let body = "";
    conn.send({ method, target: "/x?y=1", headers: [["Accept", "*/*"], ["Connection", "close"]] }, {
      head: (h) => (head = h),
      body: (d) => (body += new TextDecoder().decode(d)),
      end: () => resolve({ head: head!, body }),
      error: reject,
    });
  });
}

describe("HTTP/1.1 over a guest stream (the page's port relay)", () => {
  it("writes the request as HTTP/1.1, without the browser's hop-by-hop headers", () => {
    const bytes = new TextDecoder().decode(requestBytes({ method: "POST", target: "/form", headers: [["Host", "a"], ["Connection", "close"], ["Transfer-Encoding", "chunked"]], body: new TextEncoder().encode("k=v") }));
    expect(bytes).toBe("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nk=v");
  });

  it("reads a Content-Length answer and keeps the connection for the next request", async () => {
    const { conn, answer, written } = connection();
    const first = get(conn);
    answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    expect(await first).toEqual({ head: { status: 200, statusText: "OK", headers: [["Content-Type", "text/plain"], ["Content-Length", "5"]], keepAlive: true }, body: "hello" });
    expect(written()).toBe("GET /x?y=1 HTTP/1.1\r\nAccept: */*\r\n\r\n");
    expect(conn.reusable).toBe(true);
    const second = get(conn);
    answer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    expect((await second).head.status).toBe(404);
    expect(conn.reusable).toBe(true);
  });

  it("reads a chunked answer as it comes, in pieces", async () => {
    const { conn, answer } = connection();
    const got = get(conn);
    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    answer("lo\r\n6\r\n world\r\n0\r\n\r\n");
    expect((await got).body).toBe("hello world");
    expect(conn.reusable).toBe(true);
  });

  it("reads an answer that runs to the end of the connection, and does not reuse that connection", async () => {
    const { conn, answer, server } = connection();
    const got = get(conn);
    answer("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<h1>hi</h1>");
    server.end();
    expect(await got).toMatchObject({ head: { status: 200, keepAlive: false }, body: "<h1>hi</h1>" });
    expect(conn.reusable).toBe(false);
  });

  it("expects no body after HEAD, skips 100 Continue, and fails a request whose connection breaks", async () => {
    const { conn, answer } = connection();
    const head = get(conn, "HEAD");
    answer("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    expect(await head).toMatchObject({ head: { status: 200 }, body: "" });
    const cont = get(conn);
    answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    expect(await cont).toMatchObject({ head: { status: 201 }, body: "ok" });
    const broken = connection();
    const failed = get(broken.conn);
    broken.answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    broken.server.end();
    await expect(failed).rejects.toThrow("closed the connection before its answer was complete");
  });
});
