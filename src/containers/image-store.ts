// The host's image store: two OCI image layouts, one over the other. Below,
// the built-in layout (busybox, lua:5.1, lua:5.4 built from Debian packages),
// read only, from a folder in Node or a URL in a browser. Above, a writable
// layout: tags, loaded images and their blobs, and which built-in names were
// removed. In the daemon the writable layout is a folder of its data root
// (node-store.ts); in a page it lives in memory. Every blob is checked
// against its sha256 when it is read. Writes go blobs first, index last, so
// an image is visible whole or not at all. Images reach a guest from here,
// never from a network; `pull` brings a built-in image back into view.
import { HyperlabError } from "../errors.ts";
import { DEFAULT_DOMAIN, familiarName, isIdPrefix, isImageId, normalizeName, parseReference } from "./image-reference.ts";

/** Reads one file of a layout by its path inside it (e.g. "index.json", "blobs/sha256/<hex>"). */
export type LayoutReader = (path: string) => Promise<Uint8Array>;

/**
 * The writable layout under the store: index.json and content-addressed
 * blobs. Each write is atomic (a reader sees the old file or the new one),
 * and `locked` keeps other processes sharing the folder out of a
 * read-modify-write of the index.
 */
export interface WritableLayout {
  /** where it is, for messages */
  readonly where: string;
  /** index.json's bytes; undefined while there is none */
  readIndex(): Promise<Uint8Array | undefined>;
  /** replaces index.json atomically */
  writeIndex(data: Uint8Array): Promise<void>;
  /** a token that changes whenever index.json does (another process's write included) */
  indexVersion(): Promise<string>;
  /** a blob's bytes (not checked here); rejects when it is missing */
  readBlob(hex: string): Promise<Uint8Array>;
  hasBlob(hex: string): Promise<boolean>;
  /** stores a blob atomically under its sha256 (the caller has checked it) */
  writeBlob(hex: string, data: Uint8Array): Promise<void>;
  removeBlob(hex: string): Promise<void>;
  /** the blobs there are: hex digest, size, and when written (ms since 1970) where known */
  listBlobs(): Promise<Array<{ hex: string; size: number; mtimeMs?: number }>>;
  /** runs `fn` holding the layout's lock (against other processes; the store orders its own calls) */
  locked<T>(fn: () => Promise<T>): Promise<T>;
}

/** A layer of an image: an uncompressed tar, identified by its sha256 (also its diff id). */
export interface LayerInfo {
  digest: string;
  size: number;
}

/** The container settings of an image config (Docker's names). */
export interface ImageRunConfig {
  User?: string;
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  OnBuild?: string[];
  /** HEALTHCHECK (durations in ns), as a build records it */
  Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
  /** SHELL: what the shell form of RUN, CMD and ENTRYPOINT runs in */
  Shell?: string[];
}

/** One step of an image's history (OCI image config). */
export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** An OCI image config, as far as hyperlab reads it. */
export interface ImageConfigFile {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  config?: ImageRunConfig;
  rootfs?: { type: string; diff_ids: string[] };
  history?: HistoryEntry[];
}

/** An image as `hyperlab images` shows it (one per name), with what a container needs from its config. */
export interface ImageInfo {
  /** e.g. "lua:5.4" (for an image named by its ID: its first name, else its ID) */
  reference: string;
  repository: string;
  tag: string;
  /** digest of the manifest */
  digest: string;
  /** digest of the config (Docker's IMAGE ID) */
  id: string;
  /** sum of the layer sizes */
  size: number;
  layers: LayerInfo[];
  created?: string;
  config: ImageRunConfig;
}

/** One image (one config), with every name that points at it. */
export interface Image {
  /** digest of the config: Docker's image ID */
  id: string;
  /** digest of its manifest */
  digest: string;
  /** its names ("busybox:latest"); none for a dangling image */
  repoTags: string[];
  layers: LayerInfo[];
  /** sum of the layer sizes */
  size: number;
  created?: string;
  config: ImageConfigFile;
  /** when a name was last put on it here (ms since 1970), if one was */
  lastTagTime?: number;
  /** its manifest comes from the built-in layout */
  builtIn: boolean;
}

/** A container that uses an image, as the store's removals ask about them. */
export interface ImageUser {
  id: string;
  running: boolean;
}

/** One line of a removal's answer: a name taken off, or an image or layer deleted. */
export type DeleteRecord = { Untagged: string } | { Deleted: string };

/** Something that happened to an image, as `docker events` reports it. */
export interface ImageEvent {
  type: "image";
  /** pull, tag, untag, delete, load, save */
  action: string;
  /** the image ID (a pull: the name pulled) */
  id: string;
  /** Docker's `name` attribute */
  name: string;
  /** the image's labels, when it still exists */
  labels: Record<string, string>;
  /** ms since 1970 */
  time: number;
}

/** One image to add to the store (a load): its config and layers as bytes, and the names to give it. */
export interface NewImage {
  config: Uint8Array;
  /** uncompressed layer tars, in order; each must match the config's diff_ids */
  layers: Uint8Array[];
  repoTags: string[];
}

/** What adding an image did: its ID, its names, and the names it took from other images. */
export interface AddedImage {
  id: string;
  repoTags: string[];
  /** names that pointed at another image before (that image keeps its ID, maybe without a name) */
  moved: Array<{ name: string; from: string }>;
}

/** A layer as a manifest lists it: an uncompressed tar (the built-in images) or a gzip one (built images). */
export interface LayerDescriptor {
  mediaType?: string;
  digest: string;
  size: number;
}

/** An image state a build step made (see ImageStore.cachedStep): not an image of the list until a build names it. */
export interface BuiltState {
  /** digest and size of its manifest */
  digest: string;
  size: number;
  /** digest of its config (the step's image ID) */
  id: string;
  config: ImageConfigFile;
  layers: LayerDescriptor[];
}

/** One step of a pull, as Docker's progress stream reports it (`id`: a layer's short digest). */
export type PullStep =
  | { kind: "start"; name: string; tag: string }
  | { kind: "layer"; id: string; status: "Already exists" | "Pulling fs layer" | "Waiting" | "Verifying Checksum" | "Download complete" | "Pull complete" }
  | { kind: "download"; id: string; current: number; total: number }
  | { kind: "digest"; digest: string }
  | { kind: "done"; name: string; updated: boolean };

/**
 * Pulls a Docker Hub name (lua:5.4) into the store from a registry, with
 * Docker's steps: what a store without built-in images of its own does for
 * `pull` (a page: registry-transfer.ts's pull from the site's /v2/).
 */
export type HubPull = (reference: string, progress: (step: PullStep) => void) => Promise<Image>;

/** An image a pull fetched from a registry, before it is stored (see ImageStore.addPulled). */
export interface PulledImage {
  /** the manifest as the registry sent it (its digest is the image's digest there) */
  manifest: Uint8Array;
  config: Uint8Array;
  /** the layers fetched (digest → bytes, each checked against its digest); the others must be in the store already */
  blobs: Map<string, Uint8Array>;
  /** the name to put on it (lua:5.4); none for a pull by digest (kept as an image without a name unless it has one) */
  name?: string;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string };
  annotations?: Record<string, string>;
}

interface Manifest {
  config: Descriptor;
  layers: Descriptor[];
}

/** An entry of a layout's index: a name (or none: dangling) for a manifest. */
interface Entry {
  name?: string;
  digest: string;
  size: number;
  /** ms since 1970 */
  taggedAt?: number;
}

/** The writable layout's index: its entries, and the built-in names removed. */
interface WritableIndex {
  entries: Entry[];
  hidden: string[];
  /** the build cache: which step results (manifests) steps made; see cachedStep */
  cache?: BuildCacheEntry[];
}

/** One entry of the build cache: a step's cache key and the manifest of the image state it made. */
interface BuildCacheEntry {
  key: string;
  digest: string;
  size: number;
  /** ms since 1970: when it was made or last used */
  usedAt: number;
}

/** The most build cache entries kept; the least recently used go first. */
const MAX_BUILD_CACHE = 2000;

interface State {
  images: Image[];
  byName: Map<string, Image>;
  builtIn: Entry[];
  writable: WritableIndex;
}

const NAME_KEY = "io.hyperlab.image.name";
const REF_NAME_KEY = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME_KEY = "io.containerd.image.name";
const TAGGED_KEY = "io.hyperlab.image.tagged";
const HIDDEN_KEY = "io.hyperlab.hidden-names";
/** Marks a descriptor of the writable index as a build cache entry (its value: the step's cache key). */
const CACHE_KEY = "io.hyperlab.build.cache-key";
const CACHE_USED_KEY = "io.hyperlab.build.used";
const INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";
const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The sha256 of `data` as hex. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Adds ":latest" to a reference without a tag, as Docker does (and shortens docker.io names). */
export function normalizeReference(ref: string): string {
  try {
    return normalizeName(ref);
  } catch {
    const lastSlash = ref.lastIndexOf("/");
    return ref.slice(lastSlash + 1).includes(":") ? ref : `${ref}:latest`;
  }
}

/** The repository and tag of a name ("lua:5.4" → lua, 5.4). */
export function splitName(name: string): { repository: string; tag: string } {
  const at = name.indexOf("@");
  if (at >= 0) return { repository: name.slice(0, at), tag: "<none>" };
  const colon = name.lastIndexOf(":");
  return colon > name.lastIndexOf("/") ? { repository: name.slice(0, colon), tag: name.slice(colon + 1) } : { repository: name, tag: "latest" };
}

/** A writable layout in memory: a page's store (gone with the page). */
export function memoryLayout(where = "memory"): WritableLayout {
  let index: Uint8Array | undefined;
  let version = 0;
  const blobs = new Map<string, Uint8Array>();
  return {
    where,
    readIndex: async () => index,
    writeIndex: async (data) => void ((index = data), version++),
    indexVersion: async () => String(version),
    readBlob: async (hex) => {
      const b = blobs.get(hex);
      if (!b) throw new Error(`no blob ${hex}`);
      return b;
    },
    hasBlob: async (hex) => blobs.has(hex),
    writeBlob: async (hex, data) => void blobs.set(hex, data),
    removeBlob: async (hex) => void blobs.delete(hex),
    listBlobs: async () => [...blobs].map(([hex, b]) => ({ hex, size: b.length })),
    locked: (fn) => fn(),
  };
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, "");

/** Docker's 12-digit short form of an ID. */
export function shortId(id: string): string {
  return hexOf(id).slice(0, 12);
}

/** Images from the built-in layout, with the writable layout's names, images and removals over them. */
export class ImageStore {
  private builtIn: Promise<Entry[]> | undefined;
  private cached: { version: string; state: Promise<State> } | undefined;
  /** manifest digest → what it says, with its config (content-addressed: never stale) */
  private readonly manifests = new Map<string, Promise<{ manifest: Manifest; config: ImageConfigFile }>>();
  /** the store's own changes, one at a time */
  private queue: Promise<unknown> = Promise.resolve();
  /** blobs written for a change not yet in the index: never collected */
  private readonly pending = new Set<string>();
  /** blobs a build in progress wrote (hex → how many builds hold it): never collected */
  private readonly held = new Map<string, number>();
  private readonly listeners = new Set<(e: ImageEvent) => void>();

  constructor(
    private readonly read: LayoutReader,
    /** where the built-in layout is, for messages */
    readonly where: string,
    /** the layout that takes tags, loads and removals (default: in memory) */
    readonly writable: WritableLayout = memoryLayout(),
    /** `hub`: where Docker Hub names are pulled from instead of the built-in layout (a page: the site's registry) */
    private readonly opts: { hub?: HubPull } = {},
  ) {}

  /** Whether Docker Hub names are pulled from a registry (see `hub`), so that a name the store lacks may be pulled on first use. */
  get pullsFromHub(): boolean {
    return this.opts.hub !== undefined;
  }

  /**
   * The image `reference` means, pulled first when the store lacks it and
   * pulls Docker Hub names from a registry (a page's first container of
   * lua:5.4); `progress` hears the pull's steps. Without a hub: `resolve`'s
   * IMAGE_NOT_FOUND; with one, the pull's error when it fails.
   */
  async ensure(reference: string, progress: (step: PullStep) => void = () => {}): Promise<{ image: Image; name?: string }> {
    try {
      return await this.resolve(reference);
    } catch (err) {
      if (!this.opts.hub || !(err instanceof HyperlabError) || err.code !== "IMAGE_NOT_FOUND" || isIdPrefix(reference) || reference.startsWith("sha256:")) throw err;
      let ref: ReturnType<typeof parseReference>;
      try {
        ref = parseReference(reference);
      } catch {
        throw err;
      }
      if (ref.domain !== DEFAULT_DOMAIN) throw err;
      // The registry's answer when it has no such image either (as docker run's pull says it).
      await this.pull(reference, progress);
      return this.resolve(reference);
    }
  }

  /** One entry per name, in the order `hyperlab images` lists them. */
  async list(): Promise<ImageInfo[]> {
    const state = await this.state();
    return state.images.flatMap((image) => image.repoTags.map((name) => infoOf(image, name)));
  }

  /** The names the built-in layout has (what `pull` can bring back), whether in view or removed. */
  async builtInNames(): Promise<string[]> {
    return (await this.builtInEntries()).map((e) => e.name!);
  }

  /** Every image (one per ID, dangling ones too), newest first. */
  async images(): Promise<Image[]> {
    return (await this.state()).images;
  }

  /**
   * The image a name, `name@digest`, ID or ID prefix means; IMAGE_NOT_FOUND
   * listing the names there are. Legal any time.
   */
  async get(reference: string): Promise<ImageInfo> {
    const { image, name } = await this.resolve(reference);
    return infoOf(image, name ?? image.repoTags[0]);
  }

  /**
   * The image `reference` means, and the name it was found by (undefined when
   * found by ID or digest). IMAGE_NOT_FOUND when there is none;
   * INVALID_ARGUMENT for a malformed name.
   */
  async resolve(reference: string): Promise<{ image: Image; name?: string }> {
    const state = await this.state();
    const found = this.find(state, reference);
    if (found) return found;
    const names = [...state.byName.keys()];
    throw new HyperlabError(
      "IMAGE_NOT_FOUND",
      `no such image: ${reference}. Images available: ${names.join(", ") || "none"} ` +
        `(hyperlab's images are built from Debian packages by 'npm run images', built with 'docker build', loaded with 'docker load', or pulled from a registry named by its address, e.g. 'docker pull localhost:5000/app:1').`,
      { reference, available: names },
    );
  }

  /** A blob's bytes (writable layout first, then the built-in one), checked against its digest. */
  async blob(digest: string): Promise<Uint8Array> {
    const hex = hexOf(digest);
    let data: Uint8Array;
    let where = this.writable.where;
    try {
      data = await this.writable.readBlob(hex);
    } catch {
      where = this.where;
      try {
        data = await this.read(`blobs/sha256/${hex}`);
      } catch (err) {
        throw new HyperlabError("IMAGE_CORRUPT", `image blob ${digest} is missing from ${this.where} and ${this.writable.where}: ${(err as Error).message}`);
      }
    }
    const actual = await sha256Hex(data);
    if (actual !== hex) {
      const fix = where === this.where ? "restore it with 'git checkout -- guest-images/dist' or rebuild with 'npm run images'" : "remove the image and load it again";
      throw new HyperlabError("IMAGE_CORRUPT", `image blob ${digest} in ${where} is damaged (its sha256 is ${actual}); ${fix}.`);
    }
    return data;
  }

  /** Subscribes to image events (pull, tag, untag, delete, load, save); returns the unsubscribe. */
  onEvent(listener: (e: ImageEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Reports that an image was written out (`docker save`): the store's `save` event. */
  async saved(image: Image): Promise<void> {
    this.emit("save", image.id, image.id, image);
  }

  /** Puts the name `target` on the image `source` means (`docker tag`); the name leaves any image it was on. */
  async tag(source: string, target: string): Promise<void> {
    const name = normalizeName(target);
    if (name.includes("@")) throw new HyperlabError("INVALID_ARGUMENT", `refusing to create a tag with a digest reference`);
    const { image } = await this.resolve(source);
    await this.change(async (w, state) => {
      setName(w, state, name, image.digest);
      return [() => this.emit("tag", image.id, name, image)];
    });
  }

  /**
   * Removes an image or one of its names, as `docker rmi` does: a name is
   * taken off (the image goes with its last name unless a container uses
   * it); an ID removes the image and its names. A container using it is a
   * conflict (409) in dockerd's words unless `force` (never for a running
   * one). `users` says which containers use an image ID.
   */
  async remove(reference: string, opts: { force?: boolean; users: (id: string) => ImageUser[] }): Promise<DeleteRecord[]> {
    const force = opts.force ?? false;
    return this.changeWithResult(async (w, state) => {
      const found = this.find(state, reference);
      if (!found) throw new HyperlabError("IMAGE_NOT_FOUND", `No such image: ${displayName(reference)}`);
      const { image } = found;
      const users = opts.users(image.id);
      const records: DeleteRecord[] = [];
      const after: Array<() => void> = [];
      const byName = !isIdReference(reference, image.id);
      let quiet = false;
      if (byName) {
        const name = found.name ?? normalizeName(reference);
        const names = name.includes("@") ? image.repoTags.filter((t) => splitName(t).repository === splitName(name).repository) : [name];
        if (!force && image.repoTags.length <= 1 && users.length) {
          throw conflict(`conflict: unable to remove repository reference "${reference}" (must force) - container ${shortId(users[0]!.id)} is using its referenced image ${shortId(image.id)}`);
        }
        this.untag(w, state, image, names.length ? names : [name], records, after);
        if (image.repoTags.length > names.length) return { records, after };
        quiet = true;
      }
      const running = users.find((u) => u.running);
      const stopped = users.find((u) => !u.running);
      const hard = running ? `image is being used by running container ${shortId(running.id)}` : undefined;
      const soft = !byName && !force && image.repoTags.length > 1 ? "image is referenced in multiple repositories" : !force && stopped ? `image is being used by stopped container ${shortId(stopped.id)}` : undefined;
      if (hard || soft) {
        // A name taken off an image a container still uses leaves it, without a name.
        if (quiet) {
          keepDangling(w, state, image.digest);
          return { records, after };
        }
        throw conflict(`conflict: unable to delete ${shortId(image.id)} (${hard ? "cannot be forced" : "must be forced"}) - ${hard ?? soft}`);
      }
      if (!byName) this.untag(w, state, image, image.repoTags, records, after);
      this.drop(w, image, records, after);
      return { records, after, collect: [image] };
    });
  }

  /** Removes `names` from `image` in the change `w`, recording each as Docker's delete answer does (events after the write). */
  private untag(w: WritableIndex, state: State, image: Image, names: readonly string[], records: DeleteRecord[], after: Array<() => void>): void {
    for (const n of [...names]) {
      removeName(w, state, n);
      records.push({ Untagged: n });
      after.push(() => this.emit("untag", image.id, image.id, image));
    }
  }

  /** Removes `image` itself from the change `w`, recorded as Docker's delete answer does. */
  private drop(w: WritableIndex, image: Image, records: DeleteRecord[], after: Array<() => void>): void {
    w.entries = w.entries.filter((e) => e.digest !== image.digest);
    records.push({ Deleted: image.id });
    after.push(() => this.emit("delete", image.id, image.id, image));
  }

  /**
   * Removes the images no container uses (`docker image prune`): dangling
   * ones only, or every unused one with `all`; `keep` spares an image
   * (Docker's label and until filters). Returns what went and the bytes freed.
   */
  async prune(opts: { all?: boolean; keep?: (image: Image) => boolean; users: (id: string) => ImageUser[] }): Promise<{ records: DeleteRecord[]; reclaimed: number }> {
    const before = await this.writableBytes();
    const records = await this.changeWithResult(async (w, state) => {
      const records: DeleteRecord[] = [];
      const after: Array<() => void> = [];
      const gone: Image[] = [];
      for (const image of state.images) {
        if (!opts.all && image.repoTags.length) continue;
        if (opts.users(image.id).length || opts.keep?.(image)) continue;
        this.untag(w, state, image, image.repoTags, records, after);
        this.drop(w, image, records, after);
        gone.push(image);
      }
      return { records, after, collect: gone, sweep: true };
    });
    return { records, reclaimed: Math.max(0, before - (await this.writableBytes())) };
  }

  /**
   * Brings a built-in image into view under `name` (`docker pull` from the
   * local store): reports Docker's steps to `progress`. IMAGE_NOT_FOUND in
   * dockerd's words when the store has no such name.
   */
  async pull(reference: string, progress: (step: PullStep) => void): Promise<Image> {
    if (this.opts.hub) return this.opts.hub(reference, progress);
    const ref = parseReference(reference);
    const name = normalizeName(reference);
    type Found = { source?: Entry; current?: Image; present: Set<string> };
    const found = await this.changeWithResult<Found>(async (w, state) => {
      const source = ref.digest ? state.builtIn.find((e) => e.digest === ref.digest) : state.builtIn.find((e) => e.name === name);
      const current = this.find(state, name)?.image;
      // Layers some image in view has already: "Already exists".
      const present = new Set(state.images.flatMap((i) => i.layers.map((l) => l.digest)));
      if (!source && !current) {
        const repo = familiarName(ref);
        const all = [...new Set([...state.builtIn.map((e) => e.name!), ...state.byName.keys()])];
        const sameRepo = all.filter((n) => splitName(n).repository === repo);
        throw new HyperlabError(
          "IMAGE_NOT_FOUND",
          sameRepo.length
            ? `manifest for ${name} not found: manifest unknown: hyperlab's local image store has ${sameRepo.join(", ")} (Docker Hub names come from it, never from the internet)`
            : `pull access denied for ${repo}, repository does not exist or may require 'docker login': hyperlab pulls Docker Hub names only from its local image store, which has ${all.join(", ") || "no images"} (a registry is named by its address: localhost:5000/${repo})`,
          { reference },
        );
      }
      if (source && current?.digest !== source.digest) {
        if (ref.digest) keepDangling(w, state, source.digest);
        else setName(w, state, name, source.digest);
      }
      return { records: { source, current, present }, after: [] };
    });
    const updated = found.source !== undefined && found.current?.digest !== found.source.digest;
    const image = updated ? (await this.resolve(ref.digest ? `sha256:${hexOf((await this.manifest(found.source!.digest)).manifest.config.digest)}` : name)).image : found.current!;
    progress({ kind: "start", name: ref.path, tag: ref.digest ?? ref.tag ?? "latest" });
    if (updated) {
      for (const l of image.layers) {
        if (found.present.has(l.digest)) progress({ kind: "layer", id: shortId(l.digest), status: "Already exists" });
        else {
          progress({ kind: "layer", id: shortId(l.digest), status: "Pulling fs layer" });
          progress({ kind: "layer", id: shortId(l.digest), status: "Pull complete" });
        }
      }
    }
    progress({ kind: "digest", digest: image.digest });
    progress({ kind: "done", name: ref.digest ? `${familiarName(ref)}@${ref.digest}` : name, updated });
    this.emit("pull", name, familiarName(ref), image);
    return image;
  }

  /** Whether the store has blob `digest` (either layout), without reading it when it can help it. */
  async hasBlob(digest: string): Promise<boolean> {
    const hex = hexOf(digest);
    if (await this.writable.hasBlob(hex)) return true;
    const state = await this.state();
    if (state.images.some((i) => i.builtIn && (i.digest === digest || i.id === digest || i.layers.some((l) => l.digest === digest)))) return true;
    return this.read(`blobs/sha256/${hex}`).then(
      () => true,
      () => false,
    );
  }

  /**
   * Stores an image a pull fetched (`docker pull` from a registry): checks
   * that it is for linux/386 and that its blobs match the manifest, writes
   * the blobs the store lacked, then names the manifest in one write of the
   * index. Any failure removes the blobs it wrote: the store is as before.
   * Returns the image and whether the name moved to it (false: it was
   * there already).
   */
  async addPulled(p: PulledImage): Promise<{ image: Image; updated: boolean }> {
    const manifestDigest = `sha256:${await sha256Hex(p.manifest)}`;
    let manifest: Manifest;
    let config: ImageConfigFile;
    try {
      manifest = JSON.parse(decoder.decode(p.manifest)) as Manifest;
      config = JSON.parse(decoder.decode(p.config)) as ImageConfigFile;
    } catch (err) {
      throw new HyperlabError("INVALID_ARGUMENT", `the image ${p.name ?? manifestDigest} has a manifest or config that is not JSON: ${(err as Error).message}`);
    }
    if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new HyperlabError("INVALID_ARGUMENT", `the manifest ${manifestDigest} of ${p.name ?? "the image"} is not an image manifest (no config or layers)`);
    if (`sha256:${await sha256Hex(p.config)}` !== manifest.config.digest) throw new HyperlabError("IMAGE_CORRUPT", `the config of ${p.name ?? manifestDigest} does not match its digest ${manifest.config.digest}; nothing was stored`);
    checkPlatform(config, p.name ?? manifestDigest);
    const written: string[] = [];
    const write = async (digest: string, data: Uint8Array) => {
      const hex = hexOf(digest);
      this.pending.add(hex);
      if (await this.writable.hasBlob(hex)) return;
      written.push(hex);
      await this.writable.writeBlob(hex, data);
    };
    try {
      for (const l of manifest.layers) {
        const data = p.blobs.get(l.digest);
        if (data) {
          if (`sha256:${await sha256Hex(data)}` !== l.digest) throw new HyperlabError("IMAGE_CORRUPT", `filesystem layer verification failed for digest ${l.digest}; nothing was stored`);
          await write(l.digest, data);
        } else if (!(await this.hasBlob(l.digest))) {
          throw new HyperlabError("IMAGE_CORRUPT", `layer ${l.digest} of ${p.name ?? manifestDigest} was neither fetched nor in the store; nothing was stored`);
        }
      }
      await write(manifest.config.digest, p.config);
      await write(manifestDigest, p.manifest);
      const updated = await this.changeWithResult(async (w, state) => {
        const current = p.name ? state.byName.get(p.name) : undefined;
        if (p.name && current?.digest !== manifestDigest) setName(w, state, p.name, manifestDigest, p.manifest.length);
        if (!p.name && !state.images.some((i) => i.digest === manifestDigest)) keepDangling(w, state, manifestDigest);
        if (!p.name) {
          const e = w.entries.find((x) => x.digest === manifestDigest && !x.name);
          if (e && !e.size) e.size = p.manifest.length;
        }
        return { records: current?.digest !== manifestDigest, after: [] };
      });
      written.length = 0;
      const image = (await this.images()).find((i) => i.digest === manifestDigest);
      if (!image) throw new HyperlabError("IMAGE_CORRUPT", `the pulled image ${manifestDigest} is not in the store after it was written`);
      this.emit("pull", p.name ?? manifestDigest, p.name ? splitName(p.name).repository : manifestDigest, image);
      return { image, updated };
    } finally {
      // Blobs of a pull that did not finish go again (those that were there before stay).
      for (const hex of written) await this.writable.removeBlob(hex).catch(() => {});
      for (const hex of [...manifest.layers.map((l) => l.digest), manifest.config.digest, manifestDigest]) this.pending.delete(hexOf(hex));
    }
  }

  /**
   * Adds images (`docker load`): writes each one's blobs, then its manifest,
   * then names it in one write of the index, so a failure leaves nothing
   * visible. A name already on another image moves (that image stays,
   * maybe without a name, as with dockerd).
   */
  async add(images: NewImage[]): Promise<AddedImage[]> {
    const prepared: Array<{ id: string; manifestHex: string; manifestSize: number; repoTags: string[]; labels: Record<string, string> }> = [];
    const written: string[] = [];
    try {
      for (const img of images) {
        const configHex = await sha256Hex(img.config);
        let config: ImageConfigFile;
        try {
          config = JSON.parse(decoder.decode(img.config)) as ImageConfigFile;
        } catch (err) {
          throw new HyperlabError("INVALID_ARGUMENT", `invalid image config sha256:${configHex}: ${(err as Error).message}`);
        }
        checkPlatform(config, img.repoTags[0] ?? `sha256:${configHex}`);
        const diffIds = config.rootfs?.diff_ids ?? [];
        if (diffIds.length !== img.layers.length) {
          throw new HyperlabError("INVALID_ARGUMENT", `invalid manifest, layers length mismatch: expected ${img.layers.length}, got ${diffIds.length}`);
        }
        const layers: Descriptor[] = [];
        for (const [i, layer] of img.layers.entries()) {
          const hex = await sha256Hex(layer);
          if (`sha256:${hex}` !== diffIds[i]) throw new HyperlabError("INVALID_ARGUMENT", `invalid diffID for layer ${i}: expected "${diffIds[i]}", got "sha256:${hex}"`);
          await this.putBlob(hex, layer, written);
          layers.push({ mediaType: LAYER_MEDIA_TYPE, digest: `sha256:${hex}`, size: layer.length });
        }
        await this.putBlob(configHex, img.config, written);
        const manifest = encoder.encode(
          JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_MEDIA_TYPE, config: { mediaType: CONFIG_MEDIA_TYPE, digest: `sha256:${configHex}`, size: img.config.length }, layers }),
        );
        const manifestHex = await sha256Hex(manifest);
        await this.putBlob(manifestHex, manifest, written);
        prepared.push({ id: `sha256:${configHex}`, manifestHex, manifestSize: manifest.length, repoTags: img.repoTags.map((t) => normalizeName(t)), labels: config.config?.Labels ?? {} });
      }
      return await this.changeWithResult(async (w, state) => {
        const out: AddedImage[] = [];
        const after: Array<() => void> = [];
        for (const p of prepared) {
          const digest = `sha256:${p.manifestHex}`;
          const moved: AddedImage["moved"] = [];
          for (const name of p.repoTags) {
            const prev = state.byName.get(name);
            if (prev && prev.id !== p.id) moved.push({ name, from: prev.id });
            setName(w, state, name, digest, p.manifestSize);
          }
          // Without a name it is kept as a dangling image (unless it is there already).
          if (!p.repoTags.length && !state.images.some((i) => i.id === p.id) && !w.entries.some((e) => e.digest === digest)) w.entries.push({ digest, size: p.manifestSize });
          out.push({ id: p.id, repoTags: p.repoTags, moved });
          after.push(() => this.emit("load", p.id, p.id, undefined, p.labels));
        }
        return { records: out, after };
      });
    } finally {
      for (const hex of written) this.pending.delete(hex);
    }
  }

  /**
   * Stores a blob a build made (a layer, a config, a manifest) under its
   * sha256 and holds it against collection (in `held`) until
   * releaseBuildBlobs, which comes after commitBuild. Returns its digest.
   */
  async writeBuildBlob(data: Uint8Array, held: Set<string>): Promise<string> {
    const hex = await sha256Hex(data);
    if (!held.has(hex)) {
      held.add(hex);
      this.held.set(hex, (this.held.get(hex) ?? 0) + 1);
    }
    if (!(await this.writable.hasBlob(hex))) await this.writable.writeBlob(hex, data);
    return `sha256:${hex}`;
  }

  /** Lets the blobs a build held (writeBuildBlob) be collected again once nothing names them. */
  releaseBuildBlobs(held: Set<string>): void {
    for (const hex of held) {
      const n = (this.held.get(hex) ?? 1) - 1;
      if (n > 0) this.held.set(hex, n);
      else this.held.delete(hex);
    }
    held.clear();
  }

  /**
   * The image state a build step with cache key `key` made before (its
   * manifest's digest, its config's digest, config and layers), if the
   * build cache has it and its blobs are all still here. Legal any time.
   */
  async cachedStep(key: string): Promise<BuiltState | undefined> {
    const entry = (await this.state()).writable.cache?.find((c) => c.key === key);
    if (!entry) return undefined;
    try {
      const { manifest, config } = await this.manifest(entry.digest);
      for (const l of manifest.layers) {
        const hex = hexOf(l.digest);
        if (!(await this.writable.hasBlob(hex)) && !(await this.read(`blobs/sha256/${hex}`).then(() => true, () => false))) return undefined;
      }
      return { digest: entry.digest, size: entry.size, id: manifest.config.digest, config, layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })) };
    } catch {
      return undefined;
    }
  }

  /** The layers of the manifest `digest`, with their media types (a build's base image). */
  async layerDescriptors(digest: string): Promise<LayerDescriptor[]> {
    const { manifest } = await this.manifest(digest);
    return manifest.layers.map((l) => ({ mediaType: l.mediaType ?? LAYER_MEDIA_TYPE, digest: l.digest, size: l.size }));
  }

  /**
   * Records what a build made, in one write of the index: the cache entries
   * of its steps (key → manifest; the least recently used beyond
   * MAX_BUILD_CACHE go), and its image under `names` (a name on another
   * image moves, as with dockerd), or as an image without a name. The blobs
   * must have been written (writeBuildBlob). Emits `tag` for each name.
   */
  async commitBuild(result: { cache: Array<{ key: string; digest: string; size: number }>; image?: { id: string; digest: string; size: number; names: string[]; labels: Record<string, string> } }): Promise<void> {
    await this.change(async (w, state) => {
      const now = Date.now();
      const cache = (w.cache ?? []).filter((c) => !result.cache.some((n) => n.key === c.key));
      cache.push(...result.cache.map((c) => ({ ...c, usedAt: now })));
      cache.sort((a, b) => a.usedAt - b.usedAt);
      w.cache = cache.slice(-MAX_BUILD_CACHE);
      const after: Array<() => void> = [];
      const image = result.image;
      if (!image) return after;
      for (const name of image.names.map((n) => normalizeName(n))) {
        setName(w, state, name, image.digest, image.size);
        after.push(() => this.emit("tag", image.id, name, undefined, image.labels));
      }
      if (!image.names.length && !namesOf(w, state, image.digest).length && !w.entries.some((e) => e.digest === image.digest)) w.entries.push({ digest: image.digest, size: image.size });
      return after;
    });
  }

  /** Empties the build cache (`docker builder prune`); returns the bytes freed. */
  async pruneBuildCache(): Promise<{ entries: number; reclaimed: number }> {
    const before = await this.writableBytes();
    const entries = await this.changeWithResult(async (w) => {
      const n = w.cache?.length ?? 0;
      w.cache = undefined;
      return { records: n, after: [] };
    });
    return { entries, reclaimed: Math.max(0, before - (await this.writableBytes())) };
  }

  /** Bytes of the writable layout's blobs (what removing images can free). */
  async writableBytes(): Promise<number> {
    return (await this.writable.listBlobs()).reduce((n, b) => n + b.size, 0);
  }

  /** Writes a checked blob unless the writable layout has it; remembers it as pending until the index names it. */
  private async putBlob(hex: string, data: Uint8Array, written: string[]): Promise<void> {
    this.pending.add(hex);
    written.push(hex);
    if (!(await this.writable.hasBlob(hex))) await this.writable.writeBlob(hex, data);
  }

  private emit(action: string, id: string, name: string, image?: Image, labels?: Record<string, string>): void {
    const e: ImageEvent = { type: "image", action, id, name, labels: { ...(labels ?? image?.config.config?.Labels ?? {}) }, time: Date.now() };
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** The image `reference` means in `state`, if any (a name first, then an ID or ID prefix, as dockerd looks). */
  private find(state: State, reference: string): { image: Image; name?: string } | undefined {
    if (isImageId(reference) || reference.startsWith("sha256:")) {
      const id = `sha256:${hexOf(reference)}`;
      const image = state.images.find((i) => i.id === id || (reference.length < 71 && i.id.startsWith(id)));
      return image ? { image } : undefined;
    }
    let ref;
    try {
      ref = parseReference(reference);
    } catch (err) {
      if (isIdPrefix(reference)) return this.byIdPrefix(state, reference);
      throw err;
    }
    if (ref.digest) {
      const repo = familiarName(ref);
      const image = state.images.find((i) => i.digest === ref.digest && (i.repoTags.some((t) => splitName(t).repository === repo) || i.builtIn || !i.repoTags.length));
      return image ? { image } : undefined;
    }
    const name = normalizeName(reference);
    const image = state.byName.get(name);
    if (image) return { image, name };
    return isIdPrefix(reference) ? this.byIdPrefix(state, reference) : undefined;
  }

  private byIdPrefix(state: State, prefix: string): { image: Image } | undefined {
    const matches = state.images.filter((i) => hexOf(i.id).startsWith(hexOf(prefix)));
    if (matches.length > 1) throw new HyperlabError("INVALID_ARGUMENT", `'${prefix}' matches ${matches.length} images; give more of the ID`);
    return matches[0] ? { image: matches[0] } : undefined;
  }

  /** A change to the writable index (see changeWithResult) whose answer is nothing. */
  private async change(fn: (w: WritableIndex, state: State) => Promise<Array<() => void>>): Promise<void> {
    await this.changeWithResult(async (w, s) => ({ records: undefined, after: await fn(w, s) }));
  }

  /**
   * Runs one change of the writable index, alone in this process and under
   * the layout's lock: reads the index afresh, lets `fn` edit it, writes it
   * back if it changed, removes the blobs of removed images that nothing
   * names any more (`collect`; `sweep`: every blob nothing names), then
   * calls `after` (the events).
   */
  private changeWithResult<T>(
    fn: (w: WritableIndex, state: State) => Promise<{ records: T; after: Array<() => void>; collect?: Image[]; sweep?: boolean }>,
  ): Promise<T> {
    const run = async (): Promise<T> => {
      const result = await this.writable.locked(async () => {
        this.cached = undefined;
        const state = await this.state();
        const w: WritableIndex = { entries: state.writable.entries.map((e) => ({ ...e })), hidden: [...state.writable.hidden], ...(state.writable.cache ? { cache: state.writable.cache.map((c) => ({ ...c })) } : {}) };
        const before = JSON.stringify(w);
        const r = await fn(w, state);
        if (JSON.stringify(w) !== before) {
          await this.writable.writeIndex(serializeIndex(w));
          this.cached = undefined;
        }
        // The blobs of entries this change dropped (an untag too) go once nothing else needs them.
        const kept = [...w.entries, ...(w.cache ?? [])];
        const dropped = [...state.writable.entries, ...(state.writable.cache ?? [])].filter((e) => !kept.some((x) => x.digest === e.digest)).map((e) => e.digest);
        if (r.collect?.length || r.sweep || dropped.length) await this.collect(w, [...(r.collect ?? []).map((i) => i.digest), ...dropped], r.sweep ?? false);
        return r;
      });
      for (const a of result.after) a();
      return result.records;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => {});
    return next;
  }

  /**
   * Removes blobs of the writable layout that no entry of `w` needs: those of
   * the manifests `gone` (dropped from the index), or with `sweep` every such blob older than an
   * hour (younger ones may be a load of another process that shares the
   * folder, not yet in the index). Blobs a change in progress here wrote stay.
   */
  private async collect(w: WritableIndex, gone: string[], sweep: boolean): Promise<void> {
    const needed = new Set<string>();
    for (const e of [...w.entries, ...(w.cache ?? [])]) {
      needed.add(hexOf(e.digest));
      try {
        const { manifest } = await this.manifest(e.digest);
        needed.add(hexOf(manifest.config.digest));
        for (const l of manifest.layers) needed.add(hexOf(l.digest));
      } catch {
        // A manifest that cannot be read names nothing.
      }
    }
    const candidates = new Set<string>();
    for (const digest of gone) {
      candidates.add(hexOf(digest));
      const m = await this.manifest(digest).catch(() => undefined);
      for (const d of m ? [m.manifest.config.digest, ...m.manifest.layers.map((l) => l.digest)] : []) candidates.add(hexOf(d));
    }
    const old = Date.now() - 3600_000;
    for (const b of await this.writable.listBlobs()) {
      if (needed.has(b.hex) || this.pending.has(b.hex) || this.held.has(b.hex)) continue;
      if (candidates.has(b.hex) || (sweep && (b.mtimeMs ?? 0) < old)) await this.writable.removeBlob(b.hex).catch(() => {});
    }
  }

  /** The current images, recomputed when the writable index changed (here or in another process). */
  private async state(): Promise<State> {
    const version = await this.writable.indexVersion();
    if (this.cached?.version !== version) {
      const state = this.compute();
      this.cached = { version, state };
      state.catch(() => {
        if (this.cached?.state === state) this.cached = undefined;
      });
    }
    return this.cached.state;
  }

  private async compute(): Promise<State> {
    const builtIn = await this.builtInEntries();
    const writable = parseIndex(await this.writable.readIndex(), this.writable.where);
    const hidden = new Set(writable.hidden);
    const names = new Map<string, Entry & { builtIn: boolean }>();
    for (const e of builtIn) if (!hidden.has(e.name!)) names.set(e.name!, { ...e, builtIn: true });
    for (const e of writable.entries) if (e.name) names.set(e.name, { ...e, builtIn: false });
    const byId = new Map<string, Image>();
    const byName = new Map<string, Image>();
    const builtInDigests = new Set(builtIn.map((e) => e.digest));
    const add = async (digest: string, name: string | undefined, taggedAt?: number) => {
      let m;
      try {
        m = await this.manifest(digest);
      } catch (err) {
        // An image whose blobs are gone (a built-in layout rebuilt under a tag) is not shown; the damage is reported when it is used.
        if (err instanceof HyperlabError && err.code === "IMAGE_CORRUPT") return;
        throw err;
      }
      const id = m.manifest.config.digest;
      let image = byId.get(id);
      if (!image) {
        const layers = m.manifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
        image = { id, digest, repoTags: [], layers, size: layers.reduce((n, l) => n + l.size, 0), created: m.config.created, config: m.config, builtIn: builtInDigests.has(digest) };
        byId.set(id, image);
      }
      if (name) {
        image.repoTags.push(name);
        byName.set(name, image);
      }
      if (taggedAt && taggedAt > (image.lastTagTime ?? 0)) image.lastTagTime = taggedAt;
    };
    for (const [name, e] of names) await add(e.digest, name, e.taggedAt);
    for (const e of writable.entries) if (!e.name) await add(e.digest, undefined);
    const images = [...byId.values()].sort((a, b) => Date.parse(b.created ?? "0") - Date.parse(a.created ?? "0") || (a.repoTags[0] ?? "~").localeCompare(b.repoTags[0] ?? "~"));
    return { images, byName, builtIn, writable };
  }

  private builtInEntries(): Promise<Entry[]> {
    this.builtIn ??= (async () => {
      let index: { manifests?: Descriptor[] };
      try {
        index = JSON.parse(decoder.decode(await this.read("index.json"))) as { manifests?: Descriptor[] };
      } catch (err) {
        throw new HyperlabError(
          "IMAGE_MISSING",
          `cannot read the image index at ${this.where}/index.json (${(err as Error).message}); build the images with 'npm run images'.`,
        );
      }
      const out: Entry[] = [];
      for (const d of index.manifests ?? []) {
        const name = d.annotations?.[NAME_KEY] ?? d.annotations?.[REF_NAME_KEY];
        if (name) out.push({ name: normalizeReference(name), digest: d.digest, size: d.size });
      }
      return out;
    })();
    this.builtIn.catch(() => (this.builtIn = undefined));
    return this.builtIn;
  }

  /** A manifest and its config, read once (blobs never change under their digest). */
  private manifest(digest: string): Promise<{ manifest: Manifest; config: ImageConfigFile }> {
    let m = this.manifests.get(digest);
    if (!m) {
      m = (async () => {
        const manifest = JSON.parse(decoder.decode(await this.blob(digest))) as Manifest;
        const config = JSON.parse(decoder.decode(await this.blob(manifest.config.digest))) as ImageConfigFile;
        return { manifest, config };
      })();
      this.manifests.set(digest, m);
      m.catch(() => this.manifests.delete(digest));
    }
    return m;
  }
}

/** The size of the manifest `digest` as a descriptor carries it (known from either index). */
function manifestSize(w: WritableIndex, state: State, digest: string): number {
  return state.builtIn.find((e) => e.digest === digest)?.size ?? w.entries.find((e) => e.digest === digest && e.size)?.size ?? 0;
}

/** The names that point at the manifest `digest` in the writable index `w` over the built-in one. */
function namesOf(w: WritableIndex, state: State, digest: string): string[] {
  const own = new Set(w.entries.filter((e) => e.name).map((e) => e.name));
  const builtIn = state.builtIn.filter((e) => e.digest === digest && !w.hidden.includes(e.name!) && !own.has(e.name)).map((e) => e.name!);
  return [...builtIn, ...w.entries.filter((e) => e.name && e.digest === digest).map((e) => e.name!)];
}

/** Keeps the image of manifest `digest` as a dangling image (no name) in `w`. */
function keepDangling(w: WritableIndex, state: State, digest: string): void {
  if (!w.entries.some((e) => e.digest === digest)) w.entries.push({ digest, size: manifestSize(w, state, digest) });
}

/**
 * Puts `name` on the manifest `digest` in the writable index `w` (a built-in
 * name back on its own manifest is simply shown again). An image that loses
 * its last name this way stays, dangling, as with dockerd.
 */
function setName(w: WritableIndex, state: State, name: string, digest: string, size = 0): void {
  const prev = state.byName.get(name);
  const known = manifestSize(w, state, digest) || size;
  w.entries = w.entries.filter((e) => e.name !== name);
  const builtIn = state.builtIn.find((e) => e.name === name);
  if (builtIn?.digest === digest) w.hidden = w.hidden.filter((n) => n !== name);
  else w.entries.push({ name, digest, size: known, taggedAt: Date.now() });
  // A dangling entry of the same manifest is not needed once it has a name.
  w.entries = w.entries.filter((e) => e.name || e.digest !== digest);
  if (prev && prev.digest !== digest && namesOf(w, state, prev.digest).length === 0) keepDangling(w, state, prev.digest);
}

/** Takes `name` off: out of the writable index, and hidden when the built-in layout has it. */
function removeName(w: WritableIndex, state: State, name: string): void {
  w.entries = w.entries.filter((e) => e.name !== name);
  if (state.builtIn.some((e) => e.name === name) && !w.hidden.includes(name)) w.hidden.push(name);
}

function conflict(message: string): HyperlabError {
  return new HyperlabError("CONTAINER_INVALID_STATE", message, { conflict: true });
}

/** Whether `reference` names the image by its ID (or a prefix of it) rather than by a name. */
function isIdReference(reference: string, id: string): boolean {
  const hex = hexOf(id);
  return reference === id || hex.startsWith(reference) || (reference.startsWith("sha256:") && id.startsWith(reference));
}

/** A name as dockerd's "No such image" shows it (busybox → busybox:latest; an ID as given). */
function displayName(reference: string): string {
  if (isIdPrefix(reference) || reference.startsWith("sha256:")) return reference;
  try {
    return normalizeName(reference);
  } catch {
    return reference;
  }
}

/** The platform check of a load or pull: hyperlab's guest runs linux/386 only. */
export function checkPlatform(config: ImageConfigFile, what: string): void {
  const os = config.os ?? "linux";
  const arch = config.architecture ?? "386";
  if (os !== "linux" || arch !== "386") {
    throw new HyperlabError(
      "NOT_SUPPORTED",
      `image ${what} is for ${os}/${arch}${config.variant ? `/${config.variant}` : ""}: hyperlab runs linux/386 images only (its guest is a 32-bit x86 PC); build or save the image for linux/386`,
    );
  }
}

function infoOf(image: Image, name: string | undefined): ImageInfo {
  const { repository, tag } = name ? splitName(name) : { repository: "<none>", tag: "<none>" };
  return {
    reference: name ?? image.id,
    repository,
    tag,
    digest: image.digest,
    id: image.id,
    size: image.size,
    layers: image.layers,
    created: image.created,
    config: image.config.config ?? {},
  };
}

function parseIndex(bytes: Uint8Array | undefined, where: string): WritableIndex {
  if (!bytes) return { entries: [], hidden: [] };
  let index: { manifests?: Descriptor[]; annotations?: Record<string, string> };
  try {
    index = JSON.parse(decoder.decode(bytes)) as typeof index;
  } catch (err) {
    throw new HyperlabError("IMAGE_CORRUPT", `the image index ${where}/index.json is damaged (${(err as Error).message}); move it away to start with the built-in images only`);
  }
  // The build cache's manifests are descriptors too (OCI tools see them), told apart by their key.
  const cache = (index.manifests ?? [])
    .filter((d) => d.annotations?.[CACHE_KEY])
    .map((d) => ({ key: d.annotations![CACHE_KEY]!, digest: d.digest, size: d.size, usedAt: Date.parse(d.annotations![CACHE_USED_KEY] ?? "") || 0 }));
  const entries = (index.manifests ?? []).filter((d) => !d.annotations?.[CACHE_KEY]).map((d) => ({
    name: d.annotations?.[NAME_KEY],
    digest: d.digest,
    size: d.size,
    taggedAt: d.annotations?.[TAGGED_KEY] ? Date.parse(d.annotations[TAGGED_KEY]) : undefined,
  }));
  let hidden: string[] = [];
  try {
    hidden = JSON.parse(index.annotations?.[HIDDEN_KEY] ?? "[]") as string[];
  } catch {
    hidden = [];
  }
  return { entries, hidden, ...(cache.length ? { cache } : {}) };
}

/** The writable index as an OCI image index: one descriptor per name (or per dangling image), removals in its annotations. */
function serializeIndex(w: WritableIndex): Uint8Array {
  const manifests = w.entries.map((e) => {
    const annotations: Record<string, string> = {};
    if (e.name) {
      const ref = parseReference(e.name);
      annotations[NAME_KEY] = e.name;
      annotations[CONTAINERD_NAME_KEY] = `${ref.domain}/${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
      annotations[REF_NAME_KEY] = ref.tag ?? "latest";
      if (e.taggedAt) annotations[TAGGED_KEY] = new Date(e.taggedAt).toISOString();
    }
    return { mediaType: MANIFEST_MEDIA_TYPE, digest: e.digest, size: e.size, platform: { architecture: "386", os: "linux" }, ...(e.name ? { annotations } : {}) };
  });
  for (const c of w.cache ?? []) {
    manifests.push({ mediaType: MANIFEST_MEDIA_TYPE, digest: c.digest, size: c.size, platform: { architecture: "386", os: "linux" }, annotations: { [CACHE_KEY]: c.key, [CACHE_USED_KEY]: new Date(c.usedAt).toISOString() } });
  }
  const index = { schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests, ...(w.hidden.length ? { annotations: { [HIDDEN_KEY]: JSON.stringify(w.hidden) } } : {}) };
  return encoder.encode(JSON.stringify(index, null, 1) + "\n");
}
