// The Docker Engine API from a program (dockerode, the Docker SDK most Node
// tools use) and against bad input: malformed JSON, unknown endpoints and
// fields, oversized bodies and versions out of range get Docker's status
// codes and a message naming the problem, and the daemon keeps serving. The
// socket is its owner's alone; TCP is offered on loopback only.
import { request } from "node:http";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";
import { hyperlab } from "./daemon-process.ts";

/** One raw request on the daemon's socket: status and parsed JSON (or text). */
function raw(socket: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: { message?: string } & Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => {
        let json = {};
        try {
          json = JSON.parse(text) as object;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, json, text });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("the Docker API from dockerode, and against bad input", () => {
  let lab: DockerLab;
  let docker: Docker;

  beforeAll(async () => {
    lab = await dockerLab(["--warm-pool", "0", "--host", "tcp://127.0.0.1:0"]);
    docker = new Docker({ socketPath: lab.socket });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("runs a container from TypeScript: create, start, wait, logs, inspect, remove", async () => {
    const c = await docker.createContainer({ Image: "busybox", Cmd: ["sh", "-c", "echo from-dockerode; exit 5"], Labels: { by: "dockerode" } });
    await c.start();
    expect(await c.wait()).toMatchObject({ StatusCode: 5 });
    const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    // Multiplexed: an 8-byte header (stream 1, size) then the bytes.
    expect(logs[0]).toBe(1);
    expect(logs.subarray(8).toString()).toBe("from-dockerode\n");
    const info = await c.inspect();
    expect(info.State).toMatchObject({ Status: "exited", ExitCode: 5, Running: false });
    expect(info.Config.Labels).toEqual({ by: "dockerode" });
    expect((await docker.listContainers({ all: true, filters: { label: ["by=dockerode"] } })).map((x) => x.Id)).toEqual([c.id]);
    await c.remove();
    await expect(c.inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it("answers malformed JSON, unknown endpoints and fields, bad names and versions with Docker's codes, and keeps serving", async () => {
    const malformed = await raw(lab.socket, "POST", "/v1.50/containers/create", "{not json");
    expect(malformed.status).toBe(400);
    expect(malformed.json.message).toMatch(/^invalid JSON in the request body: /);
    const unknown = await raw(lab.socket, "GET", "/v1.50/swarm/nodes");
    expect(unknown.status).toBe(404);
    expect(unknown.json.message).toContain("GET /v1.50/swarm/nodes");
    const field = await raw(lab.socket, "POST", "/v1.50/containers/create", JSON.stringify({ Image: "busybox", HostConfig: { Devices: [{ PathOnHost: "/dev/kvm" }] } }));
    expect(field).toMatchObject({ status: 400, json: { message: expect.stringContaining("HostConfig.Devices is not supported by hyperlab") } });
    const platform = await raw(lab.socket, "POST", "/v1.50/containers/create?platform=linux/arm64", JSON.stringify({ Image: "busybox" }));
    expect(platform.status).toBe(400);
    expect(platform.json.message).toContain("linux/386");
    const badName = await lab.docker(["run", "--name", "bad name", "busybox", "true"]);
    expect(badName.code).toBe(125);
    expect(badName.stderr).toMatch(/Error response from daemon: [Ii]nvalid container name/);
    const old = await raw(lab.socket, "GET", "/v1.12/version");
    expect(old).toMatchObject({ status: 400, json: { message: expect.stringContaining("Minimum supported API version is 1.24") } });
    const future = await raw(lab.socket, "GET", "/v1.99/version");
    expect(future).toMatchObject({ status: 400, json: { message: expect.stringContaining("Maximum supported API version is 1.50") } });
    const huge = await raw(lab.socket, "POST", "/v1.50/containers/create", Buffer.alloc(11 * 1024 * 1024, 32));
    expect(huge.status).toBe(400);
    expect(huge.json.message).toMatch(/larger than/);
    expect((await raw(lab.socket, "GET", "/_ping")).text).toBe("OK");
  });

  it("keeps its socket to its owner (0600 in a 0700 folder) and refuses a folder others can enter", async () => {
    expect((await stat(lab.socket)).mode & 0o777).toBe(0o600);
    expect((await stat(lab.dir)).mode & 0o777).toBe(0o700);
    const open = join(lab.dir, "open");
    await mkdir(open, { mode: 0o777 });
    const { chmod } = await import("node:fs/promises");
    await chmod(open, 0o777);
    const r = await hyperlab(join(open, "h.sock"), ["daemon", "--socket", join(open, "h.sock")]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`other users can enter the socket's folder ${open} (mode 0777)`);
  });

  it("serves TCP on loopback only", async () => {
    const port = /and on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(lab.daemon.stderr)?.[1];
    expect(port).toMatch(/^\d+$/);
    const version = await lab.docker(["-H", `tcp://127.0.0.1:${port}`, "version", "--format", "{{.Server.APIVersion}}"]);
    expect(version).toMatchObject({ code: 0, stdout: "1.50\n" });
    const refused = await hyperlab(join(lab.dir, "x.sock"), ["daemon", "--socket", join(lab.dir, "x.sock"), "--host", "tcp://0.0.0.0:2375"]);
    expect(refused.code).toBe(125);
    expect(refused.stderr).toContain("--host tcp://0.0.0.0:2375 is not a loopback address");
  });
});
