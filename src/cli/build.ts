// `hyperlab build`: Docker's `build` (the classic builder) on hyperlab's
// engine. The context folder is sent as a tar, with .dockerignore applied
// here as the docker CLI does; the daemon's builder runs the steps in its VM
// (POST /v1/build), or, without a daemon, a builder in this process over a
// VM restored from the boot snapshot (as `hyperlab run` does). Progress is
// printed as the docker CLI prints it; a failed build exits with its RUN's
// status (else 1), as docker build does.
import dockerignore from "@balena/dockerignore";
import { readFile, readdir, readlink, lstat } from "node:fs/promises";
import { request } from "node:http";
import { join, relative, resolve, sep } from "node:path";
import { packTar, type TarEntry } from "modern-tar";
import { type BuildEvent, type BuildOptions, type BuildResult, Builder } from "../containers/build/builder.ts";
import { BuildContext } from "../containers/build/context.ts";
import { shortId } from "../containers/image-store.ts";
import { defaultDataRoot, nodeImageStore } from "../containers/node-store.ts";
import { DEFAULT_VM, VmContainers } from "../containers/vm-containers.ts";
import type { BuildEventJson } from "../daemon/v1-build.ts";
import { API_VERSION } from "../daemon/socket.ts";
import { HyperlabError, isHyperlabError } from "../errors.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { parseVerb } from "./args.ts";
import { findDaemon } from "./daemon-client.ts";
import { printPull } from "./registry-progress.ts";
import type { Verb } from "./verb.ts";

const ignore = dockerignore as unknown as typeof dockerignore.default;

const USAGE = "hyperlab build [OPTIONS] CONTEXT";
const HELP = `Usage: ${USAGE}

Builds an image from the Dockerfile in the folder CONTEXT, as Docker's classic
builder does: each RUN runs in a container (crun) in the guest and its changes
become a layer; COPY and ADD take files from CONTEXT (less what .dockerignore
leaves out). A step seen before is taken from the cache ("Using cache").
With a daemon running the image goes to its store; without one, to the store
of the default data root, with a VM of this process for the RUN steps.

Options:
  -t, --tag NAME[:TAG]      name the image (repeatable)
  -f, --file FILE           the Dockerfile (default: CONTEXT/Dockerfile)
      --build-arg KEY[=V]   a value for an ARG (KEY alone: from the environment)
      --target STAGE        build up to this stage
      --no-cache            run every step (do not use the cache)
      --label KEY=VALUE     add a label to the image (repeatable)
      --network NETWORK     the network of RUN steps: bridge (default), none,
                            or a user network (with a daemon)
  -q, --quiet               print only the image ID
      --vm NAME             the daemon's VM to build in (default: default)
      --cold                boot the guest's kernel instead of restoring the boot
                            snapshot (without a daemon only)
`;

/** A build's answer: what it made, or the error that stopped it. */
type Outcome = { result: BuildResult } | { error: { code: string; message: string; exitCode?: number } };

/**
 * Prints build events as the docker CLI prints the classic builder's
 * stream; with `quiet`, keeps them for `flush` (a failed build shows them,
 * as docker build -q does).
 */
function printer(quiet: boolean): { onEvent: (e: BuildEvent) => void; flush: () => void } {
  const held: BuildEvent[] = [];
  const pullPrinter = printPull(false);
  const print = (e: BuildEvent) => {
    const out = (s: string) => process.stdout.write(s);
    switch (e.type) {
      case "step":
        return out(`Step ${e.n}/${e.total} : ${e.text}\n`);
      case "triggers":
        return out(`# Executing ${e.count} build trigger${e.count === 1 ? "" : "s"}\n`);
      case "cache":
        return out(" ---> Using cache\n");
      case "running":
        return out(` ---> Running in ${e.container}\n`);
      case "output":
        return void (e.stream === 2 ? process.stderr : process.stdout).write(e.data);
      case "removed":
        return out(`Removing intermediate container ${e.container}\n`);
      case "image":
        return out(` ---> ${e.id}\n`);
      case "warning":
        return out(`[Warning] ${e.message}\n`);
      case "pull":
        return pullPrinter(e.step);
      case "built":
        return out(`Successfully built ${shortId(e.id)}\n`);
      case "tagged":
        return out(`Successfully tagged ${e.name}\n`);
    }
  };
  return { onEvent: (e) => (quiet ? void held.push(e) : print(e)), flush: () => held.splice(0).forEach(print) };
}

/** One entry of the context tar for `path` (relative to the context), or undefined for what a context does not carry (sockets, devices). */
async function tarEntry(root: string, rel: string): Promise<TarEntry | undefined> {
  const full = join(root, rel);
  const st = await lstat(full);
  const header = { name: rel, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0, size: 0 };
  if (st.isDirectory()) return { header: { ...header, name: `${rel}/`, type: "directory" } };
  if (st.isSymbolicLink()) return { header: { ...header, type: "symlink", linkname: await readlink(full) } };
  if (!st.isFile()) return undefined;
  const data = new Uint8Array(await readFile(full));
  return { header: { ...header, size: data.length, type: "file" }, body: data };
}

/**
 * The context folder as a tar, as the docker CLI sends it: .dockerignore's
 * exclusions left out (the Dockerfile and .dockerignore always go; the
 * builder drops them for COPY if excluded), owners root. A Dockerfile
 * outside the folder goes in under a name of its own. Returns the tar and
 * the Dockerfile's path in it.
 */
export async function contextTar(dir: string, file: string | undefined): Promise<{ tar: Uint8Array; dockerfile: string }> {
  const root = resolve(dir);
  const st = await lstat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new HyperlabError("INVALID_ARGUMENT", `unable to prepare context: path "${dir}" not found or not a folder`);
  const dockerfilePath = file === undefined ? join(root, "Dockerfile") : resolve(file);
  const inside = relative(root, dockerfilePath);
  const outside = inside.startsWith("..") || inside.startsWith(sep);
  const dockerfileText = await readFile(dockerfilePath).catch(() => {
    throw new HyperlabError("INVALID_ARGUMENT", `Cannot locate specified Dockerfile: ${file ?? "Dockerfile"} (looked for ${dockerfilePath})`);
  });
  const ignoreText = await readFile(join(root, ".dockerignore"), "utf8").catch(() => "");
  const patterns = ignoreText.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const ig = ignore().add(patterns);
  const reinclude = patterns.some((p) => p.startsWith("!"));
  const always = new Set([".dockerignore", ...(outside ? [] : [inside.split(sep).join("/")])]);
  const entries: TarEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = rel ? `${rel}/${d.name}` : d.name;
      const ignored = ig.ignores(path) && !always.has(path);
      if (!ignored) {
        const e = await tarEntry(root, path);
        if (e) entries.push(e);
      }
      // A folder left out may still hold something a `!` rule brings back.
      if (d.isDirectory() && (!ignored || reinclude)) await walk(path);
    }
  };
  await walk("");
  let dockerfile = inside.split(sep).join("/");
  if (outside) {
    // As the docker CLI does: the Dockerfile under a name of its own, which .dockerignore then keeps out of COPY.
    dockerfile = `.dockerfile.${Math.random().toString(36).slice(2, 14)}`;
    entries.push({ header: { name: dockerfile, size: dockerfileText.length, type: "file", mode: 0o644, uid: 0, gid: 0 }, body: new Uint8Array(dockerfileText) });
    const ignoreFile = new TextEncoder().encode(`${ignoreText}${ignoreText && !ignoreText.endsWith("\n") ? "\n" : ""}${dockerfile}\n.dockerignore\n`);
    const at = entries.findIndex((e) => e.header.name === ".dockerignore");
    const entry: TarEntry = { header: { name: ".dockerignore", size: ignoreFile.length, type: "file", mode: 0o644, uid: 0, gid: 0 }, body: ignoreFile };
    if (at >= 0) entries[at] = entry;
    else entries.push(entry);
  }
  return { tar: await packTar(entries), dockerfile };
}

/** Runs a build on the daemon (POST /v1/build), printing its events. */
function buildOnDaemon(socketPath: string, vm: string | undefined, query: URLSearchParams, tar: Uint8Array, onEvent: (e: BuildEvent) => void): Promise<Outcome> {
  const path = `/${API_VERSION}${vm === undefined ? "" : `/vms/${encodeURIComponent(vm)}`}/build?${query}`;
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, path, method: "POST", headers: { "content-type": "application/x-tar", "content-length": tar.length } }, (res) => {
      let buf = "";
      let outcome: Outcome | undefined;
      res.on("data", (c: Buffer) => {
        buf += c.toString("utf8");
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const text = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!text.trim()) continue;
          const v = JSON.parse(text) as { event?: BuildEventJson; result?: BuildResult; error?: { code: string; message: string; exitCode?: number }; code?: string; message?: string };
          if (v.event) onEvent(v.event.type === "output" ? { ...v.event, data: new Uint8Array(Buffer.from(v.event.data, "base64")) } : v.event);
          else if (v.result) outcome = { result: v.result };
          else if (v.error) outcome = { error: v.error };
          else if (v.message) outcome = { error: { code: v.code ?? "RUNTIME_ERROR", message: v.message } };
        }
      });
      res.on("end", () => {
        if (buf.trim()) {
          const v = JSON.parse(buf) as { code?: string; message?: string };
          outcome ??= { error: { code: v.code ?? "RUNTIME_ERROR", message: v.message ?? `the daemon answered ${res.statusCode}` } };
        }
        if (outcome) resolvePromise(outcome);
        else reject(new HyperlabError("AGENT_GONE", "the daemon closed the build's stream before it ended"));
      });
    });
    req.on("error", (err) => reject(new HyperlabError("AGENT_GONE", `cannot reach the hyperlab daemon at ${socketPath}: ${err.message}`)));
    req.end(tar);
  });
}

/** Runs a build in this process: a hypervisor with one VM for its RUN steps, the default data root's store. */
async function buildHere(opts: BuildOptions, cold: boolean, onEvent: (e: BuildEvent) => void): Promise<Outcome> {
  const store = nodeImageStore(undefined, { dataRoot: defaultDataRoot() });
  const hypervisor = await Hypervisor.create({ spareWorkers: 0, warmPool: 0 });
  const containers = new VmContainers(hypervisor, store);
  try {
    await hypervisor.createVm({ name: DEFAULT_VM, cold });
    const result = await new Builder(containers.engine(DEFAULT_VM), store).build(opts, onEvent);
    return { result };
  } catch (err) {
    if (!isHyperlabError(err)) throw err;
    return { error: { code: err.code, message: err.message, exitCode: err.detail?.exitCode as number | undefined } };
  } finally {
    containers.close();
    await hypervisor.close();
  }
}

/** `KEY=VALUE` (or KEY, taken from this process's environment) as a pair. */
function buildArg(v: string): [string, string | null] {
  const eq = v.indexOf("=");
  if (eq === 0) throw new HyperlabError("INVALID_ARGUMENT", `invalid --build-arg '${v}': use KEY=VALUE`);
  if (eq > 0) return [v.slice(0, eq), v.slice(eq + 1)];
  return [v, process.env[v] ?? null];
}

async function buildCommand(args: string[]): Promise<number> {
  const parsed = parseVerb("build", USAGE, args, {
    options: {
      tag: { type: "string", short: "t", multiple: true },
      file: { type: "string", short: "f" },
      "build-arg": { type: "string", multiple: true },
      target: { type: "string" },
      "no-cache": { type: "boolean" },
      label: { type: "string", multiple: true },
      network: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      vm: { type: "string" },
      cold: { type: "boolean" },
    },
    positionals: { min: 1, max: 1 },
  });
  if (parsed === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const { values, positionals } = parsed;
  const quiet = values.quiet ?? false;
  const buildArgs = Object.fromEntries((values["build-arg"] ?? []).map(buildArg));
  const labels = Object.fromEntries(
    (values.label ?? []).map((l) => {
      const eq = l.indexOf("=");
      if (eq === 0) throw new HyperlabError("INVALID_ARGUMENT", `invalid --label '${l}': use KEY=VALUE`);
      return eq < 0 ? [l, ""] : [l.slice(0, eq), l.slice(eq + 1)];
    }),
  );
  const { tar, dockerfile } = await contextTar(positionals[0]!, values.file);
  const print = printer(quiet);
  const daemon = await findDaemon();
  let outcome: Outcome;
  if (daemon) {
    const q = new URLSearchParams();
    for (const t of values.tag ?? []) q.append("t", t);
    q.set("dockerfile", dockerfile);
    for (const [k, v] of Object.entries(buildArgs)) q.append("buildarg", v === null ? k : `${k}=${v}`);
    for (const [k, v] of Object.entries(labels)) q.append("label", `${k}=${v}`);
    if (values.target) q.set("target", values.target);
    if (values["no-cache"]) q.set("nocache", "1");
    if (values.network) q.set("network", values.network);
    outcome = await buildOnDaemon(daemon.socketPath, values.vm, q, tar, print.onEvent);
  } else {
    if (values.vm !== undefined) throw new HyperlabError("INVALID_ARGUMENT", "--vm needs a running daemon: VMs live in the daemon. Start one with 'hyperlab daemon &'.");
    const context = await BuildContext.fromTar([tar]);
    outcome = await buildHere({ context, dockerfile, tags: values.tag, buildArgs, target: values.target, noCache: values["no-cache"], labels, network: values.network }, values.cold ?? false, print.onEvent);
  }
  if ("error" in outcome) {
    print.flush();
    process.stderr.write(`${outcome.error.message}\n`);
    // As docker build: a failed RUN's exit status, else 1.
    return outcome.error.exitCode || 1;
  }
  if (quiet) process.stdout.write(`${outcome.result.id}\n`);
  return 0;
}

export const buildVerb: Verb = {
  name: "build",
  summary: "build an image from a Dockerfile",
  run: buildCommand,
};
