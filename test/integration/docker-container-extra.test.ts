// The container verbs beyond run/stop against hyperlab's daemon, with the
// real docker CLI: top, stats, pause/unpause, rename, resize, restart,
// start again, prune, inspect's PID, and `docker cp` both ways.
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

/** One request to the lab's Docker API: status, headers and body text. */
function api(lab: DockerLab, method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: lab.socket, method, path }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The first `n` JSON lines of a streaming answer (the request is dropped after). */
function jsonLines(lab: DockerLab, path: string, n: number): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: lab.socket, method: "GET", path }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d.toString();
        const lines = text.split("\n").filter(Boolean);
        if (lines.length >= n && text.endsWith("\n")) {
          req.destroy();
          resolve(lines.slice(0, n).map((l) => JSON.parse(l)));
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the docker CLI against hyperlab's daemon: top, stats, pause, rename, restart, prune, cp", () => {
  let lab: DockerLab;
  let work: string;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
    work = await mkdtemp(join(tmpdir(), "hyperlab-cp-"));
  });
  afterAll(async () => {
    await lab?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists a container's processes with ps -ef's columns, or ps's own for other arguments; State.Pid is its first", async () => {
    expect((await docker("run", "-d", "--name", "procs", "busybox", "sh", "-c", "sleep 300 & while :; do sleep 1; done")).code).toBe(0);
    const top = await docker("top", "procs");
    expect(top.code).toBe(0);
    const [titles, ...rows] = top.stdout.trim().split("\n");
    expect(titles!.split(/\s+/)).toEqual(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    expect(rows[0]).toMatch(/^root\s+(\d+)\s+\d+\s+\d+\s+\d\d:\d\d\s+\?\s+\d\d:\d\d:\d\d\s+sh -c sleep 300 & while :; do sleep 1; done$/);
    expect(rows.some((r) => /\ssleep 300$/.test(r))).toBe(true);
    const initPid = rows[0]!.split(/\s+/)[1];
    // inspect's PID is the container's first process as the VM sees it (not the runtime's)
    expect((await docker("inspect", "-f", "{{.State.Pid}}", "procs")).stdout).toBe(`${initPid}\n`);
    const ps = await docker("top", "procs", "-o", "pid,comm");
    expect(ps.stdout).toMatch(new RegExp(`^PID\\s+COMMAND\\n${initPid}\\s+sh\\n`));
    const bad = await docker("top", "procs", "-o", "bogus");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("Error response from daemon: ps: bad -o argument 'bogus'");
    expect((await docker("rm", "-f", "procs")).code).toBe(0);
  });

  it("shows stats: CPU %, memory use against its limit (or the guest's memory), PIDs; streaming once a second", async () => {
    expect((await docker("run", "-d", "--name", "busy", "-m", "32m", "--pids-limit", "20", "busybox", "sh", "-c", "while :; do :; done")).code).toBe(0);
    expect((await docker("run", "-d", "--name", "calm", "busybox", "sleep", "300")).code).toBe(0);
    const r = await docker("stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}", "busy", "calm");
    expect(r.code).toBe(0);
    const [busy, calm] = r.stdout.trim().split("\n").map((l) => l.split("|"));
    expect(busy![0]).toBe("busy");
    expect(parseFloat(busy![1]!)).toBeGreaterThan(30); // it spins on the guest's one CPU
    expect(busy![2]).toMatch(/^\d+(\.\d+)?[KM]iB \/ 32MiB$/);
    expect(busy![4]).toBe("1");
    expect(calm![0]).toBe("calm");
    expect(parseFloat(calm![1]!)).toBeLessThan(30);
    expect(calm![2]).toMatch(/^\d+(\.\d+)?[KM]iB \/ \d+(\.\d+)?MiB$/);
    expect((await docker("rm", "-f", "busy")).code).toBe(0);
    const stream = await jsonLines(lab, "/v1.50/containers/calm/stats", 3);
    expect(stream[1].preread).toBe(stream[0].read);
    expect(stream[2].preread).toBe(stream[1].read);
    const gap = Date.parse(stream[2].read) - Date.parse(stream[1].read);
    expect(gap).toBeGreaterThanOrEqual(1000);
    expect(gap).toBeLessThan(5000);
    expect(stream[2]).toMatchObject({ name: "/calm", pids_stats: { current: 1 }, cpu_stats: { online_cpus: 1 } });
    // Without a limit of its own, its limit is the guest's memory (as the host's is with dockerd).
    expect(stream[2].memory_stats.limit).toBe(Number((await docker("info", "--format", "{{.MemTotal}}")).stdout.trim()));
    expect((await docker("rm", "-f", "calm")).code).toBe(0);
  });

  it("pauses and unpauses with the cgroup freezer: (Paused) in ps, exec refused, events, a kill thaws it", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    expect((await docker("run", "-d", "--name", "frozen", "busybox", "sh", "-c", "trap 'echo term; exit 5' TERM; while :; do sleep 1; done")).code).toBe(0);
    const id = (await docker("inspect", "-f", "{{.Id}}", "frozen")).stdout.trim();
    expect(await docker("pause", "frozen")).toEqual({ code: 0, stdout: "frozen\n", stderr: "" });
    expect((await docker("ps", "--format", "{{.Names}} {{.Status}}")).stdout).toMatch(/^frozen Up .* \(Paused\)$/m);
    expect((await docker("ps", "-q", "--filter", "status=paused")).stdout).toBe(`${id.slice(0, 12)}\n`);
    expect((await docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", "frozen")).stdout).toBe("paused true true\n");
    expect(await docker("exec", "frozen", "true")).toEqual({ code: 1, stdout: "", stderr: "Error response from daemon: Container frozen is paused, unpause the container before exec\n" });
    expect((await docker("pause", "frozen")).stderr).toBe(`Error response from daemon: Container ${id} is already paused\n`);
    expect(await docker("unpause", "frozen")).toEqual({ code: 0, stdout: "frozen\n", stderr: "" });
    expect((await docker("unpause", "frozen")).stderr).toBe(`Error response from daemon: Container ${id} is not paused\n`);
    expect((await docker("exec", "frozen", "echo", "thawed")).stdout).toBe("thawed\n");
    // A frozen process cannot run its TERM trap: kill thaws it, as dockerd does.
    expect((await docker("pause", "frozen")).code).toBe(0);
    expect((await docker("kill", "-s", "TERM", "frozen")).code).toBe(0);
    expect((await docker("wait", "frozen")).stdout).toBe("5\n");
    expect((await docker("logs", "frozen")).stdout).toBe("term\n");
    const events = await docker("events", "--since", String(since), "--until", String(Math.ceil(Date.now() / 1000) + 1), "--filter", "container=frozen", "--format", "{{.Action}}");
    expect(events.stdout.split("\n").filter((a) => a === "pause" || a === "unpause")).toEqual(["pause", "unpause", "pause", "unpause"]);
    expect((await docker("rm", "frozen")).code).toBe(0);
  });

  it("renames a container, refusing a taken, unchanged or invalid name in dockerd's words", async () => {
    expect((await docker("create", "--name", "first", "busybox", "true")).code).toBe(0);
    expect((await docker("create", "--name", "second", "busybox", "true")).code).toBe(0);
    const second = (await docker("inspect", "-f", "{{.Id}}", "second")).stdout.trim();
    expect(await docker("rename", "first", "renamed")).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await docker("inspect", "-f", "{{.Name}}", "renamed")).stdout).toBe("/renamed\n");
    const taken = await docker("rename", "renamed", "second");
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain(
      `Error response from daemon: Error when allocating new name: Conflict. The container name "/second" is already in use by container "${second}". You have to remove (or rename) that container to be able to reuse that name.`,
    );
    expect((await docker("rename", "renamed", "renamed")).stderr).toContain("Error response from daemon: Renaming a container with the same name as its current name");
    expect((await docker("rename", "renamed", "bad name")).stderr).toContain("Error when allocating new name: Invalid container name (/bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    expect((await docker("rm", "renamed", "second")).code).toBe(0);
  });

  it("restarts a container: same id, name and log, a new process; starts an exited one again; keeps an --rm one", async () => {
    expect((await docker("run", "-d", "--name", "again", "busybox", "sh", "-c", "echo run; while :; do sleep 1; done")).code).toBe(0);
    const id = (await docker("inspect", "-f", "{{.Id}}", "again")).stdout.trim();
    await sleep(300);
    const pid = (await docker("inspect", "-f", "{{.State.Pid}}", "again")).stdout.trim();
    expect(await docker("restart", "-t", "1", "again")).toEqual({ code: 0, stdout: "again\n", stderr: "" });
    expect((await docker("inspect", "-f", "{{.Id}} {{.State.Status}}", "again")).stdout).toBe(`${id} running\n`);
    expect((await docker("inspect", "-f", "{{.State.Pid}}", "again")).stdout.trim()).not.toBe(pid);
    await sleep(300);
    expect((await docker("logs", "again")).stdout).toBe("run\nrun\n");
    expect((await docker("stop", "-t", "0", "again")).code).toBe(0);
    expect(await docker("start", "again")).toEqual({ code: 0, stdout: "again\n", stderr: "" });
    expect((await docker("ps", "--filter", "name=again", "--format", "{{.Status}}")).stdout).toMatch(/^Up /);
    expect((await docker("rm", "-f", "again")).code).toBe(0);
    // start -ai attaches to the next run first: its output and stdin are that run's.
    expect((await lab.docker(["run", "-i", "--name", "ask", "busybox", "sh", "-c", "read x; echo got $x"], { input: "first\n" })).stdout).toBe("got first\n");
    expect(await lab.docker(["start", "-ai", "ask"], { input: "second\n" })).toEqual({ code: 0, stdout: "got second\n", stderr: "" });
    expect((await docker("logs", "ask")).stdout).toBe("got first\ngot second\n");
    expect((await docker("rm", "ask")).code).toBe(0);
    expect((await docker("run", "-d", "--rm", "--name", "kept", "busybox", "sleep", "300")).code).toBe(0);
    expect((await docker("restart", "-t", "0", "kept")).code).toBe(0);
    expect((await docker("ps", "--filter", "name=kept", "--format", "{{.Names}}")).stdout).toBe("kept\n");
    expect((await docker("rm", "-f", "kept")).code).toBe(0);
    expect((await docker("restart", "nosuch")).stderr).toContain("Error response from daemon: No such container: nosuch");
  });

  it("resizes a container's terminal (and answers OK for one without)", async () => {
    expect((await docker("run", "-d", "-t", "--name", "term", "busybox", "sh", "-c", "while :; do sleep 1; done")).code).toBe(0);
    expect((await api(lab, "POST", "/v1.50/containers/term/resize?h=33&w=101")).status).toBe(200);
    expect((await docker("exec", "term", "stty", "-F", "/proc/1/fd/0", "size")).stdout).toBe("33 101\n");
    expect((await api(lab, "POST", "/v1.50/containers/term/resize?h=a&w=1")).status).toBe(400);
    expect((await docker("run", "-d", "--name", "noterm", "busybox", "sleep", "300")).code).toBe(0);
    expect((await api(lab, "POST", "/v1.50/containers/noterm/resize?h=10&w=20")).status).toBe(200);
    expect((await docker("rm", "-f", "term", "noterm")).code).toBe(0);
  });

  it("prunes the containers that do not run, by label and age", async () => {
    expect((await docker("create", "--name", "old", "--label", "prune=me", "busybox", "true")).code).toBe(0);
    expect((await docker("run", "--name", "done", "--label", "prune=me", "busybox", "sh", "-c", "echo data > /file")).code).toBe(0);
    expect((await docker("create", "--name", "other", "busybox", "true")).code).toBe(0);
    expect((await docker("run", "-d", "--name", "live", "--label", "prune=me", "busybox", "sleep", "300")).code).toBe(0);
    const ids = await Promise.all(["old", "done"].map(async (n) => (await docker("inspect", "-f", "{{.Id}}", n)).stdout.trim()));
    const none = await docker("container", "prune", "-f", "--filter", "label=prune=me", "--filter", "until=1h");
    expect(none).toEqual({ code: 0, stdout: "Total reclaimed space: 0B\n", stderr: "" });
    const r = await docker("container", "prune", "-f", "--filter", "label=prune=me");
    expect(r.code).toBe(0);
    const [heading, ...deleted] = r.stdout.trim().split("\n");
    expect(heading).toBe("Deleted Containers:");
    expect(deleted.slice(0, 2).sort()).toEqual([...ids].sort());
    expect(r.stdout).toMatch(/Total reclaimed space: \d+B\n$/);
    expect((await docker("ps", "-a", "--format", "{{.Names}}")).stdout.split("\n").filter(Boolean).sort()).toEqual(["live", "other"]);
    expect((await docker("container", "prune", "-f", "--filter", "bogus=1")).stderr).toContain("Error response from daemon: Invalid filter 'bogus'");
    expect((await docker("rm", "-f", "live", "other")).code).toBe(0);
  });

  it("copies files both ways with docker cp, running or stopped, resolving links inside the container", async () => {
    expect(
      (await docker("run", "-d", "--name", "files", "busybox", "sh", "-c", "mkdir -p /data/sub; echo hello > /data/a.txt; echo deep > /data/sub/b; ln -s sub /data/dlink; ln -s / /data/escape; chmod 640 /data/a.txt; sleep 300"))
        .code,
    ).toBe(0);
    await sleep(500);
    // Out: a file (its mode kept), a folder with its tree, a folder through a link.
    expect((await docker("cp", "files:/data/a.txt", join(work, "a.txt"))).code).toBe(0);
    expect(await readFile(join(work, "a.txt"), "utf8")).toBe("hello\n");
    expect((await docker("cp", "files:/data", join(work, "data"))).code).toBe(0);
    expect((await readdir(join(work, "data"))).sort()).toEqual(["a.txt", "dlink", "escape", "sub"]);
    expect(await readFile(join(work, "data", "sub", "b"), "utf8")).toBe("deep\n");
    expect((await docker("cp", "files:/data/dlink/", join(work, "viaLink"))).code).toBe(0);
    expect(await readdir(join(work, "viaLink"))).toEqual(["b"]);
    // A link is resolved inside the container: /data/escape/sbin is the container's /sbin, not the VM's.
    const missing = await docker("cp", "files:/data/escape/sbin/hyperlab-agent", join(work, "agent"));
    expect(missing).toMatchObject({ code: 1, stderr: "Error response from daemon: Could not find the file /data/escape/sbin/hyperlab-agent in container files\n" });
    // In: a file and a folder (with a link in it).
    await mkdir(join(work, "in", "dir"), { recursive: true });
    await writeFile(join(work, "in", "f.txt"), "x\n");
    await writeFile(join(work, "in", "dir", "y"), "y\n");
    await symlink("y", join(work, "in", "dir", "l"));
    expect((await docker("cp", join(work, "in", "f.txt"), "files:/data/")).code).toBe(0);
    expect((await docker("cp", join(work, "in", "dir"), "files:/data/newdir")).code).toBe(0);
    expect((await docker("exec", "files", "sh", "-c", "cat /data/f.txt /data/newdir/y; readlink /data/newdir/l; stat -c %u:%g /data/f.txt")).stdout).toBe("x\ny\ny\n0:0\n");
    expect((await docker("cp", join(work, "in", "f.txt"), "files:/nope/x")).stderr).toContain("Error response from daemon: Could not find the file /nope in container files");
    // A stopped container's files are there too.
    expect((await docker("stop", "-t", "0", "files")).code).toBe(0);
    expect((await docker("cp", "files:/data/sub/b", join(work, "b-stopped"))).code).toBe(0);
    expect(await readFile(join(work, "b-stopped"), "utf8")).toBe("deep\n");
    expect((await docker("cp", join(work, "in", "f.txt"), "files:/data/sub/")).code).toBe(0);
    expect((await docker("start", "files")).code).toBe(0);
    expect((await docker("exec", "files", "cat", "/data/sub/f.txt")).stdout).toBe("x\n");
    // HEAD's stat header, as dockerd's: Go's mode bits, the link's target inside the container.
    const head = await api(lab, "HEAD", "/v1.50/containers/files/archive?path=/data/dlink");
    expect(head.status).toBe(200);
    expect(JSON.parse(Buffer.from(String(head.headers["x-docker-container-path-stat"]), "base64").toString())).toMatchObject({ name: "dlink", size: 3, mode: 134218239, linkTarget: "/data/sub" });
    expect((await api(lab, "HEAD", "/v1.50/containers/files/archive?path=/nope")).status).toBe(404);
    expect((await docker("rm", "-f", "files")).code).toBe(0);
  });
});
