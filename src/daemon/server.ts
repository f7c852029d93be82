// The daemon's HTTP server on a Unix socket (and on a loopback TCP port when
// asked): finds the route for each
// request, turns a thrown HyperlabError into its status and a JSON body, and
// hands upgrade requests (interactive streams) to attach.ts.
import { chmodSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

/** A loopback TCP address to serve on besides the socket (`--host tcp://127.0.0.1:PORT`). */
export interface TcpListen {
  host: string;
  port: number;
}

/**
 * Serves the hypervisor's VMs and each VM's containers on a Unix socket (and,
 * when asked, a loopback TCP port): hyperlab's own API under /v1/, the Docker
 * Engine API (its containers in VM `dockerVm`) everywhere else. A socket left
 * by a dead daemon is replaced; a live one is an error. The socket is made
 * readable and writable by its owner only.
 */
export async function serveApi(
  containers: VmContainers,
  hypervisor: Hypervisor,
  socketPath: string,
  opts: { dockerVm?: string; tcp?: TcpListen } = {},
): Promise<ApiServer & { docker: DockerApi; tcpPort?: number }> {
  await claimSocket(socketPath);
  const routes: Route[] = v1Routes(containers, hypervisor);
  const docker = new DockerApi({ containers, hypervisor, vm: opts.dockerVm ?? DEFAULT_VM }, dockerRoutes);
  const prefix = `/${API_VERSION}`;
  const isOwn = (url: string | undefined) => {
    const path = new URL(url ?? "/", "http://hyperlab").pathname;
    return path === prefix || path.startsWith(`${prefix}/`);
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
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
      // A 409 for a resource in use names its users (e.g. a network's VMs) as data too.
      else send(res, statusOf(e.code), { code: e.code, message: e.message, ...(e.code === "NETWORK_IN_USE" && e.detail ? { detail: e.detail } : {}) });
    });
  };
  // Interactive streams upgrade the connection: hyperlab's (run -i/-t, exec -i/-t) and Docker's (attach, exec: Upgrade: tcp).
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (isOwn(req.url)) void handleStreamUpgrade((vm) => containers.engine(vm), req, socket, { version: API_VERSION, statusOf });
    else void serveDockerUpgrade(docker, req, socket, head);
  };
  const servers: Server[] = [];
  const listen = (server: Server, ...args: unknown[]) =>
    new Promise<void>((resolve, reject) => {
      server.on("upgrade", onUpgrade);
      server.once("error", reject);
      (server.listen as (...a: unknown[]) => void)(...args, () => resolve());
      servers.push(server);
    });
  await listen(createServer(onRequest), socketPath);
  // A user who can reach a Docker socket owns the machine: only its owner may.
  chmodSync(socketPath, 0o600);
  let tcpPort: number | undefined;
  if (opts.tcp) {
    const tcp = createServer(onRequest);
    await listen(tcp, opts.tcp.port, opts.tcp.host).catch((err: NodeJS.ErrnoException) => {
      for (const s of servers) s.close();
      throw new HyperlabError("INVALID_ARGUMENT", `cannot listen on tcp://${opts.tcp!.host}:${opts.tcp!.port}: ${err.code === "EADDRINUSE" ? "the port is in use" : err.message}`);
    });
    tcpPort = (tcp.address() as AddressInfo).port;
  }
  return {
    docker,
    tcpPort,
    close: () =>
      Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      ).then(() => {}),
  };
}

/**
 * Reads `--host`: only `tcp://` on a loopback address (127.0.0.0/8, ::1,
 * localhost) is accepted: the API controls every VM, so it is never offered
 * to the network.
 */
export function parseTcpHost(value: string): TcpListen {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(value.trim());
  if (!m) throw new HyperlabError("INVALID_ARGUMENT", `invalid --host '${value}': use tcp://127.0.0.1:PORT`);
  const host = m[1]!.replace(/^\[|\]$/g, "");
  const port = Number(m[2]);
  if (port > 65535) throw new HyperlabError("INVALID_ARGUMENT", `invalid --host '${value}': the port must be at most 65535`);
  const loopback = host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (!loopback) {
    throw new HyperlabError("INVALID_ARGUMENT", `--host ${value} is not a loopback address: whoever reaches the API controls every VM and container, so hyperlab serves TCP on 127.0.0.1 or ::1 only`);
  }
  return { host, port };
}
