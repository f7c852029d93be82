import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { packTar, unpackTar } from "modern-tar";
import { describe, expect, it } from "vitest";
import { copyLayerEntries, destinationOf, ociLayerFromUpper, packEntries, packLayer } from "../../../../src/containers/build/layer.ts";
import { RootfsView } from "../../../../src/containers/build/rootfs.ts";
import type { FileEntry } from "../../../../src/containers/build/context.ts";

type Entry = Parameters<typeof packTar>[0][number];
const enc = new TextEncoder();
const dir = (name: string, mode = 0o755, uid = 0): Entry => ({ header: { name, size: 0, type: "directory", mode, uid, gid: uid } });
const file = (name: string, text: string, mode = 0o644): Entry => ({ header: { name, size: enc.encode(text).length, type: "file", mode }, body: text });
const link = (name: string, target: string): Entry => ({ header: { name, size: 0, type: "symlink", linkname: target } });
const names = async (tar: Uint8Array) => (await unpackTar(tar)).map((e) => `${e.header.type}:${e.header.name}`);
const entry = (path: string, text: string, mode = 0o644): FileEntry => ({ path, type: "file", mode, uid: 1000, gid: 1000, mtime: new Date(0), data: enc.encode(text) });

describe("layers a build makes", () => {
  it("turns overlay whiteouts (character devices) and opaque folders into OCI whiteouts", async () => {
    // What busybox tar makes of an upper folder: "./" paths, a deleted file as a 0/0 device.
    const upper = await packTar([
      dir("./"),
      dir("./bin/"),
      { header: { name: "./bin/ls", size: 0, type: "character-device", mode: 0 } },
      dir("./d/"),
      file("./d/n", "new"),
      dir("./d/sub/"),
      { header: { name: "./gone", size: 0, type: "character-device", mode: 0, uname: "root", gname: "root" } },
    ]);
    const oci = await ociLayerFromUpper(upper, ["d"]);
    expect(await names(oci)).toEqual(["directory:bin/", "file:bin/.wh.ls", "directory:d/", "file:d/.wh..wh..opq", "file:d/n", "directory:d/sub/", "file:.wh.gone"]);
    await expect(ociLayerFromUpper(await packTar([file("./.wh.x", "")]), [])).rejects.toThrow("mean deletions in an image layer");
  });

  it("compresses a layer and takes the tar's sha256 as its diff id, the gzip's as its digest", async () => {
    const tar = await packEntries([entry("a.txt", "hello")]);
    const packed = await packLayer(tar);
    expect(gunzipSync(packed.blob)).toEqual(Buffer.from(tar));
    expect(packed.diffId).toBe(`sha256:${createHash("sha256").update(tar).digest("hex")}`);
    expect(packed.digest).toBe(`sha256:${createHash("sha256").update(packed.blob).digest("hex")}`);
  });

  it("reads an image's files with OCI whiteouts applied, and follows its symlinks inside it", async () => {
    const view = await RootfsView.fromLayers([
      await packTar([dir("etc/"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), dir("d/"), file("d/a", "a"), dir("var/"), link("var/run", "/run"), dir("run/")]),
      await packTar([dir("d/"), file("d/.wh..wh..opq", ""), file("d/b", "b"), file("etc/.wh.passwd", "")]),
    ]);
    expect(view.under("d").map((e) => e.path)).toEqual(["d/b"]);
    expect(view.get("etc/passwd")).toBeUndefined();
    expect(view.resolve("/var/run/x")).toBe("run/x");
    expect(view.resolve("/var/../../var/run")).toBe("run");
  });

  it("puts COPY's files under existing folders with their owners and modes, new folders 0755 owned as --chown says", async () => {
    const view = await RootfsView.fromLayers([await packTar([dir("tmp/", 0o1777), dir("srv/", 0o750, 7), link("data", "/srv")])]);
    const into = destinationOf("data/", "/", view, false, "COPY");
    expect(into).toEqual({ path: "/data", isDir: true });
    const entries = copyLayerEntries(
      view,
      [
        { kind: "entry", entry: entry("x", "1"), to: "/data/app/x" },
        { kind: "entry", entry: entry("y", "2", 0o600), to: "/tmp/y" },
      ],
      { owner: { uid: 5, gid: 6 } },
    );
    expect(entries.map((e) => [e.path, e.type, e.mode.toString(8), e.uid, e.gid])).toEqual([
      ["srv", "directory", "750", 7, 7],
      ["srv/app", "directory", "755", 5, 6],
      ["srv/app/x", "file", "644", 5, 6],
      ["tmp", "directory", "1777", 0, 0],
      ["tmp/y", "file", "600", 5, 6],
    ]);
  });

  it("wants a folder for several sources and refuses to copy into a file", async () => {
    const view = await RootfsView.fromLayers([await packTar([file("etc", "not a folder")])]);
    expect(() => destinationOf("/out", "/", view, true, "COPY")).toThrow("the destination must be a directory and end with a /");
    expect(destinationOf("sub/.", "/app", view, false, "COPY")).toEqual({ path: "/app/sub", isDir: true });
    expect(() => copyLayerEntries(view, [{ kind: "entry", entry: entry("a", "1"), to: "/etc/a" }], {})).toThrow("cannot copy to non-directory: /etc");
  });
});
