// The daemon's HTTP server on a Unix socket: finds the route for each
// request, turns a thrown HyperlabError into its status and a JSON body, and
// hands upgrade requests (interactive streams) to attach.ts.
import { chmodSync } from "node:fs";
import { type IncomingMessage, createServer } from "node:http";
import type { Duplex } from "node:stream";
import { DEFAULT_VM, type VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import { handleStreamUpgrade } from "./attach.ts";
import { DockerApi } from "./docker/api.ts";
import { serveDockerRequest, serveDockerUpgrade } from "./docker/node.ts";
import { dockerRoutes } from "./docker/routes.ts";
import { type Route, send, statusOf } from "./http.ts";
import { API_VERSION, claimSocket } from "./socket.ts";
import { v1Routes } from "./v1.ts";

/** A listening daemon server. */
export interface ApiServer {
  /** stops listening and ends open connections */
  close(): Promise<void>;
}

/**
 * Serves the hypervisor's VMs and each VM's containers on a Unix socket:
 * hyperlab's own API under /v1/, the Docker Engine API (its containers in
 * VM `dockerVm`) everywhere else. A socket left by a dead daemon is replaced;
 * a live one is an error. The socket is made readable and writable by its
 * owner only.
 */
export async function serveApi(containers: VmContainers, hypervisor: Hypervisor, socketPath: string, opts: { dockerVm?: string } = {}): Promise<ApiServer & { docker: DockerApi }> {
  await claimSocket(socketPath);
  const routes: Route[] = v1Routes(containers, hypervisor);
  const docker = new DockerApi({ containers, hypervisor, vm: opts.dockerVm ?? DEFAULT_VM }, dockerRoutes);
  const prefix = `/${API_VERSION}`;
  const isOwn = (url: string | undefined) => {
    const path = new URL(url ?? "/", "http://hyperlab").pathname;
    return path === prefix || path.startsWith(`${prefix}/`);
  };
  const server = createServer((req, res) => {
    if (!isOwn(req.url)) return void serveDockerRequest(docker, req, res);
    const url = new URL(req.url ?? "/", "http://hyperlab");
    const path = url.pathname.slice(prefix.length);
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
  // Interactive streams upgrade the connection: hyperlab's (run -i/-t, exec -i/-t) and Docker's (attach, exec: Upgrade: tcp).
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (isOwn(req.url)) void handleStreamUpgrade((vm) => containers.engine(vm), req, socket, { version: API_VERSION, statusOf });
    else void serveDockerUpgrade(docker, req, socket, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  // A user who can reach a Docker socket owns the machine: only its owner may.
  chmodSync(socketPath, 0o600);
  return {
    docker,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
