// The daemon's own API, /v1: HTTP+JSON routes over the container engine and
// the hypervisor (docs/api.md). Each route is a thin adapter: it reads the
// request, calls the engine or the hypervisor, and answers JSON.
import type { Container, ContainerEngine, CreateOptions } from "../containers/engine.ts";
import type { CreateVmOptions, Hypervisor } from "../hypervisor/hypervisor.ts";
import type { VmExecOptions } from "../hypervisor/worker-protocol.ts";
import { type Route, body, rawBody, send, streamOutput } from "./http.ts";
import { API_VERSION } from "./socket.ts";

/** A container as the API returns it (dates as ISO strings, no log bytes). */
export function containerJson(c: Container) {
  return {
    id: c.id,
    name: c.name,
    image: c.image.reference,
    command: c.command,
    status: c.status,
    exitCode: c.exitCode,
    createdAt: c.createdAt.toISOString(),
    startedAt: c.startedAt?.toISOString(),
    finishedAt: c.finishedAt?.toISOString(),
    runtime: c.runtime,
    ipAddress: c.ipAddress,
  };
}
export type ContainerJson = ReturnType<typeof containerJson>;

/** The VM routes (docs/api.md): the hypervisor's API over HTTP. */
function vmRoutes(hv: Hypervisor): Route[] {
  const vm = (m: RegExpMatchArray) => hv.get(decodeURIComponent(m[1]!));
  const info = (ref: RegExpMatchArray) => vm(ref).info();
  return [
    ["GET", /^\/vms$/, async (_m, _r, res) => send(res, 200, hv.list().map((v) => v.info()))],
    [
      "POST",
      /^\/vms$/,
      async (_m, req, res) => {
        const o = (await body(req)) as CreateVmOptions;
        const created = await hv.createVm({ name: o.name, memoryMiB: o.memoryMiB, cpuShare: o.cpuShare, cold: o.cold, start: o.start, cmdline: o.cmdline });
        send(res, 201, created.info());
      },
    ],
    [
      "POST",
      /^\/vms\/restore$/,
      async (_m, req, res, q) => {
        const share = q.get("cpuShare");
        const restored = await hv.restore(new Uint8Array(await rawBody(req)), { name: q.get("name") ?? undefined, cpuShare: share === null ? undefined : Number(share) });
        send(res, 201, restored.info());
      },
    ],
    ["GET", /^\/vms\/([^/]+)$/, async (m, _r, res) => send(res, 200, info(m))],
    ["GET", /^\/vms\/([^/]+)\/stats$/, async (m, _r, res) => send(res, 200, await vm(m).metrics())],
    ["POST", /^\/vms\/([^/]+)\/start$/, async (m, _r, res) => send(res, 204, await vm(m).start())],
    ["POST", /^\/vms\/([^/]+)\/pause$/, async (m, _r, res) => send(res, 204, await vm(m).pause())],
    ["POST", /^\/vms\/([^/]+)\/resume$/, async (m, _r, res) => send(res, 204, await vm(m).resume())],
    ["POST", /^\/vms\/([^/]+)\/stop$/, async (m, _r, res) => send(res, 204, await vm(m).stop())],
    [
      "PATCH",
      /^\/vms\/([^/]+)$/,
      async (m, req, res) => {
        const { cpuShare } = (await body(req)) as { cpuShare?: number };
        const v = vm(m);
        if (cpuShare !== undefined) v.setCpuShare(cpuShare);
        send(res, 200, v.info());
      },
    ],
    [
      "POST",
      /^\/vms\/([^/]+)\/exec$/,
      async (m, req, res) => {
        const { argv, ...opts } = (await body(req)) as { argv: string[] } & VmExecOptions;
        send(res, 200, await vm(m).exec(argv ?? [], opts));
      },
    ],
    [
      "POST",
      /^\/vms\/([^/]+)\/snapshot$/,
      async (m, _r, res, q) => {
        const bytes = await vm(m).snapshot({ full: q.get("full") === "1" || q.get("full") === "true" });
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
        res.end(bytes);
      },
    ],
    [
      "POST",
      /^\/vms\/([^/]+)\/fork$/,
      async (m, req, res) => {
        const { count } = (await body(req)) as { count?: number };
        send(res, 201, (await vm(m).fork(count ?? 1)).map((v) => v.info()));
      },
    ],
    ["DELETE", /^\/vms\/([^/]+)$/, async (m, _r, res) => send(res, 204, await vm(m).destroy())],
    ["GET", /^\/stats$/, async (_m, _r, res) => send(res, 200, await hv.stats())],
  ];
}

/** Every /v1 route: the engine's containers and images and, when given, the hypervisor's VMs. */
export function v1Routes(engine: ContainerEngine, hypervisor?: Hypervisor): Route[] {
  return [
    ["GET", /^\/version$/, async (_m, _q, res) => send(res, 200, { api: API_VERSION, name: "hyperlab" })],
    ["GET", /^\/images$/, async (_m, _q, res) => send(res, 200, await engine.images())],
    ["GET", /^\/containers$/, async (_m, _r, res, q) => send(res, 200, engine.ps({ all: q.get("all") === "1" }).map(containerJson))],
    [
      "POST",
      /^\/containers$/,
      async (_m, req, res) => {
        const c = await engine.create((await body(req)) as CreateOptions);
        send(res, 201, containerJson(c));
      },
    ],
    [
      "POST",
      /^\/containers\/([^/]+)\/start$/,
      async (m, _r, res, q) => {
        const attached = q.get("attach") === "1";
        const a = await engine.start(m[1]!, { attached });
        if (attached) streamOutput(res, a.onOutput, a.exited);
        else send(res, 204);
      },
    ],
    [
      "POST",
      /^\/containers\/([^/]+)\/exec$/,
      async (m, req, res) => {
        const { argv, env } = (await body(req)) as { argv: string[]; env?: string[] };
        const p = await engine.exec(m[1]!, argv ?? [], { env });
        streamOutput(res, p.onOutput, p.exited.then((e) => (e.signal ? 128 + e.signal : e.exitCode)));
      },
    ],
    ["POST", /^\/containers\/([^/]+)\/stop$/, async (m, _r, res, q) => send(res, 204, await engine.stop(m[1]!, { timeoutS: Number(q.get("t") ?? 10) }))],
    ["POST", /^\/containers\/([^/]+)\/kill$/, async (m, _r, res, q) => send(res, 204, await engine.kill(m[1]!, q.get("signal") ?? "KILL"))],
    ["POST", /^\/containers\/([^/]+)\/wait$/, async (m, _r, res) => send(res, 200, { exitCode: await engine.wait(m[1]!) })],
    ["DELETE", /^\/containers\/([^/]+)$/, async (m, _r, res, q) => send(res, 204, await engine.remove(m[1]!, { force: q.get("force") === "1" }))],
    ["GET", /^\/containers\/([^/]+)\/json$/, async (m, _r, res) => send(res, 200, engine.inspect(m[1]!))],
    ["GET", /^\/containers\/([^/]+)\/stats$/, async (m, _r, res) => send(res, 200, await engine.stats(m[1]!))],
    [
      "GET",
      /^\/containers\/([^/]+)\/logs$/,
      async (m, _r, res) =>
        send(
          res,
          200,
          engine.logs(m[1]!).map((l) => ({ stream: l.stream, data: Buffer.from(l.data).toString("base64") })),
        ),
    ],
    ...(hypervisor ? vmRoutes(hypervisor) : []),
  ];
}
