// The page's images: a store with none of its own that pulls each image from
// the site's registry (the static v2/ files `npm run build` writes, served by
// the site server) the first time it is used, keeps it, and records each pull
// for the stack view. Node's fetch stands in for the browser's here; the
// browser's side (resource timing, the stack view) is test/e2e/page-images.test.ts.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PullStep } from "../../../src/containers/image-store.ts";
import { defaultImageLayoutDir, nodeImageStore } from "../../../src/containers/node-store.ts";
import { staticRegistryFiles } from "../../../src/containers/static-registry.ts";
import { SiteImages } from "../../../src/web/page-images.ts";
import { type SiteServer, serveSite } from "../../../src/web/site-server.ts";

let dir: string;
let site: SiteServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hyperlab-page-images-"));
  await writeFile(join(dir, "index.html"), "<!doctype html><title>site</title>\n");
  for (const f of await staticRegistryFiles(async (p) => new Uint8Array(await readFile(join(defaultImageLayoutDir, p))))) {
    await mkdir(dirname(join(dir, f.path)), { recursive: true });
    await writeFile(join(dir, f.path), f.data);
  }
  site = await serveSite({ dir, port: 0 });
});

afterAll(async () => {
  await site?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("the page's images", () => {
  it("start empty, and the first use of lua:5.4 pulls it from the site's registry with the built-in image's digest", async () => {
    const images = new SiteImages(site.url);
    expect(await images.store.list()).toEqual([]);
    const builtIn = await nodeImageStore().get("lua:5.4");
    const steps: PullStep[] = [];
    const before = site.bytesSent;
    const { image } = await images.store.ensure("lua:5.4", (s) => steps.push(s));
    expect(image.digest).toBe(builtIn.digest);
    expect(steps.filter((s) => s.kind === "layer" && s.status === "Pull complete")).toHaveLength(builtIn.layers.length);
    // The layers came over the wire from the site (gzip copies: fewer bytes than the layers' size, but not nothing).
    expect(site.bytesSent - before).toBeGreaterThan(100_000);
    const [pull] = images.pulls();
    expect(pull).toMatchObject({ name: "lua:5.4", state: "done", digest: builtIn.digest, upToDate: false });
    expect(pull!.layers.map((l) => l.digest)).toEqual(builtIn.layers.map((l) => l.digest));
    expect(pull!.layers.every((l) => l.source === "network" && l.size! > 0)).toBe(true);

    // Kept: a second use fetches nothing.
    const again = site.bytesSent;
    await images.store.ensure("lua:5.4");
    expect(site.bytesSent).toBe(again);
    expect(images.pulls()).toHaveLength(1);
  });

  it("fetches only the layers the page lacks: lua:5.1 after lua:5.4 takes their shared layer from the page", async () => {
    const images = new SiteImages(site.url);
    await images.store.ensure("lua:5.4");
    await images.store.ensure("lua:5.1");
    const lua51 = images.pulls()[1]!;
    const shared = (await nodeImageStore().get("lua:5.4")).layers.map((l) => l.digest);
    const fromPage = lua51.layers.filter((l) => l.source === "page").map((l) => l.digest);
    expect(fromPage.length).toBeGreaterThan(0);
    expect(fromPage.every((d) => shared.includes(d!))).toBe(true);
    expect(lua51.layers.some((l) => l.source === "network")).toBe(true);
  });

  it("pulls one image once when two containers ask for it at the same time", async () => {
    const images = new SiteImages(site.url);
    await Promise.all([images.store.ensure("busybox"), images.store.ensure("busybox")]);
    const fetched = images.pulls().flatMap((p) => p.layers.filter((l) => l.source === "network"));
    expect(fetched).toHaveLength(1);
  });

  it("names what the site's registry has when it has no such image, and stores nothing", async () => {
    const images = new SiteImages(site.url);
    const missing = images.store.ensure("lua:9");
    await expect(missing).rejects.toMatchObject({ code: "IMAGE_NOT_FOUND" });
    await expect(missing).rejects.toThrow(/^manifest for lua:9 not found: manifest unknown: the site's registry \(http:\/\/127\.0\.0\.1:\d+\/v2\/\), from which the page pulls its images, has busybox:latest, lua:5\.1, lua:5\.4$/);
    await expect(images.store.ensure("hello")).rejects.toThrow(/^pull access denied for hello, repository does not exist or may require 'docker login': the site's registry .* has busybox:latest, lua:5\.1, lua:5\.4$/);
    expect(images.pulls()[0]).toMatchObject({ name: "lua:9", state: "failed" });
    expect(await images.store.list()).toEqual([]);
  });

  it("says so when the site has no registry at all", async () => {
    const images = new SiteImages(`${site.url}nowhere/`);
    await expect(images.store.ensure("busybox")).rejects.toThrow(/could not list its images either \(HTTP 404\): was the site built with 'npm run build'\?/);
  });
});
