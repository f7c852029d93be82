// The build context: the files a client sends with a build (a tar, as
// `docker build` sends it, optionally gzip-compressed), read on the host
// with modern-tar (Web Streams) and kept in memory while the build runs.
// COPY and ADD take their sources from here: paths checked to stay inside
// the context, Go's filepath.Match wildcards, `.dockerignore` applied as
// dockerd's classic builder and BuildKit do (@balena/dockerignore is a port
// of Docker's own matcher). Nothing here needs Node's own modules except
// what @balena/dockerignore takes from `path` (a page aliases it).
import dockerignore from "@balena/dockerignore";
import { createTarDecoder, type TarHeader } from "modern-tar";
import { HyperlabError } from "../../errors.ts";
import { concatBytes } from "../../bytes.ts";
import { sha256Hex } from "../image-store.ts";

// The package is CommonJS (module.exports is the factory) typed as an ES module: its default import is the factory itself.
const ignore = dockerignore as unknown as typeof dockerignore.default;

/** The largest build context a build takes (it is held in memory). */
export const MAX_CONTEXT_BYTES = 512 * 1024 * 1024;

/** One file, folder or link of the context (or of an image's files, see rootfs.ts). */
export interface FileEntry {
  /** path without a leading slash ("app/main.lua"); "" is the root */
  path: string;
  type: "file" | "directory" | "symlink" | "link";
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  /** a file's bytes */
  data?: Uint8Array;
  /** a link's target (a hard link's: a path of the same tree) */
  linkname?: string;
}

/** A path made relative and clean ("./a/../b/" → "b"); null when it leaves the root. */
export function cleanPath(path: string): string | null {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (!parts.length) return null;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

/** Whether a COPY source has wildcards (Go's filepath.Match: `*`, `?`, `[…]`). */
export function hasWildcards(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

/** Go's filepath.Match pattern as a regular expression (`*` and `?` do not cross `/`; `\` escapes). */
export function matchRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) throw new HyperlabError("INVALID_ARGUMENT", `syntax error in pattern '${pattern}'`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^")) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\(?!.)/g, "\\\\")}]`;
      i = end;
    } else re += escapeRe(ch);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** The files of a build, by path. */
export class BuildContext {
  private readonly entries = new Map<string, FileEntry>();

  constructor(entries: Iterable<FileEntry>) {
    this.entries.set("", { path: "", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: new Date(0) });
    for (const e of entries) {
      this.entries.set(e.path, e);
      // A file listed without its folders: the folders exist all the same.
      for (let p = parentOf(e.path); p && !this.entries.has(p); p = parentOf(p)) {
        this.entries.set(p, { path: p, type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: e.mtime });
      }
    }
  }

  /**
   * Reads a context tar (uncompressed or gzip). INVALID_ARGUMENT when it is
   * not a tar, is larger than MAX_CONTEXT_BYTES or has a path that leaves it.
   */
  static async fromTar(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<BuildContext> {
    const bytes = await readAll(chunks);
    let tar = bytes;
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
      tar = new Uint8Array(await new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
    } else if ((bytes[0] === 0x42 && bytes[1] === 0x5a && bytes[2] === 0x68) || (bytes[0] === 0xfd && bytes[1] === 0x37)) {
      throw new HyperlabError("NOT_SUPPORTED", "the build context is bzip2- or xz-compressed: send it as a plain tar or a gzip one");
    }
    if (!tar.length) return new BuildContext([]);
    const out: FileEntry[] = [];
    for (const { header, data } of await decodeTar(tar, "the build context")) {
      const path = cleanPath(header.name);
      if (path === null) throw new HyperlabError("INVALID_ARGUMENT", `the build context has the path '${header.name}', which leaves it`);
      if (path === "") continue;
      const type = header.type === "directory" || header.type === "symlink" || header.type === "link" ? header.type : header.type === "file" || header.type === undefined ? "file" : undefined;
      if (!type) continue; // devices and fifos are not copied (dockerd skips them too)
      out.push({ path, type, mode: (header.mode ?? (type === "directory" ? 0o755 : 0o644)) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0, mtime: header.mtime ?? new Date(0), data: type === "file" ? data : undefined, linkname: header.linkname });
    }
    return new BuildContext(out);
  }

  /** The entry at `path` (clean, relative), if any. */
  get(path: string): FileEntry | undefined {
    return this.entries.get(path);
  }

  /** A file's text (the Dockerfile, .dockerignore); undefined when there is no such file. */
  text(path: string): string | undefined {
    const e = this.resolve(path);
    return e?.type === "file" ? new TextDecoder().decode(e.data ?? new Uint8Array()) : undefined;
  }

  /** Every entry, parents before children. */
  all(): FileEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The entries under `dir` (not itself), parents first. */
  under(dir: string): FileEntry[] {
    const prefix = dir ? `${dir}/` : "";
    return this.all().filter((e) => e.path !== dir && e.path.startsWith(prefix));
  }

  /** The entry at `path`, its symlinks followed inside the context (a link out of it: undefined). */
  resolve(path: string, hops = 0): FileEntry | undefined {
    const e = this.entries.get(path);
    if (!e || (e.type !== "symlink" && e.type !== "link")) return e;
    if (hops > 40) return undefined;
    const target = e.type === "link" ? cleanPath(e.linkname ?? "") : cleanPath(e.linkname?.startsWith("/") ? e.linkname : `${parentOf(path)}/${e.linkname ?? ""}`);
    return target === null ? undefined : this.resolve(target, hops + 1);
  }

  /**
   * Drops what `.dockerignore` excludes, as dockerd does: the patterns are
   * the context's .dockerignore (comments and blank lines skipped; a path
   * whose folder is excluded is excluded unless a `!` rule brings it back).
   * The builder reads the Dockerfile before this, so an excluded Dockerfile
   * or .dockerignore still builds but COPY does not see it.
   */
  withoutIgnored(): { context: BuildContext; patterns: string[] } {
    const text = this.text(".dockerignore");
    if (text === undefined) return { context: this, patterns: [] };
    const patterns = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    if (!patterns.length) return { context: this, patterns };
    const ig = ignore().add(patterns);
    const kept = [...this.entries.values()].filter((e) => e.path === "" || !ig.ignores(e.path));
    return { context: new BuildContext(kept.filter((e) => e.path !== "")), patterns };
  }

  /**
   * The context paths a COPY source means: the path itself, or every path
   * its wildcards match. INVALID_ARGUMENT for a path outside the context
   * (dockerd's "forbidden path"); an empty list when nothing is there.
   */
  sources(source: string): FileEntry[] {
    const path = cleanPath(source);
    if (path === null) throw new HyperlabError("INVALID_ARGUMENT", `forbidden path outside the build context: ${source}`);
    if (!hasWildcards(path)) {
      const e = this.entries.get(path);
      if (!e) return [];
      // A symlink named as the source is followed (inside the context).
      if (e.type === "symlink") {
        const target = this.resolve(path);
        return target ? [{ ...target, path }] : [];
      }
      return [e];
    }
    const re = matchRegExp(path);
    return this.all().filter((e) => e.path !== "" && re.test(e.path));
  }
}

/** The parent folder of a clean path ("" for one at the root). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/** A digest of what `entries` hold (paths relative to `base`, types, modes, owners, links, contents; not times): a COPY step's source for its cache key. */
export async function contentDigest(entries: FileEntry[], base: string): Promise<string> {
  const lines: string[] = [];
  for (const e of entries) {
    const rel = base && e.path.startsWith(`${base}/`) ? e.path.slice(base.length + 1) : e.path === base ? "." : e.path;
    const data = e.type === "file" ? await sha256Hex(e.data ?? new Uint8Array()) : "";
    lines.push(JSON.stringify([rel, e.type, e.mode, e.uid, e.gid, e.linkname ?? "", data]));
  }
  return sha256Hex(new TextEncoder().encode(lines.join("\n")));
}

/** Reads a stream to its end, refusing more than MAX_CONTEXT_BYTES. */
async function readAll(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of chunks) {
    total += c.length;
    if (total > MAX_CONTEXT_BYTES) throw new HyperlabError("INVALID_ARGUMENT", `the build context is larger than ${MAX_CONTEXT_BYTES / 1024 / 1024} MiB: leave large files out with .dockerignore`);
    parts.push(c);
  }
  return concatBytes(parts);
}

/** Whether `block` (512 bytes) is a tar header: its checksum field matches its bytes (the field counted as spaces). */
function isTarHeader(block: Uint8Array): boolean {
  if (block.length < 512) return false;
  const field = new TextDecoder().decode(block.subarray(148, 156)).replace(/[\0 ]+$/, "").trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === parseInt(field, 8);
}

/** Every entry of a tar in memory: its header and bytes. INVALID_ARGUMENT naming `what` when it is not a tar. */
export async function decodeTar(tar: Uint8Array, what: string): Promise<Array<{ header: TarHeader; data: Uint8Array }>> {
  const out: Array<{ header: TarHeader; data: Uint8Array }> = [];
  // An archive ends with zero blocks; one that starts with anything else must start with a header.
  if (tar.length && tar.subarray(0, 512).some((b) => b !== 0) && !isTarHeader(tar.subarray(0, 512))) {
    throw new HyperlabError("INVALID_ARGUMENT", `${what} is not a tar archive (its first block is no tar header)`);
  }
  const decoder = createTarDecoder();
  const writer = decoder.writable.getWriter();
  const feeding = writer.write(tar).then(() => writer.close());
  feeding.catch(() => {});
  try {
    const reader = decoder.readable.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out.push({ header: value.header, data: new Uint8Array(await new Response(value.body).arrayBuffer()) });
    }
    await feeding;
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `${what} is not a tar archive (${(err as Error).message})`);
  }
  return out;
}
