// `docker` inside a VM's guest: the guest's docker client (fetched from the
// host on first use) → /var/run/docker.sock (the agent listens, the daemon
// serves) → the daemon's Docker API scoped to that VM → the engine → crun in
// the same guest.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hyperlab } from "./daemon-process.ts";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

describe("docker inside a VM's guest", () => {
  let lab: DockerLab;
  /** `hyperlab vm exec VM ARGV...` against the lab's daemon. */
  const vmExec = (vm: string, ...argv: string[]) => hyperlab(lab.socket, ["vm", "exec", vm, ...argv]);

  beforeAll(async () => {
    lab = await dockerLab();
    expect((await hyperlab(lab.socket, ["vm", "create", "--name", "b"])).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await lab?.close();
  });

  it("gives every VM a /var/run/docker.sock only root can use, and a docker that is a stub until first use", async () => {
    const r = await vmExec("b", "sh", "-c", "stat -c '%A %U' /var/run/docker.sock; readlink /usr/bin/docker; test -e /usr/libexec/hyperlab/docker || echo not yet");
    expect(r).toMatchObject({ code: 0, stdout: "srw------- root\n../../sbin/hyperlab-agent\nnot yet\n" });
  });

  it("runs `docker run --rm busybox echo hi` in the guest: the guest's client, the daemon's API, crun in that guest", async () => {
    // The first use fetches the client from the host (a call of its own: each `vm exec` has 60 s).
    const first = await vmExec("default", "sh", "-c", "docker --version; stat -c '%a %s' /usr/libexec/hyperlab/docker");
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toMatch(/^Docker version 20\.10\.24\+dfsg1, build \w+\n755 43597344\n$/);
    const r = await vmExec("default", "docker", "run", "--rm", "busybox", "echo", "hi");
    expect(r).toEqual({ code: 0, stdout: "hi\n", stderr: "" });
  });

  it("installs the client once when two first uses race", async () => {
    const r = await vmExec("b", "sh", "-c", "docker --version > /tmp/a 2>&1 & docker --version > /tmp/b 2>&1; wait; cat /tmp/a /tmp/b");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^(Docker version 20\.10\.24\+dfsg1, build \w+\n){2}$/);
  });

  it("scopes each guest's docker to its own VM: `docker ps` in b lists b's containers only", async () => {
    expect((await vmExec("b", "docker", "run", "-d", "--name", "in-b", "busybox", "sleep", "600")).code).toBe(0);
    // From the host: the daemon's socket serves VM default.
    expect((await lab.docker(["run", "-d", "--name", "in-default", "busybox", "sleep", "600"])).code).toBe(0);
    const inB = await vmExec("b", "docker", "ps", "--format", "{{.Names}} {{.Status}}");
    expect(inB).toMatchObject({ code: 0 });
    expect(inB.stdout).toMatch(/^in-b Up .*\n$/);
    const inDefault = await vmExec("default", "docker", "ps", "--format", "{{.Names}}");
    expect(inDefault).toMatchObject({ code: 0, stdout: "in-default\n" });
    // The host's view agrees: b's container is in b.
    const hostView = await hyperlab(lab.socket, ["ps", "--vm", "b"]);
    expect(hostView.stdout).toMatch(/ in-b\n/);
    expect(hostView.stdout).not.toContain("in-default");
    expect((await vmExec("b", "docker", "rm", "-f", "in-b")).code).toBe(0);
    expect((await lab.docker(["rm", "-f", "in-default"])).code).toBe(0);
  });

  it("carries an attached container's stdin and output through the guest's socket (the hijacked stream)", async () => {
    const r = await vmExec("b", "sh", "-c", "printf 'line 1\\nline 2\\n' | docker run --rm -i busybox sh -c 'cat; echo done >&2'");
    expect(r).toMatchObject({ code: 0, stdout: "line 1\nline 2\n", stderr: "done\n" });
  });

  it("gives a fork its own docker.sock, served for the fork (the snapshot's listener is taken over)", async () => {
    expect((await vmExec("b", "docker", "run", "-d", "--name", "before-fork", "busybox", "sleep", "600")).code).toBe(0);
    const fork = await hyperlab(lab.socket, ["vm", "fork", "b"]);
    expect(fork.code).toBe(0);
    const name = fork.stdout.trim();
    // The client came along in the fork's memory; the fork's docker lists the fork's copy of the container.
    const inFork = await vmExec(name, "docker", "ps", "--format", "{{.Names}}");
    expect(inFork).toMatchObject({ code: 0, stdout: "before-fork\n" });
    expect((await vmExec(name, "docker", "rm", "-f", "before-fork")).code).toBe(0);
    // Removing it in the fork leaves b's own.
    expect((await vmExec("b", "docker", "ps", "--format", "{{.Names}}")).stdout).toBe("before-fork\n");
    expect((await vmExec("b", "docker", "rm", "-f", "before-fork")).code).toBe(0);
  }, 180_000); // five runs of the guest's docker client (seconds of emulated CPU each) and a fork

  it("answers an error from the daemon as the docker client prints it", async () => {
    const r = await vmExec("b", "docker", "rm", "no-such-container");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: No such container: no-such-container\n");
  });
});
