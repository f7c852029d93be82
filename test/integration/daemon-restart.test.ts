// Nothing lost across the daemon's restarts: a SIGTERM saves each VM (a
// delta snapshot with its containers' records) in the data root and the next
// start restores them, running ones running and paused ones paused; after a
// SIGKILL (a crash) the next start brings each VM back fresh and lists its
// containers exited (255) with why, images intact; a damaged snapshot is
// reported, never trusted; two daemons never share a data root.
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, hyperlab, startDaemon } from "./daemon-process.ts";

/** One request to the daemon's Docker API: status and parsed body. */
function api(socket: string, method: string, path: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method, timeout: 30_000 }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer to ${method} ${path} within 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** `ps -a`'s rows as NAME → STATUS without its times ("Up", "Exited (0)"). */
function statuses(ps: string): Record<string, string> {
  const rows = ps.trimEnd().split("\n").slice(1);
  return Object.fromEntries(rows.map((r) => [r.split(/\s+/).at(-1)!, /(Up|Exited \(-?\d+\))/.exec(r)![1]!]));
}

/** `vm ls`'s rows as NAME → "STATE PROFILE". */
function vmStates(ls: string): Record<string, string> {
  return Object.fromEntries(ls.trimEnd().split("\n").slice(1).map((r) => { const [name, , state, profile] = r.split(/\s+/); return [name!, `${state} ${profile}`]; }));
}

describe("the daemon's VMs and containers across its restarts", () => {
  let dir: string;
  let dataRoot: string;
  let socket: string;
  let daemon: DaemonProcess | undefined;
  const hl = (...args: string[]) => hyperlab(socket, args);
  const start = async () => (daemon = await startDaemon(socket, ["--warm-pool", "0", "--data-root", dataRoot], 180_000));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-restart-"));
    dataRoot = join(dir, "data");
    socket = join(dir, "hyperlab.sock");
    await start();
    expect((await hl("run", "-d", "--name", "svc", "busybox", "sh", "-c", "echo hello; sleep 1000")).code).toBe(0);
    expect((await hl("exec", "svc", "sh", "-c", "echo kept > /in-the-container")).code).toBe(0);
    expect((await hl("run", "--name", "done1", "busybox", "echo", "bye")).stdout).toBe("bye\n");
    expect((await api(socket, "POST", "/images/busybox/tag?repo=keep&tag=v1")).status).toBe(201);
    expect((await hl("vm", "create", "--name", "b", "--profile", "lxc")).code).toBe(0);
    expect((await hl("vm", "exec", "b", "sh", "-c", "echo in-b > /root/mark")).code).toBe(0);
    expect((await hl("vm", "pause", "b")).code).toBe(0);
    expect((await hl("vm", "net", "create", "lab", "--subnet", "10.100.9.0/24")).code).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await daemon?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it("saves every VM on SIGTERM and the next start restores them as they were", async () => {
    const before = { ps: await hl("ps", "-a"), images: await hl("images"), vms: await hl("vm", "ls"), nets: await hl("vm", "net", "ls") };
    await daemon!.stop();
    expect(daemon!.stderr).toMatch(/VM default saved \(\d+\.\d MiB\)/);
    expect(daemon!.stderr).toMatch(/VM b saved/);
    await start();
    expect(daemon!.stderr).toContain("VM default restored from its snapshot");
    expect(daemon!.stderr).toContain("VM b restored from its snapshot");
    expect(statuses((await hl("ps", "-a")).stdout)).toEqual(statuses(before.ps.stdout));
    expect(statuses((await hl("ps", "-a")).stdout)).toEqual({ svc: "Up", done1: "Exited (0)" });
    expect((await hl("images")).stdout).toBe(before.images.stdout);
    expect(vmStates((await hl("vm", "ls")).stdout)).toEqual({ default: "running default", b: "paused lxc" });
    expect(vmStates(before.vms.stdout)).toEqual({ default: "running default", b: "paused lxc" });
    expect((await hl("vm", "net", "ls")).stdout).toMatch(/^lab\s+10\.100\.9\.0\/24/m);
    // The running container runs on: its files, its log, exec into it.
    expect((await hl("exec", "svc", "cat", "/in-the-container")).stdout).toBe("kept\n");
    expect((await hl("logs", "svc")).stdout).toBe("hello\n");
    expect((await hl("logs", "done1")).stdout).toBe("bye\n");
    // The paused VM resumes with its guest's files.
    expect((await hl("vm", "resume", "b")).code).toBe(0);
    expect((await hl("vm", "exec", "b", "cat", "/root/mark")).stdout).toBe("in-b\n");
    // Snapshots are consumed by the start that restored them.
    expect(await readdir(join(dataRoot, "state", "snapshots"))).toEqual([]);
  }, 300_000);

  it("after a SIGKILL lists the lost VMs' containers exited (255) with why, images intact, and a temporary file of an interrupted write discarded", async () => {
    expect((await hl("run", "-d", "--name", "late", "busybox", "sleep", "1000")).code).toBe(0);
    const pidOf = JSON.parse(await readFile(join(dataRoot, "state", "daemon.json"), "utf8")).pid as number;
    await daemon!.kill();
    // A write the killed daemon had not finished: a temporary file that was never renamed into place.
    const blobs = join(dataRoot, "images", "blobs", "sha256");
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process
    await writeFile(join(blobs, `.tmp-${dead}-x-${"ab".repeat(32)}`), "half a blob");
    await start();
    expect(daemon!.stderr).toContain(`VM default started fresh: the daemon (process ${pidOf}) ended without saving its VMs (it was killed, or the machine lost power)`);
    expect(daemon!.stderr).toContain("its 3 container(s) are listed exited");
    expect(statuses((await hl("ps", "-a")).stdout)).toEqual({ late: "Exited (255)", svc: "Exited (255)", done1: "Exited (0)" });
    const inspect = await api(socket, "GET", "/containers/svc/json");
    expect(inspect.body.State.Status).toBe("exited");
    expect(inspect.body.State.ExitCode).toBe(255);
    expect(inspect.body.State.Error).toContain(`it was lost with the guest of VM default: the daemon (process ${pidOf}) ended without saving`);
    // Its log up to the crash is kept; it cannot start again (its files were in the lost guest), and says what to do.
    expect((await hl("logs", "svc")).stdout).toBe("hello\n");
    const again = await api(socket, "POST", "/containers/svc/start");
    expect(again.status).toBe(409);
    expect(again.body.message).toContain("remove it (rm svc) and run it again");
    expect((await hl("rm", "svc")).code).toBe(0);
    expect((await hl("run", "--rm", "--name", "svc", "busybox", "echo", "anew")).stdout).toBe("anew\n");
    // The VMs are back under their names and profiles, fresh.
    expect(vmStates((await hl("vm", "ls")).stdout)).toEqual({ default: "running default", b: "running lxc" });
    expect((await hl("vm", "exec", "b", "cat", "/root/mark")).code).not.toBe(0);
    // Images: the tag made through the API is there and runs; the half-written blob is gone once the store is written again.
    expect((await hl("images")).stdout).toMatch(/^keep\s+v1\s/m);
    expect((await hl("run", "--rm", "keep:v1", "echo", "tagged")).stdout).toBe("tagged\n");
    expect((await api(socket, "POST", "/images/busybox/tag?repo=keep&tag=v2")).status).toBe(201);
    expect((await readdir(blobs)).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  }, 300_000);

  it("reports a damaged snapshot and starts its VM fresh instead of trusting it", async () => {
    await daemon!.stop();
    const snap = join(dataRoot, "state", "snapshots", "b.snap");
    const bytes = await readFile(snap);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(snap, bytes);
    await start();
    expect(daemon!.stderr).toContain("VM default restored from its snapshot");
    expect(daemon!.stderr).toMatch(/VM b started fresh: its snapshot \S+b\.snap could not be restored: .*\[SNAPSHOT_CORRUPT\]/);
    expect(vmStates((await hl("vm", "ls")).stdout)).toEqual({ default: "running default", b: "running lxc" });
  }, 300_000);

  it("refuses a second daemon on a data root a running one keeps, naming its process", async () => {
    const pid = JSON.parse(await readFile(join(dataRoot, "state", "daemon.json"), "utf8")).pid as number;
    const other = join(dir, "other.sock");
    const second = await startDaemon(other, ["--warm-pool", "0", "--data-root", dataRoot], 20_000).then(
      () => "started",
      (err: Error) => err.message,
    );
    expect(second).toContain(`the data root ${dataRoot} is in use by the hyperlab daemon with process id ${pid}; stop it first, or give this one another --data-root`);
  }, 60_000);
});
