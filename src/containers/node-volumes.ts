// Volumes in Node: folders under the daemon's data root, as dockerd keeps
// them under /var/lib/docker/volumes: <data root>/volumes/NAME/_data holds
// the files and volume.json what `volume inspect` shows. A VM reaches a
// volume over its 9p device (the engine shares _data with it), so one
// volume serves several containers in several VMs at once and outlives
// them all, and the daemon's restarts too.
import { lstat, mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type VolumeInfo, type VolumeStore, VOLUME_NAME, checkVolumeName, noSuchVolume, randomVolumeName } from "./volumes.ts";

interface VolumeMeta {
  createdAt: string;
  labels?: Record<string, string>;
  anonymous?: boolean;
}

/** The volumes of the data root `dataRoot` (its `volumes/` folder is made on first create). */
export function nodeVolumes(dataRoot: string): VolumeStore {
  const base = join(dataRoot, "volumes");
  const read = async (name: string): Promise<VolumeInfo | undefined> => {
    if (!VOLUME_NAME.test(name)) return undefined;
    let meta: VolumeMeta;
    try {
      meta = JSON.parse(await readFile(join(base, name, "volume.json"), "utf8")) as VolumeMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    return { name, createdAt: meta.createdAt, labels: meta.labels ?? {}, anonymous: meta.anonymous === true, mountpoint: join(base, name, "_data") };
  };
  return {
    kind: "host",
    async list() {
      const names = await readdir(base).catch(() => [] as string[]);
      return (await Promise.all(names.map(read))).filter((v): v is VolumeInfo => !!v).sort((a, b) => a.name.localeCompare(b.name));
    },
    find: read,
    async create(opts = {}) {
      const name = opts.name ?? randomVolumeName();
      checkVolumeName(name);
      const found = await read(name);
      if (found) return found;
      await mkdir(join(base, name, "_data"), { recursive: true, mode: 0o755 });
      const meta: VolumeMeta = { createdAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"), labels: opts.labels ?? {}, anonymous: opts.anonymous === true };
      // Written whole or not at all: a volume shows only once its record is there.
      const tmp = join(base, name, `.volume.json.${process.pid}.tmp`);
      await writeFile(tmp, JSON.stringify(meta, null, 1));
      await rename(tmp, join(base, name, "volume.json"));
      return (await read(name))!;
    },
    async remove(name) {
      if (!(await read(name))) throw noSuchVolume(name);
      // The record goes first: a removal cut short leaves files, never a volume without them.
      await rm(join(base, name, "volume.json"), { force: true });
      await rm(join(base, name), { recursive: true, force: true });
    },
    async usage(name) {
      let total = 0;
      const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
          const path = join(dir, entry.name);
          if (entry.isDirectory()) await walk(path);
          else total += (await lstat(path).catch(() => ({ size: 0 }))).size;
        }
      };
      await walk(join(base, name, "_data"));
      return total;
    },
  };
}
