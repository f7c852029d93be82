// An image's files as its layers make them, read on the host from the
// store's layer tars: the OCI whiteouts of each layer (`.wh.NAME`,
// `.wh..wh..opq`) delete from the layers below it, as a runtime's overlay
// would. COPY and ADD ask it where a destination really is (following
// symlinks inside the image, as dockerd does), which folders exist with
// which owners and modes, what /etc/passwd and /etc/group say (--chown by
// name), and COPY --from=STAGE reads its sources from it. Pure: no I/O.
import { HyperlabError } from "../../errors.ts";
import { type FileEntry, cleanPath, decodeTar, parentOf } from "./context.ts";

/** The OCI whiteout prefix, and the name that makes a folder opaque. */
export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_WHITEOUT = ".wh..wh..opq";

/** An image's merged files (see the file comment). */
export class RootfsView {
  private readonly files = new Map<string, FileEntry>();

  private constructor() {
    this.files.set("", { path: "", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: new Date(0) });
  }

  /** The view of uncompressed layer tars, bottom layer first. */
  static async fromLayers(layers: Uint8Array[]): Promise<RootfsView> {
    const view = new RootfsView();
    for (const [i, tar] of layers.entries()) view.apply(await decodeTar(tar, `layer ${i + 1}`));
    return view;
  }

  /** An empty root (FROM scratch). */
  static empty(): RootfsView {
    return new RootfsView();
  }

  /** One layer over the view: its whiteouts delete from what is below, then its entries go in. */
  private apply(entries: Array<{ header: { name: string; type?: string; mode?: number; uid?: number; gid?: number; mtime?: Date; linkname?: string }; data: Uint8Array }>): void {
    const added: FileEntry[] = [];
    for (const { header: h, data } of entries) {
      const path = cleanPath(h.name);
      if (path === null || path === "") continue;
      const base = path.slice(path.lastIndexOf("/") + 1);
      if (base === OPAQUE_WHITEOUT) {
        for (const p of this.subtree(parentOf(path))) this.files.delete(p);
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        const gone = `${parentOf(path) ? `${parentOf(path)}/` : ""}${base.slice(WHITEOUT_PREFIX.length)}`;
        this.files.delete(gone);
        for (const p of this.subtree(gone)) this.files.delete(p);
        continue;
      }
      const type = h.type === "directory" || h.type === "symlink" || h.type === "link" ? h.type : h.type === "file" || h.type === undefined ? "file" : undefined;
      if (!type) continue;
      added.push({ path, type, mode: (h.mode ?? 0o644) & 0o7777, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime: h.mtime ?? new Date(0), data: type === "file" ? data : undefined, linkname: h.linkname });
    }
    for (const e of added) {
      const before = this.files.get(e.path);
      // Something that is not a folder replaces a whole folder below it.
      if (before?.type === "directory" && e.type !== "directory") for (const p of this.subtree(e.path)) this.files.delete(p);
      // A hard link is its target's bytes (in this layer or below).
      const entry = e.type === "link" ? { ...(this.files.get(cleanPath(e.linkname ?? "") ?? "") ?? e), path: e.path } : e;
      this.files.set(e.path, entry.type === "link" ? { ...entry, type: "file", data: new Uint8Array() } : entry);
      for (let p = parentOf(e.path); p && !this.files.has(p); p = parentOf(p)) this.files.set(p, { path: p, type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: e.mtime });
    }
  }

  /** The paths below `dir` (not itself). */
  private subtree(dir: string): string[] {
    const prefix = dir ? `${dir}/` : "";
    return [...this.files.keys()].filter((p) => p !== dir && p.startsWith(prefix));
  }

  /** The entry at the clean path `path`, as it is (a symlink is not followed). */
  get(path: string): FileEntry | undefined {
    return this.files.get(path);
  }

  /**
   * `path` (absolute or relative to the root) with every symlink in it
   * followed inside the image: an absolute link target starts at the image's
   * root, and `..` stops there (dockerd's FollowSymlinkInScope). The last
   * component is followed too unless `keepLast`.
   */
  resolve(path: string, keepLast = false): string {
    let todo = path.split("/").filter((p) => p && p !== ".");
    const done: string[] = [];
    for (let hops = 0; todo.length; ) {
      const part = todo.shift()!;
      if (part === "..") {
        done.pop();
        continue;
      }
      const candidate = [...done, part].join("/");
      const e = this.files.get(candidate);
      if (e?.type === "symlink" && (todo.length || !keepLast)) {
        if (++hops > 255) throw new HyperlabError("INVALID_ARGUMENT", `too many levels of symbolic links at /${candidate}`);
        const target = e.linkname ?? "";
        if (target.startsWith("/")) done.length = 0;
        todo = [...target.split("/").filter((p) => p && p !== "."), ...todo];
        continue;
      }
      done.push(part);
    }
    return done.join("/");
  }

  /** The entries under the folder `dir` (not itself), parents first. */
  under(dir: string): FileEntry[] {
    return this.subtree(dir)
      .sort()
      .map((p) => this.files.get(p)!);
  }

  /** A file's text (for /etc/passwd and /etc/group), symlinks followed; undefined when there is none. */
  text(path: string): string | undefined {
    const e = this.files.get(this.resolve(path));
    return e?.type === "file" ? new TextDecoder().decode(e.data ?? new Uint8Array()) : undefined;
  }
}
