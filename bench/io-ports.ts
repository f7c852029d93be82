// The published-port part of `npm run bench -- io`: HTTP requests through a
// port a container publishes (`docker run -p`), against the same requests to
// a server on the host in the same run. The container serves a small page
// with busybox httpd (what a learner runs; it answers each connection in a
// process of its own and closes it), so every request is a new connection
// both ways: host client → the daemon's listener → the VM's agent → the
// container. The host server is a Node process answering the same bytes with
// `Connection: close`: the floor of this machine and client. The difference
// of the p50s is the added latency per request (relay and the guest's server
// together: the relay is not measured alone). For where the time goes, the
// same requests are also timed from inside the container with busybox wget
// (mean per request, less the cost of starting wget, measured by the same
// loop against a port that refuses at once).
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { connect, createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { percentiles, startDaemonProcess } from "./daemon-process.ts";

const DOCKER_CLI = process.env.HYPERLAB_DOCKER_CLI ?? "/usr/local/bin/docker";
/** sequential requests for the latency figures, each way */
const SEQUENTIAL = Number(process.env.IO_PORT_REQUESTS ?? 300);
/** concurrent clients and how long they run, for requests per second */
const CLIENTS = 8;
const LOAD_SECONDS = Number(process.env.IO_PORT_SECONDS ?? 10);
/** wget calls per loop inside the guest */
const GUEST_LOOP = Number(process.env.IO_PORT_GUEST_LOOP ?? 40);

const BODY = "<!doctype html><title>hyperlab</title><h1>Hello from a container</h1>\n";

/** One GET on a new connection; resolves with its wall ms (status must be 200 and the body whole). */
function get(port: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", agent: false, timeout: 30_000 }, (res) => {
      let n = 0;
      res.on("data", (d: Buffer) => (n += d.length));
      res.on("end", () => (res.statusCode === 200 && n === BODY.length ? resolve(performance.now() - t0) : reject(new Error(`GET :${port}/ → ${res.statusCode}, ${n} bytes`))));
    });
    req.on("timeout", () => req.destroy(new Error(`GET :${port}/: no answer within 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** `clients` loops of GETs for `seconds`: requests per second and each request's ms. */
async function load(port: number, clients: number, seconds: number): Promise<{ requests_per_s: number; latency_ms: ReturnType<typeof percentiles>; requests: number }> {
  const ms: number[] = [];
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) ms.push(await get(port));
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { requests_per_s: Math.round(ms.length / elapsed), latency_ms: percentiles(ms), requests: ms.length };
}

/** Round trips of a 64-byte message on kept connections: `clients` connections at once for `seconds`, each sending its next message when the echo of the last one is back. */
async function echoLoad(port: number, clients: number, seconds: number): Promise<{ round_trips_per_s: number; round_trip_ms: ReturnType<typeof percentiles> }> {
  const ms: number[] = [];
  const message = Buffer.alloc(64, 0x61);
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const s = connect(port, "127.0.0.1");
      s.setNoDelay(true);
      await new Promise<void>((resolve, reject) => s.once("connect", () => resolve()).once("error", reject));
      let got = 0;
      let done: (() => void) | undefined;
      s.on("data", (d: Buffer) => {
        got += d.length;
        if (got >= message.length) {
          got -= message.length;
          done?.();
        }
      });
      // The first round trip opens the way (cat starts in the guest); it is not counted.
      for (let first = true; first || performance.now() < end; first = false) {
        const t = performance.now();
        await new Promise<void>((resolve) => {
          done = resolve;
          s.write(message);
        });
        if (!first) ms.push(performance.now() - t);
      }
      s.destroy();
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { round_trips_per_s: Math.round(ms.length / elapsed), round_trip_ms: percentiles(ms) };
}

/** An echo server on the host, in its own process. */
async function hostEcho(): Promise<{ port: number; stop: () => void }> {
  const code = `require("net").createServer((s)=>{s.setNoDelay(true);s.pipe(s)}).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const port = Number(await new Promise<string>((r) => child.stdout!.once("data", (d: Buffer) => r(d.toString()))));
  return { port, stop: () => child.kill() };
}

/** A Node server on the host answering BODY with Connection: close, in its own process. */
async function hostServer(): Promise<{ port: number; stop: () => void }> {
  const code = `const b=${JSON.stringify(BODY)};require("http").createServer((q,s)=>{s.writeHead(200,{"content-type":"text/html","content-length":Buffer.byteLength(b),connection:"close"});s.end(b)}).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const port = Number(await new Promise<string>((r) => child.stdout!.once("data", (d: Buffer) => r(d.toString()))));
  return { port, stop: () => child.kill() };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function docker(env: Record<string, string>, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(DOCKER_CLI, args, { env: { ...process.env, ...env }, timeout: 300_000 }, (err, stdout, stderr) => (err ? reject(new Error(`docker ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** Mean ms of one `wget` of the page inside the container, less the cost of starting wget (a refused connection). */
async function inGuest(env: Record<string, string>): Promise<{ wget_ms: number; wget_refused_ms: number; request_ms: number }> {
  // The guest's clock for the loop: /proc/uptime in hundredths of a second (busybox date has no %N).
  const cs = "$(tr -d . < /proc/uptime | cut -d' ' -f1)";
  const loop = (url: string) => `s=${cs}; i=0; while [ $i -lt ${GUEST_LOOP} ]; do wget -q -O /dev/null ${url} 2>/dev/null; i=$((i+1)); done; e=${cs}; echo $(( (e - s) * 10000000 / ${GUEST_LOOP} ))`;
  const ns = async (url: string) => Number((await docker(env, ["exec", "web", "sh", "-c", loop(url)])).trim());
  await ns("http://127.0.0.1/");
  const ok = await ns("http://127.0.0.1/");
  const refused = await ns("http://127.0.0.1:1/");
  const r = (x: number) => Math.round(x / 1e4) / 100;
  return { wget_ms: r(ok), wget_refused_ms: r(refused), request_ms: r(ok - refused) };
}

/** Runs the published-port measurements against a daemon of its own; returns the figures for io.json. */
export async function measurePorts(): Promise<Record<string, unknown>> {
  // Other work on the machine slows the emulated guest most: the figures say how busy it was.
  const loadAvg = loadavg()[0];
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-bench-ports-"));
  const socket = join(dir, "hyperlab.sock");
  const daemon = await startDaemonProcess(socket);
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "docker-config") };
  const host = await hostServer();
  const echo = await hostEcho();
  try {
    const port = await freePort();
    const page = `mkdir -p /www && printf '%s' '${BODY.replace(/\n$/, "")}' > /www/index.html && echo >> /www/index.html && exec httpd -f -p 80 -h /www`;
    await docker(env, ["run", "-d", "--name", "web", "-p", `${port}:80`, "busybox", "sh", "-c", page]);
    // Warm-up: httpd listening, the guest's hot paths compiled by v86, the host's JIT.
    for (let i = 0; ; i++) {
      const ok = await get(port).then(() => true, () => false);
      if (ok) break;
      if (i > 100) throw new Error("the container's httpd never answered through its published port");
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 100; i++) await get(port);
    for (let i = 0; i < 100; i++) await get(host.port);
    process.stderr.write("io ports: sequential…\n");
    // Sequential, interleaved: neither order nor drift favours one side.
    const viaPort: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      viaPort.push(await get(port));
      direct.push(await get(host.port));
    }
    process.stderr.write(`io ports: ${CLIENTS} clients for ${LOAD_SECONDS} s each way…\n`);
    const loadPort = await load(port, CLIENTS, LOAD_SECONDS);
    const loadHost = await load(host.port, CLIENTS, LOAD_SECONDS);
    // The relay alone, on kept connections: an echo server in a container (nc starts one cat per
    // connection and nothing per message), against the same echo on the host.
    process.stderr.write("io ports: echo round trips on kept connections…\n");
    const echoPort = await freePort();
    await docker(env, ["run", "-d", "--name", "echo", "-p", `${echoPort}:7000`, "busybox", "nc", "-ll", "-p", "7000", "-e", "cat"]);
    await new Promise((r) => setTimeout(r, 500));
    const echoOne = await echoLoad(echoPort, 1, LOAD_SECONDS / 2);
    const echoOneHost = await echoLoad(echo.port, 1, LOAD_SECONDS / 2);
    const echoMany = await echoLoad(echoPort, CLIENTS, LOAD_SECONDS / 2);
    const echoManyHost = await echoLoad(echo.port, CLIENTS, LOAD_SECONDS / 2);
    process.stderr.write("io ports: from inside the container…\n");
    const guest = await inGuest(env).catch((err: Error) => ({ error: err.message }));
    const seqPort = percentiles(viaPort);
    const seqHost = percentiles(direct);
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
      description:
        "GET / of a 70-byte page from busybox httpd in a container (docker run -p HOST:80), a new connection per request (httpd closes each), " +
        "against the same requests to a Node server on the host answering the same bytes (Connection: close), in the same run. " +
        "added_latency_p50_ms = p50 through the port minus p50 to the host server: the relay and the guest's server together. " +
        "in_guest: the same request from inside the container with busybox wget (mean, less wget's own start measured against a refused port).",
      load_average_at_start: Math.round(loadAvg! * 100) / 100,
      server: "busybox httpd -f (a process per connection, in the emulated guest)",
      sequential: { requests: SEQUENTIAL, via_published_port_ms: seqPort, host_server_ms: seqHost, added_latency_p50_ms: round(seqPort.p50 - seqHost.p50) },
      concurrent: {
        clients: CLIENTS,
        seconds: LOAD_SECONDS,
        via_published_port: loadPort,
        host_server: loadHost,
        added_latency_p50_ms: round(loadPort.latency_ms.p50 - loadHost.latency_ms.p50),
      },
      relay_echo: {
        description: `64-byte messages echoed by 'nc -ll -e cat' in a container through its published port, each sent when the last came back, on kept connections; against a Node echo server on the host, in the same run`,
        one_connection: { via_published_port: echoOne, host_server: echoOneHost, added_latency_p50_ms: round(echoOne.round_trip_ms.p50 - echoOneHost.round_trip_ms.p50) },
        [`${CLIENTS}_connections`]: { via_published_port: echoMany, host_server: echoManyHost },
      },
      in_guest: guest,
      targets: { requests_per_s: 500, added_latency_p50_ms: 5 },
      // The targets read for HTTP to busybox httpd (a connection and a process per request), and for the relay on kept connections.
      met: { requests_per_s: loadPort.requests_per_s >= 500, added_latency_p50_ms: seqPort.p50 - seqHost.p50 <= 5 },
      met_on_kept_connections: { round_trips_per_s: echoMany.round_trips_per_s >= 500, added_latency_p50_ms: echoOne.round_trip_ms.p50 - echoOneHost.round_trip_ms.p50 <= 5 },
    };
  } finally {
    host.stop();
    echo.stop();
    daemon.kill("SIGTERM");
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  }
}
