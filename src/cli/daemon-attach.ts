// Interactive streams through the daemon: `run -i/-t` and `exec -i/-t`.
// An HTTP request upgrades the connection (as Docker's attach hijacks it),
// then both ends exchange small binary frames: stdin, stdin's end and
// terminal size one way; stdout, stderr and the exit status the other.
import type { IncomingMessage } from "node:http";
import { STATUS_CODES, request } from "node:http";
import type { Duplex } from "node:stream";
import type { ContainerEngine } from "../containers/engine.ts";
import { HyperlabError } from "../errors.ts";

/** The protocol named in the Upgrade header. */
export const STREAM_PROTOCOL = "hyperlab-stream";

/** Frame types: [type u8][length u32 big-endian][payload]. */
export const Frame = {
  /** client → daemon: bytes for the process's stdin */
  STDIN: 0,
  /** daemon → client: stdout bytes */
  STDOUT: 1,
  /** daemon → client: stderr bytes */
  STDERR: 2,
  /** daemon → client, last: JSON {"exitCode": n} or {"error": {code, message}} */
  EXIT: 3,
  /** client → daemon: no more stdin */
  STDIN_EOF: 4,
  /** client → daemon: terminal size, rows u16 then cols u16 (big-endian) */
  RESIZE: 5,
} as const;

const HEADER = 5;

/** One frame's bytes. */
export function encodeStreamFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt8(type, 0);
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER);
  return out;
}

/** Splits a byte stream into frames, whatever the chunking. */
export class StreamFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer, onFrame: (type: number, payload: Buffer) => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < HEADER + len) break;
      const type = this.buf.readUInt8(0);
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      onFrame(type, payload);
    }
  }
}

/** What an interactive exec asks for (the `options` query parameter, JSON). */
interface ExecStreamOptions {
  argv: string[];
  env?: string[];
  tty?: { rows: number; cols: number };
  interactive?: boolean;
}

/** The process end the daemon wires to the connection. */
interface Streams {
  onOutput(l: (stream: 1 | 2, data: Uint8Array) => void): void;
  write(data: Uint8Array): void;
  closeStdin(): void;
  resize(rows: number, cols: number): Promise<void>;
  exited: Promise<number>;
}

/**
 * Serves an upgrade request on the daemon's server:
 * `POST /v1/containers/{id}/start` (attach to a created container, stdin
 * included) or `POST /v1/containers/{id}/exec?options={json}`.
 */
export async function handleStreamUpgrade(
  engine: ContainerEngine,
  req: IncomingMessage,
  socket: Duplex,
  api: { version: string; statusOf(code: string): number },
): Promise<void> {
  const apiVersion = api.version;
  const refuse = (status: number, code: string, message: string) => {
    const body = JSON.stringify({ code, message });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  };
  try {
    if (String(req.headers.upgrade ?? "").toLowerCase() !== STREAM_PROTOCOL) {
      return refuse(400, "INVALID_ARGUMENT", `unknown upgrade '${req.headers.upgrade}': this daemon speaks ${STREAM_PROTOCOL}`);
    }
    const url = new URL(req.url ?? "/", "http://hyperlab");
    const m = url.pathname.match(new RegExp(`^/${apiVersion}/containers/([^/]+)/(start|exec)$`));
    if (!m || req.method !== "POST") return refuse(404, "NOT_FOUND", `no such stream route: ${req.method} ${url.pathname}`);
    const ref = decodeURIComponent(m[1]!);
    let streams: Streams;
    if (m[2] === "start") {
      streams = await engine.start(ref, { attached: true });
    } else {
      let o: ExecStreamOptions;
      try {
        o = JSON.parse(url.searchParams.get("options") ?? "{}") as ExecStreamOptions;
      } catch {
        return refuse(400, "INVALID_ARGUMENT", "the options parameter is not valid JSON");
      }
      const p = await engine.exec(ref, o.argv ?? [], { env: o.env, tty: o.tty, interactive: o.interactive });
      streams = {
        onOutput: (l) => p.onOutput(l),
        write: (d) => p.write(d),
        closeStdin: () => p.closeStdin(),
        resize: (rows, cols) => p.resize(rows, cols),
        exited: p.exited.then((e) => (e.signal ? 128 + e.signal : e.exitCode)),
      };
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${STREAM_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`);
    const reader = new StreamFrameReader();
    socket.on("data", (chunk: Buffer) =>
      reader.push(chunk, (type, payload) => {
        if (type === Frame.STDIN) streams.write(new Uint8Array(payload));
        else if (type === Frame.STDIN_EOF) streams.closeStdin();
        else if (type === Frame.RESIZE && payload.length >= 4) void streams.resize(payload.readUInt16BE(0), payload.readUInt16BE(2)).catch(() => {});
      }),
    );
    socket.on("error", () => {});
    streams.onOutput((stream, data) => socket.write(encodeStreamFrame(stream === 2 ? Frame.STDERR : Frame.STDOUT, data)));
    const end = (value: unknown) => socket.end(encodeStreamFrame(Frame.EXIT, Buffer.from(JSON.stringify(value))));
    streams.exited.then(
      (exitCode) => end({ exitCode }),
      (err: Error) => end({ error: { code: (err as HyperlabError).code ?? "RUNTIME_ERROR", message: err.message } }),
    );
  } catch (err) {
    const e = err as HyperlabError;
    const code = e.code ?? "RUNTIME_ERROR";
    refuse(api.statusOf(code), code, e.message);
  }
}

/** The client end of an interactive stream. */
export interface StreamClient {
  write(data: Uint8Array): void;
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  /** the process's exit status, once it has ended */
  exited: Promise<number>;
}

/** Opens an interactive stream on the daemon at `socketPath`; output goes to `onOutput`. */
export function openStream(socketPath: string, path: string, onOutput: (stream: 1 | 2, data: Buffer) => void): Promise<StreamClient> {
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath,
      path,
      method: "POST",
      headers: { connection: "Upgrade", upgrade: STREAM_PROTOCOL },
    });
    req.on("error", (err) => reject(new HyperlabError("AGENT_GONE", `cannot reach the hyperlab daemon at ${socketPath}: ${err.message}`)));
    req.on("response", (res) => {
      // Not upgraded: an error answer.
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let e: { code?: string; message?: string } = {};
        try {
          e = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as typeof e;
        } catch {
          // keep the generic message
        }
        reject(new HyperlabError((e.code ?? "RUNTIME_ERROR") as "RUNTIME_ERROR", e.message ?? `daemon answered ${res.statusCode}`));
      });
    });
    req.on("upgrade", (_res, socket, head) => {
      let settle: { resolve(code: number): void; reject(err: Error): void };
      const exited = new Promise<number>((res, rej) => (settle = { resolve: res, reject: rej }));
      let done = false;
      const reader = new StreamFrameReader();
      const onData = (chunk: Buffer) =>
        reader.push(chunk, (type, payload) => {
          if (type === Frame.STDOUT || type === Frame.STDERR) onOutput(type, payload);
          else if (type === Frame.EXIT) {
            done = true;
            const v = JSON.parse(payload.toString("utf8")) as { exitCode?: number; error?: { code: string; message: string } };
            if (v.error) settle.reject(new HyperlabError(v.error.code as "RUNTIME_ERROR", v.error.message));
            else settle.resolve(v.exitCode ?? 0);
          }
        });
      if (head.length) onData(head);
      socket.on("data", onData);
      socket.on("error", () => {});
      socket.on("close", () => {
        if (!done) settle.reject(new HyperlabError("AGENT_GONE", "the daemon closed the stream before the process exited"));
      });
      resolve({
        write: (d) => void socket.write(encodeStreamFrame(Frame.STDIN, d)),
        closeStdin: () => void socket.write(encodeStreamFrame(Frame.STDIN_EOF)),
        resize: (rows, cols) => {
          const p = Buffer.alloc(4);
          p.writeUInt16BE(rows, 0);
          p.writeUInt16BE(cols, 2);
          socket.write(encodeStreamFrame(Frame.RESIZE, p));
        },
        exited,
      });
    });
    req.end();
  });
}
