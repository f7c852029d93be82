// The in-memory registry a lab gets for `docker push` and `docker pull`,
// driven by hyperlab's own registry client (the same code that talks to
// distribution 2.8 in test/integration/registry-client.test.ts): a push of a
// built-in image, whole and in chunks, a pull of it into a store that has
// none of its blobs, and the registry's answers to bad uploads.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImageStore } from "../../../src/containers/image-store.ts";
import { MemoryRegistry } from "../../../src/containers/memory-registry.ts";
import { nodeImageStore } from "../../../src/containers/node-store.ts";
import { sha256Digest } from "../../../src/containers/registry.ts";
import { pullFromRegistry, pushToRegistry } from "../../../src/containers/registry-transfer.ts";

let dir: string;
let source: ImageStore;

async function emptyStore(name: string): Promise<ImageStore> {
  const layout = join(dir, `${name}-layout`);
  await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
  await writeFile(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
  return nodeImageStore(layout, { dataRoot: join(dir, `${name}-data`) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hyperlab-memory-registry-"));
  source = nodeImageStore(undefined, { dataRoot: join(dir, "source") });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("MemoryRegistry", () => {
  it("takes a push of a built-in image and gives it back to a pull with the same digest", async () => {
    const registry = new MemoryRegistry("localhost:5000");
    await source.tag("lua:5.4", "localhost:5000/lua:5.4");
    const original = await source.get("lua:5.4");
    const pushed = await pushToRegistry(source, "localhost:5000/lua:5.4", () => {}, { fetch: registry.fetch });
    expect(pushed).toEqual([{ tag: "5.4", digest: original.digest, size: expect.any(Number) }]);
    expect(registry.catalog()).toEqual([{ repository: "lua", tags: ["5.4"] }]);

    const target = await emptyStore("pull");
    const pulled = await pullFromRegistry(target, "localhost:5000/lua:5.4", () => {}, { fetch: registry.fetch });
    expect(pulled.digest).toBe(original.digest);
    expect(pulled.id).toBe(original.id);
  });

  it("takes blobs sent in PATCH chunks", async () => {
    const registry = new MemoryRegistry("reg.lab:5000");
    await source.tag("busybox", "reg.lab:5000/team/busybox:v1");
    await pushToRegistry(source, "reg.lab:5000/team/busybox:v1", () => {}, { fetch: registry.fetch, chunked: true, chunkSize: 64 * 1024 });
    const pulled = await pullFromRegistry(await emptyStore("chunks"), "reg.lab:5000/team/busybox:v1", () => {}, { fetch: registry.fetch });
    expect(pulled.digest).toBe((await source.get("busybox")).digest);
  });

  it("passes requests for other addresses on, and answers a missing name as the client reports it", async () => {
    const seen: string[] = [];
    const registry = new MemoryRegistry("localhost:5000", async (input) => {
      seen.push(String(input));
      return new Response("elsewhere");
    });
    expect(await (await registry.fetch("http://localhost:6000/v2/")).text()).toBe("elsewhere");
    expect(seen).toEqual(["http://localhost:6000/v2/"]);
    await expect(pullFromRegistry(await emptyStore("missing"), "localhost:5000/nothing:1", () => {}, { fetch: registry.fetch })).rejects.toMatchObject({ code: "IMAGE_NOT_FOUND" });
  });

  it("refuses a blob whose bytes do not match its digest, and a manifest naming a blob it lacks", async () => {
    const registry = new MemoryRegistry("localhost:5000");
    const data = new TextEncoder().encode("layer bytes");
    const wrong = `sha256:${"0".repeat(64)}`;
    const bad = await registry.fetch(`http://localhost:5000/v2/app/blobs/uploads/?digest=${wrong}`, { method: "POST", body: data });
    expect(bad.status).toBe(400);
    expect((await bad.json()).errors[0].code).toBe("DIGEST_INVALID");
    const digest = await sha256Digest(data);
    const good = await registry.fetch(`http://localhost:5000/v2/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: data });
    expect(good.status).toBe(201);
    expect(good.headers.get("docker-content-digest")).toBe(digest);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { digest: wrong, size: 2 }, layers: [{ digest, size: data.length }] });
    const refused = await registry.fetch("http://localhost:5000/v2/app/manifests/1", { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
    expect(refused.status).toBe(400);
    expect((await refused.json()).errors[0]).toMatchObject({ code: "MANIFEST_BLOB_UNKNOWN", detail: { digest: wrong } });
    // The blob is linked to app only: another repository does not have it.
    expect((await registry.fetch(`http://localhost:5000/v2/other/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);
    expect((await registry.fetch(`http://localhost:5000/v2/app/blobs/${digest}`, { method: "HEAD" })).status).toBe(200);
  });
});
