// `POST /build` (`docker build`) and `POST /build/prune` (`docker builder
// prune`) of the Docker Engine API: a thin adapter over the builder
// (containers/build/). The body is the context tar; the answer is dockerd's
// classic builder stream ({"stream": "Step 1/6 : FROM busybox"}, …,
// {"aux": {"ID": …}}, "Successfully built/tagged"), errors in it as
// {"errorDetail": …}. A Dockerfile that does not parse is a 400 before any
// output, as with dockerd. hyperlab has the classic builder only (/_ping
// says Builder-Version 1): a BuildKit request is refused naming the fix.
import { BuildContext } from "../../containers/build/context.ts";
import { type BuildEvent, Builder } from "../../containers/build/builder.ts";
import { normalizeName } from "../../containers/image-reference.ts";
import { shortId } from "../../containers/image-store.ts";
import { HyperlabError } from "../../errors.ts";
import { type DockerRoute, type RouteCall, dockerHeaders, flag, sendJson } from "./api.ts";
import { storeOf } from "./images.ts";
import { pullMessage } from "./registry.ts";

const encoder = new TextEncoder();

/** Query parameters of /build that change what a build makes and that hyperlab does not do: refused when given. */
const REFUSED: Record<string, string> = {
  remote: "a remote build context (a Git repository or URL): hyperlab's builds reach no network; build from a local folder",
  squash: "--squash",
  extrahosts: "--add-host",
  cachefrom: "--cache-from",
  isolation: "--isolation",
  outputs: "--output",
};
/** Limits for RUN steps' containers (docker build --memory …): refused unless empty or zero. */
const LIMITS = ["memory", "memswap", "cpushares", "cpusetcpus", "cpusetmems", "cpuperiod", "cpuquota", "shmsize"];

/** A JSON object parameter (buildargs, labels): INVALID_ARGUMENT naming it when it is not one. */
function jsonParam<T>(call: RouteCall, name: string): T | undefined {
  const raw = call.query.get(name);
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v as T;
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid ${name} parameter: ${(err as Error).message} (give a JSON object)`);
  }
}

/** Checks /build's parameters before the context is read. */
function checkParams(call: RouteCall): void {
  const q = call.query;
  if (q.get("version") === "2") {
    throw new HyperlabError("NOT_SUPPORTED", "BuildKit is not supported: hyperlab's daemon has Docker's classic builder (Builder-Version 1). Build with DOCKER_BUILDKIT=0 docker build …");
  }
  for (const [name, what] of Object.entries(REFUSED)) {
    const v = q.get(name);
    if (v && v !== "[]" && v !== "{}" && v !== "null") throw new HyperlabError("NOT_SUPPORTED", `${what} is not supported by hyperlab's builder (parameter ${name})`);
  }
  for (const name of LIMITS) {
    const v = q.get(name);
    if (v && v !== "0" && v !== "-1") throw new HyperlabError("NOT_SUPPORTED", `resource limits for build steps (${name}) are not supported by hyperlab's builder yet: leave them out`);
  }
  const platform = q.get("platform");
  if (platform && !/^linux(\/(386|i386))?$/.test(platform)) throw new HyperlabError("NOT_SUPPORTED", `platform ${platform} is not supported: hyperlab builds linux/386 images only (its guest is a 32-bit x86 PC)`);
  const network = q.get("networkmode");
  if (network === "host") throw new HyperlabError("NOT_SUPPORTED", "--network host is not supported for build steps: use bridge, none or a user network");
}

/** A build event as the lines of dockerd's classic builder stream. */
function dockerLines(e: BuildEvent, decoders: Map<1 | 2, TextDecoder>): unknown[] {
  switch (e.type) {
    case "step":
      return [{ stream: `Step ${e.n}/${e.total} : ${e.text}` }, { stream: "\n" }];
    case "triggers":
      return [{ stream: `# Executing ${e.count} build trigger${e.count === 1 ? "" : "s"}` }, { stream: "\n" }];
    case "cache":
      return [{ stream: " ---> Using cache\n" }];
    case "running":
      return [{ stream: ` ---> Running in ${e.container}\n` }];
    case "output": {
      let d = decoders.get(e.stream);
      if (!d) decoders.set(e.stream, (d = new TextDecoder()));
      const text = d.decode(e.data, { stream: true });
      if (!text) return [];
      // dockerd shows a step's stderr in red.
      return [{ stream: e.stream === 2 ? `\u001b[91m${text}\u001b[0m` : text }];
    }
    case "removed":
      return [{ stream: `Removing intermediate container ${e.container}\n` }];
    case "image":
      return [{ stream: ` ---> ${e.id}\n` }];
    case "warning":
      return [{ stream: `[Warning] ${e.message}\n` }];
    case "pull":
      // dockerd's classic builder streams a base image's pull as the pull's own progress lines.
      return [pullMessage(e.step)];
    case "built":
      return [{ aux: { ID: e.id } }, { stream: `Successfully built ${shortId(e.id)}\n` }];
    case "tagged":
      return [{ stream: `Successfully tagged ${e.name}\n` }];
  }
}

/**
 * `POST /build?t&dockerfile&buildargs&target&nocache&rm&forcerm&labels&q&networkmode`:
 * builds the context tar of the body (see the file comment).
 */
async function build(call: RouteCall): Promise<void> {
  checkParams(call);
  const q = call.query;
  const tags = q.getAll("t").filter(Boolean).map((t) => {
    try {
      return normalizeName(t);
    } catch {
      throw new HyperlabError("INVALID_ARGUMENT", `invalid tag "${t}": invalid reference format`);
    }
  });
  if (tags.some((t) => t.includes("@"))) throw new HyperlabError("INVALID_ARGUMENT", "invalid reference format: a tag cannot name a digest");
  const buildArgs = jsonParam<Record<string, string | null>>(call, "buildargs");
  const labels = jsonParam<Record<string, string>>(call, "labels");
  const quiet = flag(q, "q");
  const network = q.get("networkmode");
  const engine = call.api.engine();
  const context = await BuildContext.fromTar(call.req.stream());
  const abort = new AbortController();
  call.res.onClose(() => abort.abort());
  let started = false;
  const held: unknown[] = [];
  const write = (value: unknown) => {
    if (!started) {
      call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
      started = true;
    }
    call.res.write(encoder.encode(JSON.stringify(value) + "\n"));
  };
  const decoders = new Map<1 | 2, TextDecoder>();
  // Quiet: nothing but the ID, unless the build fails (then what it printed, as dockerd does).
  const onEvent = (e: BuildEvent) => {
    for (const line of dockerLines(e, decoders)) (quiet ? held.push(line) : write(line));
  };
  try {
    const result = await new Builder(engine, storeOf(call)).build(
      {
        context,
        dockerfile: q.get("dockerfile") ?? undefined,
        tags,
        buildArgs,
        target: q.get("target") || undefined,
        noCache: flag(q, "nocache"),
        // dockerd removes intermediate containers unless rm=0 is given.
        remove: q.get("rm") === null || q.get("rm") === "" ? true : flag(q, "rm"),
        forceRemove: flag(q, "forcerm"),
        labels,
        network: network && network !== "default" ? network : undefined,
        signal: abort.signal,
      },
      onEvent,
    );
    if (quiet) write({ stream: `${result.id}\n` });
  } catch (err) {
    // Before any output (a Dockerfile that does not parse, an unknown target): an error answer with its status, as dockerd gives.
    if (!started && !held.length) throw err;
    if (quiet) for (const line of held) write(line);
    const message = err instanceof Error ? err.message : String(err);
    const exitCode = err instanceof HyperlabError ? (err.detail?.exitCode as number | undefined) : undefined;
    write({ errorDetail: { ...(exitCode !== undefined ? { code: exitCode } : {}), message }, error: message });
  }
  call.res.end();
}

/** `POST /build/prune` (`docker builder prune`): empties the build cache. */
async function prune(call: RouteCall): Promise<void> {
  const { entries, reclaimed } = await storeOf(call).pruneBuildCache();
  sendJson(call.res, 200, { CachesDeleted: entries ? [`${entries} build cache entries`] : null, SpaceReclaimed: reclaimed });
}

/** BuildKit's own endpoints (buildx's docker driver dials them): refused naming the way that works. */
async function buildkit(): Promise<void> {
  throw new HyperlabError("NOT_SUPPORTED", "BuildKit is not supported: hyperlab's daemon has Docker's classic builder (Builder-Version 1). Build with DOCKER_BUILDKIT=0 docker build …");
}

/** The build routes. */
export const buildRoutes: DockerRoute[] = [
  ["POST", /^\/build$/, build],
  ["POST", /^\/build\/prune$/, prune],
  ["POST", /^\/session$/, buildkit],
  ["POST", /^\/grpc$/, buildkit],
];
