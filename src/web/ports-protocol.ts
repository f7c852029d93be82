// What the site's service worker (ports-sw.ts) and a page that runs VMs
// (page-ports.ts) say to each other about published ports. A container's
// port is reached at `<site>/_ports/<vm>/<port>/…`; the service worker has no
// VM, so it asks the pages: each request goes, over a MessageChannel of its
// own, to the page that publishes that port, which relays it to the
// container through the VM's agent and sends the answer back in pieces.

/**
 * Where published ports live in the site: `<site>/_ports/<vm>/<port>/<path inside the app>`.
 * (ports-sw.ts has its own copy: the worker imports no code, so the build gives it no shared chunk.)
 */
export const PORTS_PREFIX = "_ports/";

/** The service worker's file at the site's root (its scope is the whole site). */
export const PORTS_SW_FILE = "ports-sw.js";

/** Service worker → pages: does this page publish `port` in VM `vm`? The answer comes on the transferred port: PortAnswer. */
export interface PortQuery {
  type: "hyperlab-port-query";
  vm: string;
  port: number;
}

/** A page's answer to a PortQuery. */
export interface PortAnswer {
  type: "port-answer";
  published: boolean;
}

/** Service worker → the page that publishes the port: one HTTP request for the container (the answer comes on the transferred port). */
export interface PortRequest {
  type: "hyperlab-port-request";
  vm: string;
  port: number;
  method: string;
  /** path and query inside the app (the /_ports/<vm>/<port> prefix removed) */
  target: string;
  headers: Array<[string, string]>;
  body?: ArrayBuffer;
  /** the prefix the app is served under, for X-Forwarded-Prefix */
  prefix: string;
  /** the site's host, for X-Forwarded-Host */
  host: string;
}

/** The page → the service worker, in order: the head, body pieces, the end (or an error instead). */
export type PortReply =
  | { type: "head"; status: number; statusText: string; headers: Array<[string, string]> }
  | { type: "body"; data: ArrayBuffer }
  | { type: "end" }
  | { type: "error"; status: number; message: string };
