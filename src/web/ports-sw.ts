// The site's service worker: serves `<site>/_ports/<vm>/<port>/…`, the links
// of containers' published ports (see page-ports.ts). It has no VM of its
// own: for each request it finds the page that publishes the port (asking
// every open page of the site, then remembering the answer), hands the
// request to it over a MessageChannel and streams the answer it sends back
// into the response, so chunked and long answers arrive as they come.
// A container page's absolute links (`/style.css`) are sent back under its
// prefix, so apps written for the root of a site mostly work too.
// Types only: a service worker registered as a classic script cannot import code (the build would share a chunk).
import type { PortAnswer, PortQuery, PortReply, PortRequest } from "./ports-protocol.ts";

/** ports-protocol.ts's PORTS_PREFIX. */
const PORTS_PREFIX = "_ports/";

/** Reads `<vm>/<port>/<rest>` (after the prefix) from a path; undefined when it is not a port's path. */
function parsePortPath(afterPrefix: string): { vm: string; port: number; rest: string } | undefined {
  const m = /^([^/]+)\/(\d{1,5})(\/.*)?$/.exec(afterPrefix);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { vm: decodeURIComponent(m[1]!), port, rest: m[3] ?? "" };
}

/** The parts of the service worker's global scope used here (the DOM library has no types for it). */
interface WorkerClient {
  id: string;
  url: string;
  postMessage(message: unknown, transfer: Transferable[]): void;
}
interface FetchEvent extends Event {
  request: Request;
  clientId: string;
  respondWith(r: Promise<Response> | Response): void;
}
interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
declare const self: {
  registration: { scope: string };
  clients: { matchAll(o: { type: "window"; includeUncontrolled: boolean }): Promise<WorkerClient[]>; get(id: string): Promise<WorkerClient | undefined>; claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: "install" | "activate", l: (e: ExtendableEvent) => void): void;
  addEventListener(type: "fetch", l: (e: FetchEvent) => void): void;
};

/** How long the pages have to say which of them publishes a port. */
const QUERY_MS = 2000;

/** `vm port` → the page (client id) that published it last time. */
const owners = new Map<string, string>();

self.addEventListener("install", (e) => e.waitUntil(self.skipWaiting()));
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  const scope = new URL(self.registration.scope);
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  const inside = url.pathname.slice(scope.pathname.length);
  if (inside.startsWith(PORTS_PREFIX)) {
    const where = parsePortPath(inside.slice(PORTS_PREFIX.length));
    if (!where) return;
    // The app's root is the prefix with its slash: relative links in its pages resolve under it.
    if (where.rest === "") return e.respondWith(Response.redirect(`${url.href.replace(/[?#].*$/, "")}/${url.search}`, 301));
    e.respondWith(relay(e.request, where.vm, where.port, where.rest + url.search, `${scope.pathname}${PORTS_PREFIX}${encodeURIComponent(where.vm)}/${where.port}/`));
    return;
  }
  // An absolute path asked for by a container's page (a link or a file it names): back under that page's
  // prefix. Only such requests are touched (by their referrer); the site's own go to the network as ever.
  const prefix = e.request.referrer ? portPrefixOf(new URL(e.request.referrer), scope) : undefined;
  if (prefix) e.respondWith(Response.redirect(`${url.origin}${prefix}${url.pathname.slice(1)}${url.search}`, 307));
});

/** `/site/_ports/vm/8080/` when `url` is a page under a port's prefix. */
function portPrefixOf(url: URL, scope: URL): string | undefined {
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return undefined;
  const inside = url.pathname.slice(scope.pathname.length);
  if (!inside.startsWith(PORTS_PREFIX)) return undefined;
  const where = parsePortPath(inside.slice(PORTS_PREFIX.length));
  return where ? `${scope.pathname}${PORTS_PREFIX}${encodeURIComponent(where.vm)}/${where.port}/` : undefined;
}

/** The page that publishes `port` of `vm`: the one remembered if it still says so, else the first open page that does. */
async function ownerOf(vm: string, port: number): Promise<WorkerClient | undefined> {
  const ask = (client: WorkerClient) =>
    new Promise<boolean>((resolve) => {
      const { port1, port2 } = new MessageChannel();
      const timer = setTimeout(() => resolve(false), QUERY_MS);
      port1.onmessage = (m: MessageEvent<PortAnswer>) => {
        clearTimeout(timer);
        port1.close();
        resolve(m.data?.published === true);
      };
      const query: PortQuery = { type: "hyperlab-port-query", vm, port };
      client.postMessage(query, [port2]);
    });
  const key = `${vm} ${port}`;
  const known = owners.get(key);
  const remembered = known ? await self.clients.get(known) : undefined;
  if (remembered && (await ask(remembered))) return remembered;
  owners.delete(key);
  const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  // The first page that says yes; pages that are not hyperlab's (a container's own pages) never answer.
  const found = await new Promise<WorkerClient | undefined>((resolve) => {
    let left = pages.length;
    if (!left) resolve(undefined);
    for (const page of pages) {
      void ask(page).then((yes) => {
        if (yes) resolve(page);
        else if (--left === 0) resolve(undefined);
      });
    }
  });
  if (found) owners.set(key, found.id);
  return found;
}

/** A page of the site's own making, for when the request cannot reach a container. */
function problem(status: number, title: string, text: string): Response {
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title><body style="font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto"><h1>${esc(title)}</h1><p>${esc(text)}</p>`;
  return new Response(body, { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
}

/** Headers a response built here may not carry or that describe the relay's own hop. */
const DROPPED = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "proxy-connection", "trailer", "te", "set-cookie"]);

async function relay(request: Request, vm: string, port: number, target: string, prefix: string): Promise<Response> {
  const page = await ownerOf(vm, port);
  if (!page) {
    return problem(
      502,
      `Nothing publishes port ${port} of VM ${vm}`,
      `No open hyperlab page runs VM ${vm} with a container that publishes port ${port}. Keep the hyperlab page that runs the container open (this link goes through it), and check that the container still runs.`,
    );
  }
  const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
  const { port1, port2 } = new MessageChannel();
  const msg: PortRequest = {
    type: "hyperlab-port-request",
    vm,
    port,
    method: request.method,
    target,
    headers: [...request.headers.entries()],
    body,
    prefix,
    host: new URL(request.url).host,
  };
  page.postMessage(msg, body ? [port2, body] : [port2]);
  return new Promise<Response>((resolve) => {
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    port1.onmessage = (m: MessageEvent<PortReply>) => {
      const r = m.data;
      if (r.type === "head") {
        const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c), cancel: () => port1.close() });
        const headers = new Headers();
        for (const [k, v] of r.headers) if (!DROPPED.has(k.toLowerCase())) headers.append(k, v);
        // A redirect to an absolute path of the app stays under its prefix.
        const location = headers.get("location");
        if (location?.startsWith("/") && !location.startsWith("//")) headers.set("location", prefix + location.slice(1));
        const noBody = request.method === "HEAD" || r.status === 204 || r.status === 304;
        resolve(new Response(noBody ? null : stream, { status: r.status, statusText: r.statusText, headers }));
      } else if (r.type === "body") controller?.enqueue(new Uint8Array(r.data));
      else if (r.type === "end") {
        controller?.close();
        port1.close();
      } else {
        port1.close();
        if (controller) controller.error(new Error(r.message));
        else resolve(problem(r.status || 502, `Port ${port} of VM ${vm} did not answer`, r.message));
      }
    };
  });
}
