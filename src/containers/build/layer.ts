// Layers a build makes, as OCI layer tars. COPY and ADD layers are made on
// the host from the context (or another stage's files) and the image's own
// files (rootfs.ts): the destination resolved as dockerd does, the folders
// on the way with the owners and modes they have in the image (new ones
// 0755, owned as --chown says). A RUN step's layer is the guest's tar of
// its container's overlay upper folder, whose deletions are overlayfs
// whiteouts (character devices 0/0) and opaque folders (an xattr busybox
// tar cannot carry: the guest finds them, see guest-layer.ts); here they
// become OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`). Each layer is then
// gzip-compressed: its diff id is the sha256 of the tar, its digest that of
// the gzip. Nothing here needs Node: modern-tar and CompressionStream.
import { packTar, type TarEntry } from "modern-tar";
import { HyperlabError } from "../../errors.ts";
import { sha256Hex } from "../image-store.ts";
import { type FileEntry, cleanPath, decodeTar, parentOf } from "./context.ts";
import { OPAQUE_WHITEOUT, type RootfsView, WHITEOUT_PREFIX } from "./rootfs.ts";

/** The media type of the layers a build stores. */
export const GZIP_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

/** One thing a COPY or ADD puts at a destination. */
export type CopyItem =
  /** a file or link (a folder source's entries come as items of their own) */
  | { kind: "entry"; entry: FileEntry; to: string }
  /** a folder the copy makes (or keeps, when it is there) */
  | { kind: "folder"; mode: number; to: string };

/** A numeric owner. */
export interface Owner {
  uid: number;
  gid: number;
}

/** A layer ready to store: its gzip bytes and digests. */
export interface PackedLayer {
  /** the gzip-compressed tar */
  blob: Uint8Array;
  /** sha256 of the gzip: the manifest's digest */
  digest: string;
  /** sha256 of the tar: the config's diff id */
  diffId: string;
  /** the uncompressed tar (what a guest unpacks) */
  tar: Uint8Array;
}

/** Joins an absolute folder and a relative path ("/app", "a/b" → "/app/a/b"). */
export function joinPath(dir: string, rel: string): string {
  return `/${cleanPath(`${dir}/${rel}`) ?? ""}`;
}

/**
 * Where a COPY's destination is, as dockerd reads it: relative to WORKDIR,
 * a folder when it ends in `/` (or `.`), or when it is a folder in the image
 * already. `several`: the sources are more than one (or a wildcard), which
 * needs a folder.
 */
export function destinationOf(dest: string, workdir: string, view: RootfsView, several: boolean, what: string): { path: string; isDir: boolean } {
  const abs = dest.startsWith("/") ? dest : joinPath(workdir || "/", dest);
  const endsAsDir = /\/$|(^|\/)\.$/.test(dest);
  const path = joinPath("/", abs);
  const existing = view.get(view.resolve(path));
  const isDir = endsAsDir || existing?.type === "directory";
  if (several && !isDir) throw new HyperlabError("INVALID_ARGUMENT", `When using ${what} with more than one source file, the destination must be a directory and end with a /`);
  return { path, isDir };
}

/**
 * The entries of a COPY/ADD layer: each item at its place (symlinks in the
 * image's paths followed), every folder on the way with its image owner and
 * mode (new ones: 0755 and `owner`, but root's for `workdir` and above it),
 * files owned by `owner` (default root) with `chmod` over their mode.
 * Parents come before children.
 */
export function copyLayerEntries(view: RootfsView, items: CopyItem[], opts: { owner?: Owner; chmod?: number; keepOwners?: boolean; workdir?: string }): FileEntry[] {
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  // WORKDIR and the folders above it are root's when a step makes them (dockerd makes them before the copy).
  const workdir = view.resolve(opts.workdir ?? "/");
  const ownerOf = (path: string) => (workdir === path || workdir.startsWith(`${path}/`) ? { uid: 0, gid: 0 } : owner);
  const out = new Map<string, FileEntry>();
  const now = new Date();
  const ensureFolder = (path: string) => {
    if (!path || out.has(path)) return;
    ensureFolder(parentOf(path));
    const there = view.get(path);
    if (there?.type === "directory") out.set(path, { ...there, data: undefined });
    else if (there) throw new HyperlabError("INVALID_ARGUMENT", `cannot copy to non-directory: /${path}`);
    else out.set(path, { path, type: "directory", mode: 0o755, ...ownerOf(path), mtime: now });
  };
  for (const item of items) {
    // The folder it goes into, with the image's symlinks followed; its own name kept.
    const dir = view.resolve(parentOf(cleanPath(item.to.replace(/^\/+/, "")) ?? ""));
    const name = item.to.replace(/\/+$/, "").slice(item.to.replace(/\/+$/, "").lastIndexOf("/") + 1);
    const path = dir ? (name ? `${dir}/${name}` : dir) : name;
    if (!path) continue;
    ensureFolder(parentOf(path));
    if (item.kind === "folder") {
      const resolved = view.resolve(path);
      const there = view.get(resolved);
      if (there?.type === "directory") {
        if (!out.has(resolved)) ensureFolder(resolved);
        continue;
      }
      if (there) throw new HyperlabError("INVALID_ARGUMENT", `cannot copy to non-directory: /${resolved}`);
      out.set(path, { path, type: "directory", mode: item.mode, ...ownerOf(path), mtime: now });
      continue;
    }
    const e = item.entry;
    const ids = opts.keepOwners && !opts.owner ? { uid: e.uid, gid: e.gid } : owner;
    const mode = opts.chmod !== undefined && e.type !== "symlink" ? opts.chmod : e.mode;
    out.set(path, { ...e, path, ...ids, mode });
  }
  return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A layer tar of `entries` (numeric owners only: no user or group names, which a guest would look up in its own files). */
export async function packEntries(entries: FileEntry[]): Promise<Uint8Array> {
  const tarEntries: TarEntry[] = entries.map((e) => ({
    header: {
      name: e.type === "directory" ? `${e.path}/` : e.path,
      size: e.type === "file" ? (e.data?.length ?? 0) : 0,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      uname: "",
      gname: "",
      mtime: e.mtime,
      linkname: e.linkname,
    },
    body: e.type === "file" ? (e.data ?? new Uint8Array()) : undefined,
  }));
  return packTar(tarEntries);
}

/** Compresses a layer tar and computes its digests (diff id: the tar's sha256; digest: the gzip's). */
export async function packLayer(tar: Uint8Array): Promise<PackedLayer> {
  const stream = new Blob([tar as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  const blob = new Uint8Array(await new Response(stream).arrayBuffer());
  const [diff, digest] = await Promise.all([sha256Hex(tar), sha256Hex(blob)]);
  return { blob, tar, digest: `sha256:${digest}`, diffId: `sha256:${diff}` };
}

/** A layer blob as a tar: a gzip one inflated, an uncompressed one as it is. */
export async function layerTar(blob: Uint8Array): Promise<Uint8Array> {
  if (blob[0] !== 0x1f || blob[1] !== 0x8b) return blob;
  const stream = new Blob([blob as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * An OCI layer tar from the guest's tar of an overlay upper folder: its
 * character devices (overlayfs whiteouts; the guest has checked they are
 * 0/0) become `.wh.NAME` files, each folder in `opaque` gets a
 * `.wh..wh..opq` entry, the root entry goes, paths lose their "./", and
 * user and group names go (owners stay numeric).
 */
export async function ociLayerFromUpper(tar: Uint8Array, opaque: readonly string[]): Promise<Uint8Array> {
  const opaqueSet = new Set(opaque.map((d) => cleanPath(d) ?? "").filter(Boolean));
  const out: TarEntry[] = [];
  for (const { header: h, data } of await decodeTar(tar, "the step's layer")) {
    const path = cleanPath(h.name);
    if (path === null) throw new HyperlabError("RUNTIME_ERROR", `the step's layer has the path '${h.name}', which leaves it`);
    if (!path) continue;
    const base = path.slice(path.lastIndexOf("/") + 1);
    const common = { mode: h.mode, uid: h.uid ?? 0, gid: h.gid ?? 0, uname: "", gname: "", mtime: h.mtime };
    if (h.type === "character-device") {
      const parent = parentOf(path);
      out.push({ header: { ...common, name: `${parent ? `${parent}/` : ""}${WHITEOUT_PREFIX}${base}`, size: 0, type: "file", mode: 0o600 }, body: new Uint8Array() });
      continue;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      throw new HyperlabError("RUNTIME_ERROR", `the step made a file named '${path}': names starting with '${WHITEOUT_PREFIX}' mean deletions in an image layer, so hyperlab cannot store it; rename it`);
    }
    if (h.type === "block-device") throw new HyperlabError("RUNTIME_ERROR", `the step made the device '/${path}': image layers made by hyperlab cannot carry device files`);
    if (h.type === "directory") {
      out.push({ header: { ...common, name: `${path}/`, size: 0, type: "directory" } });
      if (opaqueSet.has(path)) out.push({ header: { ...common, name: `${path}/${OPAQUE_WHITEOUT}`, size: 0, type: "file", mode: 0o600 }, body: new Uint8Array() });
      continue;
    }
    out.push({ header: { ...common, name: path, size: h.type === "file" || h.type === undefined ? data.length : 0, type: h.type, linkname: h.type === "link" ? cleanPath(h.linkname ?? "") ?? "" : h.linkname }, body: h.type === "file" || h.type === undefined ? data : undefined });
  }
  return packTar(out);
}
