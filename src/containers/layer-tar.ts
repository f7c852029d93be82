// An image layer's tar, checked on the host before the guest unpacks it:
// the classic container-image escape is a layer whose entries land outside
// the folder it is unpacked into, or write through a link it made itself.
// Each layer is unpacked by the guest's busybox tar, as root, into an empty
// folder of its own, so an entry is refused when it
// - is absolute (`/etc/passwd`) or has a `..` component (`../../etc/passwd`);
// - goes through a symbolic link the same layer made (`lib -> /etc`, then
//   `lib/passwd`): unpacking would write where the link points;
// - is a hard link to a path outside the layer, to a path through such a
//   symbolic link, or to nothing the layer holds before it;
// - is a device node (a character or block device): layers do not carry them
//   (a whiteout is a `.wh.` file in an OCI layer);
// and the whole layer is bounded: MAX_LAYER_BYTES unpacked (a gzip layer is
// inflated no further), MAX_LAYER_ENTRIES entries, names of MAX_PATH_BYTES.
// Symbolic links may point anywhere, absolute or up: they are not followed
// while unpacking (the rule above), and in a container the kernel resolves
// them inside the container's own root.
import { createTarDecoder } from "modern-tar";
import { HyperlabError } from "../errors.ts";
import { concatBytes } from "../bytes.ts";

/** The most a layer may hold once inflated (it is held in memory, then in the guest's RAM). */
export const MAX_LAYER_BYTES = 1024 * 1024 * 1024;
/** The most entries a layer may have. */
export const MAX_LAYER_ENTRIES = 500_000;
/** The longest entry name or link target, in bytes (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

const encoder = new TextEncoder();

function refused(label: string, why: string): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", `refusing ${label}: ${why}`, { layer: label });
}

/** Why `name` cannot be a path inside the layer, if it cannot. */
function pathProblem(name: string): string | undefined {
  if (encoder.encode(name).length > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  if (name.startsWith("/")) return "is absolute";
  if (name.split("/").includes("..")) return "has a '..' component";
  return undefined;
}

/** `name` as a path inside the layer: "./a//b/" → "a/b". */
function layerPath(name: string): string {
  return name
    .split("/")
    .filter((p) => p !== "" && p !== ".")
    .join("/");
}

/** The symbolic link of `links` that `path` goes through (a proper prefix of it), if any. */
function throughLink(path: string, links: ReadonlySet<string>): string | undefined {
  for (let i = path.indexOf("/"); i >= 0; i = path.indexOf("/", i + 1)) {
    if (links.has(path.slice(0, i))) return path.slice(0, i);
  }
  return undefined;
}

/** A gzip layer inflated, no further than `limit` bytes (MAX_LAYER_BYTES); an uncompressed one as it is. */
export async function inflateLayer(blob: Uint8Array, label = "the layer", limit = MAX_LAYER_BYTES): Promise<Uint8Array> {
  if (blob[0] !== 0x1f || blob[1] !== 0x8b) {
    if (blob.length > limit) throw refused(label, `it is larger than ${limit} bytes`);
    return blob;
  }
  const reader = new Blob([blob as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip")).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read().catch((err: Error) => {
      throw refused(label, `it is not a valid gzip stream (${err.message})`);
    });
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw refused(label, `it inflates to more than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}

/**
 * Checks an (uncompressed) layer tar entry by entry and returns its entry
 * names, in order; INVALID_ARGUMENT naming the layer (`label`) and the entry
 * when one is refused (see the file comment).
 */
export async function checkLayerTar(tar: Uint8Array, label = "the layer"): Promise<string[]> {
  const names: string[] = [];
  const links = new Set<string>();
  const seen = new Set<string>();
  let claimed = 0;
  const decoder = createTarDecoder();
  const writer = decoder.writable.getWriter();
  const feeding = writer.write(tar).then(() => writer.close());
  feeding.catch(() => {});
  const reader = decoder.readable.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const h = value.header;
      await value.body.cancel();
      if (names.length >= MAX_LAYER_ENTRIES) throw refused(label, `it has more than ${MAX_LAYER_ENTRIES} entries`);
      // A header may promise more than the layer holds (busybox tar would read past its end).
      claimed += 512 + Math.ceil(h.size / 512) * 512;
      if (claimed > tar.length) throw refused(label, `the entry '${h.name}' claims ${h.size} bytes, more than the layer holds`);
      const problem = pathProblem(h.name);
      if (problem) throw refused(label, `the entry '${h.name}' ${problem}: it could land outside the layer`);
      const path = layerPath(h.name);
      names.push(h.name);
      if (!path) continue;
      const type = h.type ?? "file";
      if (type === "character-device" || type === "block-device") throw refused(label, `the entry '${h.name}' is a device node (${type}); layers do not carry devices`);
      const via = throughLink(path, links);
      if (via) throw refused(label, `the entry '${h.name}' goes through the symbolic link '${via}' the layer made: it would be written where the link points`);
      if (type === "link") {
        const targetProblem = pathProblem(h.linkname ?? "");
        if (targetProblem) throw refused(label, `the hard link '${h.name}' points to '${h.linkname}', which ${targetProblem}: it could reach a file outside the layer`);
        const target = layerPath(h.linkname ?? "");
        const targetVia = throughLink(target, links);
        if (targetVia) throw refused(label, `the hard link '${h.name}' points through the symbolic link '${targetVia}' the layer made: it could reach a file outside the layer`);
        if (links.has(target) || !seen.has(target)) throw refused(label, `the hard link '${h.name}' points to '${h.linkname}', which is no file the layer holds before it`);
      }
      if (type === "symlink") {
        if (encoder.encode(h.linkname ?? "").length > MAX_PATH_BYTES) throw refused(label, `the symbolic link '${h.name}' has a target longer than ${MAX_PATH_BYTES} bytes`);
        links.add(path);
      } else {
        // A later entry may replace a link with a file or folder.
        links.delete(path);
      }
      seen.add(path);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    await feeding.catch(() => {});
    if (err instanceof HyperlabError) throw err;
    throw refused(label, `it is not a valid tar (${(err as Error).message})`);
  }
  await feeding.catch((err: Error) => {
    throw refused(label, `it is not a valid tar (${err.message})`);
  });
  // The decoder reads bytes without a valid header as the end: an empty layer is zeros (or nothing).
  if (!names.length && tar.some((b) => b !== 0)) throw refused(label, "it is not a tar (no valid header)");
  return names;
}
