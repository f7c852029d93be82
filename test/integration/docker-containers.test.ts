// The real docker CLI drives hyperlab's daemon: `docker run` and the
// container verbs print and exit as they do against dockerd.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

describe("the docker CLI against hyperlab's daemon: containers", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("negotiates the API version and names the server", async () => {
    const r = await docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}/{{.Server.Arch}}");
    expect(r).toMatchObject({ code: 0, stdout: "1.50 linux/386\n" });
  });

  it("runs a container: its output, and its exit status as docker's own", async () => {
    expect(await docker("run", "--rm", "busybox", "echo", "hi")).toMatchObject({ code: 0, stdout: "hi\n", stderr: "" });
    expect(await docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n" });
  });

  it("exits 127, 126 and 125 where dockerd's client does, with dockerd's words", async () => {
    const missing = await docker("run", "--rm", "busybox", "nosuchcmd");
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('Error response from daemon: OCI runtime create failed: crun: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH');
    expect(missing.stdout).toBe("");
    const notExecutable = await docker("run", "--rm", "busybox", "/etc");
    expect(notExecutable.code).toBe(126);
    expect(notExecutable.stderr).toContain('exec: "/etc": permission denied');
    const noImage = await docker("run", "--rm", "--runtime", "runc", "busybox", "nosuchcmd");
    expect(noImage.code).toBe(127);
    const refused = await docker("run", "--rm", "--privileged", "busybox", "true");
    expect(refused.code).toBe(125);
    expect(refused.stderr).toContain("Error response from daemon: HostConfig.Privileged is not supported by hyperlab");
    const gone = await docker("rm", "nosuch");
    expect(gone).toMatchObject({ code: 1, stderr: "Error response from daemon: No such container: nosuch\n" });
  });

  it("keeps a detached container: ps, logs, inspect, stop, rm", async () => {
    const run = await docker("run", "-d", "--name", "web", "--label", "tier=front", "busybox", "sh", "-c", "echo started; while :; do sleep 1; done");
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const ps = await docker("ps");
    expect(ps.stdout.split("\n")[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(ps.stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+busybox\\s+"sh -c 'echo started…"\\s+.*\\s+Up .*\\s+web$`, "m"));
    expect((await docker("ps", "--filter", "label=tier=front", "--format", "{{.Names}}")).stdout).toBe("web\n");
    expect((await docker("ps", "--filter", "label=tier=back", "-q")).stdout).toBe("");
    await new Promise((r) => setTimeout(r, 300));
    expect((await docker("logs", "web")).stdout).toBe("started\n");
    expect((await docker("logs", "-t", "web")).stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z started\n$/);
    const inspect = JSON.parse((await docker("inspect", "web")).stdout) as Array<{ State: { Status: string; Running: boolean }; Config: { Labels: Record<string, string> }; NetworkSettings: { IPAddress: string } }>;
    expect(inspect[0]).toMatchObject({ State: { Status: "running", Running: true }, Config: { Labels: { tier: "front" } } });
    expect(inspect[0]!.NetworkSettings.IPAddress).toMatch(/^10\.88\.\d+\.\d+$/);
    const rmRunning = await docker("rm", "web");
    expect(rmRunning.code).toBe(1);
    expect(rmRunning.stderr).toContain("You cannot remove a running container");
    expect(await docker("stop", "-t", "1", "web")).toMatchObject({ code: 0, stdout: "web\n" });
    expect((await docker("ps", "-a", "--filter", "name=web", "--format", "{{.Status}}")).stdout).toMatch(/^Exited \(137\) /);
    expect((await docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "web")).stdout).toBe("137 exited\n");
    expect(await docker("rm", "web")).toMatchObject({ code: 0, stdout: "web\n" });
  });

  it("passes stdin with -i and names a container conflict as dockerd does", async () => {
    expect(await lab.docker(["run", "-i", "--rm", "busybox", "sh", "-c", "read a; echo got $a; wc -c"], { input: "hello\n12345" })).toMatchObject({ code: 0, stdout: "got hello\n5\n" });
    expect((await docker("run", "-d", "--name", "dup", "busybox", "sleep", "600")).code).toBe(0);
    const dup = await docker("run", "-d", "--name", "dup", "busybox", "true");
    expect(dup.code).toBe(125);
    expect(dup.stderr).toContain('Conflict. The container name "/dup" is already in use by container');
    expect((await docker("rm", "-f", "dup")).code).toBe(0);
  });

  it("runs docker-init (tini) as PID 1 with --init, which passes SIGTERM on to the command", async () => {
    const ps = await docker("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm");
    expect(ps.code).toBe(0);
    expect(ps.stdout).toMatch(/^\s*1 docker-init$/m);
    // Without an init, sleep as PID 1 ignores SIGTERM and is killed after the grace time (137);
    // under tini the signal reaches it and it ends at once (143).
    expect((await docker("run", "-d", "--init", "--name", "with-init", "busybox", "sleep", "600")).code).toBe(0);
    expect((await docker("stop", "-t", "30", "with-init")).code).toBe(0);
    expect((await docker("inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Init}}", "with-init")).stdout).toBe("143 true\n");
    expect((await docker("rm", "with-init")).code).toBe(0);
  });

  it("applies Docker's create fields: entrypoint, workdir, user, env, hostname, limits", async () => {
    const r = await docker(
      "run", "--rm", "--entrypoint", "sh", "-w", "/tmp", "-u", "nobody", "-e", "A=1", "--hostname", "box", "-m", "32m", "--cpus", "0.5", "--pids-limit", "20",
      "busybox", "-c", "pwd; id -un; echo $A; hostname; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max",
    );
    expect(r).toMatchObject({ code: 0, stdout: "/tmp\nnobody\n1\nbox\n33554432\n50000 100000\n20\n" });
  });
});
