// The daemon's API: HTTP/1.1 and JSON on a local Unix socket (docs/api.md).
// The server maps routes to the engine; the client is what the CLI verbs use.
import { existsSync, unlinkSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { Container, ContainerEngine, CreateOptions } from "../containers/engine.ts";
import { HyperlabError } from "../errors.ts";
import type { CreateVmOptions, Hypervisor } from "../hypervisor/hypervisor.ts";
import type { VmExecOptions } from "../hypervisor/vm-worker.ts";
import { handleStreamUpgrade } from "./daemon-attach.ts";

/** API version, the first path segment. */
export const API_VERSION = "v1";

/** Where the daemon listens unless told otherwise. */
export function defaultSocketPath(): string {
  return process.env.HYPERLAB_SOCKET ?? join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `hyperlab-${process.getuid?.() ?? 0}.sock`);
}

/** HTTP status for each error code the API returns. */
const STATUS: Partial<Record<string, number>> = {
  INVALID_ARGUMENT: 400,
  IMAGE_NOT_FOUND: 404,
  CONTAINER_NOT_FOUND: 404,
  CONTAINER_EXISTS: 409,
  CONTAINER_INVALID_STATE: 409,
  VM_NOT_FOUND: 404,
  VM_INVALID_STATE: 409,
  RESOURCE_EXHAUSTED: 507,
  SNAPSHOT_CORRUPT: 400,
  SNAPSHOT_MISMATCH: 400,
};

/** Largest request body the API reads (a snapshot to restore is the biggest). */
const MAX_BODY = 2 ** 31 - 1;

/** A container as the API returns it (dates as ISO strings, no log bytes). */
export function containerJson(c: Container) {
  return {
    id: c.id,
    name: c.name,
    image: c.image.reference,
    command: c.command,
    status: c.status,
    exitCode: c.exitCode,
    createdAt: c.createdAt.toISOString(),
    startedAt: c.startedAt?.toISOString(),
    finishedAt: c.finishedAt?.toISOString(),
    runtime: c.runtime,
    ipAddress: c.ipAddress,
  };
}
export type ContainerJson = ReturnType<typeof containerJson>;

async function rawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HyperlabError("INVALID_ARGUMENT", `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function body(req: IncomingMessage): Promise<unknown> {
  const text = (await rawBody(req)).toString("utf8");
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HyperlabError("INVALID_ARGUMENT", "request body is not valid JSON");
  }
}

function send(res: ServerResponse, status: number, value?: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(value === undefined ? "" : JSON.stringify(value));
}

/** Streams process output as NDJSON lines: {"stream":1|2,"data":base64}…, then {"exitCode":n}. */
function streamOutput(
  res: ServerResponse,
  onOutput: (l: (stream: 1 | 2, data: Uint8Array) => void) => void,
  exited: Promise<number>,
): void {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  onOutput((stream, data) => res.write(JSON.stringify({ stream, data: Buffer.from(data).toString("base64") }) + "\n"));
  exited.then(
    (exitCode) => res.end(JSON.stringify({ exitCode }) + "\n"),
    (err: Error) => res.end(JSON.stringify({ error: { code: (err as HyperlabError).code ?? "ERROR", message: err.message } }) + "\n"),
  );
}

type Route = [string, RegExp, (m: RegExpMatchArray, req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => Promise<void>];

/** The VM routes (docs/api.md): the hypervisor's API over HTTP. */
function vmRoutes(hv: Hypervisor): Route[] {
  const vm = (m: RegExpMatchArray) => hv.get(decodeURIComponent(m[1]!));
  const info = (ref: RegExpMatchArray) => vm(ref).info();
  return [
    ["GET", /^\/vms$/, async (_m, _r, res) => send(res, 200, hv.list().map((v) => v.info()))],
    [
      "POST",
      /^\/vms$/,
      async (_m, req, res) => {
        const o = (await body(req)) as CreateVmOptions;
        const created = await hv.createVm({ name: o.name, memoryMiB: o.memoryMiB, cpuShare: o.cpuShare, cold: o.cold, start: o.start, cmdline: o.cmdline });
        send(res, 201, created.info());
      },
    ],
    [
      "POST",
      /^\/vms\/restore$/,
      async (_m, req, res, q) => {
        const share = q.get("cpuShare");
        const restored = await hv.restore(new Uint8Array(await rawBody(req)), { name: q.get("name") ?? undefined, cpuShare: share === null ? undefined : Number(share) });
        send(res, 201, restored.info());
      },
    ],
    ["GET", /^\/vms\/([^/]+)$/, async (m, _r, res) => send(res, 200, info(m))],
    ["GET", /^\/vms\/([^/]+)\/stats$/, async (m, _r, res) => send(res, 200, await vm(m).metrics())],
    ["POST", /^\/vms\/([^/]+)\/start$/, async (m, _r, res) => send(res, 204, await vm(m).start())],
    ["POST", /^\/vms\/([^/]+)\/pause$/, async (m, _r, res) => send(res, 204, await vm(m).pause())],
    ["POST", /^\/vms\/([^/]+)\/resume$/, async (m, _r, res) => send(res, 204, await vm(m).resume())],
    ["POST", /^\/vms\/([^/]+)\/stop$/, async (m, _r, res) => send(res, 204, await vm(m).stop())],
    [
      "PATCH",
      /^\/vms\/([^/]+)$/,
      async (m, req, res) => {
        const { cpuShare } = (await body(req)) as { cpuShare?: number };
        const v = vm(m);
        if (cpuShare !== undefined) v.setCpuShare(cpuShare);
        send(res, 200, v.info());
      },
    ],
    [
      "POST",
      /^\/vms\/([^/]+)\/exec$/,
      async (m, req, res) => {
        const { argv, ...opts } = (await body(req)) as { argv: string[] } & VmExecOptions;
        send(res, 200, await vm(m).exec(argv ?? [], opts));
      },
    ],
    [
      "POST",
      /^\/vms\/([^/]+)\/snapshot$/,
      async (m, _r, res, q) => {
        const bytes = await vm(m).snapshot({ full: q.get("full") === "1" || q.get("full") === "true" });
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
        res.end(bytes);
      },
    ],
    [
      "POST",
      /^\/vms\/([^/]+)\/fork$/,
      async (m, req, res) => {
        const { count } = (await body(req)) as { count?: number };
        send(res, 201, (await vm(m).fork(count ?? 1)).map((v) => v.info()));
      },
    ],
    ["DELETE", /^\/vms\/([^/]+)$/, async (m, _r, res) => send(res, 204, await vm(m).destroy())],
    ["GET", /^\/stats$/, async (_m, _r, res) => send(res, 200, await hv.stats())],
  ];
}

/**
 * Serves `engine` (and, when given, `hypervisor`'s VMs) on a Unix socket. A
 * socket left by a dead daemon is replaced; a live one is an error.
 */
export async function serveApi(engine: ContainerEngine, socketPath: string, opts: { hypervisor?: Hypervisor } = {}): Promise<{ close(): Promise<void> }> {
  if (existsSync(socketPath)) {
    if (await isAlive(socketPath)) {
      throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${socketPath}`);
    }
    unlinkSync(socketPath); // left by a daemon that died: not trusted, replaced
  }
  const routes: Route[] = [
    ["GET", /^\/version$/, async (_m, _q, res) => send(res, 200, { api: API_VERSION, name: "hyperlab" })],
    ["GET", /^\/images$/, async (_m, _q, res) => send(res, 200, await engine.images())],
    ["GET", /^\/containers$/, async (_m, _r, res, q) => send(res, 200, engine.ps({ all: q.get("all") === "1" }).map(containerJson))],
    [
      "POST",
      /^\/containers$/,
      async (_m, req, res) => {
        const c = await engine.create((await body(req)) as CreateOptions);
        send(res, 201, containerJson(c));
      },
    ],
    [
      "POST",
      /^\/containers\/([^/]+)\/start$/,
      async (m, _r, res, q) => {
        const attached = q.get("attach") === "1";
        const a = await engine.start(m[1]!, { attached });
        if (attached) streamOutput(res, a.onOutput, a.exited);
        else send(res, 204);
      },
    ],
    [
      "POST",
      /^\/containers\/([^/]+)\/exec$/,
      async (m, req, res) => {
        const { argv, env } = (await body(req)) as { argv: string[]; env?: string[] };
        const p = await engine.exec(m[1]!, argv ?? [], { env });
        streamOutput(res, p.onOutput, p.exited.then((e) => (e.signal ? 128 + e.signal : e.exitCode)));
      },
    ],
    ["POST", /^\/containers\/([^/]+)\/stop$/, async (m, _r, res, q) => send(res, 204, await engine.stop(m[1]!, { timeoutS: Number(q.get("t") ?? 10) }))],
    ["POST", /^\/containers\/([^/]+)\/kill$/, async (m, _r, res, q) => send(res, 204, await engine.kill(m[1]!, q.get("signal") ?? "KILL"))],
    ["POST", /^\/containers\/([^/]+)\/wait$/, async (m, _r, res) => send(res, 200, { exitCode: await engine.wait(m[1]!) })],
    ["DELETE", /^\/containers\/([^/]+)$/, async (m, _r, res, q) => send(res, 204, await engine.remove(m[1]!, { force: q.get("force") === "1" }))],
    ["GET", /^\/containers\/([^/]+)\/json$/, async (m, _r, res) => send(res, 200, engine.inspect(m[1]!))],
    ["GET", /^\/containers\/([^/]+)\/stats$/, async (m, _r, res) => send(res, 200, await engine.stats(m[1]!))],
    [
      "GET",
      /^\/containers\/([^/]+)\/logs$/,
      async (m, _r, res) =>
        send(
          res,
          200,
          engine.logs(m[1]!).map((l) => ({ stream: l.stream, data: Buffer.from(l.data).toString("base64") })),
        ),
    ],
    ...(opts.hypervisor ? vmRoutes(opts.hypervisor) : []),
  ];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://hyperlab");
    const prefix = `/${API_VERSION}`;
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : "";
    const route = routes.find(([method, re]) => method === req.method && re.test(path));
    if (!route) {
      send(res, 404, { code: "NOT_FOUND", message: `no such API route: ${req.method} ${url.pathname} (this daemon serves /${API_VERSION}/…)` });
      return;
    }
    route[2](path.match(route[1])!, req, res, url.searchParams).catch((err: unknown) => {
      const e = err instanceof HyperlabError ? err : new HyperlabError("RUNTIME_ERROR", String((err as Error)?.message ?? err));
      if (res.headersSent) res.end();
      else send(res, STATUS[e.code] ?? 500, { code: e.code, message: e.message });
    });
  });
  // Interactive streams (run -i/-t, exec -i/-t) upgrade the connection.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => void handleStreamUpgrade(engine, req, socket, { version: API_VERSION, statusOf: (code) => STATUS[code] ?? 500 }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** True when something answers on the socket. */
export function isAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: `/${API_VERSION}/version`, method: "GET", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

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
            const line = JSON.parse(buf.slice(0, nl)) as { stream?: 1 | 2; data?: string; exitCode?: number; error?: { code: string; message: string } };
            buf = buf.slice(nl + 1);
            if (line.data !== undefined) onOutput(line.stream ?? 1, Buffer.from(line.data, "base64"));
            if (line.exitCode !== undefined) exitCode = line.exitCode;
            if (line.error) reject(new HyperlabError(line.error.code as "RUNTIME_ERROR", line.error.message));
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
