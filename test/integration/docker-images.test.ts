// The real docker CLI drives hyperlab's image store: images, inspect,
// history, tag, rmi (refused while a container uses the image), save and
// load round trips, pull from the local store, prune and system df, and the
// data root that keeps it all across daemon restarts. `hyperlab images`
// shows the same store.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { packTar } from "modern-tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hyperlab } from "./daemon-process.ts";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

const layout = new URL("../../guest-images/dist/images/", import.meta.url);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const blob = async (digest: string) => new Uint8Array(await readFile(new URL(`blobs/sha256/${digest.replace("sha256:", "")}`, layout)));

/** The built-in image's config digest (its Docker ID) and diff ids, read from the committed layout. */
async function builtIn(name: string): Promise<{ id: string; diffIds: string[]; busyboxLayer: string }> {
  const index = JSON.parse(await readFile(new URL("index.json", layout), "utf8")) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations["org.opencontainers.image.ref.name"] === name)!;
  const manifest = JSON.parse(new TextDecoder().decode(await blob(entry.digest))) as { config: { digest: string }; layers: Array<{ digest: string }> };
  const config = JSON.parse(new TextDecoder().decode(await blob(manifest.config.digest))) as { rootfs: { diff_ids: string[] } };
  return { id: manifest.config.digest, diffIds: config.rootfs.diff_ids, busyboxLayer: manifest.layers[0]!.digest };
}

/**
 * An OCI image layout archive (as skopeo or buildx write them) of a new
 * linux/386 image: busybox's layer, then a gzip-compressed layer adding
 * /hello.txt, with its own Cmd, Env and label.
 */
async function helloArchive(name: string): Promise<Uint8Array> {
  const base = await blob((await builtIn("busybox:latest")).busyboxLayer);
  const text = new TextEncoder().encode("hello from a loaded layer\n");
  const top = await packTar([{ header: { name: "hello.txt", size: text.length, type: "file", mode: 0o644 }, body: text }]);
  const topGz = gzipSync(top);
  const config = new TextEncoder().encode(
    JSON.stringify({
      created: "2026-03-01T12:00:00Z",
      architecture: "386",
      os: "linux",
      config: { Env: ["PATH=/bin", "GREETING=hi"], Cmd: ["sh", "-c", "cat /hello.txt; echo $GREETING"], Labels: { made: "by-test" } },
      rootfs: { type: "layers", diff_ids: [`sha256:${sha(base)}`, `sha256:${sha(top)}`] },
      history: [{ created: "2026-03-01T12:00:00Z", created_by: "busybox" }, { created: "2026-03-01T12:00:00Z", created_by: "COPY hello.txt /", comment: "the test's layer" }],
    }),
  );
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${sha(config)}`, size: config.length },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${sha(base)}`, size: base.length },
        { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${sha(topGz)}`, size: topGz.length },
      ],
    }),
  );
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { "io.containerd.image.name": `docker.io/library/${name}`, "org.opencontainers.image.ref.name": name.split(":")[1] } }],
  });
  const file = (path: string, data: Uint8Array | string) => ({ header: { name: path, size: typeof data === "string" ? Buffer.byteLength(data) : data.length, type: "file" as const }, body: data });
  return packTar([
    file("oci-layout", `{"imageLayoutVersion": "1.0.0"}`),
    file("index.json", index),
    ...[base, topGz, config, manifest].map((b) => file(`blobs/sha256/${sha(b)}`, b)),
  ]);
}

describe("the docker CLI against hyperlab's daemon: images", () => {
  let lab: DockerLab;
  let work: string;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
    work = await mkdtemp(join(tmpdir(), "hyperlab-images-"));
  });
  afterAll(async () => {
    await lab?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists the built-in images with the config digest as IMAGE ID", async () => {
    const busybox = await builtIn("busybox:latest");
    const r = await docker("images");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(r.stdout).toMatch(new RegExp(`^busybox\\s+latest\\s+${busybox.id.slice(7, 19)}\\s+.*\\s+2\\.21MB$`, "m"));
    expect((await docker("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split("\n").filter(Boolean).sort()).toEqual(["busybox:latest", "lua:5.1", "lua:5.4"]);
    expect((await docker("images", "--filter", "reference=lua", "--format", "{{.Tag}}")).stdout.split("\n").filter(Boolean).sort()).toEqual(["5.1", "5.4"]);
    expect((await docker("images", "-q", "--no-trunc", "busybox")).stdout).toBe(`${busybox.id}\n`);
  });

  it("inspects an image as dockerd does: Id, RepoTags, Architecture 386, RootFS layers; history from its config", async () => {
    const lua = await builtIn("lua:5.4");
    const [image] = JSON.parse((await docker("image", "inspect", "docker.io/library/lua:5.4")).stdout) as Array<Record<string, unknown>>;
    expect(image).toMatchObject({ Id: lua.id, RepoTags: ["lua:5.4"], Architecture: "386", Os: "linux", RootFS: { Type: "layers", Layers: lua.diffIds }, Config: { Cmd: ["lua"] } });
    expect((image!.RepoDigests as string[])[0]).toMatch(/^lua@sha256:[0-9a-f]{64}$/);
    const history = await docker("history", "--no-trunc", "--format", "{{.ID}}|{{.Comment}}", "lua:5.4");
    const lines = history.stdout.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^${lua.id}\\|lua5.4: `));
    expect(lines[2]).toMatch(/^<missing>\|busybox: busybox-static/);
    const missing = await docker("image", "inspect", "nosuch");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("No such image: nosuch");
  });

  it("tags and untags; the new name shows in hyperlab images too", async () => {
    expect(await docker("tag", "busybox", "me/tools:1")).toMatchObject({ code: 0, stderr: "" });
    expect((await docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "me/tools")).stdout).toBe(`me/tools:1 ${(await builtIn("busybox:latest")).id.slice(7, 19)}\n`);
    const ours = await hyperlab(lab.socket, ["images"]);
    expect(ours.stdout).toMatch(/^me\/tools\s+1\s+[0-9a-f]{12}/m);
    expect(await docker("rmi", "me/tools:1")).toMatchObject({ code: 0, stdout: "Untagged: me/tools:1\n" });
    expect((await hyperlab(lab.socket, ["images"])).stdout).not.toContain("me/tools");
    const bad = await docker("tag", "busybox", "Bad:1");
    expect(bad.code).not.toBe(0);
  });

  it("refuses to remove an image while a container uses it (409 in dockerd's words), then removes it", async () => {
    const id = (await builtIn("lua:5.1")).id.slice(7, 19);
    const run = await docker("run", "-d", "--name", "uses-lua", "lua:5.1", "sleep", "600");
    expect(run.code).toBe(0);
    const byName = await docker("rmi", "lua:5.1");
    expect(byName.code).toBe(1);
    expect(byName.stderr).toBe(`Error response from daemon: conflict: unable to remove repository reference "lua:5.1" (must force) - container ${run.stdout.trim().slice(0, 12)} is using its referenced image ${id}\n`);
    const forced = await docker("rmi", "-f", id);
    expect(forced.code).toBe(1);
    expect(forced.stderr).toContain(`conflict: unable to delete ${id} (cannot be forced) - image is being used by running container ${run.stdout.trim().slice(0, 12)}`);
    expect((await docker("rm", "-f", "uses-lua")).code).toBe(0);
    const removed = await docker("rmi", "lua:5.1");
    expect(removed).toMatchObject({ code: 0, stdout: `Untagged: lua:5.1\nDeleted: sha256:${(await builtIn("lua:5.1")).id.slice(7)}\n` });
    expect((await docker("images", "lua:5.1", "-q")).stdout).toBe("");
    const gone = await docker("rmi", "lua:5.1");
    expect(gone).toMatchObject({ code: 1, stderr: "Error response from daemon: No such image: lua:5.1\n" });
  });

  it("pulls from the local store only: Docker's progress, up to date, and not found without a registry", async () => {
    const pulled = await docker("pull", "lua:5.1");
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toContain("5.1: Pulling from library/lua\n");
    expect(pulled.stdout).toMatch(/^[0-9a-f]{12}: Already exists$/m);
    expect(pulled.stdout).toMatch(/^[0-9a-f]{12}: Pull complete$/m);
    expect(pulled.stdout).toMatch(/^Digest: sha256:[0-9a-f]{64}$/m);
    expect(pulled.stdout).toContain("Status: Downloaded newer image for lua:5.1\n");
    expect(pulled.stdout.endsWith("docker.io/library/lua:5.1\n")).toBe(true);
    const again = await docker("pull", "busybox");
    expect(again.stdout).toContain("Status: Image is up to date for busybox:latest\n");
    const unknown = await docker("pull", "nosuchimage");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("Error response from daemon: pull access denied for nosuchimage, repository does not exist or may require 'docker login'");
    const noTag = await docker("pull", "busybox:9.9");
    expect(noTag.stderr).toContain("Error response from daemon: manifest for busybox:9.9 not found: manifest unknown");
  });

  it("saves, removes and loads an image back with the same ID, and the loaded image runs", async () => {
    const id = (await builtIn("lua:5.4")).id;
    const file = join(work, "lua.tar");
    expect((await docker("save", "-o", file, "lua:5.4")).code).toBe(0);
    expect((await docker("rmi", "lua:5.4")).stdout).toContain(`Deleted: ${id}`);
    const loaded = await docker("load", "-i", file);
    expect(loaded).toMatchObject({ code: 0, stdout: "Loaded image: lua:5.4\n" });
    expect((await docker("image", "inspect", "-f", "{{.Id}}", "lua:5.4")).stdout).toBe(`${id}\n`);
    expect(await docker("run", "--rm", "lua:5.4", "lua", "-e", "print(1+1)")).toMatchObject({ code: 0, stdout: "2\n" });
    // Saved twice, the same bytes: fixed times and order.
    const again = join(work, "lua-again.tar");
    await docker("save", "-o", again, "lua:5.4");
    expect(sha(await readFile(again))).toBe(sha(await readFile(file)));
  });

  it("loads an OCI layout with a gzip layer, runs it, and refuses paths outside the archive", async () => {
    const file = join(work, "hello.tar");
    await writeFile(file, await helloArchive("hello:1"));
    expect(await docker("load", "-i", file)).toMatchObject({ code: 0, stdout: "Loaded image: hello:1\n" });
    expect(await docker("run", "--rm", "hello:1")).toMatchObject({ code: 0, stdout: "hello from a loaded layer\nhi\n" });
    expect((await docker("image", "inspect", "-f", "{{.Config.Labels.made}}", "hello:1")).stdout).toBe("by-test\n");
    const evil = join(work, "evil.tar");
    await writeFile(evil, await packTar([{ header: { name: "../../etc/evil", size: 1, type: "file" }, body: "x" }]));
    const refused = await docker("load", "-i", evil);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("invalid archive: the path '../../etc/evil' points outside the archive");
  });

  it("shows disk usage: images, and what a container wrote to its filesystem", async () => {
    const run = await docker("run", "--name", "writer", "busybox", "dd", "if=/dev/zero", "of=/blob", "bs=1024", "count=300");
    expect(run.code).toBe(0);
    const df = await docker("system", "df");
    expect(df.stdout).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/m);
    expect(df.stdout).toMatch(/^Images\s+\d+\s+\d+\s+/m);
    expect(df.stdout).toMatch(/^Containers\s+1\s+0\s+307\.2kB\s+307\.2kB \(100%\)$/m);
    expect(df.stdout).toMatch(/^Local Volumes\s+0\s+0\s+0B\s+0B$/m);
    const verbose = await docker("system", "df", "-v");
    expect(verbose.stdout).toMatch(/^[0-9a-f]{12}\s+busybox.*\s+0\s+307kB\s+.*\s+writer$/m);
    expect((await docker("rm", "writer")).code).toBe(0);
  });

  it("prunes dangling images, then unused ones with -a", async () => {
    // The name hello:1 moved to another image leaves the loaded one dangling.
    await docker("tag", "busybox", "hello:1");
    const dangling = await docker("images", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}");
    expect(dangling.stdout).toBe("<none>:<none>\n");
    const pruned = await docker("image", "prune", "-f");
    expect(pruned.stdout).toMatch(/^Deleted Images:\ndeleted: sha256:[0-9a-f]{64}\n\nTotal reclaimed space: \d/);
    expect((await docker("images", "--filter", "dangling=true", "-q")).stdout).toBe("");
    await docker("rmi", "hello:1");
  });
});

describe("the daemon's data root", () => {
  it("keeps tags and loaded images across a restart, in the folder --data-root names", async () => {
    const root = await mkdtemp(join(tmpdir(), "hyperlab-root-"));
    try {
      let lab = await dockerLab(["--warm-pool", "0", "--data-root", root]);
      try {
        expect((await lab.docker(["tag", "lua:5.4", "kept:1"])).code).toBe(0);
        expect((await lab.docker(["rmi", "busybox"])).stdout).toContain("Untagged: busybox:latest");
      } finally {
        await lab.close();
      }
      const index = JSON.parse(await readFile(join(root, "images", "index.json"), "utf8")) as { manifests: Array<{ annotations?: Record<string, string> }> };
      expect(index.manifests.map((m) => m.annotations?.["io.containerd.image.name"])).toEqual(["docker.io/library/kept:1"]);
      lab = await dockerLab(["--warm-pool", "0", "--data-root", root]);
      try {
        expect((await lab.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"])).stdout.split("\n").filter(Boolean).sort()).toEqual(["kept:1", "lua:5.1", "lua:5.4"]);
        expect(lab.daemon.stderr).toContain(`hyperlab: images and data in ${root}`);
      } finally {
        await lab.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
