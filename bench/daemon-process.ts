// What the daemon benchmarks share: a daemon process, requests over its
// socket (a new connection each, as a CLI process makes), a trivial server
// as the floor of this machine, and percentiles.
import { type ChildProcess, spawn } from "node:child_process";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { type Summary, summarize } from "./stats.ts";

const bin = fileURLToPath(new URL("../bin/hyperlab.js", import.meta.url));

/** One request on the socket (a new connection each, as a CLI process makes): status, body and wall ms. */
export function call(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method, headers: { "content-type": "application/json" }, timeout: 60_000 }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => {
        const ms = performance.now() - t0;
        if ((res.statusCode ?? 500) >= 400) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
        else resolve({ status: res.statusCode!, body: text, ms });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 60 s`)));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** p50 and p99 (nearest rank) with min and max. */
export function percentiles(values: number[]): Summary & { p50: number; p99: number } {
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { ...summarize(values), p50: r(rank(50)), p99: r(rank(99)) };
}

/** A trivial Node HTTP server on a Unix socket in its own process: what any server answers in on this machine. */
export async function startFloorServer(socket: string): Promise<ChildProcess> {
  const code = `require("http").createServer((q, s) => { s.writeHead(200, { "content-type": "application/json" }); s.end('{"api":"v1"}'); }).listen(${JSON.stringify(socket)}, () => console.log("up"))`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((r) => child.stdout!.once("data", r));
  return child;
}

/** Starts `hyperlab daemon` on `socket` and resolves once it is ready. */
export async function startDaemonProcess(socket: string, args: string[] = ["--warm-pool", "0"]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, "daemon", "--socket", socket, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const end = Date.now() + 120_000;
  while (!stderr.includes("daemon ready")) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`the daemon did not start within 120 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

