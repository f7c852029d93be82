// `docker events` against hyperlab's daemon: container events seen live
// while a container runs, image events from the store, replay with
// --since/--until, filters, and dockerd's JSON shape.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCKER_CLI, type DockerLab, dockerLab } from "./docker-cli.ts";

describe("the docker CLI against hyperlab's daemon: events", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  /** Starts `docker events ARGS` in the background; its output so far, and a stop. */
  function follow(args: string[]): { output: () => string; stop: () => Promise<void> } {
    const env = { ...process.env, DOCKER_HOST: `unix://${lab.socket}`, DOCKER_CONFIG: join(lab.dir, "docker-config") };
    const child: ChildProcess = spawn(DOCKER_CLI, ["events", ...args], { env });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    return {
      output: () => out,
      stop: async () => {
        if (child.exitCode === null) {
          child.kill("SIGTERM");
          await new Promise((r) => child.once("exit", r));
        }
      },
    };
  }

  /**
   * Waits into the next second: the docker CLI (20.10) sends `--until 0s` as
   * whole seconds, truncated, so events of the current second would fall after it.
   */
  const nextSecond = () => new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));

  async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it("prints a container's events live while it runs, and image events", async () => {
    const events = follow(["--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"]);
    // The CLI is listening once the daemon has its request: give it a moment to connect.
    await new Promise((r) => setTimeout(r, 1000));
    try {
      expect((await docker("run", "-d", "--name", "evented", "busybox", "sleep", "600")).code).toBe(0);
      await until(() => events.output().includes("container start evented"), "the start event");
      expect(events.output()).toContain("container create evented\n");
      expect(events.output()).not.toContain("container die evented");
      expect((await docker("rm", "-f", "evented")).code).toBe(0);
      await until(() => events.output().includes("container destroy evented"), "the destroy event");
      expect(events.output()).toMatch(/container kill evented\n(.*\n)*container die evented\n(.*\n)*container destroy evented\n/);
      await docker("tag", "busybox", "evented:1");
      await docker("rmi", "evented:1");
      await until(() => events.output().includes("image untag"), "the untag event");
      expect(events.output()).toContain("image tag evented:1\n");
    } finally {
      await events.stop();
    }
  });

  it("replays past events with --since and --until, filtered, and ends by itself", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    expect((await docker("run", "--rm", "--name", "replayed", "--label", "suite=events", "busybox", "sh", "-c", "exit 3")).code).toBe(3);
    await docker("pull", "busybox");
    await nextSecond();
    const r = await docker("events", "--since", String(since), "--until", String(Math.ceil(Date.now() / 1000) + 1), "--filter", "type=container", "--filter", "label=suite=events", "--format", "{{.Action}} {{.Actor.Attributes.name}}");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(["create replayed", "attach replayed", "start replayed", "die replayed", "destroy replayed"]);
    const died = await docker("events", "--since", String(since), "--until", "0s", "--filter", "event=die", "--filter", "container=replayed", "--format", "{{.Actor.Attributes.exitCode}}");
    expect(died.stdout).toBe("3\n");
    const pulls = await docker("events", "--since", String(since), "--until", "0s", "--filter", "event=pull", "--format", "{{.Type}} {{.Actor.ID}} {{.Actor.Attributes.name}}");
    expect(pulls.stdout).toBe("image busybox:latest busybox\n");
  });

  it("sends events in dockerd's JSON shape, legacy fields included", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const run = await docker("run", "-d", "--name", "shaped", "busybox", "true");
    await docker("wait", "shaped");
    await docker("rm", "shaped");
    await nextSecond();
    const r = await docker("events", "--since", String(since), "--until", "0s", "--filter", "container=shaped", "--filter", "event=create", "--format", "{{json .}}");
    const e = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(e).toMatchObject({ status: "create", id: run.stdout.trim(), from: "busybox", Type: "container", Action: "create", Actor: { ID: run.stdout.trim(), Attributes: { name: "shaped", image: "busybox" } }, scope: "local" });
    expect(String(e.timeNano)).toMatch(/^\d{19}$/);
    expect(Math.floor(Number(e.timeNano) / 1e9)).toBe(e.time);
    const bad = await docker("events", "--filter", "colour=red", "--until", "0s");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("invalid filter 'colour'");
  });
});
