// The Docker API on a Node http server: requests and responses adapted to
// http.ts, and upgraded connections (attach, exec start: `Upgrade: tcp`)
// hijacked into raw two-way streams. The request body of an upgrade (exec
// start's JSON) is read off the raw socket first: what follows it is stdin.
import { type IncomingMessage, STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { HyperlabError } from "../../errors.ts";
import { type DockerApi, MAX_JSON_BODY } from "./api.ts";
import { guardStuckClient } from "../stuck-client.ts";
import { type DockerRequest, type DockerResponse, type HijackedStream, bytesOf } from "./http.ts";

function headersOf(req: IncomingMessage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/** Reads a whole body from `chunks`, refusing more than `limit` bytes. */
async function readAll(chunks: AsyncIterable<Uint8Array>, limit: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const c of chunks) {
    size += c.length;
    if (size > limit) throw new HyperlabError("INVALID_ARGUMENT", `request body is larger than ${limit} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** Serves a plain (not upgraded) request with `api`. */
export function serveDockerRequest(api: DockerApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let used = false;
  const stream = (): AsyncIterable<Uint8Array> => {
    if (used) throw new HyperlabError("INVALID_ARGUMENT", "the request body was already read");
    used = true;
    return req;
  };
  const request: DockerRequest = {
    method: req.method ?? "GET",
    url: req.url ?? "/",
    headers: headersOf(req),
    body: () => readAll(stream(), MAX_JSON_BODY),
    stream,
  };
  const closeListeners: Array<() => void> = [];
  // A client that stops reading a long answer (logs --follow, events, an attach without upgrade) is let go (stuck-client.ts).
  const stuck = guardStuckClient(res);
  res.on("close", () => {
    if (!res.writableFinished) for (const l of closeListeners.splice(0)) l();
  });
  const response: DockerResponse = {
    // Sent at once: a client waits for the head of a long answer (wait, logs --follow, events) before it goes on.
    head: (status, headers = {}) => void res.writeHead(status, headers).flushHeaders(),
    get headSent() {
      return res.headersSent;
    },
    write: (chunk) => void (stuck() || res.write(bytesOf(chunk))),
    end: (chunk) => void (chunk === undefined ? res.end() : res.end(bytesOf(chunk))),
    onClose: (l) => void closeListeners.push(l),
    // Without an upgrade the answer is a 200 stream on the same connection (output only, as dockerd does for such clients).
    hijack: (headers) => {
      res.writeHead(200, headers);
      res.flushHeaders();
      return {
        write: (d) => void (stuck() || res.write(d)),
        end: () => void res.end(),
        onData: () => {},
        onEnd: () => {},
        onClose: (l) => void res.on("close", l),
      };
    },
  };
  return api.handle(request, response);
}

/**
 * Serves an upgraded request (`Connection: Upgrade`, `Upgrade: tcp`) on its
 * raw socket: `head` is what Node read past the headers.
 */
export function serveDockerUpgrade(api: DockerApi, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.on("error", () => {});
  const length = Number(req.headers["content-length"] ?? 0);
  // Bytes past the body belong to the hijacked stream; they wait until someone listens.
  let early = head;
  const dataListeners: Array<(d: Uint8Array) => void> = [];
  const endListeners: Array<() => void> = [];
  let ended = false;
  const bodyReady = new Promise<Uint8Array>((resolve, reject) => {
    if (!Number.isFinite(length) || length < 0 || length > MAX_JSON_BODY) return reject(new HyperlabError("INVALID_ARGUMENT", "invalid Content-Length"));
    const take = () => {
      if (early.length < length) return false;
      const body = early.subarray(0, length);
      early = early.subarray(length);
      resolve(body);
      return true;
    };
    if (take()) return;
    const onData = (d: Buffer) => {
      early = early.length ? Buffer.concat([early, d]) : d;
      if (take()) socket.off("data", onData);
    };
    socket.on("data", onData);
  });
  bodyReady.catch(() => {});
  const start = bodyReady.then(() => {
    socket.on("data", (d: Buffer) => {
      if (dataListeners.length) for (const l of dataListeners) l(d);
      else early = early.length ? Buffer.concat([early, d]) : d;
    });
    socket.on("end", () => {
      ended = true;
      for (const l of endListeners) l();
    });
  });
  start.catch(() => {});
  const request: DockerRequest = {
    method: req.method ?? "POST",
    url: req.url ?? "/",
    headers: headersOf(req),
    body: () => bodyReady,
    stream: () =>
      (async function* () {
        yield await bodyReady;
      })(),
  };
  let headSent = false;
  let closed = false;
  socket.on("close", () => (closed = true));
  // An attach or exec whose client stops reading while the container prints is let go (stuck-client.ts).
  const stuck = guardStuckClient(socket);
  const writeHead = (status: number, headers: Record<string, string>, keep: boolean) => {
    headSent = true;
    const reason = status === 101 ? "UPGRADED" : (STATUS_CODES[status] ?? "");
    const lines = [`HTTP/1.1 ${status} ${reason}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    if (!keep) lines.push("Connection: close");
    socket.write(lines.join("\r\n") + "\r\n\r\n");
  };
  const response: DockerResponse = {
    head: (status, headers = {}) => writeHead(status, headers, false),
    get headSent() {
      return headSent;
    },
    write: (chunk) => void socket.write(bytesOf(chunk)),
    end: (chunk) => {
      if (chunk !== undefined) socket.write(bytesOf(chunk));
      socket.end();
    },
    onClose: (l) => void socket.on("close", () => l()),
    hijack: (headers) => {
      const upgrading = String(req.headers.upgrade ?? "").toLowerCase() === "tcp";
      writeHead(upgrading ? 101 : 200, { ...headers, ...(upgrading ? { Connection: "Upgrade", Upgrade: "tcp" } : {}) }, true);
      const stream: HijackedStream = {
        write: (d) => void (!closed && !stuck() && socket.write(d)),
        end: () => void socket.end(),
        onData: (l) => {
          dataListeners.push(l);
          void start.then(() => {
            if (early.length) {
              const first = early;
              early = Buffer.alloc(0);
              l(first);
            }
          });
        },
        onEnd: (l) => void (ended ? l() : endListeners.push(l)),
        onClose: (l) => void socket.on("close", () => l()),
      };
      return stream;
    },
  };
  return api.handle(request, response);
}
