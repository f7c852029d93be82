// `docker exec` against hyperlab's daemon: output, exit codes and words as
// dockerd's (126 for a command that cannot start), working directory, user,
// environment, stdin, a terminal, detached execs; and the exec endpoints
// themselves (a terminal with stdin over the hijacked connection, inspect,
// resize), which the CLI only drives from a terminal.
import { request } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

/** One JSON request to the lab's Docker API. */
function api(lab: DockerLab, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath: lab.socket, method, path, headers: data ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } : {} }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text.trim() ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end(data);
  });
}

/**
 * Starts exec `id` on a hijacked connection (`Upgrade: tcp`), writes `input`
 * once the answer's head has come, and collects the head and everything that
 * follows until the daemon ends the stream.
 */
function startHijacked(lab: DockerLab, id: string, body: unknown, input: string): Promise<{ head: string; output: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(lab.socket);
    const json = JSON.stringify(body);
    s.write(`POST /v1.50/exec/${id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${json}`);
    let buf = Buffer.alloc(0);
    let wrote = false;
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!wrote && buf.includes("\r\n\r\n")) {
        wrote = true;
        s.write(input);
      }
    });
    s.on("error", reject);
    s.on("close", () => {
      const at = buf.indexOf("\r\n\r\n");
      resolve({ head: buf.subarray(0, at).toString(), output: buf.subarray(at + 4).toString() });
    });
  });
}

describe("the docker CLI against hyperlab's daemon: exec", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
    expect((await docker("run", "-d", "--name", "box", "-w", "/tmp", "busybox", "sh", "-c", "while :; do sleep 1; done")).code).toBe(0);
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("runs a command in a running container: stdout and stderr apart, its exit status", async () => {
    expect(await docker("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(await docker("exec", "box", "true")).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("runs in the container's working directory and as its user unless told otherwise, with more environment", async () => {
    expect((await docker("exec", "box", "pwd")).stdout).toBe("/tmp\n");
    expect((await docker("exec", "-w", "/etc", "-u", "nobody", "-e", "GREETING=hi there", "box", "sh", "-c", "pwd; id -un; echo $GREETING")).stdout).toBe("/etc\nnobody\nhi there\n");
    expect((await docker("exec", "-u", "65534:65534", "box", "id")).stdout).toBe("uid=65534(nobody) gid=65534(nogroup)\n");
  });

  it("exits 126 with dockerd's words on stdout when the command cannot start", async () => {
    const cases: Array<[string[], string]> = [
      [["nosuchcmd"], 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH: unknown'],
      [["/etc"], 'OCI runtime exec failed: exec failed: unable to start container process: exec: "/etc": permission denied: unknown'],
      [["-w", "/nonexist", "box", "pwd"], 'OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd ("/nonexist") set in config.json failed: no such file or directory: unknown'],
      [["-u", "nouser", "box", "id"], "unable to find user nouser: no matching entries in passwd file"],
    ];
    for (const [args, words] of cases) {
      const r = await docker("exec", ...(args[0]!.startsWith("-") ? args : ["box", ...args]));
      expect(r).toEqual({ code: 126, stdout: `${words}\r\n`, stderr: "" });
    }
  });

  it("passes stdin with -i until its end", async () => {
    expect(await lab.docker(["exec", "-i", "box", "sh", "-c", "read a; echo got $a; wc -c"], { input: "hello\n12345" })).toEqual({ code: 0, stdout: "got hello\n5\n", stderr: "" });
  });

  it("gives the command a terminal with -t: one raw stream, TERM=xterm, its exit status", async () => {
    const r = await docker("exec", "-t", "box", "sh", "-c", "tty; echo $TERM; echo err >&2; exit 4");
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\nxterm\r\nerr\r\n$/);
    const missing = await docker("exec", "-t", "box", "nosuchcmd");
    expect(missing).toEqual({ code: 126, stdout: 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH: unknown\r\n', stderr: "" });
  });

  it("runs a detached exec in the background, and refuses one that cannot start", async () => {
    expect(await docker("exec", "-d", "box", "sh", "-c", "sleep 1; echo done > /tmp/detached")).toEqual({ code: 0, stdout: "", stderr: "" });
    await new Promise((r) => setTimeout(r, 2500));
    expect((await docker("exec", "box", "cat", "/tmp/detached")).stdout).toBe("done\n");
    const missing = await docker("exec", "-d", "box", "nosuchcmd");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('Error response from daemon: OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH: unknown\n');
  });

  it("refuses an exec in a container that does not run or does not exist, as dockerd", async () => {
    expect((await docker("create", "--name", "idle", "busybox", "true")).code).toBe(0);
    const id = (await docker("inspect", "-f", "{{.Id}}", "idle")).stdout.trim();
    expect(await docker("exec", "idle", "true")).toEqual({ code: 1, stdout: "", stderr: `Error response from daemon: Container ${id} is not running\n` });
    expect(await docker("exec", "nosuch", "true")).toEqual({ code: 1, stdout: "", stderr: "Error response from daemon: No such container: nosuch\n" });
  });

  it("serves exec's endpoints: a terminal with stdin on the hijacked connection, inspect, resize", async () => {
    const created = await api(lab, "POST", "/v1.50/containers/box/exec", { Cmd: ["sh"], Tty: true, AttachStdin: true, AttachStdout: true, AttachStderr: true, ConsoleSize: [20, 70] });
    expect(created.status).toBe(201);
    const id = created.json.Id as string;
    const before = await api(lab, "GET", `/v1.50/exec/${id}/json`);
    expect(before.json).toMatchObject({ ID: id, Running: false, ExitCode: null, ProcessConfig: { tty: true, entrypoint: "sh", arguments: [] }, OpenStdin: true });
    const { head, output } = await startHijacked(lab, id, { Detach: false, Tty: true }, "stty size; echo $((6*7)); exit 5\n");
    expect(head).toMatch(/^HTTP\/1.1 101 UPGRADED\r\n/);
    expect(head).toContain("Content-Type: application/vnd.docker.raw-stream");
    expect(output).toContain("20 70\r\n");
    expect(output).toContain("42\r\n");
    const after = await api(lab, "GET", `/v1.50/exec/${id}/json`);
    expect(after.json).toMatchObject({ Running: false, ExitCode: 5 });
    expect((await api(lab, "POST", `/v1.50/exec/${id}/start`, { Detach: true })).json.message).toBe(`Error: Exec command ${id} has already run`);

    // A running exec: its PID is the VM's, the container lists it, and its terminal takes a new size.
    const long = (await api(lab, "POST", "/v1.50/containers/box/exec", { Cmd: ["sh", "-c", "sleep 2; stty size > /tmp/size"], Tty: true })).json.Id as string;
    expect((await api(lab, "POST", `/v1.50/exec/${long}/start`, { Detach: true, Tty: true })).status).toBe(200);
    const running = (await api(lab, "GET", `/v1.50/exec/${long}/json`)).json;
    expect(running).toMatchObject({ Running: true, ExitCode: null });
    expect(running.Pid).toBeGreaterThan(1);
    expect((await docker("top", "box", "-o", "pid,args")).stdout).toMatch(new RegExp(`^${running.Pid}\\s+sh -c sleep 2; stty size > /tmp/size$`, "m"));
    expect((await docker("inspect", "-f", "{{json .ExecIDs}}", "box")).stdout).toBe(`["${long}"]\n`);
    expect((await api(lab, "POST", `/v1.50/exec/${long}/resize?h=30&w=100`)).status).toBe(200);
    expect((await api(lab, "POST", `/v1.50/exec/${long}/resize?h=x&w=100`)).status).toBe(400);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await docker("exec", "box", "cat", "/tmp/size")).stdout).toBe("30 100\n");
    expect((await api(lab, "GET", `/v1.50/exec/${long}/json`)).json).toMatchObject({ Running: false, ExitCode: 0 });
    expect(await api(lab, "GET", "/v1.50/exec/nosuch/json")).toEqual({ status: 404, json: { message: "No such exec instance: nosuch" } });
  });
});
