// The daemon's own API, /v1: HTTP+JSON routes over the container engine and
// the hypervisor (docs/api.md). Each route is a thin adapter: it reads the
// request, calls the engine or the hypervisor, and answers JSON.
import { HyperlabError } from "../errors.ts";
import { type Container, type ContainerEngine, type CreateOptions, exitOrStartError } from "../containers/engine.ts";
import type { Network, NetworkOptions } from "../containers/network.ts";
import { DEFAULT_VM, type VmContainers } from "../containers/vm-containers.ts";
import type { CreateVmOptions, Hypervisor } from "../hypervisor/hypervisor.ts";
import type { VmExecOptions } from "../hypervisor/worker-protocol.ts";
import { type Route, body, rawBody, send, streamOutput } from "./http.ts";
import { volumeRoutes } from "./v1-volumes.ts";
import { API_VERSION } from "./socket.ts";
import { buildRoutes } from "./v1-build.ts";
import { registryRoutes } from "./v1-registry.ts";

/** A container as the API returns it (dates as ISO strings, no log bytes), with the VM it lives in. */
export function containerJson(c: Container, vm: string) {
  return {
    vm,
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
    network: c.network,
    ipAddress: c.ipAddress,
    /** its published ports while it runs (host address and port → container port) */
    ports: c.status === "running" ? (c.published ?? []) : [],
    /** the ports it exposes (EXPOSE, --expose) */
    exposedPorts: c.exposedPorts ?? [],
  };
}
export type ContainerJson = ReturnType<typeof containerJson>;

/** A network as the API returns it, with the VM it lives in and the containers on it (any state). */
export function networkJson(n: Network, vm: string, engine: ContainerEngine) {
  return {
    vm,
    id: n.id,
    name: n.name,
    driver: n.driver,
    builtin: !!n.builtin,
    subnet: n.subnet,
    gateway: n.gateway,
    internal: n.internal,
    labels: n.labels,
    createdAt: n.createdAt.toISOString(),
    containers: engine.networkContainers(n).map((c) => ({ id: c.id, name: c.name, status: c.status, ipAddress: c.ipAddress, aliases: c.aliases ?? [] })),
  };
}
export type NetworkJson = ReturnType<typeof networkJson>;

/** The path of a network route, with or without its VM: `/networks…` (VM `default`) or `/vms/{vm}/networks…`. */
function networkRoute(rest: string): RegExp {
  return new RegExp(`^(?:/vms/([^/]+))?/networks${rest}$`);
}

/** Each VM's networks (docs/api.md): list, create, inspect, remove. */
function networkRoutes(containers: VmContainers): Route[] {
  const vmOf = (m: RegExpMatchArray) => (m[1] === undefined ? DEFAULT_VM : decodeURIComponent(m[1]));
  const engine = (m: RegExpMatchArray): ContainerEngine => containers.engine(vmOf(m));
  const json = (m: RegExpMatchArray, n: Network) => networkJson(n, containers.vm(vmOf(m)).name, engine(m));
  const ref = (m: RegExpMatchArray) => decodeURIComponent(m[2]!);
  return [
    ["GET", networkRoute(""), async (m, _r, res) => send(res, 200, engine(m).networks().map((n) => json(m, n)))],
    ["POST", networkRoute(""), async (m, req, res) => send(res, 201, json(m, await engine(m).createNetwork((await body(req)) as NetworkOptions)))],
    ["GET", networkRoute("/([^/]+)"), async (m, _r, res) => send(res, 200, json(m, engine(m).network(ref(m))))],
    ["DELETE", networkRoute("/([^/]+)"), async (m, _r, res) => send(res, 200, json(m, await engine(m).removeNetwork(ref(m))))],
  ];
}

/** The VM routes (docs/api.md): the hypervisor's API over HTTP. */
function vmRoutes(hv: Hypervisor, containers: VmContainers): Route[] {
  const vm = (m: RegExpMatchArray) => hv.get(decodeURIComponent(m[1]!));
  const info = (ref: RegExpMatchArray) => vm(ref).info();
  return [
    ["GET", /^\/vms$/, async (_m, _r, res) => send(res, 200, hv.list().map((v) => v.info()))],
    [
      "POST",
      /^\/vms$/,
      async (_m, req, res) => {
        const o = (await body(req)) as CreateVmOptions;
        const created = await hv.createVm({ name: o.name, memoryMiB: o.memoryMiB, cpuShare: o.cpuShare, cold: o.cold, start: o.start, cmdline: o.cmdline, net: o.net, profile: o.profile });
        send(res, 201, created.info());
      },
    ],
    [
      "POST",
      /^\/vms\/restore$/,
      async (_m, req, res, q) => {
        const share = q.get("cpuShare");
        const restored = await hv.restore(new Uint8Array(await rawBody(req)), { name: q.get("name") ?? undefined, cpuShare: share === null ? undefined : Number(share), net: q.get("net") ?? undefined, profile: q.get("profile") ?? undefined });
        send(res, 201, restored.info());
      },
    ],
    // The hypervisor's networks (docs/network.md), which VMs' cards plug into.
    ["GET", /^\/vm-networks$/, async (_m, _r, res) => send(res, 200, hv.networks.list())],
    [
      "POST",
      /^\/vm-networks$/,
      async (_m, req, res) => {
        const o = (await body(req)) as { name?: unknown; subnet?: unknown; isolated?: unknown };
        if (typeof o.name !== "string") throw new HyperlabError("INVALID_ARGUMENT", "a network needs a name (JSON body {\"name\": \"NAME\", \"subnet\": \"CIDR\", \"isolated\": true})");
        const subnet = typeof o.subnet === "string" ? o.subnet : undefined;
        send(res, 201, hv.networks.create(o.name, { subnet, isolated: o.isolated === true }));
      },
    ],
    ["GET", /^\/vm-networks\/([^/]+)$/, async (m, _r, res) => send(res, 200, hv.networks.inspect(decodeURIComponent(m[1]!)))],
    [
      "DELETE",
      /^\/vm-networks\/([^/]+)$/,
      async (m, _r, res) => {
        hv.networks.remove(decodeURIComponent(m[1]!));
        send(res, 204, undefined);
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
    [
      "DELETE",
      /^\/vms\/([^/]+)$/,
      async (m, _r, res) => {
        // The VM's containers go with it: say which.
        const v = vm(m);
        const gone = containers.containersOf(v, { all: true }).map((c) => containerJson(c, v.name));
        await v.destroy();
        send(res, 200, { vm: v.info(), containers: gone });
      },
    ],
    [
      "GET",
      /^\/stats$/,
      async (_m, _r, res) => {
        const stats = await hv.stats();
        // Each VM with the containers it hosts: the stack as it stands.
        const vms = stats.vms.map((info) => {
          const v = hv.list().find((x) => x.id === info.id);
          return { ...info, containers: v ? containers.containersOf(v, { all: true }).map((c) => containerJson(c, v.name)) : [] };
        });
        send(res, 200, { ...stats, vms });
      },
    ],
  ];
}

/** The path of a container route, with or without its VM: `/containers…` (VM `default`) or `/vms/{vm}/containers…`. */
function containerRoute(rest: string): RegExp {
  return new RegExp(`^(?:/vms/([^/]+))?/containers${rest}$`);
}

/** Every /v1 route: each VM's containers, the images, and the hypervisor's VMs. */
export function v1Routes(containers: VmContainers, hypervisor: Hypervisor): Route[] {
  const vmOf = (m: RegExpMatchArray) => (m[1] === undefined ? DEFAULT_VM : decodeURIComponent(m[1]));
  const engine = (m: RegExpMatchArray): ContainerEngine => containers.engine(vmOf(m));
  const ref = (m: RegExpMatchArray) => decodeURIComponent(m[2]!);
  const json = (m: RegExpMatchArray, c: Container) => containerJson(c, containers.vm(vmOf(m)).name);
  return [
    ["GET", /^\/version$/, async (_m, _q, res) => send(res, 200, { api: API_VERSION, name: "hyperlab" })],
    ["GET", /^\/images$/, async (_m, _q, res) => send(res, 200, await containers.images())],
    [
      "GET",
      containerRoute(""),
      async (m, _r, res, q) => {
        const all = q.get("all") === "1";
        // Every VM's containers (ps --all-vms), or one VM's, read from the host's records.
        if (q.get("allVms") === "1" && m[1] === undefined) return send(res, 200, containers.all({ all }).map(({ vm, container }) => containerJson(container, vm.name)));
        const vm = containers.vm(vmOf(m));
        send(res, 200, containers.containersOf(vm, { all }).map((c) => containerJson(c, vm.name)));
      },
    ],
    [
      "POST",
      containerRoute(""),
      async (m, req, res) => {
        const c = await engine(m).create((await body(req)) as CreateOptions);
        send(res, 201, json(m, c));
      },
    ],
    [
      "POST",
      containerRoute("/([^/]+)/start"),
      async (m, _r, res, q) => {
        const attached = q.get("attach") === "1";
        const a = await engine(m).start(ref(m), { attached });
        if (attached) streamOutput(res, a.onOutput, exitOrStartError(a));
        else send(res, 204);
      },
    ],
    [
      "POST",
      containerRoute("/([^/]+)/exec"),
      async (m, req, res) => {
        const { argv, env } = (await body(req)) as { argv: string[]; env?: string[] };
        const p = await engine(m).exec(ref(m), argv ?? [], { env });
        streamOutput(res, p.onOutput, p.exited.then((e) => (e.signal ? 128 + e.signal : e.exitCode)));
      },
    ],
    ["POST", containerRoute("/([^/]+)/stop"), async (m, _r, res, q) => send(res, 204, await engine(m).stop(ref(m), { timeoutS: Number(q.get("t") ?? 10) }))],
    ["POST", containerRoute("/([^/]+)/kill"), async (m, _r, res, q) => send(res, 204, await engine(m).kill(ref(m), q.get("signal") ?? "KILL"))],
    ["POST", containerRoute("/([^/]+)/wait"), async (m, _r, res) => send(res, 200, { exitCode: await engine(m).wait(ref(m)) })],
    ["DELETE", containerRoute("/([^/]+)"), async (m, _r, res, q) => send(res, 204, await engine(m).remove(ref(m), { force: q.get("force") === "1" }))],
    ["GET", containerRoute("/([^/]+)/json"), async (m, _r, res) => send(res, 200, { ...engine(m).inspect(ref(m)), Vm: containers.vm(vmOf(m)).name })],
    // Its published ports (what `hyperlab port` prints): none unless it runs.
    ["GET", containerRoute("/([^/]+)/port"), async (m, _r, res) => send(res, 200, json(m, engine(m).get(ref(m))))],
    ["GET", containerRoute("/([^/]+)/stats"), async (m, _r, res) => send(res, 200, await engine(m).stats(ref(m)))],
    [
      "GET",
      containerRoute("/([^/]+)/logs"),
      async (m, _r, res) =>
        send(
          res,
          200,
          engine(m)
            .logs(ref(m))
            .map((l) => ({ stream: l.stream, data: Buffer.from(l.data).toString("base64") })),
        ),
    ],
    ...networkRoutes(containers),
    ...volumeRoutes(containers),
    ...buildRoutes(containers),
    ...registryRoutes(containers),
    ...vmRoutes(hypervisor, containers),
  ];
}
