// Image archives, as `docker save` writes them and `docker load` reads them.
// Written: Docker's archive format (manifest.json, repositories, the config
// and layer tars) laid out as an OCI image layout (oci-layout, index.json,
// blobs/sha256/…), which is what dockerd 25 and later write, so both Docker's
// loaders and OCI tools read it. Read: that, the older Docker layout
// (<id>/layer.tar, <id>.json) and plain OCI layouts (skopeo, buildx), whose
// layers may be gzip-compressed. Every path is resolved inside the archive:
// an entry or a link that points outside it is refused. Nothing here needs
// Node: tar comes from modern-tar (Web Streams), gzip from DecompressionStream.
import { createTarDecoder, createTarPacker, type TarHeader } from "modern-tar";
import { HyperlabError } from "../errors.ts";
import { checkLayerTar, inflateLayer } from "./layer-tar.ts";
import { familiarName, normalizeName, parseReference } from "./image-reference.ts";
import { type Image, type ImageStore, type NewImage, sha256Hex } from "./image-store.ts";

/** The largest archive `docker load` takes (it is held in memory while it is read). */
export const MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One image to write, with the names to give it in the archive. */
export interface SaveItem {
  image: Image;
  names: string[];
}

interface ArchiveEntry {
  type: "file" | "symlink" | "link" | "directory";
  data?: Uint8Array;
  /** for links: the path it points at, resolved inside the archive */
  target?: string;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  annotations?: Record<string, string>;
}

function invalid(message: string): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", `invalid archive: ${message}`);
}

/**
 * A path inside the archive, normalised ("./a/../b" → "b"); INVALID_ARGUMENT
 * when it leaves the archive ("../x", "/etc/passwd" through a link).
 */
export function archivePath(path: string, from = ""): string {
  if (path.startsWith("/")) throw invalid(`the path '${path}' is absolute: an archive's paths stay inside it`);
  const parts = from ? from.split("/") : [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (!parts.length) throw invalid(`the path '${path}' points outside the archive`);
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

/** Reads a whole tar stream into its entries (paths normalised, links resolved lazily). */
async function readEntries(chunks: AsyncIterable<Uint8Array>): Promise<Map<string, ArchiveEntry>> {
  const entries = new Map<string, ArchiveEntry>();
  const decoder = createTarDecoder();
  const writer = decoder.writable.getWriter();
  let total = 0;
  const feeding = (async () => {
    try {
      for await (const chunk of chunks) {
        total += chunk.length;
        if (total > MAX_ARCHIVE_BYTES) throw invalid(`it is larger than ${MAX_ARCHIVE_BYTES} bytes`);
        await writer.write(chunk);
      }
      await writer.close();
    } catch (err) {
      await writer.abort(err).catch(() => {});
      throw err;
    }
  })();
  feeding.catch(() => {});
  try {
    const reader = decoder.readable.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const h: TarHeader = value.header;
      const data = new Uint8Array(await new Response(value.body).arrayBuffer());
      const name = archivePath(h.name);
      if (!name) continue;
      const type = h.type ?? "file";
      if (type === "file") entries.set(name, { type, data });
      else if (type === "directory") entries.set(name, { type });
      else if (type === "symlink") entries.set(name, { type, target: archivePath(h.linkname ?? "", h.linkname?.startsWith("/") ? "" : name.split("/").slice(0, -1).join("/")) });
      else if (type === "link") entries.set(name, { type, target: archivePath(h.linkname ?? "") });
    }
  } catch (err) {
    await feeding.catch(() => {});
    if (err instanceof HyperlabError) throw err;
    throw invalid(`it is not a tar archive (${(err as Error).message})`);
  }
  await feeding;
  return entries;
}

/** The bytes of the file at `path` in the archive (following links inside it). */
function fileAt(entries: Map<string, ArchiveEntry>, path: string): Uint8Array {
  let p = archivePath(path);
  for (let hops = 0; hops < 40; hops++) {
    const e = entries.get(p);
    if (!e) throw invalid(`it has no file '${path}'`);
    if (e.type === "file") return e.data!;
    if (e.type === "directory") throw invalid(`'${path}' is a folder, not a file`);
    p = e.target!;
  }
  throw invalid(`too many links from '${path}'`);
}

function json<T>(data: Uint8Array, what: string): T {
  try {
    return JSON.parse(decoder.decode(data)) as T;
  } catch (err) {
    throw invalid(`failed to decode ${what}: ${(err as Error).message}`);
  }
}

/**
 * A layer as the store keeps it: an uncompressed tar (a gzip one is inflated,
 * within MAX_LAYER_BYTES; zstd is refused), whose entries stay inside it
 * (layer-tar.ts: no `..`, absolute paths, writes through its own links,
 * hard links out or device nodes).
 */
async function uncompressed(data: Uint8Array, what: string): Promise<Uint8Array> {
  if (data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd) {
    throw new HyperlabError("NOT_SUPPORTED", `layer ${what} is zstd-compressed, which hyperlab cannot unpack yet: save the image with gzip or uncompressed layers`);
  }
  const tar = await inflateLayer(data, `layer ${what}`);
  await checkLayerTar(tar, `layer ${what}`);
  return tar;
}

/** Docker's manifest.json: one item per image. */
interface ManifestItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** The images of a Docker archive (manifest.json). */
async function dockerImages(entries: Map<string, ArchiveEntry>): Promise<NewImage[]> {
  const manifest = json<ManifestItem[] | null>(fileAt(entries, "manifest.json"), "manifest.json");
  if (!Array.isArray(manifest)) throw new HyperlabError("INVALID_ARGUMENT", "invalid manifest, manifest cannot be null (but can be [])");
  const out: NewImage[] = [];
  for (const item of manifest) {
    const layers: Uint8Array[] = [];
    for (const l of item.Layers ?? []) layers.push(await uncompressed(fileAt(entries, l), l));
    out.push({ config: fileAt(entries, item.Config), layers, repoTags: (item.RepoTags ?? []).map(tagOf) });
  }
  return out;
}

/** A RepoTags entry, which must name a tag ("invalid tag" otherwise, as dockerd says). */
function tagOf(repoTag: string): string {
  const ref = parseReference(repoTag);
  if (!ref.tag || ref.digest) throw new HyperlabError("INVALID_ARGUMENT", `invalid tag "${repoTag}"`);
  return normalizeName(repoTag);
}

const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]);

/** The images of an OCI image layout (index.json), linux/386 ones only from a multi-platform index. */
async function ociImages(entries: Map<string, ArchiveEntry>): Promise<NewImage[]> {
  const blob = async (d: Descriptor, what: string) => {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(d.digest)?.[1];
    if (!hex) throw invalid(`${what} has the digest '${d.digest}': hyperlab reads sha256 digests only`);
    const data = fileAt(entries, `blobs/sha256/${hex}`);
    if ((await sha256Hex(data)) !== hex) throw invalid(`the blob ${d.digest} (${what}) does not match its digest`);
    return data;
  };
  const out: NewImage[] = [];
  const skipped: string[] = [];
  const visit = async (descriptors: Descriptor[], name: string | undefined, depth: number): Promise<void> => {
    if (depth > 4) throw invalid("its image indexes nest too deep");
    for (const d of descriptors) {
      const named = nameOf(d) ?? name;
      const data = await blob(d, "a manifest");
      const doc = json<{ mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }>(data, `manifest ${d.digest}`);
      if (INDEX_TYPES.has(d.mediaType ?? "") || INDEX_TYPES.has(doc.mediaType ?? "") || doc.manifests) {
        const mine = (doc.manifests ?? []).filter((m) => !m.platform || (m.platform.os === "linux" && m.platform.architecture === "386"));
        for (const m of doc.manifests ?? []) if (!mine.includes(m)) skipped.push(`${m.platform?.os}/${m.platform?.architecture}`);
        await visit(mine, named, depth + 1);
        continue;
      }
      if (!doc.config) throw invalid(`the manifest ${d.digest} has no config`);
      const layers: Uint8Array[] = [];
      for (const l of doc.layers ?? []) layers.push(await uncompressed(await blob(l, "a layer"), l.digest));
      out.push({ config: await blob(doc.config, "a config"), layers, repoTags: named ? [named] : [] });
    }
  };
  const index = json<{ manifests?: Descriptor[] }>(fileAt(entries, "index.json"), "index.json");
  await visit(index.manifests ?? [], undefined, 0);
  if (!out.length && skipped.length) {
    throw new HyperlabError("NOT_SUPPORTED", `the archive has images for ${[...new Set(skipped)].join(", ")} only: hyperlab runs linux/386 images (its guest is a 32-bit x86 PC)`);
  }
  return out;
}

/** The name an OCI index entry gives its image: containerd's full name, else a ref.name that is a whole reference. */
function nameOf(d: Descriptor): string | undefined {
  const full = d.annotations?.["io.containerd.image.name"];
  if (full) return tagOf(full);
  const ref = d.annotations?.["org.opencontainers.image.ref.name"];
  // A bare tag ("latest") names no repository.
  if (ref && /[:/]/.test(ref)) {
    try {
      return tagOf(ref);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Reads an image archive (`docker load`): a Docker archive (manifest.json)
 * or an OCI image layout (index.json). INVALID_ARGUMENT naming what is wrong
 * otherwise; NOT_SUPPORTED for images hyperlab cannot run.
 */
export async function readImageArchive(chunks: AsyncIterable<Uint8Array>): Promise<NewImage[]> {
  const entries = await readEntries(chunks);
  if (entries.has("manifest.json")) return dockerImages(entries);
  if (entries.has("index.json")) return ociImages(entries);
  throw invalid("does not contain a manifest.json (a Docker archive) or an index.json (an OCI image layout)");
}

/** Docker's archive entries: fixed times and owners, so one image always makes the same archive. */
function header(name: string, size: number, type: TarHeader["type"] = "file"): TarHeader {
  return { name, size, type, mode: type === "directory" ? 0o755 : 0o644, mtime: new Date(0), uid: 0, gid: 0 };
}

/**
 * Writes images as `docker save` does (see the file comment): a tar stream.
 * `names` are the names each image carries in it (none when it was asked
 * for by ID). Blobs shared by images are written once.
 */
export function writeImageArchive(store: ImageStore, items: SaveItem[]): ReadableStream<Uint8Array> {
  const { readable, controller } = createTarPacker();
  const put = async (name: string, data: Uint8Array) => {
    const w = controller.add(header(name, data.length)).getWriter();
    await w.write(data);
    await w.close();
  };
  const dir = async (name: string) => void (await controller.add(header(name, 0, "directory")).close());
  void (async () => {
    const written = new Set<string>();
    const blob = async (digest: string) => {
      const hex = digest.replace(/^sha256:/, "");
      if (written.has(hex)) return;
      written.add(hex);
      await put(`blobs/sha256/${hex}`, await store.blob(digest));
    };
    const manifest: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
    const index: Descriptor[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    await dir("blobs/");
    await dir("blobs/sha256/");
    for (const { image, names } of items) {
      for (const l of image.layers) await blob(l.digest);
      await blob(image.id);
      const manifestBytes = await store.blob(image.digest);
      await blob(image.digest);
      const desc = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: image.digest, size: manifestBytes.length };
      for (const n of names) {
        const ref = parseReference(n);
        index.push({ ...desc, annotations: { "io.containerd.image.name": `${ref.domain}/${ref.path}:${ref.tag ?? "latest"}`, "org.opencontainers.image.ref.name": ref.tag ?? "latest" } });
        const repo = familiarName(ref);
        repositories[repo] = { ...repositories[repo], [ref.tag ?? "latest"]: (image.layers.at(-1)?.digest ?? image.id).replace(/^sha256:/, "") };
      }
      if (!names.length) index.push(desc);
      manifest.push({ Config: `blobs/sha256/${image.id.replace(/^sha256:/, "")}`, RepoTags: names, Layers: image.layers.map((l) => `blobs/sha256/${l.digest.replace(/^sha256:/, "")}`) });
    }
    await put("index.json", encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: index })));
    await put("manifest.json", encoder.encode(JSON.stringify(manifest) + "\n"));
    await put("oci-layout", encoder.encode(`{"imageLayoutVersion": "1.0.0"}`));
    if (Object.keys(repositories).length) await put("repositories", encoder.encode(JSON.stringify(repositories) + "\n"));
    controller.finalize();
    for (const { image } of items) await store.saved(image);
  })().catch((err: unknown) => controller.error(err));
  return readable;
}
