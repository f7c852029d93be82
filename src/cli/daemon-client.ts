// The CLI's side of the daemon: a client for its API (JSON calls, binary
// bodies, NDJSON output streams and upgraded two-way streams), and finding a
// daemon that answers.
import { existsSync } from "node:fs";
import { request } from "node:http";
import { API_VERSION, defaultSocketPath, isAlive } from "../daemon/socket.ts";
import { Frame, STREAM_PROTOCOL, StreamFrameReader, encodeStreamFrame } from "../daemon/stream-frames.ts";
import { HyperlabError } from "../errors.ts";

/** A client for the daemon's API. */
export class DaemonClient {
  constructor(readonly socketPath: string) {}

  /** One JSON request; API errors come back as HyperlabError with their code. */
  call<T>(method: string, path: string, payload?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path: `/${API_VERSION}${path}`, method, headers: { "content-type": "application/json" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const value = text ? (JSON.parse(text) as unknown) : undefined;
          if ((res.statusCode ?? 500) >= 400) {
            const e = value as { code?: string; message?: string } | undefined;
            reject(new HyperlabError((e?.code ?? "RUNTIME_ERROR") as "RUNTIME_ERROR", e?.message ?? `daemon answered ${res.statusCode}`));
          } else resolve(value as T);
        });
      });
      req.on("error", (err) => reject(new HyperlabError("AGENT_GONE", `cannot reach the hyperlab daemon at ${this.socketPath}: ${err.message}`)));
      req.end(payload === undefined ? undefined : JSON.stringify(payload));
    });
  }

  /** A request with a binary body and/or answer (snapshots): resolves with the answer's bytes, or its JSON when it is JSON. */
  bytes(method: string, path: string, payload?: Uint8Array): Promise<{ contentType: string; data: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: this.socketPath, path: `/${API_VERSION}${path}`, method, headers: { "content-type": "application/octet-stream" } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const data = Buffer.concat(chunks);
            const contentType = String(res.headers["content-type"] ?? "");
            if ((res.statusCode ?? 500) >= 400) {
              const e = (contentType.includes("json") ? JSON.parse(data.toString("utf8") || "{}") : {}) as { code?: string; message?: string };
              reject(new HyperlabError((e.code ?? "RUNTIME_ERROR") as "RUNTIME_ERROR", e.message ?? `daemon answered ${res.statusCode}`));
            } else resolve({ contentType, data });
          });
        },
      );
      req.on("error", (err) => reject(new HyperlabError("AGENT_GONE", `cannot reach the hyperlab daemon at ${this.socketPath}: ${err.message}`)));
      req.end(payload);
    });
  }

  /**
   * A call answered with NDJSON lines ({"step"}…, then {"result"} or
   * {"error"}): each step goes to `onStep`; resolves with the result.
   */
  steps<S, R>(method: string, path: string, payload: unknown, onStep: (step: S) => void): Promise<R> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path: `/${API_VERSION}${path}`, method, headers: { "content-type": "application/json" } }, (res) => {
        let buf = "";
        let outcome: { result: R } | { error: { code?: string; message?: string } } | undefined;
        res.on("data", (c: Buffer) => {
          buf += c.toString("utf8");
          for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
            const text = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!text.trim()) continue;
            const v = JSON.parse(text) as { step?: S; result?: R; error?: { code?: string; message?: string } };
            if (v.step !== undefined) onStep(v.step);
            else if (v.error) outcome = { error: v.error };
            else if ("result" in v) outcome = { result: v.result as R };
          }
        });
        res.on("end", () => {
          if ((res.statusCode ?? 500) >= 400) {
            const e = JSON.parse(buf || "{}") as { code?: string; message?: string };
            outcome = { error: e.message ? e : { message: `the daemon answered ${res.statusCode}` } };
          }
          if (!outcome) reject(new HyperlabError("AGENT_GONE", `the daemon closed the stream of ${path} before it ended`));
          else if ("error" in outcome) reject(new HyperlabError((outcome.error.code ?? "RUNTIME_ERROR") as "RUNTIME_ERROR", outcome.error.message ?? "failed"));
          else resolve(outcome.result);
        });
      });
      req.on("error", (err) => reject(new HyperlabError("AGENT_GONE", `cannot reach the hyperlab daemon at ${this.socketPath}: ${err.message}`)));
      req.end(JSON.stringify(payload ?? {}));
    });
  }

  /** A streaming call: output lines go to `onOutput`; resolves with the exit code. */
  stream(method: string, path: string, payload: unknown, onOutput: (stream: 1 | 2, data: Buffer) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path: `/${API_VERSION}${path}`, method, headers: { "content-type": "application/json" } }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const e = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { code?: string; message?: string };
            reject(new HyperlabError((e.code ?? "RUNTIME_ERROR") as "RUNTIME_ERROR", e.message ?? `daemon answered ${res.statusCode}`));
          });
          return;
        }
        let buf = "";
        let exitCode: number | undefined;
        res.on("data", (c: Buffer) => {
          buf += c.toString("utf8");
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = JSON.parse(buf.slice(0, nl)) as { stream?: 1 | 2; data?: string; exitCode?: number; error?: StreamError };
            buf = buf.slice(nl + 1);
            if (line.data !== undefined) onOutput(line.stream ?? 1, Buffer.from(line.data, "base64"));
            if (line.exitCode !== undefined) exitCode = line.exitCode;
            if (line.error) reject(errorOfStream(line.error));
          }
        });
        res.on("end", () => (exitCode === undefined ? reject(new HyperlabError("AGENT_GONE", "the daemon closed the stream before the process exited")) : resolve(exitCode)));
      });
      req.on("error", (err) => reject(new HyperlabError("AGENT_GONE", `cannot reach the hyperlab daemon at ${this.socketPath}: ${err.message}`)));
      req.end(JSON.stringify(payload ?? {}));
    });
  }
}

/** The daemon's client if one is listening, else undefined. */
export async function findDaemon(socketPath = defaultSocketPath()): Promise<DaemonClient | undefined> {
  return existsSync(socketPath) && (await isAlive(socketPath)) ? new DaemonClient(socketPath) : undefined;
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
            const v = JSON.parse(payload.toString("utf8")) as { exitCode?: number; error?: StreamError };
            if (v.error) settle.reject(errorOfStream(v.error));
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

/**
 * The daemon's client for a verb that needs one; without a daemon, an error
 * that says how to start one and `why` the verb needs it.
 */
export async function needDaemon(verb: string, why: string): Promise<DaemonClient> {
  const client = await findDaemon();
  if (!client) {
    throw new HyperlabError("INVALID_ARGUMENT", `'hyperlab ${verb}' needs a running daemon (none answers on ${defaultSocketPath()}): ${why} Start one with 'hyperlab daemon &'.`);
  }
  return client;
}

/** The error that ends a process's stream (the daemon's http.ts exitError): a start that failed carries the exit code docker run would leave with. */
interface StreamError {
  code: string;
  message: string;
  exitCode?: number;
}

function errorOfStream(e: StreamError): HyperlabError {
  return new HyperlabError(e.code as "RUNTIME_ERROR", e.message, e.exitCode === undefined ? undefined : { exitCode: e.exitCode });
}
