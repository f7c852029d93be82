// `POST /v1/images/pull` and `POST /v1/images/push`: hyperlab's own API for
// `hyperlab pull` and `hyperlab push`, thin adapters over the registry
// transfers (containers/registry-transfer.ts) into and out of the daemon's
// image store. The body is JSON {reference, tag?, auth?} (the CLI reads the
// credentials from docker's config.json and sends them; the daemon keeps
// none). The answer is NDJSON: {"step": PullStep | PushStep} lines, then
// {"result": …} or {"error": {code, message}}. An error before the first
// step is an error answer with its status.
import { parseReference, DEFAULT_DOMAIN } from "../containers/image-reference.ts";
import type { RegistryAuth } from "../containers/registry.ts";
import { pullFromRegistry, pushToRegistry } from "../containers/registry-transfer.ts";
import type { VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import { type Route, body } from "./http.ts";

interface TransferBody {
  reference?: string;
  tag?: string;
  auth?: RegistryAuth;
}

/** The /v1 registry routes. */
export function registryRoutes(containers: VmContainers): Route[] {
  const run = (kind: "pull" | "push"): Route[2] => async (_m, req, res) => {
    const b = (await body(req)) as TransferBody;
    if (!b.reference) throw new HyperlabError("INVALID_ARGUMENT", `${kind} needs a reference: name the image (e.g. localhost:5000/app:1)`);
    const line = (value: unknown) => {
      if (!res.headersSent) res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(JSON.stringify(value) + "\n");
    };
    const step = (s: unknown) => line({ step: s });
    try {
      let result: unknown;
      if (kind === "push") result = await pushToRegistry(containers.store, b.reference, step, { auth: b.auth, tag: b.tag });
      else if (parseReference(b.reference).domain === DEFAULT_DOMAIN) result = { id: (await containers.store.pull(b.reference, step)).id };
      else result = { id: (await pullFromRegistry(containers.store, b.reference, step, { auth: b.auth })).id };
      line({ result });
    } catch (err) {
      if (!res.headersSent) throw err;
      const e = err instanceof HyperlabError ? err : new HyperlabError("RUNTIME_ERROR", String((err as Error)?.message ?? err));
      line({ error: { code: e.code, message: e.message } });
    }
    res.end();
  };
  return [
    ["POST", /^\/images\/pull$/, run("pull")],
    ["POST", /^\/images\/push$/, run("push")],
  ];
}
