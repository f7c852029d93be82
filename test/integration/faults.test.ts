// Faults survived (issue 16): what a user sees when the host store's disk
// is full or read-only, a registry drops the connection mid-blob, a client
// goes away mid-attach or mid-build, and a guest runs out of memory. Each
// fault is real: a 4 MiB tmpfs as the data root (then remounted
// read-only), a proxy that cuts the socket, a client that closes its own,
// a process that allocates past the guest's RAM. (The agent killed
// mid-request, the VM's worker killed and a truncated snapshot are in
// agent.test.ts, hypervisor.test.ts and snapshot.test.ts.)
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { type Server, createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packTar } from "modern-tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";
import { type TestRegistry, freePort, listing, registryInstalled, startRegistry } from "./registry.ts";

/** One request to the Docker API on `socket`: its status and body. */
function api(socket: string, method: string, path: string, body?: Uint8Array | string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers, timeout: 120_000 }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} got no answer within 120 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

const isRoot = process.getuid?.() === 0;

// Mounting a tmpfs needs root (CI runs as root); a read-only case made with chmod would not stop root anyway.
describe.runIf(isRoot)("the host store's disk full or read-only", () => {
  let lab: DockerLab;
  let mnt: string;
  let archive: string;
  const images = () => join(mnt, "images");
  const docker = (...args: string[]) => lab.docker(args);
  /** The store's files (no temporary ones left by a failed write show up as names here) and its index. */
  const snapshot = async () => ({ files: await listing(images()), index: await readFile(join(images(), "index.json"), "utf8") });

  beforeAll(async () => {
    mnt = await mkdtemp(join(tmpdir(), "hyperlab-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", mnt]);
    lab = await dockerLab(["--warm-pool", "0", "--data-root", mnt]);
    // An image the store holds before the fault: a name in the writable index.
    expect((await docker("tag", "busybox", "kept:1")).code).toBe(0);
    archive = join(lab.dir, "busybox.tar");
    expect((await docker("save", "-o", archive, "busybox")).code).toBe(0);
  });
  afterAll(async () => {
    await lab?.close();
    if (mnt) {
      execFileSync("umount", [mnt]);
      await rm(mnt, { recursive: true, force: true });
    }
  });

  it("refuses a load into a full store with a 507 naming the store and what to do, and keeps the store as it was", async () => {
    const before = await snapshot();
    // The rest of the tmpfs taken by a file beside the store: what a disk that filled up looks like.
    const filler = join(mnt, "filler");
    await writeFile(filler, Buffer.alloc(0)).catch(() => {});
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k"], { stdio: "ignore" });
    } catch {
      // dd stops with ENOSPC: the disk is full, as meant.
    }
    try {
      const tag = await api(lab.socket, "POST", "/v1.41/images/busybox/tag?repo=more&tag=1");
      expect(tag.status).toBe(507);
      expect(JSON.parse(tag.body).message).toBe(
        `cannot change the image index in the image store at ${images()}: its disk is full (ENOSPC); nothing was changed: free space there (docker image prune, docker rmi) or start the daemon with another --data-root`,
      );
      // The lock it took is gone with it (an empty one, its PID not written for want of space, would hold the next change).
      expect(await readdir(images())).not.toContain("index.lock");
      // Half a megabyte free again: the load's lock and first blobs fit, its 2 MiB layer does not.
      await truncate(filler, (await stat(filler)).size - 512 * 1024);
      const load = await docker("load", "-i", archive);
      expect(load.code).not.toBe(0);
      expect(load.stderr).toMatch(new RegExp(`cannot write blob sha256:[0-9a-f]{64} in the image store at ${images()}: its disk is full \\(ENOSPC\\); nothing was changed: free space there`));
      // The store as before: the same files (no half-written blob or temporary file), the same index, the old image readable.
      expect(await snapshot()).toEqual(before);
      const listed = await docker("images", "--format", "{{.Repository}}:{{.Tag}}");
      expect(listed.stdout.split("\n")).toContain("kept:1");
      expect(listed.stdout).not.toMatch(/more:1/);
      expect((await docker("save", "-o", join(lab.dir, "kept.tar"), "kept:1")).code).toBe(0);
    } finally {
      await rm(filler, { force: true });
    }
    // Space freed: the same load works.
    const again = await docker("load", "-i", archive);
    expect(again).toMatchObject({ code: 0 });
    expect((await docker("tag", "busybox", "more:1")).code).toBe(0);
    expect((await docker("rmi", "more:1")).code).toBe(0);
  });

  it("refuses a tag and an rmi on a read-only store with a message naming it, and works again once it is writable", async () => {
    const before = await snapshot();
    execFileSync("mount", ["-o", "remount,ro", mnt]);
    try {
      const tag = await docker("tag", "busybox", "ro:1");
      expect(tag.code).not.toBe(0);
      expect(tag.stderr.trim()).toBe(
        `Error response from daemon: cannot change the image index in the image store at ${images()}: it is on a read-only file system (EROFS); nothing was changed: remount it writable or start the daemon with another --data-root`,
      );
      const rmi = await api(lab.socket, "DELETE", "/v1.41/images/kept:1");
      expect(rmi.status).toBe(500);
      expect(JSON.parse(rmi.body).message).toMatch(/read-only file system \(EROFS\)/);
      const listed = await docker("images", "--format", "{{.Repository}}:{{.Tag}}");
      expect(listed.stdout.split("\n")).toContain("kept:1");
      expect(listed.stdout).not.toMatch(/ro:1/);
    } finally {
      execFileSync("mount", ["-o", "remount,rw", mnt]);
    }
    expect(await snapshot()).toEqual(before);
    expect((await docker("tag", "busybox", "ro:1")).code).toBe(0);
    expect((await docker("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split("\n")).toContain("ro:1");
    expect((await readdir(images())).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  });
});

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** An OCI layout archive (docker load takes it) of a linux/386 image `name` whose one layer holds `size` random bytes: blobs no store has yet. */
async function randomImageArchive(name: string, size: number): Promise<{ tar: Uint8Array; layer: string }> {
  const body = randomBytes(size);
  const layer = await packTar([{ header: { name: "noise.bin", size, type: "file", mode: 0o644 }, body }]);
  const config = new TextEncoder().encode(
    JSON.stringify({ architecture: "386", os: "linux", config: { Cmd: ["true"] }, rootfs: { type: "layers", diff_ids: [`sha256:${sha(layer)}`] } }),
  );
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${sha(config)}`, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${sha(layer)}`, size: layer.length }],
    }),
  );
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":").at(-1)! } }],
  });
  const file = (path: string, data: Uint8Array | string) => ({ header: { name: path, size: typeof data === "string" ? Buffer.byteLength(data) : data.length, type: "file" as const }, body: data });
  const tar = await packTar([file("oci-layout", `{"imageLayoutVersion": "1.0.0"}`), file("index.json", index), ...[layer, config, manifest].map((b) => file(`blobs/sha256/${sha(b)}`, b))]);
  return { tar, layer: `sha256:${sha(layer)}` };
}

/**
 * An HTTP proxy in front of `target` that, the first time a GET of blob
 * `digest` passes, sends the answer's head and `cutAt` bytes of its body and
 * then closes the connection: a registry that drops it mid-blob, once.
 */
async function cuttingProxy(target: string, digest: string, cutAt: number): Promise<{ domain: string; cuts: () => number; close: () => Promise<void> }> {
  let cuts = 0;
  const server: Server = createServer((req, res) => {
    const up = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      const cut = req.method === "GET" && req.url!.endsWith(`/blobs/${digest}`) && cuts === 0;
      res.writeHead(answer.statusCode!, answer.headers);
      if (!cut) {
        answer.pipe(res);
        return;
      }
      cuts++;
      let sent = 0;
      answer.on("data", (d: Buffer) => {
        if (sent >= cutAt) return;
        const part = d.subarray(0, cutAt - sent);
        sent += part.length;
        res.write(part);
        if (sent >= cutAt) {
          answer.destroy();
          // What a dropped connection is: the socket closes with the body short of its Content-Length.
          setTimeout(() => res.socket?.destroy(), 50);
        }
      });
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    domain: `127.0.0.1:${port}`,
    cuts: () => cuts,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("a registry that drops the connection mid-blob", () => {
  if (!registryInstalled) throw new Error("these tests need Debian's docker-registry (/usr/bin/docker-registry): apt-get install docker-registry (.ci/run does)");
  let lab: DockerLab;
  let registry: TestRegistry;
  let proxy: Awaited<ReturnType<typeof cuttingProxy>>;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    [lab, registry] = await Promise.all([dockerLab(), startRegistry()]);
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await lab?.close();
    await registry?.stop();
  });

  it("fails the pull with a coded error naming the blob, stores nothing, and a retry pulls the image", async () => {
    // An image with a 1 MiB layer of its own, pushed to the registry and then removed here: a pull must fetch it.
    const { tar, layer } = await randomImageArchive(`${registry.domain}/cut:1`, 1024 * 1024);
    const archive = join(lab.dir, "cut.tar");
    await writeFile(archive, tar);
    expect((await docker("load", "-i", archive)).code).toBe(0);
    const pushed = await docker("push", `${registry.domain}/cut:1`);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect((await docker("rmi", `${registry.domain}/cut:1`)).code).toBe(0);
    const store = join(lab.dir, "data", "images");
    const before = await listing(store);
    expect(before).not.toContain(`blobs/sha256/${layer.slice(7)}`);

    proxy = await cuttingProxy(registry.url, layer, 300 * 1024);
    const name = `${proxy.domain}/cut:1`;
    const failed = await docker("pull", name);
    expect(proxy.cuts()).toBe(1);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(new RegExp(`reading blob ${layer} from the registry ${proxy.domain} failed after \\d+ of \\d+ bytes: .*; nothing was stored`));
    // Nothing of it in the store: no blob, no temporary file, no name.
    expect(await listing(store)).toEqual(before);
    expect((await docker("image", "inspect", name)).code).toBe(1);

    const again = await docker("pull", name);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^[0-9a-f]{12}: Pull complete$/m);
    expect(again.stdout).toContain(`Status: Downloaded newer image for ${name}\n`);
    expect(await listing(store)).toContain(`blobs/sha256/${layer.slice(7)}`);
    const saved = await docker("save", "-o", join(lab.dir, "again.tar"), name);
    expect(saved.code, saved.stderr).toBe(0);
  }, 120_000);
});
