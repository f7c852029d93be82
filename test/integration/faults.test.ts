// Faults survived (issue 16): what a user sees when the host store's disk
// is full or read-only, a registry drops the connection mid-blob, a client
// goes away mid-attach or mid-build, and a guest runs out of memory. Each
// fault is real: a 4 MiB tmpfs as the data root (then remounted
// read-only), a proxy that cuts the socket, a client that closes its own,
// a process that allocates past the guest's RAM. (The agent killed
// mid-request, the VM's worker killed and a truncated snapshot are in
// agent.test.ts, hypervisor.test.ts and snapshot.test.ts.)
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";
import { listing } from "./registry.ts";

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
