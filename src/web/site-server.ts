// A static file server for the built site (Node only; `npm start` runs it,
// and so do the browser tests and the web benchmark). It does what any good
// static host does and nothing more: the right MIME types (WebAssembly must be
// application/wasm), long caching for file names with a content hash, single
// byte ranges, and the precompressed copies the build writes (.br, .gz) when
// the browser takes them. Every response carries the site's
// Content-Security-Policy (csp.ts), the page's and its workers' alike.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { CONTENT_SECURITY_POLICY } from "./csp.ts";

/** MIME type by file extension. */
const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** Precompressed siblings the build writes, best first: [suffix, Content-Encoding]. */
const ENCODINGS: ReadonlyArray<readonly [string, string]> = [
  [".br", "br"],
  [".gz", "gzip"],
];

/**
 * A name with a content hash: Vite's (assets/name-HASH.ext, or assets/name-HASH
 * for files without an extension, like bzImage), or a blob or manifest of the
 * site's registry by its digest (v2/<name>/blobs/sha256:…). It never
 * changes, so it may be cached for ever (a manifest by tag may change: it is
 * revalidated).
 */
const HASHED = /^assets\/[^/]+-[\w-]{8}(\.[a-z0-9]+)?$|^v2\/.+\/(?:blobs|manifests)\/sha256:[0-9a-f]{64}$/i;

/** What a published port's link shows when it reaches the server instead of the site's service worker. */
const PORTS_WITHOUT_WORKER =
  "<!doctype html><meta charset=utf-8><title>Open this link from the hyperlab page</title>" +
  "<body style='font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto'><h1>Open this link from the hyperlab page</h1>" +
  "<p>A container's published port is served by the hyperlab page that runs it, through the site's service worker, and the worker " +
  "is not running for this tab (the page was never opened here, the browser refuses service workers in a private window, or " +
  "the tab was reloaded with Shift). Open the hyperlab page, run the container with a published port, and click its link; " +
  "if this tab was reloaded with Shift, reload it normally.</p>\n";

/** The built site's folder in this checkout. */
export const DEFAULT_SITE_DIR = fileURLToPath(new URL("../../dist/", import.meta.url));

/** A running site server. */
export interface SiteServer {
  /** e.g. http://127.0.0.1:8080/ */
  readonly url: string;
  /** response body bytes sent so far (as compressed on the wire) */
  readonly bytesSent: number;
  close(): Promise<void>;
}

/** Options of `serveSite`. */
export interface SiteServerOptions {
  /** the folder to serve (default: dist/ of this checkout) */
  dir?: string;
  /** TCP port (default 8080; 0 picks a free one) */
  port?: number;
  /** address to listen on (default 127.0.0.1: the site is for this machine unless asked) */
  host?: string;
  /** serve the precompressed copies (default true) */
  compression?: boolean;
}

/** Serves the built site. Resolves once it listens; fails if `dir` has no index.html (run `npm run build`). */
export async function serveSite(opts: SiteServerOptions = {}): Promise<SiteServer> {
  const root = resolve(opts.dir ?? DEFAULT_SITE_DIR);
  const index = await stat(join(root, "index.html")).catch(() => undefined);
  if (!index) throw new Error(`${root} holds no built site (no index.html): run 'npm run build' first`);
  const compression = opts.compression ?? true;
  let bytesSent = 0;

  const server: Server = createServer(async (req, res) => {
    // Before anything is written: the policy holds for errors and the ports page too, and a worker's script gets it as its own.
    res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    let rel = normalize(path).replace(/^[/\\]+/, "");
    if (rel === "" || rel.endsWith("/")) rel += "index.html";
    const file = join(root, rel);
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const info = await stat(file).catch(() => undefined);
    // A published port's link reached the server: the site's service worker (which relays it) is not running for this tab.
    if (!info && rel.split(sep).join("/").startsWith("_ports/")) {
      res.writeHead(404, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(PORTS_WITHOUT_WORKER);
      return;
    }
    if (!info?.isFile() || /\.(br|gz)$/.test(rel)) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(`not found: ${path}\n`);
      return;
    }
    const headers: Record<string, string | number> = {
      "content-type": TYPES[extname(rel)] ?? "application/octet-stream",
      "cache-control": HASHED.test(rel.split(sep).join("/")) ? "public, max-age=31536000, immutable" : "no-cache",
      "last-modified": info.mtime.toUTCString(),
      "x-content-type-options": "nosniff",
      "accept-ranges": "bytes",
      vary: "accept-encoding",
    };
    // One byte range (a page reads the kernel's setup header alone): sent from the file itself, never compressed.
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ""));
    if (range && (range[1] || range[2])) {
      const start = range[1] ? Number(range[1]) : Math.max(0, info.size - Number(range[2]));
      const end = range[1] && range[2] ? Math.min(Number(range[2]), info.size - 1) : info.size - 1;
      if (start > end || start >= info.size) {
        res.writeHead(416, { "content-range": `bytes */${info.size}` }).end();
        return;
      }
      headers["content-range"] = `bytes ${start}-${end}/${info.size}`;
      headers["content-length"] = end - start + 1;
      res.writeHead(206, headers);
      send(file, { start, end });
      return;
    }
    let body = file;
    let size = info.size;
    if (compression) {
      const accepted = String(req.headers["accept-encoding"] ?? "");
      for (const [suffix, encoding] of ENCODINGS) {
        if (!new RegExp(`\\b${encoding}\\b`).test(accepted)) continue;
        const packed = await stat(file + suffix).catch(() => undefined);
        if (!packed?.isFile()) continue;
        body = file + suffix;
        size = packed.size;
        headers["content-encoding"] = encoding;
        break;
      }
    }
    headers["content-length"] = size;
    res.writeHead(200, headers);
    send(body);

    function send(path: string, range?: { start: number; end: number }): void {
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      const stream = createReadStream(path, range);
      stream.on("data", (chunk) => (bytesSent += chunk.length));
      stream.on("error", () => res.destroy());
      stream.pipe(res);
    }
  });

  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 8080, opts.host ?? "127.0.0.1", () => ok());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/`,
    get bytesSent() {
      return bytesSent;
    },
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// `tsx src/web/site-server.ts [--port N] [--host H] [--dir D]`: serve and print the URL.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : undefined;
  };
  const port = Number(arg("port") ?? process.env.PORT ?? 8080);
  serveSite({ port, host: arg("host"), dir: arg("dir") }).then(
    (site) => {
      console.log(`hyperlab is at ${site.url}  (the example course page: ${site.url}examples/course.html)`);
      console.log("Open it in a browser. Ctrl-C stops the server.");
    },
    (err: NodeJS.ErrnoException) => {
      const why = err.code === "EADDRINUSE" ? `port ${port} is in use: pick another with --port N (or PORT=N)` : err.message;
      console.error(`hyperlab: cannot serve the site: ${why}`);
      process.exit(1);
    },
  );
}
