// The classic container-image escape, tried through `docker load`: archives
// whose layers write outside the folder they are unpacked into. Each is
// refused before anything is stored; a layer whose symbolic links point
// outside its root is taken, and in a container those links resolve inside
// the container's own root.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { packTar, type TarEntry, unpackTar } from "modern-tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/containers/image-store.ts";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

const enc = new TextEncoder();
const file = (name: string, body: Uint8Array | string): TarEntry => ({ header: { name, size: typeof body === "string" ? enc.encode(body).length : body.length, type: "file" }, body });
const symlink = (name: string, linkname: string): TarEntry => ({ header: { name, size: 0, type: "symlink", linkname } });
const hardlink = (name: string, linkname: string): TarEntry => ({ header: { name, size: 0, type: "link", linkname } });

/** A docker-save archive (dockerd 20.10's layout) of one image `name` with `layers` on top of `base`'s. */
async function archive(name: string, layers: Uint8Array[], base: { layers: Uint8Array[]; config: Record<string, unknown> } = { layers: [], config: { architecture: "386", os: "linux", config: { Cmd: ["sh"] } } }): Promise<Uint8Array> {
  const all = [...base.layers, ...layers];
  const diffIds = await Promise.all(all.map(async (l) => `sha256:${await sha256Hex(l)}`));
  const config = enc.encode(JSON.stringify({ ...base.config, rootfs: { type: "layers", diff_ids: diffIds } }));
  return packTar([
    ...all.map((l, i) => file(`l${i}/layer.tar`, l)),
    file("config.json", config),
    file("manifest.json", JSON.stringify([{ Config: "config.json", RepoTags: [name], Layers: all.map((_, i) => `l${i}/layer.tar`) }])),
  ]);
}

describe("docker load of hostile image layers", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);
  const load = async (name: string, bytes: Uint8Array) => {
    const path = join(lab.dir, `${name.replace(/[:/]/g, "-")}.tar`);
    await writeFile(path, bytes);
    return docker("load", "-i", path);
  };

  beforeAll(async () => {
    lab = await dockerLab();
  }, 120_000);
  afterAll(async () => {
    await lab?.close();
  });

  const hostile: Array<[string, TarEntry[], string]> = [
    ["a ../ path", [file("../../../etc/cron.d/x", "* * * * * root sh\n")], "the entry '../../../etc/cron.d/x' has a '..' component: it could land outside the layer"],
    ["an absolute path", [file("/sbin/hyperlab-agent", "#!/bin/sh\n")], "the entry '/sbin/hyperlab-agent' is absolute: it could land outside the layer"],
    ["a symbolic link out of the root, then a file through it", [symlink("etc", "/etc"), file("etc/inittab", "::respawn:/bin/sh\n")], "the entry 'etc/inittab' goes through the symbolic link 'etc' the layer made: it would be written where the link points"],
    ["a hard link to a file outside the root", [hardlink("shadow", "/etc/shadow")], "the hard link 'shadow' points to '/etc/shadow', which is absolute: it could reach a file outside the layer"],
    ["a hard link up and out", [hardlink("agent", "../../../sbin/hyperlab-agent")], "the hard link 'agent' points to '../../../sbin/hyperlab-agent', which has a '..' component: it could reach a file outside the layer"],
    ["a device node", [{ header: { name: "vda", size: 0, type: "block-device" } }], "the entry 'vda' is a device node (block-device); layers do not carry devices"],
  ];

  it.each(hostile)("refuses %s, naming the layer and the entry, and stores nothing", async (what, entries, why) => {
    const name = `evil-${hostile.findIndex(([w]) => w === what)}:1`;
    const r = await load(name, await archive(name, [await packTar(entries)]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing layer l0/layer.tar: ${why}\n`);
    expect((await docker("images", "-q", name)).stdout).toBe("");
  });

  it("refuses a layer whose header promises more than it holds, and a gzip layer that inflates past 1 GiB", async () => {
    const tar = await packTar([file("big", "y".repeat(2048))]);
    const header = tar.slice(0, 512);
    header.set(enc.encode("7777777777\0"), 124);
    header.fill(0x20, 148, 156);
    header.set(enc.encode(header.reduce((a, b) => a + b, 0).toString(8).padStart(6, "0") + "\0 "), 148);
    const r = await load("huge:1", await archive("huge:1", [new Uint8Array([...header, ...tar.slice(512, 1024)])]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("refusing layer l0/layer.tar: the entry 'big' claims 1073741823 bytes, more than the layer holds");
    // 1.06 GiB of zeros: about 1 MiB of gzip.
    const zeros = new Uint8Array(68 * 1024 * 1024);
    let n = 0;
    const bomb = new Uint8Array(await new Response(new ReadableStream<BufferSource>({ pull: (c) => (++n > 16 ? c.close() : c.enqueue(zeros)) }).pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    const b = await load("bomb:1", await archive("bomb:1", [bomb]));
    expect(b.code).toBe(1);
    expect(b.stderr).toContain("refusing layer l0/layer.tar: it inflates to more than 1073741824 bytes");
  }, 120_000);

  it("takes symbolic links that point outside the root: in a container they resolve inside it", async () => {
    // busybox's own layers under a layer of links out of the root.
    const saved = join(lab.dir, "busybox.tar");
    expect((await docker("save", "-o", saved, "busybox")).code).toBe(0);
    const entries = new Map((await unpackTar(new Uint8Array(await readFile(saved)))).map((e) => [e.header.name, e.data!]));
    const manifest = JSON.parse(new TextDecoder().decode(entries.get("manifest.json"))) as Array<{ Config: string; Layers: string[] }>;
    const base = { layers: manifest[0]!.Layers.map((l) => entries.get(l)!), config: JSON.parse(new TextDecoder().decode(entries.get(manifest[0]!.Config))) as Record<string, unknown> };
    const links = await packTar([
      { header: { name: "out/", size: 0, type: "directory" } },
      symlink("out/hostname", "/etc/hostname"),
      symlink("out/up", "../../../../../../etc"),
      file("etc/hostname", "the image's own\n"),
    ]);
    expect((await load("links:1", await archive("links:1", [links], base))).code).toBe(0);
    const r = await docker("run", "--rm", "--hostname", "inside", "links:1", "sh", "-c", "cat /out/hostname; ls /out/up/hostname; cat /out/up/hostname");
    // /etc/hostname is the container's (the image's file; no runtime bind here), never the guest's.
    expect(r).toMatchObject({ code: 0, stdout: "the image's own\n/out/up/hostname\nthe image's own\n" });
  }, 120_000);
});
