// Volume endpoints of the Docker Engine API: list, create, inspect, remove
// (409 naming the containers that use it), prune. Volumes are the daemon's
// (src/containers/volumes.ts): in Node one store for every VM, folders of
// the data root; in a page, folders in Docker's VM's guest.
import type { VolumeInfo, VolumeStore } from "../../containers/volumes.ts";
import { ANONYMOUS_LABEL, noSuchVolume, volumeLabels } from "../../containers/volumes.ts";
import { HyperlabError } from "../../errors.ts";
import { checkTypes } from "./body-types.ts";
import { type DockerRoute, type RouteCall, compareVersions, flag, jsonBody, sendEmpty, sendJson } from "./api.ts";
import { parseFilters } from "./filters.ts";

/** Docker's volume-create body. */
interface VolumeCreateBody {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  ClusterVolumeSpec?: unknown;
  [key: string]: unknown;
}

function storeOf(call: RouteCall): VolumeStore {
  const { containers, vm } = call.api.context;
  return containers.volumes(vm);
}

/** One volume in Docker's JSON (`usage`: with UsageData, as `system df` shows it). */
export function volumeJson(v: VolumeInfo, usage?: { size: number; refCount: number }): Record<string, unknown> {
  const labels = volumeLabels(v);
  return {
    CreatedAt: v.createdAt,
    Driver: "local",
    Labels: Object.keys(labels).length ? labels : null,
    Mountpoint: v.mountpoint,
    Name: v.name,
    Options: null,
    Scope: "local",
    ...(usage ? { UsageData: { Size: usage.size, RefCount: usage.refCount } } : {}),
  };
}

/** The ids of the containers (any VM) that mount volume `name`. */
function users(call: RouteCall, name: string): string[] {
  return call.api.context.containers.volumeUsers(name).map(({ container }) => container.id);
}

/** Whether `v` passes `filters` (name, label, dangling, driver; `all` is prune's). */
function matches(call: RouteCall, v: VolumeInfo, filters: Map<string, string[]>): boolean {
  const labels = volumeLabels(v);
  for (const [key, values] of filters) {
    const ok = values.some((want) => {
      switch (key) {
        case "name":
          return v.name.includes(want);
        case "driver":
          return want === "local";
        case "dangling":
          return (users(call, v.name).length === 0) === (want === "true" || want === "1");
        case "label": {
          const [k, ...rest] = want.split("=");
          return k! in labels && (rest.length === 0 || labels[k!] === rest.join("="));
        }
        case "label!": {
          const [k, ...rest] = want.split("=");
          return !(k! in labels && (rest.length === 0 || labels[k!] === rest.join("=")));
        }
        case "all":
          return true;
        default:
          return false;
      }
    });
    if (!ok) return false;
  }
  return true;
}

/** `GET /volumes?filters=`. */
async function list(call: RouteCall): Promise<void> {
  const filters = parseFilters(call.query.get("filters"), ["name", "label", "dangling", "driver"]);
  const volumes = (await storeOf(call).list()).filter((v) => matches(call, v, filters));
  sendJson(call.res, 200, { Volumes: volumes.map((v) => volumeJson(v)), Warnings: null });
}

/** `POST /volumes/create`: makes it, or answers the one of that name (as dockerd does). */
async function create(call: RouteCall): Promise<void> {
  const body = await jsonBody<VolumeCreateBody>(call.req);
  checkTypes(body as Record<string, unknown>, [["Name", "string"], ["Driver", "string"], ["DriverOpts", "map[string]string"], ["Labels", "map[string]string"]], "");
  if (body.Driver && body.Driver !== "local") throw new HyperlabError("NOT_SUPPORTED", `volume driver '${body.Driver}' is not supported by hyperlab: volumes are local (drop --driver)`, { field: "Driver" });
  if (body.DriverOpts && Object.keys(body.DriverOpts).length) throw new HyperlabError("NOT_SUPPORTED", "DriverOpts are not supported by hyperlab: a volume is a plain folder (drop --opt)", { field: "DriverOpts" });
  if (body.ClusterVolumeSpec) throw new HyperlabError("NOT_SUPPORTED", "cluster volumes are not supported by hyperlab", { field: "ClusterVolumeSpec" });
  const volume = await storeOf(call).create({ name: body.Name || undefined, labels: body.Labels ?? undefined });
  sendJson(call.res, 201, volumeJson(volume));
}

/** `GET /volumes/{name}`. */
async function inspect(call: RouteCall): Promise<void> {
  const name = call.params[0]!;
  const volume = await storeOf(call).find(name);
  if (!volume) throw noSuchVolume(name);
  sendJson(call.res, 200, volumeJson(volume));
}

/** `DELETE /volumes/{name}?force`: 409 while containers use it (force does not override that, as with dockerd). */
async function remove(call: RouteCall): Promise<void> {
  const name = call.params[0]!;
  const store = storeOf(call);
  if (!(await store.find(name))) {
    if (flag(call.query, "force")) return sendEmpty(call.res, 204);
    throw noSuchVolume(name);
  }
  const using = users(call, name);
  if (using.length) throw new HyperlabError("VOLUME_IN_USE", `remove ${name}: volume is in use - [${using.join(", ")}]`, { name, containers: using });
  await store.remove(name);
  sendEmpty(call.res, 204);
}

/**
 * `POST /volumes/prune?filters=`: removes the volumes no container uses.
 * From API 1.42 on, only anonymous ones unless the filter `all` is true (dockerd's rule).
 */
async function prune(call: RouteCall): Promise<void> {
  const filters = parseFilters(call.query.get("filters"), ["label", "label!", "all"]);
  const all = (filters.get("all") ?? []).some((v) => v === "true" || v === "1");
  filters.delete("all");
  const store = storeOf(call);
  const anonymousOnly = compareVersions(call.version, "1.42") >= 0 && !all;
  const deleted: string[] = [];
  let reclaimed = 0;
  for (const v of await store.list()) {
    if (anonymousOnly && !(ANONYMOUS_LABEL in volumeLabels(v))) continue;
    if (!matches(call, v, filters) || users(call, v.name).length) continue;
    reclaimed += await store.usage(v.name).catch(() => 0);
    await store.remove(v.name);
    deleted.push(v.name);
  }
  sendJson(call.res, 200, { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
}

/** Volumes with their sizes and how many containers use each, for `system df`. */
export async function volumeUsage(call: RouteCall): Promise<Array<Record<string, unknown>>> {
  const store = storeOf(call);
  const volumes = await store.list();
  return Promise.all(volumes.map(async (v) => volumeJson(v, { size: await store.usage(v.name).catch(() => -1), refCount: users(call, v.name).length })));
}

const NAME = "([^/]+)";

/** The volume routes. */
export const volumeRoutes: DockerRoute[] = [
  ["GET", /^\/volumes$/, list],
  ["POST", /^\/volumes\/create$/, create],
  ["POST", /^\/volumes\/prune$/, prune],
  ["GET", new RegExp(`^/volumes/${NAME}$`), inspect],
  ["DELETE", new RegExp(`^/volumes/${NAME}$`), remove],
];
