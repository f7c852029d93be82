// The Docker Engine API as a request handler: version negotiation (/_ping,
// /vX.Y/ prefixes from 1.24 to 1.50), routing, Docker's JSON errors and
// headers. It needs no Node server: the daemon (node.ts) and the page hand it
// requests in the shape of http.ts. Every route is a thin adapter over the
// same container engine the /v1 API and the `hyperlab` verbs use.
import { HyperlabError } from "../../errors.ts";
import type { ContainerEngine } from "../../containers/engine.ts";
import type { VmContainers } from "../../containers/vm-containers.ts";
import type { Hypervisor } from "../../hypervisor/hypervisor.ts";
import { DockerEventLog } from "./event-log.ts";
import { type DockerRequest, type DockerResponse, bytesOf } from "./http.ts";

/** The oldest API version this daemon speaks (as dockerd's minimum for current clients). */
export const MIN_API_VERSION = "1.24";
/** The newest: what the docker CLI 28 speaks. */
export const MAX_API_VERSION = "1.50";
/** hyperlab's version, as /version names the engine. */
export const HYPERLAB_VERSION = "0.1.0";
/** Largest JSON body a request may carry (archives and build contexts are streamed, not read whole). */
export const MAX_JSON_BODY = 10 * 1024 * 1024;

/** What the Docker API serves: the VMs' containers, and which VM Docker's containers live in. */
export interface DockerContext {
  containers: VmContainers;
  hypervisor: Hypervisor;
  /** the VM the API's containers live in (default: default) */
  vm: string;
  /**
   * The API is the guest's own (its /var/run/docker.sock): a bind mount's
   * source is a path of that guest, never of the host, as with a dockerd
   * running inside the VM.
   */
  guestPaths?: boolean;
  /** how pushes, pulls and logins reach registries (default: the global fetch); a lab's in-memory registry answers through it */
  registryFetch?: typeof fetch;
}

/** What a route handler gets. */
export interface RouteCall {
  req: DockerRequest;
  res: DockerResponse;
  /** the pattern's groups, URI-decoded */
  params: string[];
  query: URLSearchParams;
  /** the API version the client asked for (the newest when it named none) */
  version: string;
  api: DockerApi;
}

/** One route: method, path pattern (after the version prefix), handler. */
export type DockerRoute = readonly [method: string, pattern: RegExp, handler: (call: RouteCall) => Promise<void>];

/** One answered request, for the stack view's list of API calls. */
export interface DockerCall {
  method: string;
  path: string;
  status: number;
  ms: number;
  /** ms since 1970 */
  at: number;
}

/** HTTP status of each error code, as dockerd answers the same conditions. */
const STATUS: Partial<Record<string, number>> = {
  INVALID_ARGUMENT: 400,
  CONTAINER_START_FAILED: 400,
  NOT_SUPPORTED: 400,
  SNAPSHOT_CORRUPT: 400,
  SNAPSHOT_MISMATCH: 400,
  CONTAINER_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  VM_NOT_FOUND: 404,
  NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  EXEC_NOT_FOUND: 404,
  NETWORK_NOT_FOUND: 404,
  VOLUME_NOT_FOUND: 404,
  VOLUME_IN_USE: 409,
  NETWORK_EXISTS: 409,
  // dockerd answers 403 Forbidden to removing a network with active endpoints or a predefined one.
  NETWORK_IN_USE: 403,
  CONTAINER_EXISTS: 409,
  CONTAINER_INVALID_STATE: 409,
  VM_INVALID_STATE: 409,
  RESOURCE_EXHAUSTED: 507,
};

/** The headers dockerd puts on every answer. */
export function dockerHeaders(): Record<string, string> {
  return {
    "Api-Version": MAX_API_VERSION,
    "Docker-Experimental": "false",
    Ostype: "linux",
    Server: `hyperlab/${HYPERLAB_VERSION} (linux)`,
  };
}

/** Compares two API versions ("1.41" < "1.50"). */
export function compareVersions(a: string, b: string): number {
  const [am, an] = a.split(".").map(Number) as [number, number];
  const [bm, bn] = b.split(".").map(Number) as [number, number];
  return am - bm || an - bn;
}

/** Answers `value` as JSON with `status`. */
export function sendJson(res: DockerResponse, status: number, value: unknown): void {
  res.head(status, { ...dockerHeaders(), "Content-Type": "application/json" });
  res.end(JSON.stringify(value) + "\n");
}

/** Answers with no body (204, 304). */
export function sendEmpty(res: DockerResponse, status: number): void {
  res.head(status, dockerHeaders());
  res.end();
}

/** Answers an error the way dockerd does: `{"message": …}` with its status. */
export function sendError(res: DockerResponse, err: unknown): void {
  const e = err instanceof HyperlabError ? err : new HyperlabError("RUNTIME_ERROR", String((err as Error)?.message ?? err));
  if (res.headSent) {
    res.end();
    return;
  }
  sendJson(res, STATUS[e.code] ?? 500, { message: e.message });
}

/**
 * A request body as a JSON object (`{}` when empty or null, as dockerd
 * decodes them): INVALID_ARGUMENT naming the problem when it is not JSON or
 * not an object (every body of Docker's API is one).
 */
export async function jsonBody<T>(req: DockerRequest): Promise<T> {
  const bytes = await req.body();
  const text = new TextDecoder().decode(bytes).trim();
  if (!text) return {} as T;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid JSON in the request body: ${(err as Error).message}`);
  }
  if (value === null) return {} as T;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new HyperlabError("INVALID_ARGUMENT", `json: cannot unmarshal ${Array.isArray(value) ? "array" : typeof value} into Go value of type object: the request body must be a JSON object`);
  }
  return value as T;
}

/** A boolean query parameter as Docker reads them ("1", "true"; "0", "false", absent). */
export function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  return v !== null && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

const VERSIONED = /^\/v(\d+\.\d+)(\/.*)$/;

/** A path's part URI-decoded: INVALID_ARGUMENT for a broken escape (a '%' not followed by two hex digits of UTF-8). */
function decodePathPart(part: string, path: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid URL escape in ${path}: a name's '%' must be written %25`);
  }
}

/** The Docker Engine API over the VMs' containers (see the file comment). */
export class DockerApi {
  private readonly listeners = new Set<(call: DockerCall) => void>();
  /** Docker's events (containers of Docker's VM, images), recorded from the start for `docker events --since` */
  readonly events: DockerEventLog;

  constructor(
    readonly context: DockerContext,
    private readonly routes: readonly DockerRoute[],
  ) {
    this.events = new DockerEventLog(context.containers, context.vm);
  }

  /** The engine of the VM Docker's containers live in (VM_INVALID_STATE when it is not running). */
  engine(): ContainerEngine {
    return this.context.containers.engine(this.context.vm);
  }

  /** Subscribes to answered requests (method, path, status, ms); returns the unsubscribe. */
  onCall(listener: (call: DockerCall) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Serves one request; never throws (errors are answered). */
  async handle(req: DockerRequest, res: DockerResponse): Promise<void> {
    const t0 = performance.now();
    const url = new URL(req.url, "http://docker");
    let path = url.pathname;
    let version = MAX_API_VERSION;
    const versioned = VERSIONED.exec(path);
    if (versioned) {
      version = versioned[1]!;
      path = versioned[2]!;
    }
    let status = 500;
    const tracked: DockerResponse = new Proxy(res, {
      get: (target, key) => {
        if (key === "head") return (s: number, h?: Record<string, string>) => ((status = s), target.head(s, h));
        if (key === "hijack") return (h: Record<string, string>) => ((status = 101), target.hijack(h));
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    try {
      if (versioned && compareVersions(version, MIN_API_VERSION) < 0) {
        throw new HyperlabError("INVALID_ARGUMENT", `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
      }
      if (versioned && compareVersions(version, MAX_API_VERSION) > 0) {
        throw new HyperlabError("INVALID_ARGUMENT", `client version ${version} is too new. Maximum supported API version is ${MAX_API_VERSION}`);
      }
      const method = req.method === "HEAD" && path === "/_ping" ? "HEAD" : req.method;
      const route = this.routes.find(([m, re]) => m === method && re.test(path));
      if (!route) {
        const known = this.routes.some(([, re]) => re.test(path));
        throw new HyperlabError(
          "NOT_FOUND",
          known ? `${req.method} is not supported on ${url.pathname}` : `page not found: hyperlab's Docker API has no endpoint ${req.method} ${url.pathname} (docs/api.md lists what it serves)`,
        );
      }
      const params = path.match(route[1])!.slice(1).map((p) => (p === undefined ? "" : decodePathPart(p, url.pathname)));
      await route[2]({ req, res: tracked, params, query: url.searchParams, version, api: this });
    } catch (err) {
      sendError(tracked, err);
    } finally {
      const call: DockerCall = { method: req.method, path: url.pathname, status, ms: Math.round((performance.now() - t0) * 10) / 10, at: Date.now() };
      for (const l of this.listeners) l(call);
    }
  }
}

/** Writes `text` as the whole plain-text answer (for /_ping). */
export function sendText(res: DockerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.head(status, { ...dockerHeaders(), "Content-Type": "text/plain; charset=utf-8", "Content-Length": String(bytesOf(text).length), ...headers });
  res.end(text);
}
