// Published ports in Node: `docker run -p` and `hyperlab run -p` answer on
// this machine, through crun and runc containers, and go with the container.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { type Server, type Socket, connect, createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hyperlab } from "./daemon-process.ts";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

/** `curl` as a user types it: status code and body, or curl's exit code when it could not connect. */
function curl(url: string, extra: string[] = []): Promise<{ code: number; body: string; status: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-s", "-m", "20", "-w", "\n%{http_code}", ...extra, url], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      const at = stdout.lastIndexOf("\n");
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, body: stdout.slice(0, at), status: stdout.slice(at + 1) });
    });
  });
}

/** A host port nothing listens on now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A busybox httpd container serving `text` as its index page. */
const page = (text: string) => ["busybox", "sh", "-c", `mkdir -p /www && echo '${text}' > /www/index.html && exec httpd -f -p 80 -h /www`];

/** Retries until the container's server answers (httpd listens a moment after the container starts). */
async function curlReady(url: string): Promise<{ code: number; body: string; status: string }> {
  for (let i = 0; ; i++) {
    const r = await curl(url);
    if (r.status === "200" || i === 20) return r;
    await new Promise((res) => setTimeout(res, 250));
  }
}

describe("published ports (docker -p, hyperlab run -p)", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("answers curl from the host through crun and runc containers, two at once on two ports", async () => {
    const [a, b] = [await freePort(), await freePort()];
    expect((await docker("run", "-d", "--name", "web-crun", "-p", `${a}:80`, ...page("hello from crun"))).code).toBe(0);
    expect((await docker("run", "-d", "--name", "web-runc", "--runtime", "runc", "-p", `127.0.0.1:${b}:80`, ...page("hello from runc"))).code).toBe(0);
    expect(await curlReady(`http://127.0.0.1:${a}/`)).toMatchObject({ code: 0, status: "200", body: "hello from crun\n" });
    expect(await curlReady(`http://127.0.0.1:${b}/`)).toMatchObject({ code: 0, status: "200", body: "hello from runc\n" });
    // Several connections at once, each to its own container.
    const both = await Promise.all([1, 2, 3, 4].map((i) => curl(`http://127.0.0.1:${i % 2 ? a : b}/`)));
    expect(both.map((r) => r.body)).toEqual(["hello from crun\n", "hello from runc\n", "hello from crun\n", "hello from runc\n"]);

    // docker port and ps show the mapping; inspect has Docker's shapes.
    expect(await docker("port", "web-crun")).toMatchObject({ code: 0, stdout: `80/tcp -> 127.0.0.1:${a}\n` });
    expect((await docker("port", "web-runc", "80/tcp")).stdout).toBe(`127.0.0.1:${b}\n`);
    expect((await docker("port", "web-runc", "81")).stderr).toContain("No public port '81' published for web-runc");
    expect((await docker("ps", "--filter", "name=web-crun", "--format", "{{.Ports}}")).stdout).toBe(`127.0.0.1:${a}->80/tcp\n`);
    const [inspect] = JSON.parse((await docker("inspect", "web-crun")).stdout) as Array<{ NetworkSettings: { Ports: unknown }; HostConfig: { PortBindings: unknown } }>;
    expect(inspect!.NetworkSettings.Ports).toEqual({ "80/tcp": [{ HostIp: "127.0.0.1", HostPort: String(a) }] });
    expect(inspect!.HostConfig.PortBindings).toEqual({ "80/tcp": [{ HostIp: "", HostPort: String(a) }] });

    // hyperlab's own verbs see the same.
    expect(await hyperlab(lab.socket, ["port", "web-runc"])).toMatchObject({ code: 0, stdout: `80/tcp -> 127.0.0.1:${b}\n` });
    expect((await hyperlab(lab.socket, ["ps"])).stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${a}->80/tcp\\s+web-crun`));
    expect((await docker("rm", "-f", "web-crun", "web-runc")).code).toBe(0);
  });

  it("frees the port when the container goes: curl is refused, and another container takes the port", async () => {
    const port = await freePort();
    expect((await docker("run", "-d", "--name", "first", "-p", `${port}:80`, ...page("first"))).code).toBe(0);
    expect((await curlReady(`http://127.0.0.1:${port}/`)).body).toBe("first\n");
    expect((await docker("stop", "-t", "1", "first")).code).toBe(0);
    // A stopped container publishes nothing (as dockerd): nothing listens, and port/ps/inspect say so.
    expect((await curl(`http://127.0.0.1:${port}/`)).code).toBe(7); // curl: could not connect
    expect(await docker("port", "first")).toMatchObject({ code: 0, stdout: "" });
    expect((await docker("start", "first")).code).toBe(0);
    expect((await curlReady(`http://127.0.0.1:${port}/`)).body).toBe("first\n");
    expect((await docker("rm", "-f", "first")).code).toBe(0);
    expect((await curl(`http://127.0.0.1:${port}/`)).code).toBe(7);
    expect((await docker("run", "-d", "--name", "second", "-p", `${port}:80`, ...page("second"))).code).toBe(0);
    expect((await curlReady(`http://127.0.0.1:${port}/`)).body).toBe("second\n");
    expect((await docker("rm", "-f", "second")).code).toBe(0);
  });

  it("refuses a port in use, naming it, and the container is left created", async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = await docker("run", "-d", "--name", "clash", "-p", `${port}:80`, "busybox", "httpd", "-f", "-p", "80");
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(`Bind for 127.0.0.1:${port} failed: port is already allocated`);
      expect((await docker("ps", "-a", "--filter", "name=clash", "--format", "{{.Status}}")).stdout).toBe("Created\n");
      const cli = await hyperlab(lab.socket, ["run", "-d", "-p", `${port}:80`, "busybox", "true"]);
      expect(cli.code).toBe(125);
      expect(cli.stderr).toContain(`port ${port}`);
      expect(cli.stderr).toContain("[PORT_UNAVAILABLE]");
    } finally {
      taken.close();
      await docker("rm", "-f", "clash");
    }
  });

  it("closes the relay with the container: an open connection ends and the listener goes", async () => {
    const port = await freePort();
    // A server that greets each client and holds its connection open.
    expect((await docker("run", "-d", "--name", "holder", "-p", `${port}:7000`, "busybox", "sh", "-c", "while :; do (echo hi; sleep 1000) | nc -l -p 7000; done")).code).toBe(0);
    let socket: Socket | undefined;
    for (let i = 0; i < 20 && !socket; i++) {
      const s = connect(port, "127.0.0.1");
      // The greeting comes once the relay reaches the container's server.
      const ok = await new Promise<boolean>((resolve) => {
        s.once("error", () => resolve(false));
        s.once("close", () => resolve(false));
        s.once("data", (d: Buffer) => resolve(d.toString() === "hi\n"));
        setTimeout(() => resolve(false), 2000);
      });
      if (ok) socket = s;
      else {
        s.destroy();
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(socket).toBeDefined();
    const closed = new Promise<void>((resolve) => socket!.once("close", () => resolve()));
    expect((await docker("rm", "-f", "holder")).code).toBe(0);
    await expect(Promise.race([closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("still open"), 10_000))])).resolves.toBe("closed");
    expect((await curl(`http://127.0.0.1:${port}/`)).code).toBe(7);
  });

  it("carries a large answer whole, and a client that half-closes still gets its answer", async () => {
    const port = await freePort();
    const make = "mkdir -p /www && dd if=/dev/urandom of=/www/big bs=1024 count=3072 2>/dev/null && sha256sum /www/big | cut -d' ' -f1 > /www/sum && exec httpd -f -p 80 -h /www";
    expect((await docker("run", "-d", "--name", "big", "-p", `${port}:80`, "busybox", "sh", "-c", make)).code).toBe(0);
    const sum = (await curlReady(`http://127.0.0.1:${port}/sum`)).body.trim();
    const data = await new Promise<Buffer>((resolve, reject) => {
      execFile("curl", ["-s", "-m", "60", `http://127.0.0.1:${port}/big`], { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 }, (err, out) => (err ? reject(err) : resolve(out)));
    });
    expect(data.length).toBe(3 * 1024 * 1024);
    expect(createHash("sha256").update(data).digest("hex")).toBe(sum);
    // HTTP/1.0 request, then the client shuts down its writing side: the answer still comes whole.
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => s.end("GET /sum HTTP/1.0\r\n\r\n"));
      let text = "";
      s.on("data", (d: Buffer) => (text += d.toString()));
      s.on("end", () => resolve(text));
      s.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.[01] 200 OK\r\n/);
    expect(answer.endsWith(`${sum}\n`)).toBe(true);
    await docker("rm", "-f", "big");
  });

  it("publishes every exposed port with -P, and hyperlab run -p/-P/--expose do the same", async () => {
    const r = await docker("run", "-d", "--name", "all", "--expose", "80", "--expose", "8080", "-P", ...page("exposed"));
    expect(r.code).toBe(0);
    const lines = (await docker("port", "all")).stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^80\/tcp -> 127\.0\.0\.1:\d+$/);
    expect(lines[1]).toMatch(/^8080\/tcp -> 127\.0\.0\.1:\d+$/);
    const port = lines[0]!.split(":")[1]!;
    expect((await curlReady(`http://127.0.0.1:${port}/`)).body).toBe("exposed\n");
    await docker("rm", "-f", "all");

    const fixed = await freePort();
    const run = await hyperlab(lab.socket, ["run", "-d", "--name", "hl", "-p", `127.0.0.1:${fixed}:80`, "-p", "81", "--expose", "82", ...page("from hyperlab run")]);
    expect(run.code).toBe(0);
    expect((await curlReady(`http://127.0.0.1:${fixed}/`)).body).toBe("from hyperlab run\n");
    const port81 = (await hyperlab(lab.socket, ["port", "hl", "81"])).stdout.trim();
    expect(port81).toMatch(/^127\.0\.0\.1:\d+$/);
    expect((await hyperlab(lab.socket, ["ps"])).stdout).toMatch(new RegExp(`82/tcp, 127\\.0\\.0\\.1:${fixed}->80/tcp, ${port81.replace(/\./g, "\\.")}->81/tcp\\s+hl`));
    await hyperlab(lab.socket, ["rm", "-f", "hl"]);
  });

  it("names what is wrong in a malformed -p and shows the accepted forms; refuses UDP and network none", async () => {
    const bad = await hyperlab(lab.socket, ["run", "-p", "8080:http", "busybox", "true"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain("invalid -p '8080:http': the container port 'http' is not a port");
    expect(bad.stderr).toContain("use -p [IP:][HOSTPORT:]CONTAINERPORT[/tcp]");
    const badIp = await hyperlab(lab.socket, ["run", "-p", "1.2.3:8080:80", "busybox", "true"]);
    expect(badIp.stderr).toContain("the host address '1.2.3' is not an IPv4 address");
    const udp = await docker("run", "--rm", "-p", "5353:53/udp", "busybox", "true");
    expect(udp.code).toBe(125);
    expect(udp.stderr).toContain("UDP ports are not supported by hyperlab");
    const none = await docker("run", "--rm", "--network", "none", "-p", "8080:80", "busybox", "true");
    expect(none.code).toBe(125);
    expect(none.stderr).toContain("a container on network none cannot publish ports");
  });
});
