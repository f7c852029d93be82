// A read-only registry as plain files: what the pull side of the OCI
// distribution API reads (GET /v2/<name>/manifests/<tag or digest>, GET
// /v2/<name>/blobs/<digest>, GET /v2/<name>/tags/list), written from an OCI
// image layout so that any static host serves it (`npm run build` writes the
// built-in images under the site's v2/). A static host sends no
// Docker-Content-Digest and no manifest media type; the client reads the
// media type from the manifest itself and checks every byte by its digest,
// so nothing is lost by that.
import { parseReference } from "./image-reference.ts";
import type { LayoutReader } from "./image-store.ts";

/** One file of a static registry: its path under the site (v2/…) and bytes. */
export interface StaticRegistryFile {
  path: string;
  data: Uint8Array;
}

interface Descriptor {
  digest: string;
  annotations?: Record<string, string>;
}

const decoder = new TextDecoder();

/**
 * The files of a static registry holding the named images of the OCI
 * layout `read` reads (annotation io.hyperlab.image.name or
 * org.opencontainers.image.ref.name, e.g. "lua:5.4" → v2/library/lua/…):
 * each manifest under its tag and its digest, its config and layers under
 * the repository's blobs/, and each repository's tags/list. Blobs shared by
 * repositories are written once per repository, as a registry links them.
 */
export async function staticRegistryFiles(read: LayoutReader): Promise<StaticRegistryFile[]> {
  const index = JSON.parse(decoder.decode(await read("index.json"))) as { manifests?: Descriptor[] };
  const files = new Map<string, Uint8Array>();
  const tags = new Map<string, string[]>();
  for (const d of index.manifests ?? []) {
    const name = d.annotations?.["io.hyperlab.image.name"] ?? d.annotations?.["org.opencontainers.image.ref.name"];
    if (!name) continue;
    const ref = parseReference(name);
    const tag = ref.tag ?? "latest";
    const repo = `v2/${ref.path}`;
    const manifest = await read(`blobs/sha256/${d.digest.replace("sha256:", "")}`);
    files.set(`${repo}/manifests/${tag}`, manifest);
    files.set(`${repo}/manifests/${d.digest}`, manifest);
    const m = JSON.parse(decoder.decode(manifest)) as { config: Descriptor; layers: Descriptor[] };
    for (const b of [m.config, ...m.layers]) {
      const path = `${repo}/blobs/${b.digest}`;
      if (!files.has(path)) files.set(path, await read(`blobs/sha256/${b.digest.replace("sha256:", "")}`));
    }
    tags.set(ref.path, [...(tags.get(ref.path) ?? []), tag]);
  }
  const encoder = new TextEncoder();
  for (const [path, list] of tags) files.set(`v2/${path}/tags/list`, encoder.encode(JSON.stringify({ name: path, tags: list.sort() })));
  files.set("v2/_catalog", encoder.encode(JSON.stringify({ repositories: [...tags.keys()].sort() })));
  return [...files].map(([path, data]) => ({ path, data }));
}
