// Tools a guest loads on first use, not at boot (guest-images/tools/, listed
// under `tools` in dist/manifest.json): read, checked against the manifest's
// sha256 before and after unpacking, and gunzipped with the platform's
// DecompressionStream (Node and browsers both have it).
import { HyperlabError } from "../errors.ts";
import type { ArtifactReader } from "./guest-image.ts";

/** One tool as dist/manifest.json lists it. */
export interface ManifestTool {
  /** the compressed file, relative to dist/ */
  file: string;
  sha256: string;
  size: number;
  unpacked: { sha256: string; size: number };
  /** where the guest keeps it (the stub by its name execs this path) */
  path: string;
  package: { name: string; version: string; arch: string };
  license: string;
  what: string;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The tools the image at `read` offers (none for an image built before tools existed). */
export async function listGuestTools(read: ArtifactReader): Promise<Record<string, ManifestTool>> {
  const manifest = JSON.parse(new TextDecoder().decode(await read("manifest.json"))) as { tools?: Record<string, ManifestTool> };
  return manifest.tools ?? {};
}

/**
 * The unpacked program of tool `name` and its manifest entry (which says
 * where it goes in the guest). IMAGE_MISSING when the image lists no such
 * tool or its file is gone, IMAGE_CORRUPT when a size or digest does not
 * match; each says what to do.
 */
export async function loadGuestTool(read: ArtifactReader, where: string, name: string): Promise<{ tool: ManifestTool; data: Uint8Array }> {
  const tools = await listGuestTools(read);
  const tool = Object.hasOwn(tools, name) ? tools[name] : undefined;
  if (!tool) {
    const known = Object.keys(tools);
    throw new HyperlabError(
      "IMAGE_MISSING",
      `the guest image in ${where} has no tool '${name}' (${known.length ? `it has: ${known.join(", ")}` : "it lists no tools"}); rebuild it with 'npm run images -- tools'`,
      { file: name },
    );
  }
  let packed: Uint8Array;
  try {
    packed = await read(tool.file);
  } catch (err) {
    throw new HyperlabError("IMAGE_MISSING", `${tool.file} could not be read from ${where} (${(err as Error).message}); restore it with 'git checkout -- guest-images/dist' or rebuild it with 'npm run images -- tools'`, { file: tool.file });
  }
  const damaged = (why: string) =>
    new HyperlabError("IMAGE_CORRUPT", `${tool.file} in ${where} is damaged: ${why}; restore it with 'git checkout -- guest-images/dist' or rebuild it with 'npm run images -- tools'`, { file: tool.file });
  if (packed.length !== tool.size || (await sha256Hex(packed)) !== tool.sha256) throw damaged("it does not match the manifest's size and sha256");
  const data = await gunzip(packed).catch((err: unknown) => {
    throw damaged(`it does not unpack (${(err as Error).message})`);
  });
  if (data.length !== tool.unpacked.size || (await sha256Hex(data)) !== tool.unpacked.sha256) throw damaged("what it unpacks to does not match the manifest's sha256");
  return { tool, data };
}
