import { readFileSync } from "node:fs";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { fileURLToPath } from "node:url";
import type { Plugin } from "vite";
import { defineConfig } from "vitest/config";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The embed script's stable name: course pages include it with one script tag, so it cannot carry a hash. */
const EMBED = "hyperlab-vm";

/**
 * Modules the hypervisor imports only when it runs in Node (behind
 * `isNode` checks): the worker bundler, tsx's loader, Node's image and
 * snapshot stores. In the browser build each becomes a stub that says so,
 * instead of Node-only code (or esbuild itself) being bundled for a page.
 */
const NODE_ONLY = [/^esbuild$/, /^tsx\/esm\/api$/, /\/src\/hardware\/node\.ts$/, /\/src\/hypervisor\/boot-snapshot-node\.ts$/];
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
      if (id.endsWith("/src/hypervisor/vm-worker.ts")) code = `import ${JSON.stringify(here("./src/web/worker-shims.ts"))};\n${code}`;
      else if (!id.includes("/src/") || !NODE_ENTRY_URL.test(code)) return undefined;
      return { code: code.replace(NODE_ENTRY_URL, "new URL(/* @vite-ignore */ $1"), map: null };
    },
  };
}

/** Files worth a precompressed copy: text, WebAssembly, and the guest's kernel and archives (about half their size). */
const COMPRESSIBLE = /\.(html|js|css|json|wasm|cpio|bin|elf)$|\/bzImage-[\w-]+$/;

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
    // The example course page is copied as it is: it includes the element exactly as a course page would.
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "examples/course.html", source: readFileSync(here("./examples/course.html")) });
    },
    // In development the stable embed URL serves the element's source.
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (req.url?.split("?")[0] !== `/${EMBED}.js`) return next();
        res.statusCode = 302;
        res.setHeader("location", "/src/web/embed.ts");
        res.end();
      });
    },
  };
}

// One config for the app build (the page, the embed script, the examples) and for vitest.
export default defineConfig({
  // Relative URLs everywhere: the built site works from any folder of any static host.
  base: "./",
  plugins: process.env.VITEST ? [] : [nodeOnlyStubs(), siteExtras()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Guest files are fetched by URL with progress, never inlined into scripts.
    assetsInlineLimit: 0,
    // v86 and xterm are large, and that is expected.
    chunkSizeWarningLimit: 2048,
    rolldownOptions: {
      input: { index: here("./index.html"), [EMBED]: here("./src/web/embed.ts") },
      output: {
        entryFileNames: (chunk) => (chunk.name === EMBED ? `${EMBED}.js` : "assets/[name]-[hash].js"),
        chunkFileNames: "assets/[name]-[hash].js",
        assetFileNames: "assets/[name]-[hash][extname]",
      },
    },
  },
  // VM workers use top-level await and load the emulator as a module.
  worker: { format: "es", plugins: () => [nodeOnlyStubs()] },
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
