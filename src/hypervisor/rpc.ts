// The host's side of a VM worker: spawns the worker (worker_threads in Node,
// a module Web Worker in a browser), wraps its API with Comlink, and turns an
// unexpected exit into WORKER_DIED for every call in flight and every later
// one. Our error class crosses the boundary with its code and detail
// (worker-transfer.ts).
import * as Comlink from "comlink";
import type { NodeEndpoint } from "comlink/dist/esm/node-adapter.mjs";
import { HyperlabError } from "../errors.ts";
import type { VmWorkerApi, WorkerEvent } from "./worker-protocol.ts";
import { installErrorTransfer } from "./worker-transfer.ts";

/** Promise-returning view of the worker's API (every method async across the boundary). */
export type VmWorkerRemote = { [K in keyof VmWorkerApi]: VmWorkerApi[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : never };

/** One spawned VM worker. */
export interface VmWorker {
  /** the worker's API; once the worker has died every call rejects with WORKER_DIED */
  readonly api: VmWorkerRemote;
  /** subscribes to the worker's batched events (console, samples, stops) */
  onEvent(listener: (event: WorkerEvent) => void): void;
  /** resolves (never rejects) with WORKER_DIED when the worker exits without being asked to */
  readonly died: Promise<HyperlabError>;
  /** ends the worker at once (its VM is gone); legal any time, twice is a no-op */
  terminate(): Promise<void>;
}

/** What a platform provides to start a worker: a Comlink endpoint plus exit notification. */
interface RawWorker {
  endpoint: Comlink.Endpoint;
  /** calls back once with a description when the worker exits or fails */
  onExit(listener: (why: string) => void): void;
  terminate(): Promise<void>;
  /** a browser worker: declares it gone (browsers fire no event when a worker ends without an uncaught error) */
  lost?(why: string): void;
}

/** How long a browser VM worker may leave a ping unanswered before it is taken for dead. */
export const WEB_WORKER_SILENCE_MS = 5000;
const PING_MS = 1000;
/**
 * Calls that hold the worker's thread for a while (they copy or hash the
 * whole guest RAM: a snapshot on a loaded machine takes seconds): while one
 * is in flight, a ping may go unanswered for up to this long, ms.
 */
export const LONG_CALL_SILENCE_MS = 60_000;
const LONG_CALLS: ReadonlySet<string> = new Set(["snapshot", "deltaSnapshot", "pageHashes"]);

/**
 * A browser says nothing when a worker ends itself (close()) or is ended
 * without an uncaught error, and calls to it then wait for ever. The host
 * pings it every second; a ping unanswered for WEB_WORKER_SILENCE_MS means
 * it is gone. Only an unanswered ping counts: a throttled timer on a hidden
 * page sends fewer pings, not a false alarm.
 */
function watchWebWorker(api: VmWorkerRemote, lost: (why: string) => void, over: () => boolean, busy: () => boolean): void {
  let sentAt: number | undefined;
  const timer = setInterval(() => {
    if (over()) return clearInterval(timer);
    if (sentAt === undefined) {
      const t = (sentAt = performance.now());
      api.counterSample().then(
        () => sentAt === t && (sentAt = undefined),
        () => {},
      );
    } else if (performance.now() - sentAt > (busy() ? LONG_CALL_SILENCE_MS : WEB_WORKER_SILENCE_MS)) {
      clearInterval(timer);
      lost(`it stopped answering for ${Math.round((performance.now() - sentAt) / 1000)} s: it ended itself or the browser ended it`);
    }
  }, PING_MS);
}

const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === "string";

let nodeEntry: Promise<URL> | undefined;

/**
 * True when this module is compiled JavaScript (the npm package's lib/, built
 * by `npm run build:lib`): its neighbours are compiled too, so a worker runs
 * vm-worker.js as it is, with no bundler or loader.
 */
const compiled = import.meta.url.endsWith(".js");

/**
 * The script a Node VM worker runs. From the package's compiled lib/, the
 * compiled vm-worker.js beside this module. From the TypeScript sources
 * (a checkout, tests): a worker thread could register tsx and load them
 * (vm-worker-entry.mjs), but that costs about 0.4 s per worker. Instead
 * vm-worker.ts and its imports are bundled into one ES module with esbuild
 * (tsx's own compiler) once per process, about 50 ms, and every worker
 * starts from that file in about 50 ms. The file is named by its content's
 * hash, so it is never stale. Without esbuild, workers take the tsx path.
 */
function nodeWorkerEntry(): Promise<URL> {
  // Not `new URL("./vm-worker.js", import.meta.url)`: the page's build would take that for an asset of the page.
  if (compiled) nodeEntry ??= Promise.resolve(new URL(import.meta.url.replace(/[^/]*$/, "vm-worker.js")));
  nodeEntry ??= (async () => {
    const tsxEntry = new URL("./vm-worker-entry.mjs", import.meta.url);
    try {
      const [esbuild, { createHash }, fs, os, path, { createRequire }, { pathToFileURL, fileURLToPath }] = await Promise.all([
        import("esbuild"),
        import("node:crypto"),
        import("node:fs/promises"),
        import("node:os"),
        import("node:path"),
        import("node:module"),
        import("node:url"),
      ]);
      // v86 stays outside the bundle, imported from where it is installed.
      const v86 = pathToFileURL(createRequire(import.meta.url).resolve("v86")).href;
      const built = await esbuild.build({
        entryPoints: [fileURLToPath(new URL("./vm-worker.ts", import.meta.url))],
        bundle: true,
        format: "esm",
        platform: "node",
        target: "node20",
        write: false,
        logLevel: "silent",
        plugins: [
          { name: "v86", setup: (b) => b.onResolve({ filter: /^v86$/ }, () => ({ path: v86, external: true })) },
          {
            // The memory engine's bindings load release.wasm from next to themselves: they stay where they are built.
            name: "memory-engine",
            setup: (b) =>
              b.onResolve({ filter: /\/build\/assembly\/[a-z]+\.js$/ }, (a) => ({ path: pathToFileURL(path.resolve(a.resolveDir, a.path)).href, external: true })),
          },
        ],
      });
      const code = built.outputFiles[0]!.contents;
      const hash = createHash("sha256").update(code).digest("hex").slice(0, 16);
      const dir = path.join(os.tmpdir(), `hyperlab-${process.getuid?.() ?? 0}`);
      const file = path.join(dir, `vm-worker-${hash}.mjs`);
      await fs.mkdir(dir, { recursive: true });
      const exists = await fs.stat(file).then(() => true, () => false);
      if (!exists) {
        // Written under another name and renamed: a concurrent process sees no file or the whole one.
        const temp = `${file}.${process.pid}.tmp`;
        await fs.writeFile(temp, code);
        await fs.rename(temp, file);
        // Bundles of older sources, a day unused: gone (a process still running one has it loaded).
        for (const name of await fs.readdir(dir)) {
          const other = path.join(dir, name);
          const age = Date.now() - ((await fs.stat(other).catch(() => undefined))?.mtimeMs ?? Date.now());
          if (/^vm-worker-[0-9a-f]+\.mjs$/.test(name) && other !== file && age > 86_400_000) await fs.unlink(other).catch(() => {});
        }
      }
      return pathToFileURL(file);
    } catch {
      return tsxEntry;
    }
  })();
  return nodeEntry;
}

async function spawnNodeWorker(): Promise<RawWorker> {
  const [{ Worker }, { default: nodeEndpoint }, entry] = await Promise.all([
    import("node:worker_threads"),
    import("comlink/dist/esm/node-adapter.mjs"),
    nodeWorkerEntry(),
  ]);
  // No execArgv: the parent's loader flags (tsx, vitest) would load a second
  // copy of those hooks into every worker.
  const worker = new Worker(entry, { execArgv: [] });
  let lastError = "";
  worker.on("error", (err: Error) => (lastError = err.message));
  return {
    endpoint: nodeEndpoint(worker as unknown as NodeEndpoint),
    onExit: (listener) =>
      worker.once("exit", (code: number) => listener(`exit code ${code}${lastError ? `, after an uncaught error: ${lastError}` : ""}`)),
    terminate: async () => void (await worker.terminate()),
  };
}

function spawnWebWorker(): RawWorker {
  const worker = new Worker(new URL("./vm-worker.ts", import.meta.url), { type: "module", name: "hyperlab-vm" });
  const exitListeners: Array<(why: string) => void> = [];
  const lost = (why: string) => {
    for (const l of exitListeners.splice(0)) l(why);
    // One that is still there (an uncaught error leaves it running) is ended: its VM is gone.
    worker.terminate();
  };
  worker.addEventListener("error", (e) => {
    e.preventDefault();
    lost(`an uncaught error: ${e.message}`);
  });
  return {
    endpoint: worker,
    onExit: (l) => void exitListeners.push(l),
    terminate: async () => worker.terminate(),
    lost,
  };
}

/** Spawns a VM worker and connects to it; resolves once the worker answers. */
export async function spawnVmWorker(): Promise<VmWorker> {
  installErrorTransfer();
  const raw = isNode ? await spawnNodeWorker() : spawnWebWorker();
  let terminating = false;
  let resolveDied!: (err: HyperlabError) => void;
  const died = new Promise<HyperlabError>((r) => (resolveDied = r));
  let deathError: HyperlabError | undefined;
  raw.onExit((why) => {
    deathError = new HyperlabError(
      "WORKER_DIED",
      terminating ? "the VM's worker was ended by the host" : `the VM's worker died unexpectedly (${why}); the VM is stopped`,
      { why, byHost: terminating },
    );
    if (!terminating) resolveDied(deathError);
    rejectAll(deathError);
  });

  const remote = Comlink.wrap<VmWorkerApi>(raw.endpoint);
  // Calls in flight when the worker dies would wait forever: race each with the exit.
  const inFlight = new Set<(err: HyperlabError) => void>();
  const rejectAll = (err: HyperlabError) => {
    for (const reject of inFlight) reject(err);
    inFlight.clear();
  };
  let longCalls = 0;
  const call = (method: string, args: unknown[]): Promise<unknown> => {
    if (deathError) return Promise.reject(deathError);
    const long = LONG_CALLS.has(method);
    if (long) longCalls++;
    return new Promise((resolve, reject) => {
      inFlight.add(reject);
      const pending = (remote as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]!(...args);
      pending.then(resolve, reject).finally(() => {
        inFlight.delete(reject);
        if (long) longCalls--;
      });
    });
  };
  const api = new Proxy({} as VmWorkerRemote, {
    // Not a thenable: `await` on the API object must not call the worker.
    get: (_t, method: string) => (method === "then" ? undefined : (...args: unknown[]) => call(method, args)),
  });

  const { port1, port2 } = new MessageChannel();
  const listeners: Array<(e: WorkerEvent) => void> = [];
  port1.addEventListener("message", (e: MessageEvent<WorkerEvent>) => {
    for (const l of listeners) l(e.data);
  });
  port1.start();
  (port1 as { unref?: () => void }).unref?.();
  await api.connect(Comlink.transfer(port2, [port2]));
  if (raw.lost) watchWebWorker(api, raw.lost, () => terminating || deathError !== undefined, () => longCalls > 0);

  return {
    api,
    onEvent: (l) => void listeners.push(l),
    died,
    terminate: async () => {
      if (terminating || deathError) return;
      terminating = true;
      port1.close();
      await raw.terminate();
    },
  };
}
