// Docker's volumes: named directories that outlive the containers that
// mount them. Where a volume's files live depends on the host: in Node, a
// folder under the daemon's data root (node-volumes.ts), shared with every
// VM that mounts it over the VM's 9p device, so volumes survive containers,
// VMs and daemon restarts; in a page there are no host folders, so a volume
// is a folder in the VM's own guest (guestVolumes below), gone with the VM
// unless the VM is snapshotted.
import { HyperlabError } from "../errors.ts";
import type { AgentClient } from "../guest/agent.ts";

/** What keeping volumes in a guest asks of its agent (an engine's agent has it). */
export type VolumeAgent = Pick<AgentClient, "exec" | "readFile" | "writeFile" | "mkdir" | "remove">;

/** Docker's rule for a local volume's name. */
export const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** The label Docker 23+ puts on anonymous volumes (`-v /path`), which `volume prune` removes by default. */
export const ANONYMOUS_LABEL = "com.docker.volume.anonymous";

/** One volume as `volume inspect` shows it. */
export interface VolumeInfo {
  name: string;
  /** ISO time */
  createdAt: string;
  labels: Record<string, string>;
  /** where its files are: a host folder (Node) or a guest folder (a page's VM) */
  mountpoint: string;
  /** made for one container's `-v /path` (removed with it by `run --rm` and by `volume prune`) */
  anonymous: boolean;
}

/** What `volume create` takes. */
export interface VolumeOptions {
  /** default: 64 random hex digits */
  name?: string;
  labels?: Record<string, string>;
  anonymous?: boolean;
}

/** Where volumes are kept. Every method is legal any time. */
export interface VolumeStore {
  /** "host": folders of the host, shared into VMs over 9p; "guest": folders inside one VM's guest */
  readonly kind: "host" | "guest";
  list(): Promise<VolumeInfo[]>;
  /** the volume, or undefined */
  find(name: string): Promise<VolumeInfo | undefined>;
  /** makes the volume, or returns it when it exists (Docker's `volume create` is idempotent) */
  create(opts?: VolumeOptions): Promise<VolumeInfo>;
  /** removes the volume and its files: VOLUME_NOT_FOUND when there is none (the caller checks it is unused) */
  remove(name: string): Promise<void>;
  /** bytes its files take (for `system df`) */
  usage(name: string): Promise<number>;
}

/** A new volume's name: 64 random hex digits, as Docker's. */
export function randomVolumeName(): string {
  const b = new Uint8Array(32);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Refuses a name Docker would refuse, in Docker's words and with what to do. */
export function checkVolumeName(name: string): void {
  if (!VOLUME_NAME.test(name)) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      { name },
    );
  }
}

/** VOLUME_NOT_FOUND in Docker's words. */
export function noSuchVolume(name: string): HyperlabError {
  return new HyperlabError("VOLUME_NOT_FOUND", `get ${name}: no such volume`, { name });
}

/** The labels a volume shows: its own, and Docker's anonymous label on an anonymous one. */
export function volumeLabels(v: { labels?: Record<string, string>; anonymous?: boolean }): Record<string, string> {
  return { ...v.labels, ...(v.anonymous ? { [ANONYMOUS_LABEL]: "" } : {}) };
}

/** Where a page's VM keeps its volumes, in its guest. */
export const GUEST_VOLUMES_DIR = "/var/lib/hyperlab/volumes";

/**
 * Volumes kept inside one VM's guest (a page has no host folders): each is
 * GUEST_VOLUMES_DIR/NAME with `_data/` and `volume.json`. They live as long
 * as the guest's memory: a snapshot of the VM keeps them, a new VM has none.
 */
export function guestVolumes(agent: VolumeAgent): VolumeStore {
  const dir = (name: string) => `${GUEST_VOLUMES_DIR}/${name}`;
  const read = async (name: string): Promise<VolumeInfo | undefined> => {
    const bytes = await agent.readFile(`${dir(name)}/volume.json`).catch(() => undefined);
    if (!bytes) return undefined;
    const meta = JSON.parse(new TextDecoder().decode(bytes)) as { createdAt: string; labels?: Record<string, string>; anonymous?: boolean };
    return { name, createdAt: meta.createdAt, labels: meta.labels ?? {}, anonymous: meta.anonymous === true, mountpoint: `${dir(name)}/_data` };
  };
  const names = async (): Promise<string[]> => {
    const r = await agent.exec(["/bin/ls", "-1", GUEST_VOLUMES_DIR]);
    return r.exitCode === 0 ? r.stdout.split("\n").filter((n) => VOLUME_NAME.test(n)) : [];
  };
  return {
    kind: "guest",
    list: async () => (await Promise.all((await names()).map(read))).filter((v): v is VolumeInfo => !!v),
    find: (name) => (VOLUME_NAME.test(name) ? read(name) : Promise.resolve(undefined)),
    async create(opts = {}) {
      const name = opts.name ?? randomVolumeName();
      checkVolumeName(name);
      const found = await read(name);
      if (found) return found;
      await agent.mkdir(`${dir(name)}/_data`);
      const meta = { createdAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"), labels: opts.labels ?? {}, anonymous: opts.anonymous === true };
      await agent.writeFile(`${dir(name)}/volume.json`, JSON.stringify(meta));
      return (await read(name))!;
    },
    async remove(name) {
      if (!(await read(name))) throw noSuchVolume(name);
      await agent.remove(dir(name), { recursive: true });
    },
    async usage(name) {
      const r = await agent.exec(["/bin/du", "-sk", `${dir(name)}/_data`]);
      return r.exitCode === 0 ? Number(r.stdout.split(/\s/)[0]) * 1024 : 0;
    },
  };
}
