import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, hyperlab, hyperlabWithInput, startDaemon } from "./daemon-process.ts";

describe("hyperlab daemon and the container verbs that use it", () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;

  const hl = (args: string[], env: Record<string, string> = {}) => hyperlab(socket, args, env);
  const hlInput = (args: string[], input: string) => hyperlabWithInput(socket, args, input);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-daemon-"));
    socket = join(dir, "hyperlab.sock");
    // A socket file left by a dead daemon: a process that listened and was killed.
    const dead = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socket)}, () => console.log("up"))`]);
    await new Promise((r) => dead.stdout!.once("data", r));
    dead.kill("SIGKILL");
    await new Promise((r) => dead.once("exit", r));
    expect(existsSync(socket)).toBe(true);
    daemon = await startDaemon(socket);
  });

  afterAll(async () => {
    await daemon?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("replaced the socket a dead daemon left instead of trusting it", () => {
    expect(daemon.stderr).toContain(`daemon ready on ${socket}`);
  });

  it("refuses to start a second daemon on a live socket", async () => {
    const r = await hl(["daemon", "--socket", socket]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`a hyperlab daemon is already listening on ${socket}`);
  });

  it("keeps a detached container across commands: run -d, ps, logs, exec, stats, stop, inspect, rm", async () => {
    const run = await hl(["run", "-d", "--name", "web", "--memory", "32m", "busybox", "sh", "-c", "echo started; while :; do sleep 1; done"]);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    const ps = await hl(["ps"]);
    expect(ps.stdout.split("\n")[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(ps.stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+busybox:latest\\s+.*\\s+Up .*\\s+web$`, "m"));

    await new Promise((r) => setTimeout(r, 500));
    expect((await hl(["logs", "web"])).stdout).toBe("started\n");

    const exec = await hl(["exec", "web", "sh", "-c", "hostname; exit 3"]);
    expect(exec).toMatchObject({ code: 3, stdout: `${id.slice(0, 12)}\n` });

    const stats = await hl(["stats", "web"]);
    expect(stats.stdout).toMatch(/^web\s+\d+\.\d\ds\s+\S+ \/ 33\.6MB\s+\S+\s+\d+$/m);

    const rmRunning = await hl(["rm", "web"]);
    expect(rmRunning.code).toBe(125);
    expect(rmRunning.stderr).toContain("cannot remove container web: it is running. Stop it first, or force removal with -f");

    expect((await hl(["stop", "-t", "1", "web"])).code).toBe(0);
    expect((await hl(["ps", "-a"])).stdout).toMatch(/Exited \(137\) .*web$/m);
    const inspect = JSON.parse((await hl(["inspect", "web"])).stdout) as Array<{ State: { Status: string }; HostConfig: { Memory: number } }>;
    expect(inspect[0]).toMatchObject({ State: { Status: "exited" }, HostConfig: { Memory: 32 * 1024 ** 2 } });

    expect((await hl(["rm", "web"])).code).toBe(0);
    expect((await hl(["ps", "-a"])).stdout.trim().split("\n")).toHaveLength(1);
  });

  it("runs an attached container through the daemon with its exit status", async () => {
    const r = await hl(["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4"]);
    expect(r).toMatchObject({ code: 4, stdout: "out\n", stderr: "err\n" });
    // A command that cannot run is a failed start, as docker run says it (exit status 127), attached (-i) or not.
    for (const flags of [[], ["-i"]]) {
      const missing = await hl(["run", ...flags, "--rm", "busybox", "no-such-command"]);
      expect(missing.code, missing.stderr).toBe(127);
      expect(missing.stderr).toContain('hyperlab: error: OCI runtime create failed: crun: unable to start container process: exec: "no-such-command": executable file not found in $PATH: unknown [CONTAINER_START_FAILED]');
    }
  });

  it("streams stdin through the daemon: run -i, exec -i, and exec -t on a terminal", async () => {
    const run = await hlInput(["run", "-i", "--rm", "busybox", "sh", "-c", "read a; echo got $a; wc -c"], "hello\n12345");
    expect(run).toMatchObject({ code: 0, stdout: "got hello\n5\n" });

    expect((await hl(["run", "-d", "--name", "box", "busybox", "sleep", "600"])).code).toBe(0);
    const exec = await hlInput(["exec", "-i", "box", "sh", "-c", "cat > /tmp/in; wc -c < /tmp/in; exit 2"], "abc");
    expect(exec).toMatchObject({ code: 2, stdout: "3\n" });
    const tty = await hlInput(["exec", "-it", "box", "sh", "-c", "tty; echo $TERM"], "");
    expect(tty).toMatchObject({ code: 0, stderr: "" });
    expect(tty.stdout).toMatch(/\/dev\/pts\/\d+\r\nxterm\r\n/);
    expect((await hl(["rm", "-f", "box"])).code).toBe(0);
  });

  it("names the missing daemon when a verb needs one", async () => {
    const r = await hl(["ps"], { HYPERLAB_SOCKET: join(dir, "nobody.sock") });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/'hyperlab ps' needs a running daemon .*Start one with 'hyperlab daemon &'/);
  });
});
