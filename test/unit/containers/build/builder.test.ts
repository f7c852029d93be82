// The builder without a guest: steps that need no container (FROM, COPY,
// ADD, the config-only ones) over the committed busybox image and a store
// whose writable layout is in memory. RUN steps need a VM: they are in
// test/integration/docker-build.test.ts.
import { gunzipSync, gzipSync } from "node:zlib";
import { packTar, unpackTar } from "modern-tar";
import { describe, expect, it } from "vitest";
import { type BuildEvent, Builder } from "../../../../src/containers/build/builder.ts";
import { BuildContext } from "../../../../src/containers/build/context.ts";
import type { ContainerEngine } from "../../../../src/containers/engine.ts";
import { type ImageStore, memoryLayout } from "../../../../src/containers/image-store.ts";
import { nodeImageStore } from "../../../../src/containers/node-store.ts";

type Entry = Parameters<typeof packTar>[0][number];
const file = (name: string, body: string | Uint8Array, mode = 0o644): Entry => ({ header: { name, size: typeof body === "string" ? Buffer.byteLength(body) : body.length, type: "file", mode }, body });
/** An engine that must not be used: these builds have no RUN step. */
const noEngine = new Proxy({}, { get: (_t, key) => () => Promise.reject(new Error(`the engine was asked for ${String(key)}`)) }) as unknown as ContainerEngine;

function store(): ImageStore {
  const s = nodeImageStore();
  // The committed layout under a writable layout in memory.
  return new (s.constructor as new (...a: unknown[]) => ImageStore)((p: string) => (s as unknown as { read: (p: string) => Promise<Uint8Array> }).read(p), s.where, memoryLayout());
}

async function build(s: ImageStore, files: Entry[], opts: { tags?: string[]; buildArgs?: Record<string, string> } = {}) {
  const events: BuildEvent[] = [];
  const context = await BuildContext.fromTar([await packTar(files)]);
  const result = await new Builder(noEngine, s).build({ context, ...opts }, (e) => events.push(e));
  return { result, events, lines: events.filter((e) => e.type === "step" || e.type === "cache").map((e) => (e.type === "step" ? e.text : "cache")) };
}

describe("the builder, steps without a container", () => {
  it("stores an OCI image: config with history and diff ids, a gzip COPY layer, the name", async () => {
    const s = store();
    const { result } = await build(s, [file("Dockerfile", 'FROM busybox\nENV A=1\nWORKDIR /app\nCOPY --chown=10:20 *.txt ./\nCMD ["cat", "a.txt"]\n'), file("a.txt", "a\n"), file("b.txt", "b\n", 0o600)], { tags: ["app:1"] });
    const { image } = await s.resolve("app:1");
    expect(image.id).toBe(result.id);
    expect(image.config.config).toMatchObject({ Env: [expect.stringMatching(/^PATH=/), "A=1"], WorkingDir: "/app", Cmd: ["cat", "a.txt"] });
    expect(image.config.rootfs!.diff_ids).toHaveLength(2);
    expect(image.config.history!.slice(-4).map((h) => [h.created_by, h.empty_layer ?? false])).toEqual([
      ["/bin/sh -c #(nop)  ENV A=1", true],
      ["/bin/sh -c #(nop) WORKDIR /app", true],
      [expect.stringMatching(/^\/bin\/sh -c #\(nop\) COPY multi:[0-9a-f]{64} in \.\/ $/), false],
      ['/bin/sh -c #(nop)  CMD ["cat" "a.txt"]', true],
    ]);
    const layer = (await s.layerDescriptors(image.digest))[1]!;
    expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
    const entries = await unpackTar(gunzipSync(await s.blob(layer.digest)));
    expect(entries.map((e) => [e.header.name, e.header.uid, e.header.gid, (e.header.mode ?? 0).toString(8)])).toEqual([
      ["app/", 0, 0, "755"],
      ["app/a.txt", 10, 20, "644"],
      ["app/b.txt", 10, 20, "600"],
    ]);
  });

  it("takes every step from the cache the second time, and only the steps after a changed file again", async () => {
    const s = store();
    const files = [file("Dockerfile", "FROM busybox\nENV A=1\nCOPY x /x\nLABEL l=1\n"), file("x", "one")];
    const first = await build(s, files);
    const second = await build(s, files);
    expect(second.lines).toEqual(["FROM busybox", "ENV A=1", "cache", "COPY x /x", "cache", "LABEL l=1", "cache"]);
    expect(second.result.id).toBe(first.result.id);
    const changed = await build(s, [files[0]!, file("x", "two")]);
    expect(changed.lines).toEqual(["FROM busybox", "ENV A=1", "cache", "COPY x /x", "LABEL l=1"]);
  });

  it("copies from an earlier stage, unpacks a local tar.gz with ADD, and builds FROM scratch", async () => {
    const s = store();
    const archive = gzipSync(await packTar([file("pkg/readme", "inside the archive")]));
    const { result } = await build(s, [
      file("Dockerfile", "FROM busybox AS tools\nCOPY tool.sh /opt/tool.sh\nFROM scratch\nCOPY --from=tools /opt /opt\nADD pkg.tar.gz /srv/\n"),
      file("tool.sh", "#!/bin/sh\necho tool\n", 0o755),
      file("pkg.tar.gz", new Uint8Array(archive)),
    ]);
    const { image } = await s.resolve(result.id);
    const files = [];
    for (const l of await s.layerDescriptors(image.digest)) files.push(...(await unpackTar(gunzipSync(await s.blob(l.digest)))).map((e) => e.header.name));
    expect(files).toEqual(["opt/", "opt/tool.sh", "srv/", "srv/pkg/", "srv/pkg/readme"]);
    expect(image.config.config!.Env).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
  });

  it("stores nothing of a step that fails, keeps what came before in the cache, and warns of unused build args", async () => {
    const s = store();
    const bytes = async () => s.writableBytes();
    await expect(build(s, [file("Dockerfile", "FROM busybox\nENV A=1\nCOPY missing /m\n")])).rejects.toThrow(
      "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist",
    );
    const afterFailure = await bytes();
    const again = await build(s, [file("Dockerfile", "FROM busybox\nENV A=1\n")], { buildArgs: { UNUSED: "x" } });
    expect(again.lines).toEqual(["FROM busybox", "ENV A=1", "cache"]);
    expect(again.events).toContainEqual({ type: "warning", message: "One or more build-args [UNUSED] were not consumed" });
    expect(await bytes()).toBe(afterFailure);
    await expect(build(s, [file("Dockerfile", "FROM busybox\nADD https://example.com/x /x\n")])).rejects.toThrow("reach no network");
    await expect(build(s, [file("Dockerfile", "FROM nosuch\n")])).rejects.toThrow("FROM nosuch (line 1 of Dockerfile): no such image");
  });
});
