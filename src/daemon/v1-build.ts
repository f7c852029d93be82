// `POST /v1/build`: hyperlab's own API for `hyperlab build`, a thin adapter
// over the builder (containers/build/) in one of the daemon's VMs. The body
// is the context tar; the answer is NDJSON: {"event": BuildEvent} lines
// (output bytes in base64), then {"result": {id, digest, tags}} or
// {"error": {code, message, exitCode?}}. A request the builder refuses
// before its first event (a Dockerfile that does not parse) is an error
// answer with its status.
import { type BuildEvent, Builder } from "../containers/build/builder.ts";
import { BuildContext } from "../containers/build/context.ts";
import { normalizeName } from "../containers/image-reference.ts";
import { DEFAULT_VM, type VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import type { Route } from "./http.ts";

/** A build event as one NDJSON line of /v1/build (bytes as base64). */
export type BuildEventJson = Exclude<BuildEvent, { type: "output" }> | { type: "output"; stream: 1 | 2; data: string };

/** The pairs of repeated `KEY=VALUE` parameters as an object (a KEY alone: null). */
function pairs(values: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    out[eq < 0 ? v : v.slice(0, eq)] = eq < 0 ? null : v.slice(eq + 1);
  }
  return out;
}

/** The /v1 build route: `POST /build` (VM default) or `/vms/{vm}/build`. */
export function buildRoutes(containers: VmContainers): Route[] {
  return [
    [
      "POST",
      /^(?:\/vms\/([^/]+))?\/build$/,
      async (m, req, res, q) => {
        const engine = containers.engine(m[1] === undefined ? DEFAULT_VM : decodeURIComponent(m[1]));
        const tags = q.getAll("t").map((t) => {
          try {
            return normalizeName(t);
          } catch {
            throw new HyperlabError("INVALID_ARGUMENT", `invalid tag '${t}': use name[:tag] with lower-case letters, digits and . _ - /`);
          }
        });
        const labels = pairs(q.getAll("label"));
        const context = await BuildContext.fromTar(req);
        const abort = new AbortController();
        res.on("close", () => {
          if (!res.writableFinished) abort.abort();
        });
        const line = (value: unknown) => {
          if (!res.headersSent) res.writeHead(200, { "content-type": "application/x-ndjson" });
          res.write(JSON.stringify(value) + "\n");
        };
        const onEvent = (e: BuildEvent) => line({ event: e.type === "output" ? { ...e, data: Buffer.from(e.data).toString("base64") } : e });
        try {
          const result = await new Builder(engine, containers.store).build(
            {
              context,
              dockerfile: q.get("dockerfile") ?? undefined,
              tags,
              buildArgs: pairs(q.getAll("buildarg")),
              target: q.get("target") || undefined,
              noCache: q.get("nocache") === "1",
              labels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, v ?? ""])),
              network: q.get("network") || undefined,
              signal: abort.signal,
            },
            onEvent,
          );
          line({ result });
        } catch (err) {
          if (!res.headersSent) throw err;
          const e = err instanceof HyperlabError ? err : new HyperlabError("RUNTIME_ERROR", String((err as Error)?.message ?? err));
          line({ error: { code: e.code, message: e.message, exitCode: e.detail?.exitCode } });
        }
        res.end();
      },
    ],
  ];
}
