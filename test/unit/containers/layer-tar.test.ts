import { packTar, type TarEntry } from "modern-tar";
import { describe, expect, it } from "vitest";
import { MAX_LAYER_BYTES, MAX_PATH_BYTES, checkLayerTar, inflateLayer } from "../../../src/containers/layer-tar.ts";

const file = (name: string, body = "x"): TarEntry => ({ header: { name, size: body.length, type: "file" }, body });
const dir = (name: string): TarEntry => ({ header: { name, size: 0, type: "directory" } });
const symlink = (name: string, linkname: string): TarEntry => ({ header: { name, size: 0, type: "symlink", linkname } });
const hardlink = (name: string, linkname: string): TarEntry => ({ header: { name, size: 0, type: "link", linkname } });
const check = async (entries: TarEntry[]) => checkLayerTar(await packTar(entries), "layer sha256:0123 of evil");

describe("a layer tar before the guest unpacks it", () => {
  it("takes an ordinary layer, with links that point anywhere, and returns its names", async () => {
    const names = await check([dir("./"), dir("bin/"), file("bin/busybox"), hardlink("bin/sh", "bin/busybox"), symlink("bin/ls", "busybox"), symlink("etc", "/usr/etc"), symlink("up", "../../../.."), file(".wh.gone", "")]);
    expect(names).toEqual(["./", "bin/", "bin/busybox", "bin/sh", "bin/ls", "etc", "up", ".wh.gone"]);
  });

  it("refuses '..' and absolute paths", async () => {
    await expect(check([file("../../etc/passwd")])).rejects.toThrow("refusing layer sha256:0123 of evil: the entry '../../etc/passwd' has a '..' component: it could land outside the layer");
    await expect(check([file("a/../../x")])).rejects.toThrow("the entry 'a/../../x' has a '..' component");
    await expect(check([file("/etc/passwd")])).rejects.toThrow("the entry '/etc/passwd' is absolute");
  });

  it("refuses an entry written through a symbolic link the layer made, however deep", async () => {
    await expect(check([symlink("lib", "/etc"), file("lib/passwd")])).rejects.toThrow("the entry 'lib/passwd' goes through the symbolic link 'lib' the layer made");
    await expect(check([dir("a/"), symlink("a/b", "../../.."), dir("a/b/c/"), file("a/b/c/d")])).rejects.toThrow("goes through the symbolic link 'a/b'");
    // Replaced by a folder first: then it is a folder.
    expect(await check([symlink("lib", "/etc"), dir("lib/"), file("lib/passwd")])).toHaveLength(3);
  });

  it("refuses hard links outside the layer, through its links, or to nothing before them", async () => {
    await expect(check([hardlink("shadow", "/etc/shadow")])).rejects.toThrow("the hard link 'shadow' points to '/etc/shadow', which is absolute");
    await expect(check([hardlink("x", "../x")])).rejects.toThrow("which has a '..' component");
    await expect(check([symlink("etc", "/etc"), hardlink("shadow", "etc/shadow")])).rejects.toThrow("points through the symbolic link 'etc'");
    await expect(check([symlink("s", "/etc/shadow"), hardlink("h", "s")])).rejects.toThrow("which is no file the layer holds before it");
    await expect(check([hardlink("h", "later"), file("later")])).rejects.toThrow("which is no file the layer holds before it");
  });

  it("refuses device nodes", async () => {
    await expect(check([{ header: { name: "dev/sda", size: 0, type: "block-device" } }])).rejects.toThrow("the entry 'dev/sda' is a device node (block-device)");
    await expect(check([{ header: { name: "mem", size: 0, type: "character-device" } }])).rejects.toThrow("is a device node (character-device)");
  });

  it("refuses overlong names, a truncated (huge) entry and data that is no tar", async () => {
    const long = "a/".repeat(MAX_PATH_BYTES / 2) + "b";
    await expect(check([file(long)])).rejects.toThrow(`is longer than ${MAX_PATH_BYTES} bytes`);
    // A header that promises a gigabyte the layer does not have.
    const tar = await packTar([file("big", "y".repeat(2048))]);
    const header = tar.slice(0, 512);
    header.set(new TextEncoder().encode("7777777777\0"), 124);
    let sum = 0;
    header.fill(0x20, 148, 156);
    for (const b of header) sum += b;
    header.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    const truncated = new Uint8Array([...header, ...tar.slice(512, 1024)]);
    await expect(checkLayerTar(truncated, "layer L")).rejects.toThrow("refusing layer L: the entry 'big' claims 1073741823 bytes, more than the layer holds");
    await expect(checkLayerTar(new TextEncoder().encode("not a tar at all ".repeat(64)), "layer N")).rejects.toThrow(/^refusing layer N: /);
  });

  it("stops inflating a gzip layer at its bound (1 GiB; 64 MiB here, to be quick)", async () => {
    // 80 MiB of zeros compress to about 80 KiB: a gzip bomb in miniature.
    const zeros = new Uint8Array(80 * 1024 * 1024);
    const gz = new Uint8Array(await new Response(new Blob([zeros]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    expect(gz.length).toBeLessThan(1024 * 1024);
    await expect(inflateLayer(gz, "layer Z", 64 * 1024 * 1024)).rejects.toThrow(`refusing layer Z: it inflates to more than ${64 * 1024 * 1024} bytes`);
    expect(MAX_LAYER_BYTES).toBe(1024 * 1024 * 1024);
    const small = new Uint8Array(await new Response(new Blob([await packTar([file("a")])]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    expect(await checkLayerTar(await inflateLayer(small))).toEqual(["a"]);
  });
});
