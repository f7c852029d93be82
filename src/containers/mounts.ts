// A container's mounts: Docker's `-v` and `--mount` (and the API's Binds,
// Mounts and Volumes) read into MountRequests, then made real in the guest.
// A host directory (bind) reaches the guest over the VM's 9p device: the VM
// shares it as one entry of its 9p root, which the guest has mounted once at
// HOST_MOUNT, and the container's bundle bind-mounts that entry (read-only
// for `:ro`, which the 9p server enforces too). A volume is a folder of the
// volume store: a host folder shared the same way (Node), or a folder in the
// guest (a page). Parsing refuses a malformed spec naming the part that is
// wrong and showing the forms that work.
import { HyperlabError } from "../errors.ts";
import type { FileShare } from "../hypervisor/worker-protocol.ts";
import type { AgentClient } from "../guest/agent.ts";
import { type VolumeStore, checkVolumeName } from "./volumes.ts";

/** A mount asked for, before it is made. */
export type MountRequest =
  | {
      type: "bind";
      /** the host directory, absolute */
      source: string;
      target: string;
      readOnly?: boolean;
      /** make a missing source directory (docker -v does, --mount type=bind does not) */
      createSource?: boolean;
      /** Docker's mode string as given (-v's third part), for inspect */
      mode?: string;
      /** the source is a path of the VM's guest, not of the host (the guest's own docker asked) */
      inGuest?: boolean;
    }
  | {
      type: "volume";
      /** the volume's name; none: a new anonymous volume */
      source?: string;
      target: string;
      readOnly?: boolean;
      mode?: string;
      /** labels for a volume this mount creates (--mount volume-label=) */
      labels?: Record<string, string>;
    };

/** A container's mount as its record keeps it (and Docker's inspect shows it). */
export interface ContainerMount {
  type: "bind" | "volume";
  /** bind: the host directory as resolved; volume: the volume's name */
  source: string;
  destination: string;
  readOnly: boolean;
  /** Docker's Mode: the -v options as given ("ro", "z", …) */
  mode: string;
  /** where the guest has the files (below HOST_MOUNT, or a volume's guest folder) */
  guestPath: string;
  /** the VM's 9p share it came through (none for a volume kept in the guest) */
  share?: string;
  /** a volume's folder (Docker's Source for a volume) */
  hostPath?: string;
  /** an anonymous volume, made for this container (`-v /path`) */
  anonymous?: boolean;
}

/** Where the guest mounts its 9p device (the VM's shared host directories, one entry each). */
export const HOST_MOUNT = "/run/hyperlab/host";
/**
 * The guest's 9p mount options: 9P2000.L over virtio; no cache, so a file
 * changed on the host is seen by the next read in the guest and the other
 * way round; msize 512000, the most Linux's virtio transport takes (125
 * pages), so a 1 MiB read is two requests (see bench/io.ts); the guest's
 * kernel checks permissions itself (access=client) from the modes the host reports.
 */
export const HOST_MOUNT_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000,cache=none,access=client";
/** The tag of the machine's 9p device (hardware/machine.ts P9_MOUNT_TAG). */
const MOUNT_TAG = "host9p";

const VOLUME_FORMS = "use -v NAME:/path[:ro] (a volume), -v /host/dir:/path[:ro] (a host directory) or -v /path (a new anonymous volume)";
const MOUNT_FORMS =
  "use --mount type=volume,source=NAME,target=/path[,readonly] or --mount type=bind,source=/host/dir,target=/path[,readonly]";
/** -v's options Docker accepts (propagation, SELinux labels and consistency are accepted and have no effect here). */
const VOLUME_MODES = new Set(["ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate", "consistent", "cached", "delegated"]);

function invalid(message: string, detail?: Record<string, unknown>): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", message, detail);
}

function checkTarget(target: string, what: string): void {
  if (!target.startsWith("/")) throw invalid(`${what}: invalid mount path: '${target}' mount path must be absolute`, { part: "target" });
  if (target.replace(/\/+$/, "") === "") throw invalid(`${what}: invalid specification: destination can't be '/'`, { part: "target" });
}

/**
 * Docker's `-v` (and the API's Binds entries): `NAME:/path[:opts]`,
 * `/host/dir:/path[:opts]` or `/path`, opts a comma list (ro, rw, z, …).
 * `cwd`: relative host paths (`./dir`, `.`) are resolved against it, as the
 * docker CLI does; without it they are refused.
 */
export function parseVolumeSpec(spec: string, cwd?: string): MountRequest {
  const parts = spec.split(":");
  if (parts.some((p) => p === "")) throw invalid(`invalid spec: ${spec}: empty section between colons; ${VOLUME_FORMS}`, { part: "spec" });
  let source: string | undefined;
  let target: string;
  let mode = "";
  if (parts.length === 1) target = parts[0]!;
  else if (parts.length === 2 && VOLUME_MODES.has(parts[1]!.split(",")[0]!) && !parts[1]!.startsWith("/")) [target, mode] = parts as [string, string];
  else if (parts.length === 2) [source, target] = parts as [string, string];
  else if (parts.length === 3) [source, target, mode] = parts as [string, string, string];
  else throw invalid(`invalid volume specification: '${spec}': it has ${parts.length} parts separated by ':', at most 3 go; ${VOLUME_FORMS}`, { part: "spec" });
  const modes = mode ? mode.split(",") : [];
  const bad = modes.find((m) => !VOLUME_MODES.has(m));
  if (bad !== undefined || (modes.includes("ro") && modes.includes("rw"))) {
    throw invalid(`invalid mode: ${mode} (in '${spec}'): the options after the second ':' are ro or rw, with z, Z or nocopy; ${VOLUME_FORMS}`, { part: "mode" });
  }
  const readOnly = modes.includes("ro");
  if (source !== undefined && cwd !== undefined && (source === "." || source === ".." || source.startsWith("./") || source.startsWith("../"))) {
    source = `${cwd.replace(/\/+$/, "")}/${source}`;
  }
  const kind = source?.startsWith("/") ? "bind" : "volume";
  checkTarget(target, `invalid volume specification: '${spec}': invalid mount config for type "${kind}"`);
  if (source === undefined) return { type: "volume", target, readOnly, mode };
  if (kind === "bind") return { type: "bind", source: normalize(source), target, readOnly, createSource: true, mode };
  checkVolumeName(source);
  return { type: "volume", source, target, readOnly, mode };
}

/** `--mount`'s keys and the names Docker accepts for them. */
const MOUNT_KEYS: Record<string, string> = {
  type: "type",
  source: "source",
  src: "source",
  target: "target",
  destination: "target",
  dst: "target",
  readonly: "readonly",
  ro: "readonly",
  "volume-label": "volume-label",
  "volume-nocopy": "volume-nocopy",
  "volume-driver": "volume-driver",
  "bind-propagation": "bind-propagation",
  "bind-nonrecursive": "bind-nonrecursive",
  consistency: "consistency",
};

/** Docker's `--mount` (comma-separated key=value): type=volume|bind, source, target, readonly. */
export function parseMountSpec(spec: string): MountRequest {
  const fail = (why: string, part: string) => invalid(`invalid argument "${spec}" for "--mount" flag: ${why}; ${MOUNT_FORMS}`, { part });
  const fields: Record<string, string> = {};
  const labels: Record<string, string> = {};
  for (const item of spec.split(",")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    const key = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : item.slice(eq + 1);
    const name = MOUNT_KEYS[key];
    if (!name) throw fail(`unexpected key '${key}' in '${item}'`, key);
    if (name === "readonly" || name === "volume-nocopy" || name === "bind-nonrecursive") {
      if (value !== undefined && !["1", "true", "0", "false"].includes(value.toLowerCase())) throw fail(`invalid value for ${key}: ${value} (true or false)`, key);
      fields[name] = value === undefined || ["1", "true"].includes(value.toLowerCase()) ? "true" : "false";
      continue;
    }
    if (value === undefined) throw fail(`invalid field '${item}' must be a key=value pair`, key);
    if (name === "volume-label") {
      const [k, ...v] = value.split("=");
      labels[k!] = v.join("=");
    } else fields[name] = value;
  }
  const type = fields.type ?? "volume";
  if (type !== "bind" && type !== "volume") {
    if (type === "tmpfs") throw new HyperlabError("NOT_SUPPORTED", `--mount type=tmpfs is not supported by hyperlab yet; ${MOUNT_FORMS}`, { part: "type" });
    throw fail(`mount type unknown: '${type}'`, "type");
  }
  if (!fields.target) throw fail("target is required", "target");
  if (fields["volume-driver"] && fields["volume-driver"] !== "local") throw new HyperlabError("NOT_SUPPORTED", `volume driver '${fields["volume-driver"]}' is not supported: volumes are local`, { part: "volume-driver" });
  checkTarget(fields.target, `invalid mount config for type "${type}"`);
  const readOnly = fields.readonly === "true";
  if (type === "bind") {
    const source = fields.source;
    if (!source) throw invalid(`invalid mount config for type "bind": field Source must not be empty; ${MOUNT_FORMS}`, { part: "source" });
    if (!source.startsWith("/")) throw invalid(`invalid mount config for type "bind": invalid mount path: '${source}' mount path must be absolute; ${MOUNT_FORMS}`, { part: "source" });
    return { type: "bind", source: normalize(source), target: fields.target, readOnly, createSource: false, mode: "" };
  }
  if (fields.source) checkVolumeName(fields.source);
  return { type: "volume", source: fields.source || undefined, target: fields.target, readOnly, mode: "z", labels: Object.keys(labels).length ? labels : undefined };
}

/** One entry of the Docker API's HostConfig.Mounts. */
export interface DockerMountSpec {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; DriverConfig?: { Name?: string } | null } | null;
  BindOptions?: { CreateMountpoint?: boolean } | null;
  [key: string]: unknown;
}

/** The Docker API's HostConfig.Mounts entry as a MountRequest (dockerd's words for what is wrong). */
export function mountOfDocker(m: DockerMountSpec): MountRequest {
  const type = m.Type ?? "";
  if (type !== "bind" && type !== "volume") {
    if (["tmpfs", "npipe", "cluster"].includes(type)) throw new HyperlabError("NOT_SUPPORTED", `mounts of type "${type}" are not supported by hyperlab; use a volume or a bind mount`, { field: "HostConfig.Mounts" });
    throw invalid(`invalid mount config for type "${type}": mount type unknown`);
  }
  const target = m.Target ?? "";
  if (!target) throw invalid(`invalid mount config for type "${type}": field Target must not be empty`);
  checkTarget(target, `invalid mount config for type "${type}"`);
  if (type === "bind") {
    const source = m.Source ?? "";
    if (!source) throw invalid(`invalid mount config for type "bind": field Source must not be empty`);
    if (!source.startsWith("/")) throw invalid(`invalid mount config for type "bind": invalid mount path: '${source}' mount path must be absolute`);
    return { type: "bind", source: normalize(source), target, readOnly: m.ReadOnly === true, createSource: m.BindOptions?.CreateMountpoint === true, mode: "" };
  }
  const driver = m.VolumeOptions?.DriverConfig?.Name;
  if (driver && driver !== "local") throw new HyperlabError("NOT_SUPPORTED", `volume driver '${driver}' is not supported: volumes are local`, { field: "HostConfig.Mounts" });
  if (m.Source) checkVolumeName(m.Source);
  const labels = m.VolumeOptions?.Labels ?? undefined;
  return { type: "volume", source: m.Source || undefined, target, readOnly: m.ReadOnly === true, mode: "z", labels: labels && Object.keys(labels).length ? labels : undefined };
}

/** `/a//b/./c/` as `/a/b/c` (no `..` resolution: a host path keeps its meaning). */
function normalize(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return `/${parts.join("/")}`;
}

/** How an engine reaches host directories and volumes for its containers' mounts. */
export interface MountHostOptions {
  /** where volumes are kept (default: none, `-v NAME:` is refused) */
  volumes?: VolumeStore;
  /** shares a host directory with this engine's VM (absent, or NOT_SUPPORTED: no host directories, as in a page) */
  share?: (share: FileShare) => Promise<string>;
  /** stops sharing one */
  unshare?: (name: string) => Promise<void>;
}

async function shortHash(text: string): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Makes a container's mounts real in one engine's guest, and undoes them. */
export class MountHost {
  private hostMounted: Promise<void> | undefined;

  constructor(
    private readonly agent: Pick<AgentClient, "mkdir" | "mount" | "umount" | "exec" | "stat">,
    private readonly opts: MountHostOptions,
  ) {}

  /** The volume store, if any. */
  get volumes(): VolumeStore | undefined {
    return this.opts.volumes;
  }

  /**
   * Makes `requests` ready for a container: binds shared into the guest,
   * volumes made (a named one on first use, an anonymous one always) and
   * shared. A failure undoes nothing it did not make: anonymous volumes
   * made here are removed again.
   */
  async resolve(requests: readonly MountRequest[]): Promise<ContainerMount[]> {
    const seen = new Set<string>();
    for (const r of requests) {
      const target = r.target.replace(/\/+$/, "");
      if (seen.has(target)) throw invalid(`Duplicate mount point: ${target}`, { part: "target" });
      seen.add(target);
    }
    const made: ContainerMount[] = [];
    try {
      for (const r of requests) made.push(await this.resolveOne(r));
      return made;
    } catch (err) {
      for (const m of made) if (m.anonymous) await this.opts.volumes?.remove(m.source).catch(() => {});
      throw err;
    }
  }

  private async resolveOne(r: MountRequest): Promise<ContainerMount> {
    const destination = r.target.replace(/\/+$/, "");
    if (r.type === "bind" && r.inGuest) {
      // A directory of the guest itself: bind-mounted as it is, nothing of the host is shared.
      if (r.createSource) await this.agent.mkdir(r.source);
      else {
        const st = await this.agent.stat(r.source).catch(() => undefined);
        if (!st) throw invalid(`invalid mount config for type "bind": bind source path does not exist: ${r.source}`, { part: "source", path: r.source });
      }
      return { type: "bind", source: r.source, destination, readOnly: r.readOnly === true, mode: r.mode ?? "", guestPath: r.source };
    }
    if (r.type === "bind") {
      if (!this.opts.share) throw noHostDirectories(r.source);
      const share = `b-${await shortHash(r.source)}${r.readOnly ? "-ro" : ""}`;
      let real: string;
      try {
        real = await this.opts.share({ name: share, hostPath: r.source, readOnly: r.readOnly === true, create: r.createSource === true });
      } catch (err) {
        if (err instanceof HyperlabError && err.code === "NOT_SUPPORTED") throw noHostDirectories(r.source);
        if (err instanceof HyperlabError && err.detail?.reason === "missing") {
          throw invalid(`invalid mount config for type "bind": bind source path does not exist: ${r.source}`, { part: "source", path: r.source });
        }
        if (err instanceof HyperlabError && err.detail?.reason === "not-directory") {
          throw new HyperlabError("NOT_SUPPORTED", `cannot bind-mount ${r.source}: only directories can be shared with a container here (it is a file); bind its directory instead`, { part: "source", path: r.source });
        }
        throw err;
      }
      await this.mountHost();
      return { type: "bind", source: real, destination, readOnly: r.readOnly === true, mode: r.mode ?? "", guestPath: `${HOST_MOUNT}/${share}`, share };
    }
    const volumes = this.opts.volumes;
    if (!volumes) throw new HyperlabError("NOT_SUPPORTED", "this engine keeps no volumes; run the container through the hyperlab daemon or the page");
    const existing = r.source ? await volumes.find(r.source) : undefined;
    const volume = existing ?? (await volumes.create({ name: r.source, labels: r.labels, anonymous: r.source === undefined }));
    const base = { type: "volume" as const, source: volume.name, destination, readOnly: r.readOnly === true, mode: r.mode ?? "", anonymous: volume.anonymous || undefined, hostPath: volume.mountpoint };
    try {
      if (volumes.kind === "guest") return { ...base, guestPath: volume.mountpoint };
      if (!this.opts.share) throw noHostDirectories(volume.mountpoint);
      const share = `v-${volume.name}`;
      await this.opts.share({ name: share, hostPath: volume.mountpoint, readOnly: false });
      await this.mountHost();
      return { ...base, guestPath: `${HOST_MOUNT}/${share}`, share };
    } catch (err) {
      if (!existing && r.source === undefined) await volumes.remove(volume.name).catch(() => {});
      throw err;
    }
  }

  /**
   * Undoes a removed container's mounts: shares no other container of the
   * engine uses (`inUse`) stop, and its anonymous volumes go when
   * `removeAnonymous` (docker run --rm, docker rm -v).
   */
  async release(mounts: readonly ContainerMount[], inUse: (share: string) => boolean, removeAnonymous: boolean): Promise<void> {
    for (const m of mounts) {
      if (m.share && !inUse(m.share)) await this.opts.unshare?.(m.share).catch(() => {});
      if (m.anonymous && removeAnonymous) await this.opts.volumes?.remove(m.source).catch(() => {});
    }
  }

  /**
   * Docker's copy-up: a volume that is empty when a container mounts it gets
   * what the image has at the mount's path (`rootfs`: the container's root,
   * mounted), unless its mode says nocopy. Binds are never filled.
   */
  async populate(mounts: readonly ContainerMount[], rootfs: string): Promise<void> {
    for (const m of mounts) {
      if (m.type !== "volume" || m.mode.split(",").includes("nocopy")) continue;
      const from = `${rootfs}${m.destination}`;
      const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
      const script = `[ -d ${q(from)} ] && [ ! -L ${q(from)} ] && [ -z "$(ls -A ${q(m.guestPath)})" ] && [ -n "$(ls -A ${q(from)})" ] && cp -a ${q(`${from}/.`)} ${q(m.guestPath)}/ || true`;
      const r = await this.agent.exec(["/bin/sh", "-c", script]);
      if (r.exitCode !== 0) throw new HyperlabError("RUNTIME_ERROR", `could not copy the image's ${m.destination} into volume ${m.source}: ${r.stderr.trim()}`);
    }
  }

  /**
   * Mounts the VM's 9p device at HOST_MOUNT, once per engine. A guest that
   * has it mounted already came from a snapshot: that mount's files belong
   * to the server of the machine the snapshot was taken of, so it is
   * detached and mounted anew (the device takes one mount at a time: EBUSY
   * while containers restored with binds still hold the old one).
   */
  private mountHost(): Promise<void> {
    const mount = () => this.agent.mount({ target: HOST_MOUNT, source: MOUNT_TAG, fstype: "9p", options: HOST_MOUNT_OPTIONS });
    this.hostMounted ??= (async () => {
      await this.agent.mkdir(HOST_MOUNT).catch(async (err: unknown) => {
        // A mount restored from a snapshot whose 9p server is gone (another process: the daemon restarted)
        // answers even a stat with EBADF: detach it first.
        if (!["EBADF", "EIO", "ENOTCONN"].includes((err as HyperlabError)?.detail?.errno as string)) throw err;
        await this.agent.umount(HOST_MOUNT, { detach: true });
        await this.agent.mkdir(HOST_MOUNT);
      });
      await mount().catch(async (err: unknown) => {
        if ((err as HyperlabError)?.detail?.errno !== "EBUSY") throw err;
        await this.agent.umount(HOST_MOUNT, { detach: true });
        await mount().catch((again: unknown) => {
          if ((again as HyperlabError)?.detail?.errno !== "EBUSY") throw again;
          throw new HyperlabError(
            "VM_INVALID_STATE",
            "this VM was restored from a snapshot whose containers still hold its host directories; remove those containers, then mount again",
          );
        });
      });
    })();
    this.hostMounted.catch(() => (this.hostMounted = undefined));
    return this.hostMounted;
  }
}

/** The refusal of a bind where there are no host directories (a page). */
function noHostDirectories(path: string): HyperlabError {
  return new HyperlabError(
    "NOT_SUPPORTED",
    `cannot bind-mount ${path}: this VM runs in a web page, which has no host directories. Use a named volume (-v NAME:/path), or drop files onto the terminal to put them in the guest`,
    { part: "source", path },
  );
}
