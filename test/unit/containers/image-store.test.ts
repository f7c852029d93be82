import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ImageStore, type ImageUser, type PullStep, memoryLayout, sha256Hex } from "../../../src/containers/image-store.ts";
import { defaultDataRoot, nodeImageStore } from "../../../src/containers/node-store.ts";

const enc = new TextEncoder();
const none = (): ImageUser[] => [];

/** A linux/386 image of one layer (any bytes will do: the store does not unpack layers). */
async function newImage(label: string, repoTags: string[], arch = "386") {
  const layer = enc.encode(`layer of ${label}`);
  const config = enc.encode(
    JSON.stringify({ created: "2026-02-01T00:00:00Z", architecture: arch, os: "linux", config: { Cmd: ["sh"], Labels: { which: label } }, rootfs: { type: "layers", diff_ids: [`sha256:${await sha256Hex(layer)}`] } }),
  );
  return { config, layers: [layer], repoTags, id: `sha256:${await sha256Hex(config)}` };
}

describe("the image store: built-in images under a writable layout", () => {
  let root: string;
  const store = () => nodeImageStore(undefined, { dataRoot: root });

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "hyperlab-store-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("lists the built-in images, named the way Docker normalises them", async () => {
    const s = store();
    expect((await s.list()).map((i) => i.reference).sort()).toEqual(["busybox:latest", "lua:5.1", "lua:5.4"]);
    const byShort = await s.get("busybox");
    expect((await s.get("docker.io/library/busybox:latest")).id).toBe(byShort.id);
    expect((await s.get(byShort.id.slice(7, 19))).reference).toBe("busybox:latest");
    await expect(s.get("Busybox")).rejects.toThrow("invalid reference format: repository name must be lowercase");
    await expect(s.get("nosuch")).rejects.toMatchObject({ code: "IMAGE_NOT_FOUND" });
  });

  it("keeps a tag in the data root, as an OCI index another store (another process) reads", async () => {
    await store().tag("busybox", "docker.io/me/tools:1");
    const again = store();
    expect((await again.get("me/tools:1")).id).toBe((await again.get("busybox")).id);
    const index = JSON.parse(await readFile(join(root, "images", "index.json"), "utf8")) as { mediaType: string; manifests: Array<{ annotations: Record<string, string> }> };
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests[0]!.annotations).toMatchObject({ "io.containerd.image.name": "docker.io/me/tools:1", "org.opencontainers.image.ref.name": "1" });
    expect(JSON.parse(await readFile(join(root, "images", "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
  });

  it("sees another store's change to the same data root without being restarted", async () => {
    const a = store();
    const b = store();
    expect(await b.list()).toHaveLength(3);
    await a.tag("lua:5.4", "lua:latest");
    expect((await b.list()).map((i) => i.reference)).toContain("lua:latest");
  });

  it("removes a built-in name, and a pull from the local store brings it back with Docker's steps", async () => {
    const s = store();
    const id = (await s.get("lua:5.1")).id;
    expect(await s.remove("lua:5.1", { users: none })).toEqual([{ Untagged: "lua:5.1" }, { Deleted: id }]);
    expect((await store().list()).map((i) => i.reference)).not.toContain("lua:5.1");
    const steps: PullStep[] = [];
    await s.pull("lua:5.1", (st) => steps.push(st));
    expect(steps[0]).toEqual({ kind: "start", name: "library/lua", tag: "5.1" });
    // busybox's layer and the libc layer are in view already; lua 5.1's own is not.
    expect(steps.filter((st) => st.kind === "layer").map((st) => (st as { status: string }).status)).toEqual(["Already exists", "Already exists", "Pulling fs layer", "Pull complete"]);
    expect(steps.at(-1)).toEqual({ kind: "done", name: "lua:5.1", updated: true });
    const again: PullStep[] = [];
    await s.pull("lua:5.1", (st) => again.push(st));
    expect(again.map((st) => st.kind)).toEqual(["start", "digest", "done"]);
    expect(again.at(-1)).toEqual({ kind: "done", name: "lua:5.1", updated: false });
  });

  it("refuses a pull of what the local store does not have, in dockerd's words", async () => {
    await expect(store().pull("nosuch", () => {})).rejects.toThrow(/^pull access denied for nosuch, repository does not exist or may require 'docker login': hyperlab pulls Docker Hub names only from its local image store, which has busybox:latest, lua:5.1, lua:5.4 \(a registry is named by its address: localhost:5000\/nosuch\)$/);
    await expect(store().pull("lua:9", () => {})).rejects.toThrow("manifest for lua:9 not found: manifest unknown");
  });

  it("refuses to remove an image a container uses, as dockerd does", async () => {
    const s = store();
    const id = (await s.get("busybox")).id;
    const stopped = () => [{ id: "c0ffee0000000000aa", running: false }];
    const running = () => [{ id: "c0ffee0000000000aa", running: true }];
    await expect(s.remove("busybox", { users: stopped })).rejects.toThrow(`conflict: unable to remove repository reference "busybox" (must force) - container c0ffee000000 is using its referenced image ${id.slice(7, 19)}`);
    await expect(s.remove(id.slice(7, 19), { users: stopped })).rejects.toThrow(`conflict: unable to delete ${id.slice(7, 19)} (must be forced) - image is being used by stopped container c0ffee000000`);
    await expect(s.remove(id.slice(7, 19), { users: running, force: true })).rejects.toThrow(`conflict: unable to delete ${id.slice(7, 19)} (cannot be forced) - image is being used by running container c0ffee000000`);
    // Forced by name while it runs: the name goes, the image stays without one.
    expect(await s.remove("busybox", { users: running, force: true })).toEqual([{ Untagged: "busybox:latest" }]);
    expect((await s.images()).find((i) => i.id === id)?.repoTags).toEqual([]);
  });

  it("untags one of several names, and by ID asks for force when names are in several repositories", async () => {
    const s = store();
    await s.tag("busybox", "bb:1");
    const id = (await s.get("bb:1")).id;
    expect(await s.remove("bb:1", { users: none })).toEqual([{ Untagged: "bb:1" }]);
    await s.tag("busybox", "bb:1");
    await expect(s.remove(id, { users: none })).rejects.toThrow("(must be forced) - image is referenced in multiple repositories");
    expect(await s.remove(id, { users: none, force: true })).toEqual([{ Untagged: "busybox:latest" }, { Untagged: "bb:1" }, { Deleted: id }]);
  });

  it("loads an image: its blobs and manifest in the data root, then its name; damaged blobs are caught", async () => {
    const s = store();
    const img = await newImage("one", ["app:1"]);
    const [added] = await s.add([img]);
    expect(added).toEqual({ id: img.id, repoTags: ["app:1"], moved: [] });
    const info = await store().get("app:1");
    expect(info.id).toBe(img.id);
    expect(info.config.Labels).toEqual({ which: "one" });
    const blobs = await readdir(join(root, "images", "blobs", "sha256"));
    expect(blobs).toHaveLength(3); // layer, config, manifest
    expect(blobs.filter((b) => b.startsWith("."))).toEqual([]);
    const layer = info.layers[0]!.digest;
    await writeFile(join(root, "images", "blobs", "sha256", layer.slice(7)), "tampered");
    await expect(store().blob(layer)).rejects.toThrow(/is damaged \(its sha256 is [0-9a-f]{64}\); remove the image and load it again/);
  });

  it("refuses an image for another platform when loading it", async () => {
    const img = await newImage("amd", ["x:1"], "amd64");
    await expect(store().add([img])).rejects.toThrow("image x:1 is for linux/amd64: hyperlab runs linux/386 images only");
    expect(await readdir(join(root, "images")).catch(() => [])).not.toContain("index.json");
  });

  it("leaves the image a loaded name moved from dangling; prune removes it and frees its blobs", async () => {
    const s = store();
    const one = await newImage("one", ["app:1"]);
    const two = await newImage("two", ["app:1"]);
    await s.add([one]);
    const [added] = await s.add([two]);
    expect(added!.moved).toEqual([{ name: "app:1", from: one.id }]);
    const dangling = (await s.images()).find((i) => i.id === one.id)!;
    expect(dangling.repoTags).toEqual([]);
    const pruned = await s.prune({ users: none });
    expect(pruned.records).toEqual([{ Deleted: one.id }]);
    expect(pruned.reclaimed).toBeGreaterThan(0);
    expect((await s.images()).some((i) => i.id === one.id)).toBe(false);
    expect((await s.get("app:1")).id).toBe(two.id);
  });

  it("shows no image whose index entry is not written yet (blobs alone are invisible)", async () => {
    const s = store();
    await s.add([await newImage("one", ["app:1"])]);
    await rm(join(root, "images", "index.json"));
    expect((await store().list()).map((i) => i.reference).sort()).toEqual(["busybox:latest", "lua:5.1", "lua:5.4"]);
  });

  it("clears temporary files of writers that died", async () => {
    const s = store();
    await s.tag("busybox", "t:1");
    const stray = join(root, "images", "blobs", "sha256", ".tmp-999999999-abc-deadbeef");
    await writeFile(stray, "half");
    await store().tag("busybox", "t:2");
    expect(await readdir(join(root, "images", "blobs", "sha256"))).not.toContain(".tmp-999999999-abc-deadbeef");
  });

  it("stores a pulled image whole or not at all: a write that fails takes back the blobs it wrote", async () => {
    const img = await newImage("pulled", []);
    const layer = img.layers[0]!;
    const layerDigest = `sha256:${await sha256Hex(layer)}`;
    const manifest = enc.encode(
      JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { digest: img.id, size: img.config.length }, layers: [{ digest: layerDigest, size: layer.length }] }),
    );
    const layout = memoryLayout();
    let writes = 0;
    const failing = { ...layout, writeBlob: async (hex: string, data: Uint8Array) => (++writes === 3 ? Promise.reject(new Error("disk full")) : layout.writeBlob(hex, data)) };
    const read = async (path: string) => new Uint8Array(await readFile(new URL(`../../../guest-images/dist/images/${path}`, import.meta.url)));
    const s = new ImageStore(read, "built-in", failing);
    const before = (await s.list()).map((i) => i.reference);
    await expect(s.addPulled({ manifest, config: img.config, blobs: new Map([[layerDigest, layer]]), name: "localhost:5000/pulled:1" })).rejects.toThrow("disk full");
    expect(await layout.listBlobs()).toEqual([]);
    expect((await s.list()).map((i) => i.reference)).toEqual(before);
    // A wrong layer is refused before anything is written.
    await expect(s.addPulled({ manifest, config: img.config, blobs: new Map([[layerDigest, enc.encode("other bytes")]]), name: "localhost:5000/pulled:1" })).rejects.toMatchObject({ code: "IMAGE_CORRUPT" });
    expect(await layout.listBlobs()).toEqual([]);
    // Then a good one: named, with its blobs.
    const ok = new ImageStore(read, "built-in", layout);
    const { image, updated } = await ok.addPulled({ manifest, config: img.config, blobs: new Map([[layerDigest, layer]]), name: "localhost:5000/pulled:1" });
    expect(updated).toBe(true);
    expect(image.repoTags).toEqual(["localhost:5000/pulled:1"]);
    expect((await layout.listBlobs()).length).toBe(3);
    // An amd64 image is refused naming its platform.
    const amd = await newImage("amd", [], "amd64");
    const amdManifest = enc.encode(JSON.stringify({ schemaVersion: 2, config: { digest: amd.id, size: amd.config.length }, layers: [] }));
    await expect(ok.addPulled({ manifest: amdManifest, config: amd.config, blobs: new Map(), name: "localhost:5000/amd:1" })).rejects.toThrow("is for linux/amd64: hyperlab runs linux/386 images only");
  });

  it("puts the default data root under XDG_DATA_HOME, else ~/.local/share", () => {
    expect(defaultDataRoot({ XDG_DATA_HOME: "/x/data" })).toBe("/x/data/hyperlab");
    expect(defaultDataRoot({ HOME: "/home/u" })).toMatch(/\/\.local\/share\/hyperlab$/);
  });
});
