// Images on the page. The site publishes its images as a read-only registry
// (`v2/` at the site's root, plain files written by `npm run build`:
// containers/static-registry.ts), and the page's image store has none of its
// own: the first container of an image (from the stack view's form, a `docker
// run` or `FROM` in a guest) pulls it from there with the same registry client
// `docker pull` uses on the host (containers/registry-transfer.ts: manifest,
// config, then the layers the store lacks, each checked against its digest),
// and the store keeps it for the page's session, for every VM. Blobs are named
// by their digest, so the browser's HTTP cache may keep them for ever: a
// later visit pulls from the cache. Each pull is recorded for the stack
// view: its layers, their bytes, and whether each came over the network,
// from the browser's cache, or was in the page already.
import { HyperlabError } from "../errors.ts";
import { familiarName, normalizeName, parseReference } from "../containers/image-reference.ts";
import { type Image, ImageStore, type PullStep, memoryLayout, shortId } from "../containers/image-store.ts";

/** How many pulls the page keeps for the stack view (the newest). */
export const KEPT_PULLS = 6;

/** Where a pulled layer's bytes came from. */
export type LayerSource =
  /** over the network from the site ({@link LayerPull.transferred} bytes on the wire) */
  | "network"
  /** from the browser's HTTP cache (an earlier visit fetched it) */
  | "browser-cache"
  /** the page's store had it already (another image's layer, or an earlier pull): not fetched */
  | "page";

/** One layer of a pull, as the stack view shows it. */
export interface LayerPull {
  /** Docker's short form of its digest */
  id: string;
  digest?: string;
  /** its size in the registry (an uncompressed tar for the built-in images) */
  size?: number;
  /** bytes read so far */
  current: number;
  /** the pull's last word on it (Docker's: Pulling fs layer, Downloading, Verifying Checksum, Pull complete, Already exists) */
  status: string;
  source?: LayerSource;
  /** bytes the response took on the wire (compressed), from the browser's resource timing */
  transferred?: number;
}

/** One pull of an image from the site's registry. */
export interface ImagePull {
  /** the name pulled (lua:5.4) */
  name: string;
  state: "pulling" | "done" | "failed";
  layers: LayerPull[];
  /** performance.now() at its start */
  startedAt: number;
  /** how long it took, once done or failed */
  ms?: number;
  /** the manifest's digest, once known */
  digest?: string;
  /** whether the store had this very image already (nothing was fetched but the manifest and config) */
  upToDate?: boolean;
  error?: string;
}

const EMPTY_INDEX = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, manifests: [] }));

/** The page's images: a store filled by pulls from the site's registry, and the record of those pulls. */
export class SiteImages {
  /** the store every VM's engine of the page runs images from (in the page's memory, for its session) */
  readonly store: ImageStore;
  private readonly records: ImagePull[] = [];
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly listeners = new Set<() => void>();

  constructor(
    /** the site's root (assets.ts's siteRegistryUrl): the registry's API is at `<registryUrl>v2/` */
    readonly registryUrl: string,
  ) {
    // No built-in layout: every image comes from the registry (an empty index below the page's own).
    const none = async (path: string) => {
      if (path === "index.json") return EMPTY_INDEX;
      throw new Error(`the page keeps no image files of its own (${path}); its images are pulled from ${this.registryUrl}v2/`);
    };
    this.store = new ImageStore(none, `the site's registry (${this.registryUrl}v2/)`, memoryLayout("the page's memory"), { hub: (reference, progress) => this.pull(reference, progress) });
  }

  /** The pulls so far, oldest first (at most KEPT_PULLS). */
  pulls(): readonly ImagePull[] {
    return this.records;
  }

  /** Calls `listener` after each step of any pull. Returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Pulls `reference` (a Docker Hub name: busybox, lua:5.4) from the site's
   * registry into the page's store, reporting Docker's steps to `progress`
   * (a guest's `docker pull` prints them). A pull of the same name under way
   * is waited for first, so its layers are fetched once. IMAGE_NOT_FOUND
   * names what the site's registry has.
   */
  async pull(reference: string, progress: (step: PullStep) => void = () => {}): Promise<Image> {
    const ref = parseReference(reference);
    const name = ref.digest ? `${familiarName(ref)}@${ref.digest}` : normalizeName(reference);
    const earlier = this.inFlight.get(name);
    if (earlier) await earlier.catch(() => {});
    const record: ImagePull = { name, state: "pulling", layers: [], startedAt: performance.now() };
    this.records.push(record);
    if (this.records.length > KEPT_PULLS) this.records.shift();
    this.changed();
    // The registry client is loaded with the first pull: a page that runs no container never downloads it.
    const pulling = import("../containers/registry-transfer.ts").then(({ pullFromRegistry }) =>
      pullFromRegistry(this.store, reference, (step) => {
        this.note(record, step);
        progress(step);
      }, { baseUrl: this.registryUrl }),
    );
    this.inFlight.set(name, pulling);
    try {
      const image = await pulling;
      this.finish(record, image, ref.path);
      return image;
    } catch (err) {
      record.state = "failed";
      record.ms = performance.now() - record.startedAt;
      const e = err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND" ? await this.notFound(err, name) : err;
      record.error = (e as Error)?.message ?? String(e);
      this.changed();
      throw e;
    } finally {
      if (this.inFlight.get(name) === pulling) this.inFlight.delete(name);
    }
  }

  /** A step of a pull, into its record. */
  private note(record: ImagePull, step: PullStep): void {
    const layer = (id: string) => {
      let l = record.layers.find((x) => x.id === id);
      if (!l) record.layers.push((l = { id, current: 0, status: "" }));
      return l;
    };
    switch (step.kind) {
      case "layer": {
        const l = layer(step.id);
        l.status = step.status;
        if (step.status === "Already exists") l.source = "page";
        break;
      }
      case "download": {
        const l = layer(step.id);
        l.status = "Downloading";
        l.current = step.current;
        l.size = step.total;
        break;
      }
      case "digest":
        record.digest = step.digest;
        break;
      case "done":
        record.upToDate = !step.updated;
        break;
      case "start":
        break;
    }
    this.changed();
  }

  /** A finished pull: each layer's digest and size, and where its bytes came from (the browser's resource timing of its URL). */
  private finish(record: ImagePull, image: Image, repo: string): void {
    for (const l of image.layers) {
      const id = shortId(l.digest);
      let rec = record.layers.find((x) => x.id === id);
      if (!rec) record.layers.push((rec = { id, current: 0, status: "Already exists", source: "page" }));
      rec.digest = l.digest;
      rec.size ??= l.size;
      if (rec.source === "page") continue;
      rec.current = rec.size;
      const timing = resourceTiming(`${this.registryUrl.replace(/\/+$/, "")}/v2/${repo}/blobs/${l.digest}`);
      if (timing) {
        rec.transferred = timing.transferSize;
        // Nothing on the wire for a body that arrived: the browser's cache answered.
        rec.source = timing.transferSize === 0 && timing.decodedBodySize > 0 ? "browser-cache" : "network";
      } else rec.source = "network";
    }
    // In the image's order (a pull reports the layers it lacks in the order it fetches them).
    record.layers.sort((a, b) => image.layers.findIndex((l) => shortId(l.digest) === a.id) - image.layers.findIndex((l) => shortId(l.digest) === b.id));
    record.digest = image.digest;
    record.state = "done";
    record.ms = performance.now() - record.startedAt;
    this.changed();
  }

  /**
   * A registry's "manifest unknown" in dockerd's words (a repository the
   * site's registry lacks: "pull access denied"; a tag it lacks: "manifest
   * unknown"), with what the site's registry has (its catalog and tags).
   */
  private async notFound(err: HyperlabError, name: string): Promise<HyperlabError> {
    const base = `${this.registryUrl.replace(/\/+$/, "")}/v2/`;
    const ref = parseReference(name);
    let repos: string[];
    let names: string[];
    try {
      const json = async (path: string) => {
        const res = await fetch(base + path);
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        return res.json() as Promise<{ repositories?: string[]; tags?: string[] }>;
      };
      repos = (await json("_catalog")).repositories ?? [];
      names = (await Promise.all(repos.map(async (r) => ((await json(`${r}/tags/list`)).tags ?? []).map((t) => `${r.replace(/^library\//, "")}:${t}`)))).flat();
    } catch (listErr) {
      return new HyperlabError("IMAGE_NOT_FOUND", `${err.message}. The site's registry (${base}) could not list its images either (${(listErr as Error).message}): was the site built with 'npm run build'?`, err.detail);
    }
    const has = `the site's registry (${base}), from which the page pulls its images, has ${names.join(", ") || "no images"}`;
    const message = repos.includes(ref.path)
      ? `manifest for ${name} not found: manifest unknown: ${has}`
      : `pull access denied for ${familiarName(ref)}, repository does not exist or may require 'docker login': ${has}`;
    return new HyperlabError("IMAGE_NOT_FOUND", message, { ...err.detail, reference: name, available: names });
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}

/** The browser's timing of the latest fetch of `url` (undefined where there is none, as in Node). */
function resourceTiming(url: string): PerformanceResourceTiming | undefined {
  if (typeof performance === "undefined" || typeof performance.getEntriesByName !== "function") return undefined;
  const entries = performance.getEntriesByName(url, "resource") as PerformanceResourceTiming[];
  return entries[entries.length - 1];
}
