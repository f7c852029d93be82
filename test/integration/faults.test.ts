// Faults survived (issue 16): what a user sees when the host store's disk
// is full or read-only, a registry drops the connection mid-blob, a client
// goes away mid-attach or mid-build, and a guest runs out of memory. Each
// fault is real: a 4 MiB tmpfs as the data root (then remounted
// read-only), a proxy that cuts the socket, a client that closes its own,
// a process that allocates past the guest's RAM. (The agent killed
// mid-request, the VM's worker killed and a truncated snapshot are in
// agent.test.ts, hypervisor.test.ts and snapshot.test.ts.)
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { type Server, createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { packTar } from "modern-tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCKER_CLI, type DockerLab, dockerLab } from "./docker-cli.ts";
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

  it("fails a pull into a full store with the store's message, keeps nothing of it, and pulls once there is room", async () => {
    const registry = await startRegistry();
    try {
      const name = `${registry.domain}/small:1`;
      const { tar, layer } = await randomImageArchive(name, 256 * 1024);
      await writeFile(join(lab.dir, "small.tar"), tar);
      expect((await docker("load", "-i", join(lab.dir, "small.tar"))).code).toBe(0);
      expect((await docker("push", name)).code).toBe(0);
      expect((await docker("rmi", name)).code).toBe(0);
      const before = await snapshot();
      const filler = join(mnt, "filler");
      try {
        execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k"], { stdio: "ignore" });
      } catch {
        // Full, as meant.
      }
      // Room for the lock but not for the layer.
      await truncate(filler, (await stat(filler)).size - 64 * 1024);
      try {
        const pulled = await docker("pull", name);
        expect(pulled.code).toBe(1);
        expect(pulled.stderr.trim()).toBe(
          `cannot write blob ${layer} in the image store at ${images()}: its disk is full (ENOSPC); nothing was changed: free space there (docker image prune, docker rmi) or start the daemon with another --data-root`,
        );
        expect(await snapshot()).toEqual(before);
        expect((await docker("image", "inspect", name)).code).toBe(1);
      } finally {
        await rm(filler, { force: true });
      }
      const again = await docker("pull", name);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toContain(`Status: Downloaded newer image for ${name}\n`);
    } finally {
      await registry.stop();
    }
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
    expect(failed.stderr.trim()).toMatch(new RegExp(`reading blob ${layer} from the registry ${proxy.domain} failed after \\d+ of \\d+ bytes: UND_ERR_SOCKET \\(other side closed\\); nothing was stored: pull again$`));
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

const HYPERLAB_BIN = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));

/**
 * A docker CLI (or with `hyperlab`, hyperlab's own CLI over /v1) left
 * running, its output gathered, until the test kills it: a client that goes
 * away mid-stream.
 */
function dockerClient(lab: DockerLab, args: string[], cli: "docker" | "hyperlab" = "docker"): { child: ChildProcess; output: () => string; waitFor: (text: string) => Promise<void> } {
  const env = { ...process.env, DOCKER_HOST: `unix://${lab.socket}`, HYPERLAB_SOCKET: lab.socket, DOCKER_CONFIG: join(lab.dir, "docker-config"), DOCKER_BUILDKIT: "0" };
  const child = cli === "docker" ? spawn(DOCKER_CLI, args, { env, stdio: ["ignore", "pipe", "pipe"] }) : spawn(process.execPath, [HYPERLAB_BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const waitFor = async (text: string) => {
    const end = Date.now() + 60_000;
    while (!out.includes(text)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`docker ${args.join(" ")} did not print ${JSON.stringify(text)} within 60 s (exit ${child.exitCode}): ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, output: () => out, waitFor };
}

/** Polls `fn` every 200 ms until it returns true; fails naming `what` after `ms`. */
async function until(what: string, fn: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// One daemon and its default VM for the faults inside a running guest.
describe("faults in a running guest", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);
  /** Runs argv in the default VM (outside any container) through /v1: exit code, the signal that killed it, output. */
  const vmExec = async (argv: string[]) => {
    const r = await api(lab.socket, "POST", "/v1/vms/default/exec", JSON.stringify({ argv }), { "Content-Type": "application/json" });
    expect(r.status, r.body).toBe(200);
    return JSON.parse(r.body) as { exitCode: number; signal: number; stdout: string; stderr: string };
  };
  /** The guest's processes (pid and command line), kernel threads left out. */
  const guestProcesses = async () => (await vmExec(["ps", "-o", "pid,args"])).stdout.split("\n").slice(1).filter((l) => l.trim() && !/\[.*\]$/.test(l));
  const state = async (name: string) => (await docker("inspect", "-f", "{{.State.Status}}", name)).stdout.trim();

  beforeAll(async () => {
    lab = await dockerLab();
    // Boots the default VM once for all the cases.
    expect((await docker("run", "--rm", "busybox", "true")).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await lab?.close();
  });

  describe("the guest kernel out of memory", () => {
    // dd's 110 MiB buffer, filled from /dev/zero, cannot fit in the 128 MiB guest beside its kernel and page cache.
    const hog = ["dd", "if=/dev/zero", "of=/dev/null", "bs=110M", "count=1"];

    it("kills a process in the VM that allocates past its RAM; the agent, the VM and the daemon go on", async () => {
      const r = await vmExec(hog);
      expect(r).toMatchObject({ signal: 9 });
      expect(r.stderr).not.toMatch(/records out/);
      const dmesg = await vmExec(["dmesg"]);
      expect(dmesg.stdout).toMatch(/Out of memory: Killed process \d+ \(dd\)/);
      // The agent was not the one killed: it answers, and so do the VM's containers and the daemon.
      expect(await vmExec(["echo", "still here"])).toMatchObject({ exitCode: 0, signal: 0, stdout: "still here\n" });
      expect(await docker("run", "--rm", "busybox", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
    }, 120_000);

    it("reports a container without a memory limit that the kernel killed: exit 137, OOMKilled, an oom event", async () => {
      const r = await docker("run", "--name", "hog", "busybox", ...hog);
      expect(r.code).toBe(137);
      expect(r.stderr).not.toMatch(/records out/);
      const [info] = JSON.parse((await docker("inspect", "hog")).stdout) as Array<{ State: { Status: string; OOMKilled: boolean; ExitCode: number } }>;
      expect(info!.State).toMatchObject({ Status: "exited", OOMKilled: true, ExitCode: 137 });
      const events = await docker("events", "--since", "0", "--until", String(Math.ceil(Date.now() / 1000)), "--filter", "container=hog", "--format", "{{.Action}}");
      expect(events.stdout.split("\n")).toEqual(expect.arrayContaining(["oom", "die"]));
      expect((await docker("rm", "hog")).code).toBe(0);
      expect(await docker("run", "--rm", "busybox", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
    }, 120_000);

    it("reports an exec the kernel killed with exit 137 and keeps its container running", async () => {
      expect((await docker("run", "-d", "--name", "host-of-hog", "busybox", "sleep", "600")).code).toBe(0);
      const r = await docker("exec", "host-of-hog", ...hog);
      expect(r.code).toBe(137);
      expect(await state("host-of-hog")).toBe("running");
      expect(await docker("exec", "host-of-hog", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
      expect((await docker("rm", "-f", "host-of-hog")).code).toBe(0);
    }, 120_000);

    it("fails a build whose RUN step the kernel killed, naming exit code 137", async () => {
      const ctx = join(lab.dir, "oom-build");
      await mkdir(ctx);
      await writeFile(join(ctx, "Dockerfile"), `FROM busybox\nRUN ${hog.join(" ")}\n`);
      const r = await docker("build", "--force-rm", "-t", "oom:1", ctx);
      // The docker CLI exits with the failed step's code (errorDetail.code), as with dockerd.
      expect(r.code).toBe(137);
      expect(r.stderr).toContain(`The command '/bin/sh -c ${hog.join(" ")}' returned a non-zero code: 137`);
      expect((await docker("image", "inspect", "oom:1")).code).toBe(1);
      expect(await docker("run", "--rm", "busybox", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
    }, 120_000);

    it("reports OOMKilled in docker inspect for a container at its -m limit", async () => {
      const r = await docker("run", "--name", "capped", "-m", "16m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1");
      expect(r.code).toBe(137);
      expect((await docker("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "capped")).stdout).toBe("true 137\n");
      expect((await docker("rm", "capped")).code).toBe(0);
    }, 120_000);
  });

  describe("the guest's /run full (containers' files live in the guest's memory)", () => {
    it("refuses new containers with a daemon error that says what is full and what to do, and starts them again once space is freed", async () => {
      // The tmpfs /run holds every container's writable layer: one container can fill it.
      const filler = await docker("run", "--name", "filler", "busybox", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=200");
      expect(filler.code).toBe(1);
      expect(filler.stderr).toContain("No space left on device");
      try {
        for (const args of [["run", "--rm", "busybox", "echo", "not printed"], ["run", "-d", "busybox", "echo", "not printed"]]) {
          const r = await docker(...args);
          expect(r.code, r.stderr).toBe(125);
          expect(r.stdout).not.toContain("not printed");
          expect(r.stderr).toMatch(/^docker: Error response from daemon: /);
          expect(r.stderr).toContain("the VM's /run, where containers' files live in its memory, is full: remove containers you no longer need (docker rm, docker container prune) or files they wrote");
        }
        // hyperlab's own CLI (through /v1) says the same.
        const hl = dockerClient(lab, ["run", "--rm", "busybox", "echo", "not printed"], "hyperlab");
        const hlCode = await new Promise<number | null>((r) => hl.child.on("exit", r));
        expect(hl.output()).not.toContain("not printed");
        expect(hl.output()).toContain("the VM's /run, where containers' files live in its memory, is full: remove containers you no longer need");
        expect(hlCode, hl.output()).toBe(125);
        // The daemon and the agent go on: the VM answers.
        expect(await vmExec(["echo", "still here"])).toMatchObject({ exitCode: 0, stdout: "still here\n" });
      } finally {
        expect((await docker("rm", "filler")).code).toBe(0);
      }
      expect(await docker("run", "--rm", "busybox", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
    }, 120_000);
  });

  describe("a client that disconnects mid-attach", () => {
    // Long enough to outlive the slowest client's start (hyperlab's CLI loads TypeScript first) on a loaded machine.
    const lines = 20;
    const script = `i=0; while [ $i -lt ${lines} ]; do echo line$i; i=$((i+1)); sleep 1; done`;

    it("leaves the container running to its end, as dockerd: kept by docker run, removed by docker run --rm, running after docker attach (and the same through hyperlab run)", async () => {
      const kept = dockerClient(lab, ["run", "--name", "kept", "busybox", "sh", "-c", script]);
      const removed = dockerClient(lab, ["run", "--rm", "--name", "removed", "busybox", "sh", "-c", script]);
      // hyperlab's own CLI attaches through /v1, another path to the same containers.
      const v1Kept = dockerClient(lab, ["run", "--name", "v1-kept", "busybox", "sh", "-c", script], "hyperlab");
      const v1Removed = dockerClient(lab, ["run", "--rm", "--name", "v1-removed", "busybox", "sh", "-c", script], "hyperlab");
      const clients = { kept, removed, "v1-kept": v1Kept, "v1-removed": v1Removed };
      // Each client goes away without a word (no signal proxied) once output flows: its socket closes mid-stream.
      await Promise.all(
        Object.entries(clients).map(async ([name, c]) => {
          await c.waitFor("line1");
          c.child.kill("SIGKILL");
          expect(await state(name)).toBe("running");
        }),
      );

      expect((await docker("run", "-d", "--name", "watched", "busybox", "sh", "-c", "while true; do echo tick; sleep 1; done")).code).toBe(0);
      const attached = dockerClient(lab, ["attach", "watched"]);
      await attached.waitFor("tick");
      attached.child.kill("SIGKILL");

      for (const name of ["kept", "v1-kept"]) {
        await until(`container ${name} exiting`, async () => (await state(name)) === "exited");
        expect((await docker("inspect", "-f", "{{.State.ExitCode}}", name)).stdout).toBe("0\n");
        // All its output was kept for logs though nobody read it.
        expect((await docker("logs", name)).stdout).toBe(Array.from({ length: lines }, (_, i) => `line${i}\n`).join(""));
      }
      for (const name of ["removed", "v1-removed"]) await until(`container ${name} going away`, async () => (await docker("inspect", name)).code !== 0);
      expect(await state("watched")).toBe("running");
      const logs = await docker("logs", "--tail", "1", "watched");
      await new Promise((r) => setTimeout(r, 1500));
      // Still writing with nobody attached.
      expect((await docker("logs", "watched")).stdout.split("\n").length).toBeGreaterThan(logs.stdout.split("\n").length);
      expect((await docker("rm", "-f", "kept", "v1-kept", "watched")).code).toBe(0);
      expect(await docker("run", "--rm", "busybox", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
    }, 180_000);
  });

  describe("a client that disconnects mid-build", () => {
    it("stops the RUN step's work in the guest, leaves no build container, and the next build works", async () => {
      const ctx = join(lab.dir, "slow");
      await mkdir(ctx);
      await writeFile(join(ctx, "Dockerfile"), "FROM busybox\nRUN i=0; while [ $i -lt 60 ]; do echo step$i; i=$((i+1)); sleep 1; done\n");
      const client = dockerClient(lab, ["build", "-t", "slow:1", ctx]);
      await client.waitFor("step2");
      const id = /Running in ([0-9a-f]{12})/.exec(client.output())![1]!;
      expect((await guestProcesses()).some((l) => l.includes(`crun run`) && l.includes(id))).toBe(true);
      client.child.kill("SIGKILL");

      // The step's container is killed and removed: no process of it, no folder, no entry in ps -a.
      await until("the build's processes ending in the guest", async () => !(await guestProcesses()).some((l) => l.includes(id) || /\bsleep\b/.test(l)), 30_000);
      await until("the build container going away", async () => !(await docker("ps", "-a", "-q", "--no-trunc")).stdout.includes(id), 30_000);
      const dirs = await vmExec(["ls", "/run/hyperlab/containers"]);
      expect(dirs.stdout).not.toContain(id);
      expect((await docker("image", "inspect", "slow:1")).code).toBe(1);

      // Gone while the last step's changes are being taken: its command has exited in the guest, and its 16 MiB take
      // seconds to tar in the guest and pack here. The image is not tagged.
      await writeFile(join(ctx, "Dockerfile"), "FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=16 2>/dev/null; echo written\n");
      const late = dockerClient(lab, ["build", "-t", "late:1", ctx]);
      await late.waitFor("\nwritten\n");
      const lateId = /Running in ([0-9a-f]{12})/.exec(late.output())![1]!;
      const running = async () => (await guestProcesses()).some((l) => l.includes("crun run") && l.includes(lateId));
      for (let end = Date.now() + 30_000; (await running()) && Date.now() < end; );
      expect(await running(), "the late build's step command to exit").toBe(false);
      late.child.kill("SIGKILL");
      // The client went before the commit ended (else this case would test nothing).
      expect(late.output()).not.toContain("Removing intermediate container");
      await until("the late build's container going away", async () => !(await docker("ps", "-a", "-q", "--no-trunc")).stdout.includes(lateId), 60_000);
      // The daemon is done with the build once its container is gone; a tag would have come right after the commit.
      await new Promise((r) => setTimeout(r, 2000));
      expect((await docker("image", "inspect", "late:1")).code).toBe(1);

      await writeFile(join(ctx, "Dockerfile"), "FROM busybox\nRUN echo built > /built\nCMD cat /built\n");
      const next = await docker("build", "-q", "-t", "quick:1", ctx);
      expect(next.code, next.stderr).toBe(0);
      expect(await docker("run", "--rm", "quick:1")).toMatchObject({ code: 0, stdout: "built\n" });
    }, 180_000);
  });
  describe("the guest's memory exhausted by files in memory (no process to kill frees it)", () => {
    it("leaves no container listed as running whose processes the OOM killer took", async () => {
      // Three containers each write 45 MiB to their /dev/shm (tmpfs, 64 MiB each) in a 128 MiB guest: the pages are
      // nobody's RSS, so the OOM killer goes through the small processes (the runtimes' shims, the shells; the agent is passed over, its oom_score_adj is -999).
      const names = ["shm1", "shm2", "shm3"];
      // They fill it together once all have started (a file in a shared volume says go).
      const wait = "while [ ! -e /go/now ]; do sleep 1; done; dd if=/dev/zero of=/dev/shm/x bs=1M count=45; sleep 600";
      for (const n of names) expect((await docker("run", "-d", "--name", n, "-v", "shm-go:/go", "busybox", "sh", "-c", wait)).code).toBe(0);
      expect((await docker("run", "--rm", "-v", "shm-go:/go", "busybox", "touch", "/go/now")).code).toBe(0);
      await until("the OOM killer to act", async () => /Out of memory: Killed process/.test((await vmExec(["dmesg"]).catch(() => ({ stdout: "" }))).stdout), 60_000);
      // Every container the daemon lists as running answers an exec; the others are exited with why.
      await until(
        "every container's record to agree with the guest",
        async () => {
          for (const n of names) if ((await state(n)) === "running" && (await docker("exec", n, "true")).code !== 0) return false;
          return true;
        },
        60_000,
      );
      for (const n of names) {
        const [info] = JSON.parse((await docker("inspect", n)).stdout) as Array<{ State: { Status: string; ExitCode: number; Error: string } }>;
        if (info!.State.Status === "exited") expect(info!.State.ExitCode).not.toBe(0);
      }
      expect((await docker("rm", "-f", ...names)).code).toBe(0);
      expect((await docker("volume", "rm", "shm-go")).code).toBe(0);
      expect(await vmExec(["echo", "still here"])).toMatchObject({ exitCode: 0, stdout: "still here\n" });
      expect(await docker("run", "--rm", "busybox", "echo", "alive")).toMatchObject({ code: 0, stdout: "alive\n" });
    }, 180_000);
  });
});
