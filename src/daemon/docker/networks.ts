// Network endpoints of the Docker Engine API: list, inspect, create, remove,
// prune, and connect/disconnect (refused: a container joins one network, when
// it is created). Each reads Docker's request, calls the container engine of
// Docker's VM, and answers in Docker's JSON (the predefined `bridge` and
// `none`, and user bridge networks; see src/containers/network.ts for how
// they are made in the guest).
import type { Container, ContainerEngine } from "../../containers/engine.ts";
import { type Network, bridgeName, isAttached } from "../../containers/network.ts";
import { HyperlabError } from "../../errors.ts";
import { type GoType, checkTypes } from "./body-types.ts";
import { type DockerRoute, type RouteCall, jsonBody, sendEmpty, sendJson } from "./api.ts";
import { containerOf, dockerTime } from "./containers.ts";
import { parseFilters } from "./filters.ts";

/** Docker's network-create body. */
interface NetworkCreateBody {
  Name?: string;
  CheckDuplicate?: boolean;
  Driver?: string;
  Scope?: string;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  ConfigOnly?: boolean;
  ConfigFrom?: { Network?: string } | null;
  EnableIPv6?: boolean | null;
  EnableIPv4?: boolean | null;
  IPAM?: {
    Driver?: string;
    Config?: Array<{ Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> | null }> | null;
    Options?: Record<string, string> | null;
  } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  [key: string]: unknown;
}

function unsupported(field: string, instead: string): HyperlabError {
  return new HyperlabError("NOT_SUPPORTED", `${field} is not supported by hyperlab: ${instead}`, { field });
}

const empty = (v: unknown) => v === undefined || v === null || v === "" || (typeof v === "object" && Object.keys(v as object).length === 0);

/** A running container's endpoint on its network, as a network's Containers lists it. */
function endpointOf(c: Container): Record<string, unknown> {
  return { Name: c.name, EndpointID: c.ipAddress ? c.id.slice(0, 32) : "", MacAddress: "", IPv4Address: c.ipAddress ? `${c.ipAddress}/${c.ipPrefixLen ?? 16}` : "", IPv6Address: "" };
}

/** One network in Docker's JSON; `containers`: the running ones on it (inspect), or none (list, as dockerd lists). */
export function networkJson(net: Network, containers: Container[] = []): Record<string, unknown> {
  const options: Record<string, string> =
    net.builtin === "bridge"
      ? { "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": bridgeName(net) }
      : net.driver === "bridge"
        ? { "com.docker.network.bridge.name": bridgeName(net) }
        : {};
  return {
    Name: net.name,
    Id: net.id,
    Created: dockerTime(net.createdAt),
    Scope: "local",
    Driver: net.driver,
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: net.builtin ? null : {}, Config: net.subnet ? [{ Subnet: net.subnet, Gateway: net.gateway }] : [] },
    Internal: net.internal,
    Attachable: net.attachable,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: Object.fromEntries(containers.filter(isAttached).map((c) => [c.id, endpointOf(c)])),
    Options: options,
    Labels: net.labels,
  };
}

/** The network `ref` names (id, name or id prefix). */
function networkOf(engine: ContainerEngine, ref: string): Network {
  return engine.network(ref);
}

/** Docker's label filter: `key` or `key=value`. */
function labelMatches(labels: Record<string, string>, v: string): boolean {
  const at = v.indexOf("=");
  const [k, val] = at < 0 ? [v, undefined] : [v.slice(0, at), v.slice(at + 1)];
  return k in labels && (val === undefined || labels[k] === val);
}

/** In use: a container on it runs (Docker's "active endpoints"). */
function inUse(engine: ContainerEngine, net: Network): boolean {
  return engine.networkContainers(net).some(isAttached);
}

const LIST_FILTERS: Record<string, (net: Network, value: string, engine: ContainerEngine) => boolean> = {
  name: (n, v) => n.name.includes(v),
  id: (n, v) => n.id.startsWith(v),
  driver: (n, v) => n.driver === v,
  label: (n, v) => labelMatches(n.labels, v),
  type: (n, v) => {
    if (v !== "custom" && v !== "builtin") throw new HyperlabError("INVALID_ARGUMENT", `invalid filter: 'type'='${v}' (use custom or builtin)`);
    return (v === "builtin") === !!n.builtin;
  },
  scope: (_n, v) => v === "local",
  dangling: (n, v, e) => {
    if (!["true", "false", "1", "0"].includes(v)) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter 'dangling=${v}' (use true or false)`);
    const dangling = !n.builtin && !inUse(e, n);
    return dangling === (v === "true" || v === "1");
  },
};

/** `GET /networks?filters=`: name, id, driver, label, type (custom|builtin), scope, dangling. */
async function list(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const filters = parseFilters(call.query.get("filters"));
  for (const k of filters.keys()) if (!(k in LIST_FILTERS)) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter '${k}'`);
  let found = engine.networks();
  for (const [k, values] of filters) found = found.filter((n) => values.some((v) => LIST_FILTERS[k]!(n, v, engine)));
  sendJson(call.res, 200, found.map((n) => networkJson(n)));
}

/** `GET /networks/{id}`: with its running containers. */
async function inspect(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const scope = call.query.get("scope");
  const net = networkOf(engine, call.params[0]!);
  // Every network here is local: asking for another scope finds none, as in dockerd.
  if (scope && scope !== "local") throw new HyperlabError("NETWORK_NOT_FOUND", `network ${call.params[0]} not found`);
  sendJson(call.res, 200, networkJson(net, engine.networkContainers(net)));
}

/** The Go types of the network create body's fields hyperlab reads. */
const NETWORK_TYPES: ReadonlyArray<readonly [string, GoType]> = [
  ["Name", "string"], ["Driver", "string"], ["Scope", "string"], ["Ingress", "bool"], ["ConfigOnly", "bool"], ["ConfigFrom", "object"], ["EnableIPv6", "bool"],
  ["EnableIPv4", "bool"], ["Options", "object"], ["IPAM", "object"], ["Internal", "bool"], ["Attachable", "bool"], ["Labels", "map[string]string"],
];

/**
 * `POST /networks/create`: a bridge network, its subnet and gateway given
 * (one IPv4 pool) or chosen. Anything that would change what it is and that
 * hyperlab does not do (another driver, IPv6, driver options, IP ranges,
 * swarm's ingress) is refused naming it.
 */
async function create(call: RouteCall): Promise<void> {
  const body = await jsonBody<NetworkCreateBody>(call.req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HyperlabError("INVALID_ARGUMENT", "the request body must be a JSON object (Docker's network config)");
  checkTypes(body as Record<string, unknown>, NETWORK_TYPES, "");
  if (body.IPAM) checkTypes(body.IPAM as Record<string, unknown>, [["Driver", "string"], ["Options", "object"], ["Config", "[]object"]], "IPAM.");
  for (const pool of body.IPAM?.Config ?? []) checkTypes(pool as Record<string, unknown>, [["Subnet", "string"], ["Gateway", "string"], ["IPRange", "string"], ["AuxiliaryAddresses", "object"]], "IPAM.Config.");
  if (typeof body.Name !== "string" || !body.Name) throw new HyperlabError("INVALID_ARGUMENT", "invalid name: a network needs a Name");
  const driver = body.Driver || "bridge";
  if (driver !== "bridge") {
    throw unsupported(`driver ${driver}`, "user networks use the bridge driver (a Linux bridge in the guest); drop -d/--driver or use -d bridge");
  }
  if (body.Scope && body.Scope !== "local") throw unsupported(`scope ${body.Scope}`, "networks are local to the guest; drop --scope");
  if (body.Ingress) throw unsupported("Ingress", "there is no swarm; drop --ingress");
  if (body.ConfigOnly || !empty(body.ConfigFrom?.Network)) throw unsupported("ConfigOnly/ConfigFrom", "drop --config-only and --config-from");
  if (body.EnableIPv6) throw unsupported("EnableIPv6", "the guest's kernel has no IPv6; drop --ipv6");
  if (body.EnableIPv4 === false) throw unsupported("EnableIPv4=false", "a bridge network here is IPv4; drop --ipv4=false");
  if (!empty(body.Options)) throw unsupported(`driver option ${Object.keys(body.Options!)[0]}`, "bridge networks take no options here; drop -o/--opt");
  const ipam = body.IPAM ?? {};
  if (ipam.Driver && ipam.Driver !== "default") throw unsupported(`IPAM driver ${ipam.Driver}`, "addresses come from hyperlab's own allocator; drop --ipam-driver");
  if (!empty(ipam.Options)) throw unsupported("IPAM options", "drop --ipam-opt");
  const pools = ipam.Config ?? [];
  if (pools.length > 1) throw unsupported("more than one IPAM pool", "a network has one IPv4 subnet; give one --subnet");
  const pool = pools[0] ?? {};
  if (pool.IPRange) throw unsupported("IPRange", "containers get addresses from the whole subnet; drop --ip-range");
  if (!empty(pool.AuxiliaryAddresses)) throw unsupported("AuxiliaryAddresses", "drop --aux-address");
  if (pool.Subnet?.includes(":")) throw unsupported("an IPv6 subnet", "the guest's kernel has no IPv6; give an IPv4 --subnet");
  const engine = call.api.engine();
  const net = await engine.createNetwork({
    name: body.Name,
    subnet: pool.Subnet || undefined,
    gateway: pool.Gateway || undefined,
    internal: body.Internal === true,
    attachable: body.Attachable === true,
    labels: body.Labels ?? undefined,
  });
  sendJson(call.res, 201, { Id: net.id, Warning: "" });
}

/** `DELETE /networks/{id}`: 403 while a container on it runs, as dockerd answers ("has active endpoints"). */
async function remove(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  await engine.removeNetwork(networkOf(engine, call.params[0]!).id);
  sendEmpty(call.res, 204);
}

/** Docker's `until` filter: a unix time (seconds) or a duration before now (10m, 24h). */
function untilMs(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v);
  if (d) return Date.now() - Number(d[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[d[2] as "ms" | "s" | "m" | "h"];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter 'until=${v}': give a unix time, a date or a duration like 24h`);
  return t;
}

/** `POST /networks/prune?filters=`: removes the user networks no running container is on (filters: until, label, label!). */
async function prune(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const filters = parseFilters(call.query.get("filters"));
  for (const k of filters.keys()) if (!["until", "label", "label!"].includes(k)) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter '${k}'`);
  const until = filters.get("until")?.map(untilMs);
  const deleted: string[] = [];
  for (const net of engine.networks()) {
    if (net.builtin || inUse(engine, net)) continue;
    if (until && !until.every((t) => net.createdAt.getTime() < t)) continue;
    if (!(filters.get("label") ?? []).every((v) => labelMatches(net.labels, v))) continue;
    if ((filters.get("label!") ?? []).some((v) => labelMatches(net.labels, v))) continue;
    await engine.removeNetwork(net.id);
    deleted.push(net.name);
  }
  sendJson(call.res, 200, { NetworksDeleted: deleted });
}

/** `POST /networks/{id}/connect` and `/disconnect`: refused (after naming a missing network or container as dockerd does). */
function refuseConnect(verb: "connect" | "disconnect") {
  return async (call: RouteCall): Promise<void> => {
    const engine = call.api.engine();
    const net = networkOf(engine, call.params[0]!);
    const body = await jsonBody<{ Container?: string }>(call.req);
    checkTypes(body, [["Container", "string"], ["EndpointConfig", "object"], ["Force", "bool"]], "");
    if (!body.Container) throw new HyperlabError("INVALID_ARGUMENT", "a container is required: name it in Container");
    const c = containerOf(engine, body.Container);
    throw new HyperlabError(
      "NOT_SUPPORTED",
      verb === "connect"
        ? `docker network connect is not supported by hyperlab: a container joins one network when it is created (${c.name} is on ${c.network}). Run a new container with --network ${net.name}`
        : `docker network disconnect is not supported by hyperlab: a container keeps the network it was created on (${c.name} is on ${c.network}). Remove it and run a new one with --network none or another network`,
      { field: verb },
    );
  };
}

const ID = "([^/]+)";

/** The network routes. */
export const networkRoutes: DockerRoute[] = [
  ["GET", /^\/networks$/, list],
  ["POST", /^\/networks\/create$/, create],
  ["POST", /^\/networks\/prune$/, prune],
  ["GET", new RegExp(`^/networks/${ID}$`), inspect],
  ["DELETE", new RegExp(`^/networks/${ID}$`), remove],
  ["POST", new RegExp(`^/networks/${ID}/connect$`), refuseConnect("connect")],
  ["POST", new RegExp(`^/networks/${ID}/disconnect$`), refuseConnect("disconnect")],
];
