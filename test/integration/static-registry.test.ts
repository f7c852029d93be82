// The site's read-only registry: the built-in images written as plain files
// under v2/ (what `npm run build` puts in the site), served by the site's
// static server, pulled by the registry client into a store that has none
// of their blobs, with the same digests and every layer checked. A static
// host sends no manifest media type and no digest header; the pull does not
// need them.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PullStep } from "../../src/containers/image-store.ts";
import { defaultImageLayoutDir, nodeImageStore } from "../../src/containers/node-store.ts";
import { pullFromRegistry } from "../../src/containers/registry-transfer.ts";
import { staticRegistryFiles } from "../../src/containers/static-registry.ts";
import { type SiteServer, serveSite } from "../../src/web/site-server.ts";

let dir: string;
let site: SiteServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hyperlab-static-registry-"));
  const root = join(dir, "site");
  await mkdir(root, { recursive: true });
  await writeFile(join(root, "index.html"), "<!doctype html><title>site</title>\n");
  for (const f of await staticRegistryFiles(async (p) => new Uint8Array(await readFile(join(defaultImageLayoutDir, p))))) {
    await mkdir(dirname(join(root, f.path)), { recursive: true });
    await writeFile(join(root, f.path), f.data);
  }
  site = await serveSite({ dir: root, port: 0 });
});

afterAll(async () => {
  await site?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("the site's static registry", () => {
  it("lists its repositories and tags as a registry does", async () => {
    expect(await (await fetch(new URL("v2/_catalog", site.url))).json()).toEqual({ repositories: ["library/busybox", "library/lua"] });
    expect(await (await fetch(new URL("v2/library/lua/tags/list", site.url))).json()).toEqual({ name: "library/lua", tags: ["5.1", "5.4"] });
  });

  it("is pulled from like any registry: lua:5.4 into a store without its blobs, with the built-in image's digest and ID", async () => {
    const layout = join(dir, "empty");
    await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
    await writeFile(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const store = nodeImageStore(layout, { dataRoot: join(dir, "data") });
    const builtIn = await nodeImageStore(undefined, { dataRoot: join(dir, "other") }).get("lua:5.4");
    const steps: PullStep[] = [];
    const image = await pullFromRegistry(store, "lua:5.4", (s) => steps.push(s), { baseUrl: site.url });
    expect(image.digest).toBe(builtIn.digest);
    expect(image.id).toBe(builtIn.id);
    expect(steps.filter((s) => s.kind === "layer" && s.status === "Pull complete")).toHaveLength(builtIn.layers.length);
    expect((await store.get("lua:5.4")).digest).toBe(builtIn.digest);
    // By digest too: the manifest's own path.
    const byDigest = await pullFromRegistry(store, `lua@${builtIn.digest}`, () => {}, { baseUrl: site.url });
    expect(byDigest.id).toBe(builtIn.id);
    const missing = pullFromRegistry(store, "lua:9", () => {}, { baseUrl: site.url });
    await expect(missing).rejects.toMatchObject({ code: "IMAGE_NOT_FOUND" });
  });
});
