// One HTTP/1.1 connection served over any byte stream (a connection the guest
// agent accepted on /var/run/docker.sock, in Node or in the page's tab):
// requests parsed by llhttp (llhttp.ts), answered in order on a keep-alive
// connection, bodies read as they arrive (Content-Length or chunked),
// answers framed by Content-Length, chunked or by closing, and upgrades
// (attach, exec start: `Upgrade: tcp`) hijacked into raw two-way streams.
// It adapts the bytes to http.ts's DockerRequest and DockerResponse, so the
// same Docker API handler serves them. Nothing here needs Node.
import { concatBytes } from "../../bytes.ts";
import { HyperlabError } from "../../errors.ts";
import type { GuestStream } from "../../guest/agent-stream.ts";
import { MAX_JSON_BODY } from "./api.ts";
import { type DockerRequest, type DockerResponse, type HijackedStream, bytesOf } from "./http.ts";
import type { RequestHead, RequestParser } from "./llhttp.ts";

/** What a connection needs of its byte stream: a GuestStream has it all. */
export type ByteStream = Pick<GuestStream, "write" | "end" | "close" | "onData" | "onEnd" | "onClose" | "pause" | "resume">;

/** Serves one request (the Docker API's `handle`): never throws, answers every request. */
export type RequestHandler = (req: DockerRequest, res: DockerResponse) => Promise<void>;

/** Body bytes held for requests that have not read them yet, past which the client is held back (it resumes below a quarter). */
const BODY_HIGH_WATER = 1024 * 1024;

/** Reason phrases of the statuses the Docker API answers with (clients read only the code). */
const REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "UPGRADED",
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  507: "Insufficient Storage",
};

const encoder = new TextEncoder();

function concat(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}

function headerBlock(status: number, headers: ReadonlyArray<readonly [string, string]>): Uint8Array {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** A request's body as it arrives: held until read, refused past the connection's buffer by pausing the client. */
class BodyQueue {
  private readonly chunks: Uint8Array[] = [];
  private ended = false;
  private error: HyperlabError | undefined;
  private wake: (() => void) | undefined;
  /** bytes that arrive from now on are dropped (the answer ended without reading them) */
  private discarding = false;

  constructor(private readonly held: (delta: number) => void) {}

  push(data: Uint8Array): void {
    if (this.discarding) return;
    this.chunks.push(data);
    this.held(data.length);
    this.wakeUp();
  }

  end(): void {
    this.ended = true;
    this.wakeUp();
  }

  fail(err: HyperlabError): void {
    if (this.ended) return;
    this.error = err;
    this.wakeUp();
  }

  /** Drops what waits and what is still to come. */
  discard(): void {
    this.discarding = true;
    this.held(-this.chunks.reduce((n, c) => n + c.length, 0));
    this.chunks.length = 0;
  }

  async *read(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.held(-chunk.length);
        yield chunk;
        continue;
      }
      if (this.error) throw this.error;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** A connection after its hijack: the stream's listeners, and what came before there were any. */
interface Hijack {
  data: Array<(d: Uint8Array) => void>;
  end: Array<() => void>;
  early: Uint8Array[];
  /** the client ended its side */
  ended: boolean;
  /** what the client sends is not read (a hijack without an upgrade) */
  ignored: boolean;
}

/** One request and its answer. */
interface Exchange {
  head: RequestHead;
  body: BodyQueue;
  /** the request's body has been parsed to its end */
  received: boolean;
  /** the answer has been sent in full (or the connection was handed over) */
  answered: boolean;
  /** no request after this one: it asked to close or upgrade, or what followed it was not HTTP */
  last: boolean;
  closeListeners: Array<() => void>;
}

/**
 * Serves the HTTP/1.1 requests that arrive on `stream` with `handle`, one
 * at a time in order, until the client closes, an answer is framed by
 * closing, a request asks to close, or the connection is upgraded (then it
 * is the hijacked stream's). `parser` is this connection's (llhttp.ts).
 */
export function serveHttp1(stream: ByteStream, parser: RequestParser, handle: RequestHandler): void {
  const exchanges: Exchange[] = [];
  /** the exchange whose body the parser is reading */
  let receiving: Exchange | undefined;
  let serving: Exchange | undefined;
  /** bytes after an upgrade's request, for the hijacked stream */
  let upgradeRest: Uint8Array | undefined;
  let hijack: Hijack | undefined;
  /** the client ended its side after an upgrade's request, before the answer hijacked the connection */
  let upgradeEnded = false;
  /** bytes are parsed as requests (until a request that is the last, a parse error or the client's end) */
  let parsing = true;
  let clientEnded = false;
  let over = false;
  let held = 0;
  let paused = false;
  const closeListeners: Array<() => void> = [];

  const hold = (delta: number) => {
    held += delta;
    if (!paused && held > BODY_HIGH_WATER) {
      paused = true;
      stream.pause();
    } else if (paused && held < BODY_HIGH_WATER / 4) {
      paused = false;
      stream.resume();
    }
  };

  const write = (chunk: Uint8Array) => {
    if (!over && chunk.length > 0) stream.write(chunk);
  };

  /** The connection is over: everyone waiting hears it once. */
  const finish = () => {
    if (over) return;
    over = true;
    parser.destroy();
    const gone = new HyperlabError("INVALID_ARGUMENT", "the client closed the connection before the request body ended");
    for (const x of exchanges) {
      x.body.fail(gone);
      if (!x.answered) for (const l of x.closeListeners.splice(0)) l();
    }
    for (const l of closeListeners.splice(0)) l();
  };

  /** Ends this side once the last answer is out (the stream closes when the client's side has ended too). */
  const endConnection = () => {
    if (over) return;
    stream.end();
    if (clientEnded) finish();
  };

  const serveNext = () => {
    if (serving || over) return;
    const x = exchanges[0];
    if (!x) return;
    serving = x;
    if (/^100-continue$/i.test(header(x.head, "expect") ?? "") && !x.received) write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    void handle(requestOf(x), responseOf(x)).catch(() => {});
  };

  const answered = (x: Exchange, keepOpen: boolean) => {
    if (x.answered) return;
    x.answered = true;
    x.body.discard();
    exchanges.splice(exchanges.indexOf(x) >>> 0, 1);
    if (serving === x) serving = undefined;
    if (!keepOpen) {
      parsing = false;
      exchanges.length = 0;
      endConnection();
      return;
    }
    serveNext();
  };

  const requestOf = (x: Exchange): DockerRequest => {
    let used = false;
    const stream = (): AsyncIterable<Uint8Array> => {
      if (used) throw new HyperlabError("INVALID_ARGUMENT", "the request body was already read");
      used = true;
      return x.body.read();
    };
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of x.head.headers) {
      const key = k.toLowerCase();
      headers[key] = headers[key] === undefined ? v : `${headers[key]}, ${v}`;
    }
    return {
      method: x.head.method,
      url: x.head.url,
      headers,
      stream,
      body: async () => {
        const parts: Uint8Array[] = [];
        let size = 0;
        for await (const c of stream()) {
          size += c.length;
          if (size > MAX_JSON_BODY) throw new HyperlabError("INVALID_ARGUMENT", `request body is larger than ${MAX_JSON_BODY} bytes`);
          parts.push(c);
        }
        return parts.length ? concat(parts) : new Uint8Array(0);
      },
    };
  };

  const responseOf = (x: Exchange): DockerResponse => {
    let headSent = false;
    let status = 200;
    let headers: Array<[string, string]> = [];
    let headOut = false;
    let framing: "length" | "chunked" | "close" | "none" = "none";
    let keep = false;
    let ended = false;
    let flushing = false;
    const pending: Uint8Array[] = [];
    const noBody = () => x.head.method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);

    // The head and what follows it in the same turn go out as one write: a small answer is one piece with its length.
    const flush = () => {
      flushing = false;
      const out: Uint8Array[] = [];
      if (!headOut) {
        headOut = true;
        const has = (name: string) => headers.some(([k]) => k.toLowerCase() === name);
        if (noBody()) framing = "none";
        else if (has("content-length")) framing = "length";
        else if (ended) {
          framing = "length";
          headers.push(["Content-Length", String(pending.reduce((n, p) => n + p.length, 0))]);
        } else if (x.head.version[0] === 1 && x.head.version[1] >= 1) {
          framing = "chunked";
          headers.push(["Transfer-Encoding", "chunked"]);
        } else framing = "close";
        keep = x.head.keepAlive && !x.last && framing !== "close";
        if (!has("date")) headers.push(["Date", new Date().toUTCString()]);
        headers.push(["Connection", keep ? "keep-alive" : "close"]);
        out.push(headerBlock(status, headers));
      }
      const body = framing === "none" ? [] : pending.splice(0);
      pending.length = 0;
      const size = body.reduce((n, p) => n + p.length, 0);
      if (framing === "chunked") {
        if (size > 0) out.push(encoder.encode(`${size.toString(16)}\r\n`), ...body, encoder.encode("\r\n"));
        if (ended) out.push(encoder.encode("0\r\n\r\n"));
      } else out.push(...body);
      if (out.length) write(concat(out));
      if (ended) answered(x, keep && !x.last);
    };
    const schedule = () => {
      if (flushing) return;
      flushing = true;
      queueMicrotask(flush);
    };
    return {
      head: (s, h = {}) => {
        if (headSent) throw new HyperlabError("INVALID_ARGUMENT", "the answer's head was already sent");
        headSent = true;
        status = s;
        headers = Object.entries(h);
        schedule();
      },
      get headSent() {
        return headSent;
      },
      write: (chunk) => {
        if (ended || over) return;
        if (!headSent) throw new HyperlabError("INVALID_ARGUMENT", "write before the answer's head");
        pending.push(bytesOf(chunk));
        schedule();
      },
      end: (chunk) => {
        if (ended || over) return;
        if (!headSent) throw new HyperlabError("INVALID_ARGUMENT", "end before the answer's head");
        if (chunk !== undefined) pending.push(bytesOf(chunk));
        ended = true;
        schedule();
      },
      onClose: (l) => void x.closeListeners.push(l),
      hijack: (h) => {
        if (headSent) throw new HyperlabError("INVALID_ARGUMENT", "cannot hijack: the answer's head was already sent");
        headSent = true;
        const upgrading = (header(x.head, "upgrade") ?? "").toLowerCase() === "tcp" && x.head.upgrade;
        const fields: Array<[string, string]> = Object.entries(h);
        fields.push(...(upgrading ? ([["Connection", "Upgrade"], ["Upgrade", "tcp"]] as Array<[string, string]>) : []));
        write(headerBlock(upgrading ? 101 : 200, fields));
        // The connection is the stream's from now on: no more requests on it.
        x.answered = true;
        parsing = false;
        serving = undefined;
        exchanges.length = 0;
        const h2: Hijack = (hijack = { data: [], end: [], early: [], ended: false, ignored: false });
        if (upgrading && upgradeRest?.length) h2.early.push(upgradeRest);
        upgradeRest = undefined;
        // Without an upgrade what the client sends is not read (output only, as node.ts answers such clients).
        if (!upgrading) h2.ignored = true;
        else if (upgradeEnded) h2.ended = true;
        const io: HijackedStream = {
          write: (d) => write(d),
          end: () => void (!over && stream.end()),
          onData: (l) => {
            h2.data.push(l);
            for (const d of h2.early.splice(0)) l(d);
          },
          onEnd: (l) => void (h2.ended ? l() : h2.end.push(l)),
          onClose: (l) => void (over ? l() : closeListeners.push(l)),
        };
        return io;
      },
    };
  };

  /** Answers bytes that are not HTTP the way Node's server does (400, or 431 for a head too large), unless an answer is under way. */
  const refuse = (code: string, reason: string) => {
    parsing = false;
    exchanges.splice(serving ? 1 : 0);
    if (serving) {
      serving.last = true;
      return;
    }
    const status = code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
    const body = encoder.encode(JSON.stringify({ message: `malformed HTTP request: ${reason} (${code})` }) + "\n");
    write(concat([headerBlock(status, [["Content-Type", "application/json"], ["Content-Length", String(body.length)], ["Connection", "close"]]), body]));
    endConnection();
  };

  stream.onData((data) => {
    if (over) return;
    if (hijack) {
      if (hijack.ended || hijack.ignored) return;
      if (hijack.data.length) for (const l of hijack.data) l(data);
      else hijack.early.push(data);
      return;
    }
    if (upgradeRest) {
      // An upgrade's request is being answered: what follows is the new protocol's, held until the stream is hijacked.
      upgradeRest = concat([upgradeRest, data]);
      return;
    }
    if (!parsing) return;
    for (const e of parser.execute(data)) {
      switch (e.type) {
        case "head": {
          const last = !e.head.keepAlive || e.head.upgrade;
          const x: Exchange = { head: e.head, body: new BodyQueue(hold), received: false, answered: false, last, closeListeners: [] };
          exchanges.push(x);
          receiving = x;
          serveNext();
          break;
        }
        case "body":
          receiving?.body.push(e.data);
          break;
        case "end":
          if (receiving) {
            receiving.received = true;
            receiving.body.end();
          }
          receiving = undefined;
          break;
        case "upgrade":
          parsing = false;
          upgradeRest = e.rest;
          break;
        case "error":
          refuse(e.code, e.reason);
          return;
      }
    }
  });

  stream.onEnd(() => {
    clientEnded = true;
    if (hijack) {
      if (!hijack.ended && !hijack.ignored) {
        hijack.ended = true;
        for (const l of hijack.end.splice(0)) l();
      }
      return;
    }
    if (upgradeRest && serving?.head.upgrade) {
      // The client may end its side before the answer to its upgrade (stdin that was empty): the hijacked stream hears it.
      upgradeEnded = true;
      return;
    }
    // As Node's server does by default: a client that ends its side is gone; what it asked is abandoned.
    const aborted = new HyperlabError("INVALID_ARGUMENT", "the client closed the connection before the request body ended");
    for (const x of exchanges) {
      if (!x.received) x.body.fail(aborted);
      for (const l of x.closeListeners.splice(0)) l();
    }
    parsing = false;
    exchanges.length = 0;
    serving = undefined;
    stream.end();
    finish();
  });

  stream.onClose(() => finish());
}

/** A request header's value by name (any case); several are joined with ", ". */
function header(head: RequestHead, name: string): string | undefined {
  const values = head.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
  return values.length ? values.join(", ") : undefined;
}
