// HTTP/1.1 as a client over a guest stream: a request written out, the
// answer read back with llhttp (the same WebAssembly build of Node's parser
// that the page's docker.sock uses, src/daemon/docker/llhttp.ts, here in
// its response mode): status, headers, a body framed by Content-Length,
// chunked or the end of the connection, and whether the connection may
// carry the next request (keep-alive). Pure code: the page runs it.
import { HyperlabError } from "../errors.ts";
import type { GuestStream } from "../guest/agent.ts";

/** llhttp's parser type for responses (llhttp_type_t). */
const TYPE_RESPONSE = 2;
const OK = 0;

interface LlhttpExports {
  memory: WebAssembly.Memory;
  _initialize?: () => void;
  malloc(size: number): number;
  free(ptr: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(parser: number): void;
  llhttp_execute(parser: number, data: number, length: number): number;
  llhttp_finish(parser: number): number;
  llhttp_get_http_major(parser: number): number;
  llhttp_get_http_minor(parser: number): number;
  llhttp_get_error_reason(parser: number): number;
  llhttp_errno_name(errno: number): number;
}

/** The start of a response: status line and headers. */
export interface ResponseHead {
  status: number;
  statusText: string;
  /** header fields in the order sent */
  headers: Array<[name: string, value: string]>;
  /** the connection may carry another request after this answer */
  keepAlive: boolean;
}

/** What one response parser found, in order. */
export type ResponseEvent =
  | { type: "head"; head: ResponseHead }
  | { type: "body"; data: Uint8Array }
  | { type: "end" }
  | { type: "error"; reason: string };

/** One parser's state between llhttp's callbacks. */
class State {
  events: ResponseEvent[] = [];
  statusText = "";
  headers: Array<[string, string]> = [];
  inValue = false;
  /** the request was HEAD: the answer has no body whatever its headers say */
  noBody = false;
}

/** llhttp instantiated for responses: any number of parsers share it. */
export class ResponseParsers {
  private readonly states = new Map<number, State>();
  private buffer = 0;
  private bufferSize = 0;
  private readonly decoder = new TextDecoder("latin1");

  private constructor(private readonly e: LlhttpExports) {}

  /** Instantiates llhttp's module (undici's build, as the site ships it). */
  static async instantiate(module: WebAssembly.Module): Promise<ResponseParsers> {
    let self: ResponseParsers | undefined;
    const state = (p: number) => self!.states.get(p)!;
    const text = (at: number, len: number) => self!.decoder.decode(new Uint8Array(self!.e.memory.buffer, at, len));
    const instance = await WebAssembly.instantiate(module, {
      env: {
        wasm_on_message_begin: (p: number) => {
          const s = state(p);
          s.statusText = "";
          s.headers = [];
          s.inValue = false;
          return 0;
        },
        wasm_on_url: () => 0,
        wasm_on_status: (p: number, at: number, len: number) => {
          state(p).statusText += text(at, len);
          return 0;
        },
        wasm_on_header_field: (p: number, at: number, len: number) => {
          const s = state(p);
          if (s.inValue || s.headers.length === 0) s.headers.push(["", ""]);
          s.inValue = false;
          s.headers[s.headers.length - 1]![0] += text(at, len);
          return 0;
        },
        wasm_on_header_value: (p: number, at: number, len: number) => {
          const s = state(p);
          s.inValue = true;
          s.headers[s.headers.length - 1]![1] += text(at, len);
          return 0;
        },
        wasm_on_headers_complete: (p: number, status: number, _upgrade: number, keepAlive: number) => {
          const s = state(p);
          s.events.push({ type: "head", head: { status, statusText: s.statusText, headers: s.headers.map(([k, v]) => [k, v.trim()]), keepAlive: keepAlive !== 0 } });
          // 1: no body follows (the answer to HEAD).
          return s.noBody ? 1 : 0;
        },
        wasm_on_body: (p: number, at: number, len: number) => {
          state(p).events.push({ type: "body", data: new Uint8Array(self!.e.memory.buffer, at, len).slice() });
          return 0;
        },
        wasm_on_message_complete: (p: number) => {
          state(p).events.push({ type: "end" });
          return 0;
        },
      },
    });
    self = new ResponseParsers(instance.exports as unknown as LlhttpExports);
    self.e._initialize?.();
    return self;
  }

  /** A parser for the answers on one connection. */
  parser(): ResponseParser {
    const ptr = this.e.llhttp_alloc(TYPE_RESPONSE);
    const s = new State();
    this.states.set(ptr, s);
    const run = (f: () => number): ResponseEvent[] => {
      s.events = [];
      const ret = f();
      const events = s.events;
      s.events = [];
      if (ret !== OK) events.push({ type: "error", reason: `${this.cString(this.e.llhttp_errno_name(ret))}: ${this.cString(this.e.llhttp_get_error_reason(ptr))}` });
      return events;
    };
    return {
      expectNoBody: (yes) => void (s.noBody = yes),
      execute: (data) =>
        run(() => {
          if (data.length > this.bufferSize) {
            if (this.buffer) this.e.free(this.buffer);
            this.bufferSize = Math.ceil(data.length / 65536) * 65536;
            this.buffer = this.e.malloc(this.bufferSize);
          }
          new Uint8Array(this.e.memory.buffer, this.buffer, data.length).set(data);
          return this.e.llhttp_execute(ptr, this.buffer, data.length);
        }),
      finish: () => run(() => this.e.llhttp_finish(ptr)),
      destroy: () => {
        if (this.states.delete(ptr)) this.e.llhttp_free(ptr);
      },
    };
  }

  private cString(ptr: number): string {
    if (!ptr) return "";
    const bytes = new Uint8Array(this.e.memory.buffer, ptr);
    return this.decoder.decode(bytes.subarray(0, bytes.indexOf(0)));
  }
}

/** Parses the answers of one connection as its bytes arrive. */
export interface ResponseParser {
  /** the next answer is to a HEAD request (it has no body) */
  expectNoBody(yes: boolean): void;
  execute(data: Uint8Array): ResponseEvent[];
  /** the connection ended: completes an answer whose body ran to the end of the connection */
  finish(): ResponseEvent[];
  destroy(): void;
}

/** A request to send. */
export interface ClientRequest {
  method: string;
  /** path and query, e.g. /index.html?x=1 */
  target: string;
  headers: Array<[string, string]>;
  body?: Uint8Array;
}

/** What a request gets back, as it arrives. */
export interface ResponseSink {
  head(head: ResponseHead): void;
  body(data: Uint8Array): void;
  end(): void;
  error(err: HyperlabError): void;
}

/** Headers that belong to one hop and are not passed on (RFC 9110 7.6.1), and the framing this client sets itself. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"]);

const encoder = new TextEncoder();

/** The bytes of `req` as HTTP/1.1 (framing by Content-Length; the connection kept alive). */
export function requestBytes(req: ClientRequest): Uint8Array {
  const lines = [`${req.method} ${req.target} HTTP/1.1`];
  for (const [k, v] of req.headers) if (!HOP_BY_HOP.has(k.toLowerCase()) && !/[\r\n]/.test(k + v)) lines.push(`${k}: ${v}`);
  if (req.body?.length || !["GET", "HEAD", "DELETE", "OPTIONS"].includes(req.method)) lines.push(`Content-Length: ${req.body?.length ?? 0}`);
  const head = encoder.encode(`${lines.join("\r\n")}\r\n\r\n`);
  if (!req.body?.length) return head;
  const out = new Uint8Array(head.length + req.body.length);
  out.set(head);
  out.set(req.body, head.length);
  return out;
}

/**
 * One HTTP/1.1 connection over a guest stream, one request at a time.
 * `reusable` says whether it may carry the next request once an answer has
 * ended (the server kept it alive and nothing went wrong).
 */
export class Http1Connection {
  private sink: ResponseSink | undefined;
  private over = false;
  private keepAlive = false;
  /** a 1xx answer is being read: its end is not the request's */
  private informational = false;
  private readonly parser: ResponseParser;

  constructor(
    private readonly stream: GuestStream,
    parsers: ResponseParsers,
  ) {
    this.parser = parsers.parser();
    stream.onData((d) => this.feed(this.parser.execute(d)));
    stream.onEnd(() => {
      // An answer cut short is llhttp's "invalid EOF state": said in words of the connection.
      const events = this.parser.finish();
      this.feed(events.filter((e) => e.type !== "error"));
      this.fail("the container's server closed the connection before its answer was complete");
      this.close();
    });
    stream.onClose((err) => {
      this.fail(err ? `the connection to the container broke: ${err.message}` : "the connection to the container closed before its answer was complete");
      this.close();
    });
  }

  /** Whether the next request may go on this connection. */
  get reusable(): boolean {
    return !this.over && !this.sink && this.keepAlive;
  }

  /** Sends `req`; what comes back goes to `sink`. Legal while no other request is in flight. */
  send(req: ClientRequest, sink: ResponseSink): void {
    if (this.sink || this.over) throw new HyperlabError("INVALID_ARGUMENT", "this connection is busy or closed");
    this.sink = sink;
    this.keepAlive = false;
    this.parser.expectNoBody(req.method === "HEAD");
    this.stream.write(requestBytes(req));
  }

  /** Ends the connection (a request in flight fails). */
  close(): void {
    if (this.over) return;
    this.over = true;
    this.parser.destroy();
    this.stream.close();
  }

  private feed(events: ResponseEvent[]): void {
    for (const e of events) {
      const sink = this.sink;
      if (!sink) {
        // Bytes nobody asked for: the connection is out of step; drop it.
        this.close();
        return;
      }
      if (e.type === "head") {
        // 1xx answers (100 Continue) come before the real one.
        if (e.head.status >= 100 && e.head.status < 200) {
          this.informational = true;
          continue;
        }
        this.keepAlive = e.head.keepAlive;
        sink.head(e.head);
      } else if (e.type === "body") sink.body(e.data);
      else if (e.type === "end") {
        if (this.informational) {
          this.informational = false;
          continue;
        }
        this.sink = undefined;
        sink.end();
        if (!this.keepAlive) this.close();
      } else {
        this.fail(`the container's server answered with bytes that are not HTTP/1.1 (${e.reason})`);
        this.close();
        return;
      }
    }
  }

  private fail(why: string): void {
    const sink = this.sink;
    this.sink = undefined;
    sink?.error(new HyperlabError("AGENT_ERROR", why));
  }
}
