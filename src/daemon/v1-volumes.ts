// hyperlab's /v1 volume routes (`hyperlab volume …`): list, create,
// inspect, remove (refused while containers use it), prune. Volumes are
// the daemon's, one store for every VM (src/containers/volumes.ts).
import { DEFAULT_VM, type VmContainers } from "../containers/vm-containers.ts";
import { type VolumeInfo, noSuchVolume } from "../containers/volumes.ts";
import { HyperlabError } from "../errors.ts";
import { type Route, body, send } from "./http.ts";

/** A volume as /v1 answers it. */
export interface VolumeJson {
  name: string;
  createdAt: string;
  labels: Record<string, string>;
  /** where its files are (a host folder in Node) */
  mountpoint: string;
  anonymous: boolean;
  /** the containers that mount it, in any VM and any state */
  usedBy: Array<{ vm: string; id: string; name: string }>;
  /** bytes its files take (inspect and `ls --size` only) */
  size?: number;
}

/** The /v1/volumes routes. */
export function volumeRoutes(containers: VmContainers): Route[] {
  const store = () => containers.volumes(DEFAULT_VM);
  const json = (v: VolumeInfo, size?: number): VolumeJson => ({
    ...v,
    usedBy: containers.volumeUsers(v.name).map(({ vm, container }) => ({ vm: vm.name, id: container.id, name: container.name })),
    ...(size !== undefined ? { size } : {}),
  });
  const named = async (m: RegExpMatchArray) => {
    const name = decodeURIComponent(m[1]!);
    const v = await store().find(name);
    if (!v) throw noSuchVolume(name);
    return v;
  };
  return [
    [
      "GET",
      /^\/volumes$/,
      async (_m, _r, res, q) => {
        const sized = q.get("size") === "1";
        const list = await store().list();
        send(res, 200, await Promise.all(list.map(async (v) => json(v, sized ? await store().usage(v.name) : undefined))));
      },
    ],
    [
      "POST",
      /^\/volumes$/,
      async (_m, req, res) => {
        const o = (await body(req)) as { name?: string; labels?: Record<string, string> };
        send(res, 201, json(await store().create({ name: o.name || undefined, labels: o.labels })));
      },
    ],
    [
      "POST",
      /^\/volumes\/prune$/,
      async (_m, _r, res, q) => {
        // Like docker volume prune: anonymous volumes no container uses; with all=1, every unused one.
        const all = q.get("all") === "1";
        const removed: string[] = [];
        let reclaimed = 0;
        for (const v of await store().list()) {
          if ((!all && !v.anonymous) || containers.volumeUsers(v.name).length) continue;
          reclaimed += await store().usage(v.name).catch(() => 0);
          await store().remove(v.name);
          removed.push(v.name);
        }
        send(res, 200, { removed, reclaimed });
      },
    ],
    ["GET", /^\/volumes\/([^/]+)$/, async (m, _r, res) => send(res, 200, json(await named(m), await store().usage(decodeURIComponent(m[1]!))))],
    [
      "DELETE",
      /^\/volumes\/([^/]+)$/,
      async (m, _r, res) => {
        const v = await named(m);
        const users = containers.volumeUsers(v.name);
        if (users.length) {
          const names = users.map(({ vm, container }) => `${container.name} (${container.id.slice(0, 12)}, VM ${vm.name})`);
          throw new HyperlabError("VOLUME_IN_USE", `cannot remove volume ${v.name}: it is in use by ${names.join(", ")}; remove ${users.length > 1 ? "those containers" : "that container"} first`, { name: v.name });
        }
        await store().remove(v.name);
        send(res, 204);
      },
    ],
  ];
}
