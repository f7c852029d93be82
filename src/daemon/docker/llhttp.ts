// llhttp, the HTTP/1.1 parser of Node's own http server, as undici compiles
// it to WebAssembly: the one file that knows its ABI (the exports, the
// callbacks it imports, its error codes). Where the bytes of the module come
// from is the platform's business (Node reads them from the undici package,
// llhttp-node.ts; the page fetches them as an asset of the site), so this
// file runs anywhere WebAssembly does.
import { HyperlabError } from "../../errors.ts";

/** llhttp's parser types (llhttp_type_t). */
const TYPE_REQUEST = 1;
/** llhttp's error codes that are not errors (llhttp_errno_t). */
const OK = 0;
const PAUSED_UPGRADE = 22;

/** The exports of undici's llhttp build that this file uses. */
interface LlhttpExports {
  memory: WebAssembly.Memory;
  _initialize?: () => void;
  malloc(size: number): number;
  free(ptr: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(parser: number): void;
  llhttp_execute(parser: number, data: number, length: number): number;
  llhttp_finish(parser: number): number;
  llhttp_get_method(parser: number): number;
  llhttp_method_name(method: number): number;
  llhttp_get_http_major(parser: number): number;
  llhttp_get_http_minor(parser: number): number;
  llhttp_get_error_pos(parser: number): number;
  llhttp_get_error_reason(parser: number): number;
  llhttp_errno_name(errno: number): number;
}

/** The start of one request: request line and headers. */
export interface RequestHead {
  method: string;
  /** the request target as sent (path and query) */
  url: string;
  /** HTTP version, e.g. [1, 1] */
  version: [major: number, minor: number];
  /** header fields in the order sent, names as sent */
  headers: Array<[name: string, value: string]>;
  /** the client asked to switch protocols (Connection: Upgrade with Upgrade: …), or sent CONNECT */
  upgrade: boolean;
  /** the connection may carry another request after this one (HTTP/1.1 without Connection: close, or HTTP/1.0 with keep-alive) */
  keepAlive: boolean;
}

/** What the parser found in the bytes it was given, in order. */
export type ParseEvent =
  | { type: "head"; head: RequestHead }
  /** bytes of the current request's body (chunked framing already removed) */
  | { type: "body"; data: Uint8Array }
  /** the current request is complete */
  | { type: "end" }
  /** the request before was an upgrade: `rest` (possibly empty) and everything after belongs to the new protocol */
  | { type: "upgrade"; rest: Uint8Array }
  /** the bytes are not HTTP/1.1 (llhttp's reason, e.g. "Invalid method encountered"); nothing more is parsed */
  | { type: "error"; code: string; reason: string };

/** Header bytes (request line and fields) a request may have; Node's http server allows 16 KiB. */
export const MAX_HEAD_BYTES = 64 * 1024;

/** One request parser's state between callbacks. */
class ParseState {
  events: ParseEvent[] = [];
  url = "";
  headers: Array<[string, string]> = [];
  /** the last callback was a header value (so the next field starts a new header) */
  inValue = false;
  headBytes = 0;
  tooLarge = false;
}

/** llhttp, instantiated once: any number of request parsers share its memory. */
export class Llhttp {
  private readonly parsers = new Map<number, ParseState>();
  private buffer = 0;
  private bufferSize = 0;
  private readonly decoder = new TextDecoder("latin1");

  private constructor(private readonly exports: LlhttpExports) {}

  /** Instantiates undici's llhttp module (`WebAssembly.compile` of its bytes). */
  static async instantiate(module: WebAssembly.Module): Promise<Llhttp> {
    let self: Llhttp | undefined;
    const state = (p: number): ParseState => self!.parsers.get(p)!;
    const text = (at: number, len: number) => self!.text(at, len);
    const span = (p: number, len: number): number => {
      const s = state(p);
      s.headBytes += len;
      if (s.headBytes <= MAX_HEAD_BYTES) return 0;
      s.tooLarge = true;
      return -1;
    };
    const instance = await WebAssembly.instantiate(module, {
      env: {
        wasm_on_message_begin: (p: number) => {
          const s = state(p);
          s.url = "";
          s.headers = [];
          s.inValue = false;
          s.headBytes = 0;
          return 0;
        },
        wasm_on_url: (p: number, at: number, len: number) => {
          state(p).url += text(at, len);
          return span(p, len);
        },
        wasm_on_status: () => 0,
        wasm_on_header_field: (p: number, at: number, len: number) => {
          const s = state(p);
          if (s.inValue || s.headers.length === 0) s.headers.push(["", ""]);
          s.inValue = false;
          s.headers[s.headers.length - 1]![0] += text(at, len);
          return span(p, len);
        },
        wasm_on_header_value: (p: number, at: number, len: number) => {
          const s = state(p);
          s.inValue = true;
          s.headers[s.headers.length - 1]![1] += text(at, len);
          return span(p, len);
        },
        wasm_on_headers_complete: (p: number, _status: number, upgrade: number, keepAlive: number) => {
          const s = state(p);
          const e = self!.exports;
          const head: RequestHead = {
            method: self!.cString(e.llhttp_method_name(e.llhttp_get_method(p))),
            url: s.url,
            version: [e.llhttp_get_http_major(p), e.llhttp_get_http_minor(p)],
            headers: s.headers.map(([k, v]) => [k, v.trim()]),
            upgrade: upgrade !== 0,
            keepAlive: keepAlive !== 0,
          };
          s.events.push({ type: "head", head });
          // 0: the body (if any) is parsed as this request's, also for an upgrade (exec start's JSON comes before its stdin).
          return 0;
        },
        wasm_on_body: (p: number, at: number, len: number) => {
          // Copied out: the input buffer is reused by the next execute.
          state(p).events.push({ type: "body", data: new Uint8Array(self!.exports.memory.buffer, at, len).slice() });
          return 0;
        },
        wasm_on_message_complete: (p: number) => {
          state(p).events.push({ type: "end" });
          return 0;
        },
      },
    });
    self = new Llhttp(instance.exports as unknown as LlhttpExports);
    self.exports._initialize?.();
    return self;
  }

  /** A parser for the requests of one connection. */
  requestParser(): RequestParser {
    const ptr = this.exports.llhttp_alloc(TYPE_REQUEST);
    const s = new ParseState();
    this.parsers.set(ptr, s);
    let done = false;
    return {
      execute: (data) => {
        if (done) return [];
        const events = this.execute(ptr, s, data);
        if (events.some((e) => e.type === "upgrade" || e.type === "error")) done = true;
        return events;
      },
      destroy: () => {
        if (!this.parsers.delete(ptr)) return;
        done = true;
        this.exports.llhttp_free(ptr);
      },
    };
  }

  private execute(ptr: number, s: ParseState, data: Uint8Array): ParseEvent[] {
    const e = this.exports;
    if (data.length > this.bufferSize) {
      if (this.buffer) e.free(this.buffer);
      this.bufferSize = Math.ceil(data.length / 65536) * 65536;
      this.buffer = e.malloc(this.bufferSize);
      if (!this.buffer) throw new HyperlabError("RESOURCE_EXHAUSTED", `the HTTP parser could not allocate ${this.bufferSize} bytes`);
    }
    new Uint8Array(e.memory.buffer, this.buffer, data.length).set(data);
    s.events = [];
    const ret = e.llhttp_execute(ptr, this.buffer, data.length);
    const events = s.events;
    s.events = [];
    if (ret === OK) return events;
    const at = e.llhttp_get_error_pos(ptr) - this.buffer;
    if (ret === PAUSED_UPGRADE) {
      events.push({ type: "upgrade", rest: data.slice(at) });
      return events;
    }
    if (s.tooLarge) events.push({ type: "error", code: "HPE_HEADER_OVERFLOW", reason: `the request line and headers are larger than ${MAX_HEAD_BYTES} bytes` });
    else events.push({ type: "error", code: this.cString(e.llhttp_errno_name(ret)), reason: this.cString(e.llhttp_get_error_reason(ptr)) });
    return events;
  }

  private text(at: number, len: number): string {
    return this.decoder.decode(new Uint8Array(this.exports.memory.buffer, at, len));
  }

  private cString(ptr: number): string {
    if (!ptr) return "";
    const bytes = new Uint8Array(this.exports.memory.buffer, ptr);
    return this.decoder.decode(bytes.subarray(0, bytes.indexOf(0)));
  }
}

/** Parses the requests of one connection as its bytes arrive. */
export interface RequestParser {
  /** What `data` (the next bytes of the connection) holds; after an upgrade or an error, nothing more is parsed. */
  execute(data: Uint8Array): ParseEvent[];
  /** Frees the parser's memory. Legal once the connection is over; twice is a no-op. */
  destroy(): void;
}
