// The host's image store: an OCI image layout (index.json, manifests,
// configs and layer blobs addressed by sha256), read from a folder in Node or
// a URL in a browser. Images reach a guest from here, never from a network.
import { HyperlabError } from "../errors.ts";

/** Reads one file of the layout by its path inside it (e.g. "index.json", "blobs/sha256/<hex>"). */
export type LayoutReader = (path: string) => Promise<Uint8Array>;

/** A layer of an image: an uncompressed tar, identified by its sha256. */
export interface LayerInfo {
  digest: string;
  size: number;
}

/** An image as `hyperlab images` shows it, with what a container needs from its config. */
export interface ImageInfo {
  /** e.g. "lua:5.4" */
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
  config: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string };
}

interface Descriptor {
  digest: string;
  size: number;
  mediaType?: string;
  annotations?: Record<string, string>;
}

const decoder = new TextDecoder();

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Adds ":latest" to a reference without a tag, as Docker does. */
export function normalizeReference(ref: string): string {
  const lastSlash = ref.lastIndexOf("/");
  return ref.slice(lastSlash + 1).includes(":") ? ref : `${ref}:latest`;
}

/** Images from one OCI image layout. */
export class ImageStore {
  private images: Promise<ImageInfo[]> | undefined;

  constructor(
    private readonly read: LayoutReader,
    /** where the layout is, for messages */
    readonly where: string,
  ) {}

  /** Every image in the layout, in index order. */
  list(): Promise<ImageInfo[]> {
    this.images ??= this.load();
    this.images.catch(() => (this.images = undefined));
    return this.images;
  }

  /** The image a reference names; IMAGE_NOT_FOUND lists the ones that exist. */
  async get(reference: string): Promise<ImageInfo> {
    const ref = normalizeReference(reference);
    const images = await this.list();
    const image = images.find((i) => i.reference === ref);
    if (!image) {
      throw new HyperlabError(
        "IMAGE_NOT_FOUND",
        `no such image: ${reference}. Images available: ${images.map((i) => i.reference).join(", ") || "none"} ` +
          `(hyperlab's images are built from Debian packages by 'npm run images'; nothing is pulled from a registry).`,
        { reference, available: images.map((i) => i.reference) },
      );
    }
    return image;
  }

  /** A blob's bytes, checked against its digest. */
  async blob(digest: string): Promise<Uint8Array> {
    const hex = digest.replace(/^sha256:/, "");
    let data: Uint8Array;
    try {
      data = await this.read(`blobs/sha256/${hex}`);
    } catch (err) {
      throw new HyperlabError("IMAGE_CORRUPT", `image blob ${digest} is missing from ${this.where}: ${(err as Error).message}`);
    }
    const actual = await sha256Hex(data);
    if (actual !== hex) {
      throw new HyperlabError(
        "IMAGE_CORRUPT",
        `image blob ${digest} in ${this.where} is damaged (its sha256 is ${actual}); restore it with 'git checkout -- guest-images/dist' or rebuild with 'npm run images'.`,
      );
    }
    return data;
  }

  private async json<T>(digest: string): Promise<T> {
    return JSON.parse(decoder.decode(await this.blob(digest))) as T;
  }

  private async load(): Promise<ImageInfo[]> {
    let index: { manifests?: Descriptor[] };
    try {
      index = JSON.parse(decoder.decode(await this.read("index.json"))) as { manifests?: Descriptor[] };
    } catch (err) {
      throw new HyperlabError(
        "IMAGE_MISSING",
        `cannot read the image index at ${this.where}/index.json (${(err as Error).message}); build the images with 'npm run images'.`,
      );
    }
    const out: ImageInfo[] = [];
    for (const d of index.manifests ?? []) {
      const reference = d.annotations?.["org.opencontainers.image.ref.name"];
      if (!reference) continue;
      const manifest = await this.json<{ config: Descriptor; layers: Descriptor[] }>(d.digest);
      const config = await this.json<{ created?: string; config?: ImageInfo["config"] }>(manifest.config.digest);
      const ref = normalizeReference(reference);
      const colon = ref.lastIndexOf(":");
      const layers = manifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
      out.push({
        reference: ref,
        repository: ref.slice(0, colon),
        tag: ref.slice(colon + 1),
        digest: d.digest,
        id: manifest.config.digest,
        size: layers.reduce((n, l) => n + l.size, 0),
        layers,
        created: config.created,
        config: config.config ?? {},
      });
    }
    return out;
  }
}
