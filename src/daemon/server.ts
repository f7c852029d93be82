// The daemon's HTTP server on a Unix socket: finds the route for each
// request, turns a thrown HyperlabError into its status and a JSON body, and
// hands upgrade requests (interactive streams) to attach.ts.
import { type IncomingMessage, createServer } from "node:http";
import type { Duplex } from "node:stream";
import type { VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import { handleStreamUpgrade } from "./attach.ts";
import { type Route, send, statusOf } from "./http.ts";
import { API_VERSION, claimSocket } from "./socket.ts";
import { v1Routes } from "./v1.ts";

/** A listening daemon server. */
export interface ApiServer {
  /** stops listening and ends open connections */
  close(): Promise<void>;
}

/**
 * Serves the hypervisor's VMs and each VM's containers on a Unix socket. A
 * socket left by a dead daemon is replaced; a live one is an error.
 */
export async function serveApi(containers: VmContainers, hypervisor: Hypervisor, socketPath: string): Promise<ApiServer> {
  await claimSocket(socketPath);
  const routes: Route[] = v1Routes(containers, hypervisor);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://hyperlab");
    const prefix = `/${API_VERSION}`;
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : "";
    const route = routes.find(([method, re]) => method === req.method && re.test(path));
    if (!route) {
      send(res, 404, { code: "NOT_FOUND", message: `no such API route: ${req.method} ${url.pathname} (this daemon serves /${API_VERSION}/…)` });
      return;
    }
    route[2](path.match(route[1])!, req, res, url.searchParams).catch((err: unknown) => {
      const e = err instanceof HyperlabError ? err : new HyperlabError("RUNTIME_ERROR", String((err as Error)?.message ?? err));
      if (res.headersSent) res.end();
      else send(res, statusOf(e.code), { code: e.code, message: e.message });
    });
  });
  // Interactive streams (run -i/-t, exec -i/-t) upgrade the connection.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => void handleStreamUpgrade((vm) => containers.engine(vm), req, socket, { version: API_VERSION, statusOf }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
