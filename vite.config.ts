import { readFileSync } from "node:fs";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { fileURLToPath } from "node:url";
import type { Plugin, Rolldown } from "vite";
import { defineConfig } from "vitest/config";
import { CONTENT_SECURITY_POLICY, cspMetaTag, headersFile } from "./src/web/csp.ts";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The embed script's stable name: course pages include it with one script tag, so it cannot carry a hash. */
const EMBED = "hyperlab-vm";
/** The service worker that relays published ports' links (src/web/ports-sw.ts; PORTS_SW_FILE there). */
const PORTS_SW = "ports-sw";

/**
 * Modules the hypervisor imports only when it runs in Node (behind
 * `isNode` checks): the worker bundler, tsx's loader, Node's image and
 * snapshot stores. In the browser build each becomes a stub that says so,
 * instead of Node-only code (or esbuild itself) being bundled for a page.
 */
const NODE_ONLY = [/^esbuild$/, /^tsx\/esm\/api$/, /\/src\/hardware\/node\.ts$/, /\/src\/hardware\/p9-node-fs\.ts$/, /\/src\/hypervisor\/boot-snapshot-node\.ts$/];
const STUB = "\0hyperlab-node-only";
/** `new URL("./x.ts" or "./x.mjs", import.meta.url)` not inside `new Worker(…)`: a file for Node's worker_threads. */
const NODE_ENTRY_URL = /(?<!Worker\()new URL\((["'][^"']+\.(?:ts|mjs)["'])(?=, import\.meta\.url\))/g;

function nodeOnlyStubs(): Plugin {
  return {
    name: "hyperlab-node-only",
    enforce: "pre",
    async resolveId(source, importer) {
      if (NODE_ONLY.some((re) => re.test(source))) return `${STUB}:${source}`;
      if (source.startsWith(".") && importer) {
        const resolved = await this.resolve(source, importer, { skipSelf: true });
        if (resolved && NODE_ONLY.some((re) => re.test(resolved.id))) return `${STUB}:${resolved.id}`;
      }
      return undefined;
    },
    load(id) {
      if (!id.startsWith(STUB)) return undefined;
      const what = JSON.stringify(id.slice(STUB.length + 1));
      return `throw new Error("hyperlab: " + ${what} + " is for Node only and is not part of the web build");`;
    },
    // The hypervisor names its Node worker entries (TypeScript sources) with new URL(…): not assets of a page.
    transform(code, id) {
      // The VM worker's Node habits (setImmediate) get browser stand-ins, loaded before anything else.
      // (The development server names the worker's module with a query: ?worker_file&type=module.)
      if (id.split("?")[0]!.endsWith("/src/hypervisor/vm-worker.ts")) code = `import ${JSON.stringify(here("./src/web/worker-shims.ts"))};\n${code}`;
      else if (!id.includes("/src/") || !NODE_ENTRY_URL.test(code)) return undefined;
      return { code: code.replace(NODE_ENTRY_URL, "new URL(/* @vite-ignore */ $1"), map: null };
    },
  };
}

/**
 * Node habits of dependencies that the page runs, patched in the web build
 * (each must still be there, so that an upgrade that changes the code is
 * noticed here rather than in a visitor's tab): dockerfile-ast, the parser
 * of the builder the page's Docker API runs for `docker build` in a guest,
 * looks for a UTF-8 byte order mark with Node's Buffer.
 */
const BROWSER_PATCHES: ReadonlyArray<{ file: RegExp; from: string; to: string }> = [
  { file: /\/dockerfile-ast\/lib\/util\.js$/, from: 'Buffer.from(char, "UTF-8")', to: "new TextEncoder().encode(char)" },
];
/** Dependencies of the page that need Node's `path` (sep, normalize, dirname): they get path-browserify, Node's own module for browsers. */
const NEEDS_PATH = /\/node_modules\/@balena\/dockerignore\//;

function browserPatches(): Plugin {
  return {
    name: "hyperlab-browser-patches",
    enforce: "pre",
    async resolveId(source, importer) {
      if (source !== "path" || !importer || !NEEDS_PATH.test(importer)) return undefined;
      return this.resolve("path-browserify", importer, { skipSelf: true });
    },
    transform(code, id) {
      const patch = BROWSER_PATCHES.find((p) => p.file.test(id.split("?")[0]!));
      if (!patch) return undefined;
      if (!code.includes(patch.from)) this.error(`${id} no longer has ${patch.from}: check whether it still needs Node in a browser, and update BROWSER_PATCHES in vite.config.ts`);
      return { code: code.split(patch.from).join(patch.to), map: null };
    },
  };
}

/** v86's making of its timer worker from a Blob (a Content-Security-Policy would need `worker-src blob:` for it). */
const V86_TIMER_BLOB = 'const b=URL.createObjectURL(new Blob(["("+a.toString()+")()"],{type:"text/javascript"}));this.worker=new Worker(b);';

/**
 * Points v86's timer worker at a file of the site (src/hardware/v86-timer-worker.ts,
 * the same code) instead of a Blob, so the site's policy (src/web/csp.ts)
 * needs no `worker-src blob:`. Checked to be still there, as BROWSER_PATCHES are.
 */
function v86TimerFile(): Plugin {
  return {
    name: "hyperlab-v86-timer-file",
    enforce: "pre",
    transform(code, id) {
      if (!/\/node_modules\/v86\/build\/libv86\.mjs$/.test(id.split("?")[0]!)) return undefined;
      if (!code.includes(V86_TIMER_BLOB)) this.error(`${id} no longer makes its timer worker from a Blob as it did: check how it does now, and update v86TimerFile in vite.config.ts`);
      const file = JSON.stringify(here("./src/hardware/v86-timer-worker.ts"));
      // b stays for v86's URL.revokeObjectURL(b) after it (a no-op for an empty string).
      const to = `const b="";this.worker=new Worker(new URL(${file}, import.meta.url),{type:"module",name:"v86-timer"});`;
      return { code: code.split(V86_TIMER_BLOB).join(to), map: null };
    },
  };
}

/**
 * The committed OCI image layout (busybox, lua:5.1, lua:5.4): the site
 * publishes it as a read-only registry under v2/ (containers/static-registry.ts),
 * from which the page pulls each image the first time it is used.
 */
const IMAGE_LAYOUT = here("./guest-images/dist/images/");

/** The static registry's files (path under the site → bytes), made from the image layout once per build or dev server. */
async function registryFiles(): Promise<Map<string, Uint8Array>> {
  // Our sources are TypeScript: tsx loads the module as it is.
  const { tsImport } = await import("tsx/esm/api");
  const { staticRegistryFiles } = (await tsImport("./src/containers/static-registry.ts", import.meta.url)) as typeof import("./src/containers/static-registry.ts");
  const files = await staticRegistryFiles(async (p) => new Uint8Array(await readFile(join(IMAGE_LAYOUT, p))));
  return new Map(files.map((f) => [f.path, f.data]));
}

/** Files worth a precompressed copy: text, WebAssembly, and the guest's kernel and archives (about half their size). */
const COMPRESSIBLE = /\.(html|js|css|json|wasm|cpio|bin|elf)$|\/bzImage-[\w-]+$|\/blobs\/sha256:[0-9a-f]{64}$/;

/**
 * Writes a gzip copy (level 9) beside each compressible file of the built
 * site, for hosts that serve precompressed files (nginx gzip_static, the
 * site server of `npm start`); hosts that compress on their own ignore them.
 */
async function precompress(dir: string): Promise<void> {
  const files = (await readdir(dir, { recursive: true })).map((f) => join(dir, f)).filter((f) => COMPRESSIBLE.test(f));
  await Promise.all(
    files.map(async (file) => {
      if (!(await stat(file)).isFile()) return;
      const data = await readFile(file);
      const packed = await promisify(gzip)(data, { level: 9 });
      if (packed.length < data.length * 0.9) await writeFile(`${file}.gz`, packed);
    }),
  );
}

/** The module through which the page learns which boot snapshots the site has (see src/web/site-snapshots.ts). */
const BOOT_SNAPSHOTS = "virtual:hyperlab-boot-snapshots";
/** Where the encoded snapshots wait for Vite to copy them into the site (under hashed names). */
const SNAPSHOT_DIR = here("./node_modules/.cache/hyperlab/site/");

/**
 * Ships the boot snapshot with the site: the default guest saved right after
 * it booted, built in Node (a cold boot on first use, then cached), which a
 * page restores instead of booting. `HYPERLAB_SITE_MEMORY=128,256` ships one
 * per memory size (default: the image's default memory); each guest profile's
 * is shipped too (`HYPERLAB_SITE_PROFILES=lxc` names which; empty: none), and
 * fetched only by an element with that `profile`.
 */
function bootSnapshots(): Plugin {
  let built: Promise<Array<{ profile?: string; memoryMiB: number; file: string; bytes: number }>> | undefined;
  return {
    name: "hyperlab-boot-snapshots",
    resolveId: (id) => (id === BOOT_SNAPSHOTS ? `\0${BOOT_SNAPSHOTS}` : undefined),
    async load(id) {
      if (id !== `\0${BOOT_SNAPSHOTS}`) return undefined;
      built ??= (async () => {
        // Our sources are TypeScript, and the Node side of snapshots loads v86: tsx loads them as they are.
        const { tsImport } = await import("tsx/esm/api");
        const { siteSnapshots } = (await tsImport("./src/web/site-snapshots.ts", import.meta.url)) as typeof import("./src/web/site-snapshots.ts");
        const sizes = (process.env.HYPERLAB_SITE_MEMORY ?? "").split(",").filter(Boolean).map(Number);
        const profiles = process.env.HYPERLAB_SITE_PROFILES?.split(",").filter(Boolean);
        return siteSnapshots({ dir: SNAPSHOT_DIR, memoryMiB: sizes, profiles });
      })();
      const list = await built;
      // Each file is imported by URL, so Vite copies it into the site under a name with its content hash.
      return [
        ...list.map((s, i) => `import url${i} from ${JSON.stringify(`${s.file}?url`)};`),
        `export const bootSnapshots = [${list.map((s, i) => `{ profile: ${JSON.stringify(s.profile)}, memoryMiB: ${s.memoryMiB}, url: url${i}, bytes: ${s.bytes} }`).join(", ")}];`,
      ].join("\n");
    },
  };
}

/** The module that names llhttp's WebAssembly in the site (see llhttpWasm). */
const LLHTTP_WASM = "virtual:hyperlab-llhttp-wasm";
/** Where the WebAssembly waits for Vite to copy it into the site (under a hashed name). */
const LLHTTP_DIR = here("./node_modules/.cache/hyperlab/llhttp/");

/**
 * Ships llhttp's WebAssembly (the HTTP/1.1 parser of the Docker API the page
 * serves to its guests' docker clients, src/daemon/docker/llhttp.ts) as a
 * file of the site: undici publishes it as a module that exports its bytes,
 * which are written out here and imported by URL. The page fetches it only
 * when a guest first uses docker.
 */
function llhttpWasm(): Plugin {
  return {
    name: "hyperlab-llhttp-wasm",
    resolveId: (id) => (id === LLHTTP_WASM ? `\0${LLHTTP_WASM}` : undefined),
    async load(id) {
      if (id !== `\0${LLHTTP_WASM}`) return undefined;
      const bytes = createRequire(import.meta.url)("undici/lib/llhttp/llhttp-wasm.js") as Uint8Array;
      const file = join(LLHTTP_DIR, "llhttp.wasm");
      await mkdir(LLHTTP_DIR, { recursive: true });
      const old = await readFile(file).catch(() => undefined);
      if (!old?.equals(bytes)) await writeFile(file, bytes);
      return `import url from ${JSON.stringify(`${file}?url`)};\nexport default url;`;
    },
  };
}

/**
 * Name of a file in the site: each with its content hash. Guest tools
 * (guest-images/dist/tools/*.gz, already compressed) get `.gzip` instead of
 * `.gz`: hosts treat a `.gz` beside a file as that file's precompressed copy
 * (the site server refuses to serve one by itself).
 */
function assetFileName(asset: { names?: readonly string[] }): string {
  return asset.names?.some((n) => n.endsWith(".gz")) ? "assets/[name]-[hash].gzip" : "assets/[name]-[hash][extname]";
}

/** The page's entries: what they import statically is what a page runs before its prompt. */
const PAGE_ENTRIES = [here("./index.html"), here("./src/web/embed.ts")];
let startModules: { ctx: Rolldown.ChunkingContext; ids: Set<string> } | undefined;

/**
 * The chunk of a module the page runs at start: "page", one chunk for all
 * of them. Rolldown would otherwise move every module that a chunk loaded
 * later (the Docker API the guests' docker talks to, the guest tools'
 * fetching) shares with the start into chunks of their own: the same code
 * in more files, compressed less well, before the prompt. Entries keep
 * their own modules, and modules that another entry (a service worker)
 * imports too are left to rolldown.
 */
function startChunk(id: string, ctx: Rolldown.ChunkingContext): string | null {
  if (startModules?.ctx !== ctx) {
    const ids = new Set<string>();
    const visit = (m: string) => {
      if (ids.has(m)) return;
      ids.add(m);
      for (const d of ctx.getModuleInfo(m)?.importedIds ?? []) visit(d);
    };
    for (const e of PAGE_ENTRIES) visit(e);
    startModules = { ctx, ids };
  }
  const info = ctx.getModuleInfo(id);
  if (!startModules.ids.has(id) || !info || info.isEntry) return null;
  // Imported by another entry as well (walking up its static importers): rolldown places it.
  const seen = new Set<string>();
  const up = [id];
  while (up.length) {
    const m = up.pop()!;
    if (seen.has(m)) continue;
    seen.add(m);
    const mi = ctx.getModuleInfo(m);
    if (mi?.isEntry && !PAGE_ENTRIES.includes(m)) return null;
    up.push(...(mi?.importers ?? []));
  }
  return "page";
}

function siteExtras(): Plugin {
  let outDir = "dist";
  return {
    name: "hyperlab-site",
    configResolved(config) {
      outDir = config.build.outDir;
    },
    async closeBundle() {
      await precompress(outDir);
    },
    // The page carries its Content-Security-Policy itself (src/web/csp.ts), for static hosts that send no header;
    // only in the build: the dev server's own client is not held to it.
    transformIndexHtml: {
      order: "post",
      handler(html, ctx) {
        if (ctx.server) return html;
        const charset = /<meta charset="utf-8" \/>/i;
        if (!charset.test(html)) throw new Error("index.html has no <meta charset=\"utf-8\" />: the Content-Security-Policy <meta> goes right after it (vite.config.ts)");
        return html.replace(charset, (m) => `${m}\n    ${cspMetaTag()}`);
      },
    },
    // The example course page is copied as it is: it includes the element exactly as a course page would.
    // The images go in as a read-only registry (v2/<name>/manifests|blobs|tags, v2/_catalog), which the page and any OCI client pull from.
    async generateBundle() {
      // The same policy as a header, for hosts that read a _headers file (Netlify, Cloudflare Pages); docs/web.md has nginx's and Apache's.
      this.emitFile({ type: "asset", fileName: "_headers", source: headersFile() });
      this.emitFile({ type: "asset", fileName: "examples/course.html", source: readFileSync(here("./examples/course.html")) });
      // The example with a guest profile: its boot snapshot is downloaded only by a page that names it.
      this.emitFile({ type: "asset", fileName: "examples/podman.html", source: readFileSync(here("./examples/podman.html")) });
      // The example lab page and the labs it (or a course page) can name: <hyperlab-lab src="labs/NAME.md">.
      this.emitFile({ type: "asset", fileName: "examples/lab.html", source: readFileSync(here("./examples/lab.html")) });
      for (const file of (await readdir(here("./examples/labs/"))).filter((f) => f.endsWith(".md"))) {
        this.emitFile({ type: "asset", fileName: `examples/labs/${file}`, source: await readFile(here(`./examples/labs/${file}`)) });
      }
      for (const [path, data] of await registryFiles()) this.emitFile({ type: "asset", fileName: path, source: data });
    },
    // In development the stable embed URL serves the element's source, and the static registry is served from memory.
    configureServer(server) {
      let registry: Promise<Map<string, Uint8Array>> | undefined;
      server.middlewares.use((req, res, next) => {
        const path = req.url?.split("?")[0] ?? "";
        if (path === `/${EMBED}.js`) {
          res.statusCode = 302;
          res.setHeader("location", "/src/web/embed.ts");
          res.end();
          return;
        }
        if (!path.startsWith("/v2/")) return next();
        registry ??= registryFiles();
        registry.then(
          (files) => {
            const data = files.get(decodeURIComponent(path.slice(1)));
            // Not next(): the dev server would answer with index.html, which a registry client would take for a manifest.
            if (!data) {
              res.statusCode = 404;
              res.setHeader("content-type", "application/json");
              res.end(JSON.stringify({ errors: [{ code: "NOT_FOUND", message: `the site's registry has no ${path}` }] }));
              return;
            }
            // Blobs and manifests have no extension: served as bytes (Vite would otherwise transform them as modules).
            res.setHeader("content-type", path.endsWith("/tags/list") || path === "/v2/_catalog" ? "application/json" : "application/octet-stream");
            res.end(data);
          },
          (err: unknown) => next(err),
        );
      });
    },
  };
}

// One config for the app build (the page, the embed script, the examples) and for vitest.
export default defineConfig({
  // Relative URLs everywhere: the built site works from any folder of any static host.
  base: "./",
  plugins: process.env.VITEST ? [] : [nodeOnlyStubs(), browserPatches(), v86TimerFile(), bootSnapshots(), llhttpWasm(), siteExtras()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Guest files are fetched by URL with progress, never inlined into scripts.
    assetsInlineLimit: 0,
    // v86 and xterm are large, and that is expected.
    chunkSizeWarningLimit: 2048,
    rolldownOptions: {
      // The ports service worker sits at the site's root under a fixed name: its scope is the whole site (src/web/ports-sw.ts).
      input: { index: here("./index.html"), [EMBED]: here("./src/web/embed.ts"), [PORTS_SW]: here("./src/web/ports-sw.ts") },
      output: {
        entryFileNames: (chunk) => (chunk.name === EMBED || chunk.name === PORTS_SW ? `${chunk.name}.js` : "assets/[name]-[hash].js"),
        chunkFileNames: "assets/[name]-[hash].js",
        assetFileNames: assetFileName,
        codeSplitting: { groups: [{ name: startChunk }] },
      },
    },
  },
  // `vite preview` serves the build as `npm start` does: with the site's Content-Security-Policy.
  preview: { headers: { "Content-Security-Policy": CONTENT_SECURITY_POLICY } },
  // VM workers use top-level await and load the emulator as a module.
  worker: { format: "es", plugins: () => [nodeOnlyStubs(), v86TimerFile()] },
  test: {
    include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
    // Integration tests boot real guests: each file gets its own worker and
    // the 2-core machine runs two at a time.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
