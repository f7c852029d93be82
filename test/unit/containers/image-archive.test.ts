import { packTar, unpackTar } from "modern-tar";
import { describe, expect, it } from "vitest";
import { archivePath, readImageArchive, writeImageArchive } from "../../../src/containers/image-archive.ts";
import { ImageStore, sha256Hex } from "../../../src/containers/image-store.ts";
import { nodeImageStore } from "../../../src/containers/node-store.ts";

const enc = new TextEncoder();
type Entry = Parameters<typeof packTar>[0][number];
const file = (name: string, body: Uint8Array | string): Entry => ({ header: { name, size: typeof body === "string" ? enc.encode(body).length : body.length, type: "file" }, body });
const link = (name: string, target: string): Entry => ({ header: { name, size: 0, type: "symlink", linkname: target } });

async function* chunks(data: Uint8Array, size = 1000): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function config(layers: Uint8Array[], extra: object = {}) {
  const diffIds = await Promise.all(layers.map(async (l) => `sha256:${await sha256Hex(l)}`));
  return enc.encode(JSON.stringify({ architecture: "386", os: "linux", config: { Cmd: ["sh"] }, rootfs: { type: "layers", diff_ids: diffIds }, ...extra }));
}

describe("image archives (docker save and docker load)", () => {
  it("resolves paths inside the archive and refuses ones that leave it", () => {
    expect(archivePath("./a/../b/c")).toBe("b/c");
    expect(archivePath("../x", "dir/sub")).toBe("dir/x");
    expect(() => archivePath("../../etc/passwd")).toThrow("invalid archive: the path '../../etc/passwd' points outside the archive");
    expect(() => archivePath("/etc/passwd")).toThrow("is absolute");
  });

  it("reads dockerd 20.10's layout: <id>/layer.tar, a config file, and a layer shared through a symlink", async () => {
    const base = await packTar([file("etc/base", "base layer")]);
    const top = await packTar([file("etc/top", "top layer")]);
    const c1 = await config([base]);
    const c2 = await config([base, top]);
    const archive = await packTar([
      file("aaa/layer.tar", base),
      file("aaa/VERSION", "1.0"),
      link("bbb/layer.tar", "../aaa/layer.tar"),
      file("ccc/layer.tar", top),
      file("c1.json", c1),
      file("c2.json", c2),
      file("manifest.json", JSON.stringify([
        { Config: "c1.json", RepoTags: ["one:1"], Layers: ["aaa/layer.tar"] },
        { Config: "c2.json", RepoTags: ["docker.io/library/two:latest", "me/two:2"], Layers: ["bbb/layer.tar", "ccc/layer.tar"] },
      ])),
      file("repositories", "{}"),
    ]);
    const images = await readImageArchive(chunks(archive));
    expect(images.map((i) => i.repoTags)).toEqual([["one:1"], ["two:latest", "me/two:2"]]);
    expect(images[1]!.layers).toEqual([base, top]);
    expect(images[1]!.config).toEqual(c2);
  });

  it("refuses a link whose target leaves the archive", async () => {
    const archive = await packTar([link("x/layer.tar", "../../../etc/passwd"), file("manifest.json", "[]")]);
    await expect(readImageArchive(chunks(archive))).rejects.toThrow("points outside the archive");
  });

  it("reads an OCI layout: the linux/386 image of a multi-platform index, its gzip layer inflated", async () => {
    const layer = await packTar([file("etc/386", "the 386 layer")]);
    const gz = new Uint8Array(await new Response(new Blob([layer]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    const cfg = await config([layer]);
    const hex = async (b: Uint8Array) => sha256Hex(b);
    const manifest = enc.encode(JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${await hex(cfg)}`, size: cfg.length }, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${await hex(gz)}`, size: gz.length }] }));
    const other = enc.encode(JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${"0".repeat(64)}` }, layers: [] }));
    const list = enc.encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [
      { digest: `sha256:${await hex(other)}`, size: other.length, platform: { os: "linux", architecture: "amd64" } },
      { digest: `sha256:${await hex(manifest)}`, size: manifest.length, platform: { os: "linux", architecture: "386" } },
    ] }));
    const index = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.index.v1+json", digest: `sha256:${await hex(list)}`, size: list.length, annotations: { "io.containerd.image.name": "ghcr.io/me/app:v1" } }] });
    const archive = await packTar([file("oci-layout", "{}"), file("index.json", index), ...(await Promise.all([cfg, gz, manifest, other, list].map(async (b) => file(`blobs/sha256/${await hex(b)}`, b))))]);
    const [image] = await readImageArchive(chunks(archive));
    expect(image!.repoTags).toEqual(["ghcr.io/me/app:v1"]);
    expect(image!.layers).toEqual([layer]);
  });

  it("says so when an OCI layout has no linux/386 image, and when a blob does not match its digest", async () => {
    const m = enc.encode("{}");
    const list = enc.encode(JSON.stringify({ manifests: [{ digest: `sha256:${await sha256Hex(m)}`, platform: { os: "linux", architecture: "arm64" } }] }));
    const index = JSON.stringify({ manifests: [{ mediaType: "application/vnd.oci.image.index.v1+json", digest: `sha256:${await sha256Hex(list)}` }] });
    const only = await packTar([file("index.json", index), file(`blobs/sha256/${await sha256Hex(list)}`, list)]);
    await expect(readImageArchive(chunks(only))).rejects.toThrow("the archive has images for linux/arm64 only: hyperlab runs linux/386 images");
    const damaged = await packTar([file("index.json", index), file(`blobs/sha256/${await sha256Hex(list)}`, "not it")]);
    await expect(readImageArchive(chunks(damaged))).rejects.toThrow("does not match its digest");
  });

  it("refuses a layer whose entries leave it (the image escape), naming the layer and the entry", async () => {
    const evil = await packTar([link("lib", "/etc"), file("lib/passwd", "root::0:0::/:/bin/sh\n")]);
    const archive = await packTar([file("aaa/layer.tar", evil), file("c.json", await config([evil])), file("manifest.json", JSON.stringify([{ Config: "c.json", RepoTags: ["evil:1"], Layers: ["aaa/layer.tar"] }]))]);
    await expect(readImageArchive(chunks(archive))).rejects.toThrow("refusing layer aaa/layer.tar: the entry 'lib/passwd' goes through the symbolic link 'lib' the layer made");
  });

  it("refuses what is not an image archive", async () => {
    await expect(readImageArchive(chunks(await packTar([file("hello.txt", "hi")])))).rejects.toThrow("invalid archive: does not contain a manifest.json");
  });

  it("writes Docker's archive as an OCI layout that reads back to the same images", async () => {
    const store = nodeImageStore();
    const image = (await store.images()).find((i) => i.repoTags.includes("lua:5.1"))!;
    const bytes = new Uint8Array(await new Response(writeImageArchive(store, [{ image, names: ["lua:5.1", "me/lua:old"] }])).arrayBuffer());
    const names = (await unpackTar(bytes)).map((e) => e.header.name);
    expect(names).toEqual(["blobs/", "blobs/sha256/", ...image.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`), `blobs/sha256/${image.id.slice(7)}`, `blobs/sha256/${image.digest.slice(7)}`, "index.json", "manifest.json", "oci-layout", "repositories"]);
    const [back] = await readImageArchive(chunks(bytes, 65536));
    expect(back!.repoTags).toEqual(["lua:5.1", "me/lua:old"]);
    const fresh = new ImageStore(async () => enc.encode(JSON.stringify({ manifests: [] })), "nowhere");
    const [added] = await fresh.add([back!]);
    expect(added!.id).toBe(image.id);
    expect((await fresh.get("me/lua:old")).layers).toEqual(image.layers);
  });
});
