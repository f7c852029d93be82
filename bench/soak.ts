// The soak (issue 16, "load held"): a `hyperlab daemon` process with several
// VMs, N concurrent clients for a while mixing `run --rm`, exec, logs, ps,
// stats and inspect through the Docker Engine API and /v1, and one stuck
// client that attaches to a chatty container's stream and never reads. It
// reports requests, every distinct error with its count, p50/p99 per call,
// and, before and after (after a settle period), what a leak would grow:
// the daemon's RSS and open descriptors, and in each guest the free memory,
// cgroups under the containers' tree, mounts, veths, processes and the
// engine's state folders. `npm run bench -- soak` writes
// bench/results/soak.json; test/integration/soak.test.ts runs the same code
// for a minute with fewer clients.
//
// Where the Docker API goes: the daemon's socket serves it scoped to VM
// `default` (src/daemon/server.ts); each other VM's Docker API is served only
// inside that guest (/var/run/docker.sock, src/daemon/guest-docker.ts), whose
// one client is the guest's docker (seconds of emulated CPU per call). So
// the Docker API's calls load `default`, and /v1's calls (which name their
// VM) are spread over every VM.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { type IncomingHttpHeaders, request } from "node:http";
import type { Socket } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { percentiles } from "./daemon-process.ts";

const bin = fileURLToPath(new URL("../bin/hyperlab.js", import.meta.url));

/** What a soak runs. */
export interface SoakOptions {
  /** concurrent clients (besides the stuck one) */
  clients: number;
  /** how long the clients run, in seconds */
  durationS: number;
  /** VMs besides `default`, created through /v1 */
  extraVms: number;
  /** seconds between the clients' end and the second measurement */
  settleS: number;
  /** progress lines (default: none) */
  log?: (line: string) => void;
}

/** One call's answer. */
interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on the daemon's socket, a new connection each (as a CLI process makes), with a time limit. */
function http(socket: string, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({ socketPath: socket, path, method, agent: false, headers: data ? { "content-type": "application/json", "content-length": data.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on("error", reject);
    req.end(data);
  });
}

/** A call that must answer `ok` (a status or a set of them): its answer, else an error naming the call and the daemon's words. */
async function expect(socket: string, method: string, path: string, body: unknown, ok: number | number[]): Promise<Answer> {
  const a = await http(socket, method, path, body);
  const want = Array.isArray(ok) ? ok : [ok];
  if (!want.includes(a.status)) throw new Error(`${method} ${path.replace(/\?.*/, "")}: ${a.status} ${a.body.toString().slice(0, 300).trim()}`);
  return a;
}

/** Parsed JSON of an answer. */
const json = <T>(a: Answer): T => JSON.parse(a.body.toString()) as T;

/** The exit status that /v1's streamed output ends with (`{"exitCode":N}` as its last line). */
function v1ExitCode(a: Answer): number {
  const last = a.body.toString().trim().split("\n").pop() ?? "";
  const m = /^\{"exitCode":(-?\d+)\}$/.exec(last);
  if (!m) throw new Error(`the stream did not end with its exit status: ${last.slice(0, 200)}`);
  return Number(m[1]);
}

/** The stdout of Docker's multiplexed stream (8-byte frame headers). */
function demuxStdout(buf: Buffer): string {
  let out = "";
  for (let i = 0; i + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(i + 4);
    if (buf[i] === 1) out += buf.subarray(i + 8, i + 8 + len).toString();
    i += 8 + len;
  }
  return out;
}

/** A running `hyperlab daemon` in its own folder and data root. */
interface Daemon {
  socket: string;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Starts `hyperlab daemon` on a private socket with a private data root. */
async function startDaemon(): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-soak-"));
  const socket = join(dir, "hyperlab.sock");
  const child = spawn(process.execPath, [bin, "daemon", "--socket", socket, "--warm-pool", "0", "--data-root", join(dir, "data")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const end = Date.now() + 120_000;
  while (!stderr.includes("daemon ready")) {
    if (Date.now() > end || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`the daemon did not start within 120 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket,
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What one guest holds: the figures a leak grows. */
export interface GuestFigures {
  /** MemFree after dropping the page cache, KiB */
  mem_free_kib: number;
  /** MemAvailable, KiB */
  mem_available_kib: number;
  /** the kernel's unreclaimable slab (SUnreclaim), KiB: where leaked kernel objects (cgroups, namespaces, sockets) show */
  slab_unreclaimable_kib: number;
  /** files in tmpfs and shared memory (Shmem), KiB: what containers and the engine leave in the guest's RAM-backed folders */
  shmem_kib: number;
  /** the page cache left after dropping it (Cached, which includes Shmem), KiB */
  cached_kib: number;
  /** kernel stacks (KernelStack), KiB: one per thread */
  kernel_stack_kib: number;
  /** page tables (PageTables), KiB */
  page_tables_kib: number;
  /** cgroups under the containers' tree (/sys/fs/cgroup/hyperlab, itself included) */
  cgroups: number;
  /** cgroups removed whose memory the kernel has not freed yet (cgroup.stat's nr_dying_descendants) */
  dying_cgroups: number;
  /** lines of the guest's /proc/mounts */
  mounts: number;
  /** veth ends in the guest's root network namespace */
  veths: number;
  /** processes in the guest, but kernel threads */
  processes: number;
  /** zombie processes in the guest */
  zombies: number;
  /** the engine's container folders (/run/hyperlab/containers) */
  container_dirs: number;
  /** containers the VM's engine lists (ps -a) */
  containers: number;
}

/** The figures of the daemon process and of each guest. */
export interface Figures {
  daemon_rss_kib: number;
  /** of which in the VMs' guest memories: grows as guests touch pages of their RAM for the first time, up to its size */
  daemon_rss_guest_memory_kib: number;
  /**
   * of which in executable mappings: compiled code, nearly all the VMs' v86 JIT (each guest function v86 compiles is a
   * WebAssembly module of its own; a VM keeps at most 900, v86's table, so this fills as guests run new code, then stops)
   */
  daemon_rss_code_kib: number;
  /** the executable mappings themselves */
  daemon_code_mappings: number;
  daemon_fds: number;
  guests: Record<string, GuestFigures>;
  /** each guest's processes by name (kernel threads left out) */
  guest_processes: Record<string, Record<string, number>>;
}

/** The guest's /proc/meminfo fields the soak reads, in GuestFigures' order. */
const MEMINFO_FIELDS = ["MemFree", "MemAvailable", "SUnreclaim", "Shmem", "Cached", "KernelStack", "PageTables"];

/** The guest's side of the figures in one exec through the agent. The page cache is dropped first so free memory compares. */
const PROBE = [
  "sync; echo 3 > /proc/sys/vm/drop_caches",
  `awk '{ m[$1] = $2 } END { ${MEMINFO_FIELDS.map((f) => `print m["${f}:"] + 0`).join("; ")} }' /proc/meminfo`,
  // cgroups removed but not yet freed by the kernel (pages still charged to them)
  "awk '/^nr_dying_descendants/ {print $2}' /sys/fs/cgroup/cgroup.stat",
  "find /sys/fs/cgroup/hyperlab -type d 2>/dev/null | wc -l",
  "wc -l < /proc/mounts",
  "ip -o link | grep -c @ || true",
  // Processes but kernel threads (pid 2 and its children), which the kernel starts and ends as it likes, and this
  // pipeline's own cat and awk (the glob may be expanded before or after awk exists); then zombies.
  "cat /proc/[0-9]*/stat 2>/dev/null | awk '$1 == 2 || $4 == 2 || $2 == \"(cat)\" || $2 == \"(awk)\" { next } { n++ } $3 == \"Z\" { z++ } END { print n + 0; print z + 0 }'",
  "ls /run/hyperlab/containers 2>/dev/null | wc -l",
  // Then which processes they are, for telling what grew.
  "echo --",
  "cat /proc/[0-9]*/stat 2>/dev/null | awk '$1 == 2 || $4 == 2 { next } { print $2 }' | sort | uniq -c",
].join("; ");

async function guestFigures(socket: string, vm: string): Promise<{ figures: GuestFigures; processNames: Record<string, number> }> {
  const r = json<{ exitCode: number; stdout: string; stderr: string }>(await expect(socket, "POST", `/v1/vms/${vm}/exec`, { argv: ["sh", "-c", PROBE] }, 200));
  const [figures = "", names = ""] = r.stdout.split("--\n");
  const n = figures.trim().split("\n").map(Number);
  const processNames = Object.fromEntries(
    names
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      // the probe's own pipeline (sh is left in: containers run it too)
      .filter((p) => p.length === 2 && !["(cat)", "(awk)", "(sort)", "(uniq)"].includes(p[1]!))
      .map(([count, name]) => [name!, Number(count)]),
  );
  if (r.exitCode !== 0 || n.length !== 14 || n.some((x) => !Number.isFinite(x))) throw new Error(`the probe in VM ${vm} answered ${r.exitCode}: ${r.stdout} ${r.stderr}`);
  const containers = json<unknown[]>(await expect(socket, "GET", `/v1/vms/${vm}/containers?all=1`, undefined, 200)).length;
  // The probe's own processes (sh, and the exec's) are gone by now; the agent counts as the guest's own.
  const [mem_free_kib, mem_available_kib, slab_unreclaimable_kib, shmem_kib, cached_kib, kernel_stack_kib, page_tables_kib, dying_cgroups, cgroups, mounts, veths, processes, zombies, container_dirs] = n as number[] as [
    number, number, number, number, number, number, number, number, number, number, number, number, number, number,
  ];
  return {
    figures: { mem_free_kib, mem_available_kib, slab_unreclaimable_kib, shmem_kib, cached_kib, kernel_stack_kib, page_tables_kib, cgroups, dying_cgroups, mounts, veths, processes, zombies, container_dirs, containers },
    processNames,
  };
}

/**
 * The daemon's RSS; its part in mappings of 64 MiB or more (the VMs' guest memories: each a WebAssembly memory of its
 * own) and in executable mappings (compiled code: see Figures); and its open descriptors.
 */
function daemonFigures(pid: number): Pick<Figures, "daemon_rss_kib" | "daemon_rss_guest_memory_kib" | "daemon_rss_code_kib" | "daemon_code_mappings" | "daemon_fds"> {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  let big = 0;
  let code = 0;
  let codeMappings = 0;
  let size = 0;
  let executable = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (range) {
      size = (parseInt(range[2]!, 16) - parseInt(range[1]!, 16)) / 1024;
      // Anonymous executable memory: code compiled at run time (a file's is its own code, mapped once).
      executable = range[3]!.includes("x") && !range[4]!.startsWith("/") && !range[4]!.startsWith("[");
      if (executable) codeMappings++;
    } else if (line.startsWith("Rss:")) {
      const kib = Number(line.split(/\s+/)[1]);
      if (size >= 64 * 1024) big += kib;
      else if (executable) code += kib;
    }
  }
  return { daemon_rss_kib: rss, daemon_rss_guest_memory_kib: big, daemon_rss_code_kib: code, daemon_code_mappings: codeMappings, daemon_fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function figures(daemon: Daemon, vms: string[]): Promise<Figures> {
  const guests: Record<string, GuestFigures> = {};
  const guest_processes: Record<string, Record<string, number>> = {};
  for (const vm of vms) ({ figures: guests[vm]!, processNames: guest_processes[vm]! } = await guestFigures(daemon.socket, vm));
  return { ...daemonFigures(daemon.child.pid!), guests, guest_processes };
}

/** A long-running container in each VM that exec, logs, stats and inspect aim at: one line a second. It forks nothing (it waits in `read -t` on a fifo nobody writes), so its processes hold still for the counts. */
const TICKER = ["sh", "-c", "mkfifo /tmp/wait; exec 3<>/tmp/wait; while :; do echo tick; read -t 1 x <&3; done"];
/** The stuck client's container: about 50 KiB of output a second (as the guest manages), for a stream nobody reads; forks nothing either. */
const CHATTER = ["sh", "-c", "mkfifo /tmp/wait; exec 3<>/tmp/wait; line=$(printf '%01000d' 0); while :; do for i in 1 2 3 4 5; do echo $line; done; read -t 0.1 x <&3; done"];

/** The calls a client makes: each one request sequence, named `api call`. */
type Call = (c: CallContext) => Promise<void>;
interface CallContext {
  socket: string;
  vm: string;
  /** the VM's ticker container's id */
  ticker: string;
}

const calls: Record<string, Call> = {
  // docker run --rm busybox echo soak: wait (removed) first, as the CLI does, then start; the wait answers once it is gone.
  "docker run --rm": async ({ socket }) => {
    const { Id } = json<{ Id: string }>(await expect(socket, "POST", "/v1.41/containers/create", { Image: "busybox", Cmd: ["echo", "soak"], HostConfig: { AutoRemove: true } }, 201));
    const waited = expect(socket, "POST", `/v1.41/containers/${Id}/wait?condition=removed`, undefined, 200);
    waited.catch(() => {});
    await expect(socket, "POST", `/v1.41/containers/${Id}/start`, undefined, 204);
    const { StatusCode } = json<{ StatusCode: number }>(await waited);
    if (StatusCode !== 0) throw new Error(`docker run --rm exited ${StatusCode}`);
  },
  "v1 run --rm": async ({ socket, vm }) => {
    const { id } = json<{ id: string }>(await expect(socket, "POST", `/v1/vms/${vm}/containers`, { image: "busybox", command: ["echo", "soak"], autoRemove: true }, 201));
    const out = await expect(socket, "POST", `/v1/vms/${vm}/containers/${id}/start?attach=1`, undefined, 200);
    if (v1ExitCode(out) !== 0) throw new Error(`v1 run --rm exited ${v1ExitCode(out)}`);
  },
  "docker exec": async ({ socket }) => {
    const { Id } = json<{ Id: string }>(await expect(socket, "POST", `/v1.41/containers/soak-ticker/exec`, { Cmd: ["echo", "soak"], AttachStdout: true, AttachStderr: true }, 201));
    const out = await expect(socket, "POST", `/v1.41/exec/${Id}/start`, { Detach: false }, 200);
    if (demuxStdout(out.body) !== "soak\n") throw new Error(`docker exec printed ${JSON.stringify(out.body.toString())}`);
    const { ExitCode } = json<{ ExitCode: number }>(await expect(socket, "GET", `/v1.41/exec/${Id}/json`, undefined, 200));
    if (ExitCode !== 0) throw new Error(`docker exec exited ${ExitCode}`);
  },
  "v1 exec": async ({ socket, vm, ticker }) => {
    const out = await expect(socket, "POST", `/v1/vms/${vm}/containers/${ticker}/exec`, { argv: ["echo", "soak"] }, 200);
    if (v1ExitCode(out) !== 0) throw new Error(`v1 exec exited ${v1ExitCode(out)}`);
  },
  "docker logs": async ({ socket }) => {
    const out = await expect(socket, "GET", "/v1.41/containers/soak-ticker/logs?stdout=1&stderr=1&tail=20", undefined, 200);
    if (!demuxStdout(out.body).includes("tick")) throw new Error("docker logs had no tick");
  },
  "v1 logs": async ({ socket, vm, ticker }) => {
    const lines = json<unknown[]>(await expect(socket, "GET", `/v1/vms/${vm}/containers/${ticker}/logs`, undefined, 200));
    if (!lines.length) throw new Error("v1 logs was empty");
  },
  "docker ps": async ({ socket }) => {
    json<unknown[]>(await expect(socket, "GET", "/v1.41/containers/json?all=1", undefined, 200));
  },
  "v1 ps": async ({ socket, vm }) => {
    json<unknown[]>(await expect(socket, "GET", `/v1/vms/${vm}/containers?all=1`, undefined, 200));
  },
  "docker stats": async ({ socket }) => {
    const s = json<{ memory_stats?: unknown }>(await expect(socket, "GET", "/v1.41/containers/soak-ticker/stats?stream=false", undefined, 200));
    if (!s.memory_stats) throw new Error("docker stats had no memory_stats");
  },
  "v1 stats": async ({ socket, vm, ticker }) => {
    json(await expect(socket, "GET", `/v1/vms/${vm}/containers/${ticker}/stats`, undefined, 200));
  },
  "docker inspect": async ({ socket }) => {
    const c = json<{ State: { Running: boolean } }>(await expect(socket, "GET", "/v1.41/containers/soak-ticker/json", undefined, 200));
    if (!c.State.Running) throw new Error("docker inspect: the ticker is not running");
  },
  "v1 inspect": async ({ socket, vm, ticker }) => {
    json(await expect(socket, "GET", `/v1/vms/${vm}/containers/${ticker}/json`, undefined, 200));
  },
};

/** An error's kind for counting: ids and numbers that differ between occurrences are masked. */
function errorKey(call: string, err: unknown): string {
  const msg = String((err as Error)?.message ?? err)
    .replace(/[0-9a-f]{12,64}/g, "<id>")
    .replace(/\/[a-z]+_[a-z]+\b/g, "/<name>");
  return `${call}: ${msg}`;
}

/**
 * The stuck client: attaches (Docker's hijacked attach, `Upgrade: tcp`) to
 * the chatter's output and never reads it: its socket is paused from the
 * first byte on. `release` reads what was left for it for up to 5 s and
 * says whether the daemon had closed the connection meanwhile.
 */
async function stuckAttach(socket: string, container: string): Promise<{ release: () => Promise<{ bytes: number; closedByDaemon: boolean }> }> {
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath: socket,
      path: `/v1.41/containers/${container}/attach?stream=1&stdout=1&stderr=1`,
      method: "POST",
      agent: false,
      headers: { Connection: "Upgrade", Upgrade: "tcp" },
    });
    req.setTimeout(30_000, () => req.destroy(new Error("the stuck client's attach got no answer within 30 s")));
    req.on("upgrade", (_res, s: Socket, head: Buffer) => {
      req.setTimeout(0);
      s.pause();
      s.on("error", () => {});
      const release = () =>
        new Promise<{ bytes: number; closedByDaemon: boolean }>((done) => {
          let bytes = head.length;
          s.on("data", (d: Buffer) => (bytes += d.length));
          const timer = setTimeout(() => {
            s.destroy();
            done({ bytes, closedByDaemon: false });
          }, 5000);
          s.once("end", () => {
            clearTimeout(timer);
            s.destroy();
            done({ bytes, closedByDaemon: true });
          });
          s.resume();
        });
      resolve({ release });
    });
    req.on("response", (res) => reject(new Error(`the stuck client's attach answered ${res.statusCode} instead of upgrading`)));
    req.on("error", reject);
    req.end();
  });
}

/** The per-call latencies (ms) and counts of a soak. */
export interface CallFigures {
  requests: number;
  errors: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** What a soak found. */
export interface SoakReport {
  clients: number;
  duration_s: number;
  settle_s: number;
  vms: string[];
  requests: number;
  errors: number;
  /** each distinct error (ids masked) with its count */
  error_kinds: Record<string, number>;
  calls: Record<string, CallFigures>;
  /** p99 over all the other clients' calls while the stuck client held its attach */
  p99_all_calls_with_stuck_client_ms: number;
  /** what the container printed while the stuck client was attached (its kept log), what the client could read once it read, and whether the daemon had let it go */
  stuck_client: { container: string; chatter_output_bytes: number; bytes_left_for_it: number; closed_by_daemon: boolean };
  /** [seconds since the clients started, the daemon's RSS, of which guest memories, of which compiled code, in KiB] every 5 s */
  daemon_rss_kib_timeline: Array<[number, number, number, number]>;
  before: Figures;
  after: Figures;
  /** after − before for each figure */
  growth: { daemon_rss_kib: number; daemon_rss_guest_memory_kib: number; daemon_rss_code_kib: number; daemon_code_mappings: number; daemon_fds: number; guests: Record<string, Record<keyof GuestFigures, number>> };
}

/** Runs a soak (see the file comment) and returns what it found; the daemon and its folder are gone afterwards. */
export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  const daemon = await startDaemon();
  const socket = daemon.socket;
  try {
    const vms = ["default", ...Array.from({ length: opts.extraVms }, (_, i) => `soak${i + 1}`)];
    for (const vm of vms.slice(1)) await expect(socket, "POST", "/v1/vms", { name: vm }, 201);
    const tickers: Record<string, string> = {};
    for (const vm of vms) {
      const { id } = json<{ id: string }>(await expect(socket, "POST", `/v1/vms/${vm}/containers`, { image: "busybox", command: TICKER, name: "soak-ticker" }, 201));
      await expect(socket, "POST", `/v1/vms/${vm}/containers/${id}/start`, undefined, 204);
      tickers[vm] = id;
    }
    const chatter = json<{ id: string }>(await expect(socket, "POST", "/v1/vms/default/containers", { image: "busybox", command: CHATTER, name: "soak-chatter" }, 201)).id;
    await expect(socket, "POST", `/v1/vms/default/containers/${chatter}/start`, undefined, 204);
    // Warm-up: one of each call in each VM (each guest unpacks busybox's layer once; the daemon loads its routes).
    for (const vm of vms) for (const [name, call] of Object.entries(calls)) if (name.startsWith("v1") || vm === "default") await call({ socket, vm, ticker: tickers[vm]! });
    log(`soak: ${vms.length} VMs up, warmed; measuring before`);
    const before = await figures(daemon, vms);

    const stuck = await stuckAttach(socket, chatter);
    // The daemon's RSS through the run: a leak climbs, warm-up levels off.
    const rssTimeline: Array<[number, number, number, number]> = [];
    const t0 = Date.now();
    const sampler = setInterval(() => {
      const f = daemonFigures(daemon.child.pid!);
      rssTimeline.push([Math.round((Date.now() - t0) / 1000), f.daemon_rss_kib, f.daemon_rss_guest_memory_kib, f.daemon_rss_code_kib]);
    }, 5000);
    const latencies: Record<string, number[]> = Object.fromEntries(Object.keys(calls).map((k) => [k, []]));
    const failures: Record<string, number> = Object.fromEntries(Object.keys(calls).map((k) => [k, 0]));
    const errorKinds: Record<string, number> = {};
    const names = Object.keys(calls);
    const end = Date.now() + opts.durationS * 1000;
    let done = 0;
    const progress = setInterval(() => log(`soak: ${done} calls, ${Object.values(errorKinds).reduce((a, b) => a + b, 0)} errors, ${Math.max(0, Math.round((end - Date.now()) / 1000))} s left`), 30_000);
    const client = async (k: number) => {
      // Each client walks the calls from its own offset and its own VM, so every call meets every VM at once.
      for (let i = k; Date.now() < end; i++) {
        const name = names[i % names.length]!;
        const vm = vms[(k + Math.floor(i / names.length)) % vms.length]!;
        const t0 = performance.now();
        try {
          await calls[name]!({ socket, vm, ticker: tickers[vm]! });
          latencies[name]!.push(performance.now() - t0);
        } catch (err) {
          failures[name]!++;
          const key = errorKey(name, err);
          errorKinds[key] = (errorKinds[key] ?? 0) + 1;
        }
        done++;
      }
    };
    await Promise.all(Array.from({ length: opts.clients }, (_, k) => client(k)));
    clearInterval(progress);
    clearInterval(sampler);
    // Was the stuck client's container kept running meanwhile (its output held, not the daemon)?
    const chatterState = json<{ State: { Running: boolean } }>(await expect(socket, "GET", `/v1.41/containers/${chatter}/json`, undefined, 200));
    const chatterLogBytes = json<Array<{ data: string }>>(await expect(socket, "GET", `/v1/vms/default/containers/${chatter}/logs`, undefined, 200)).reduce((n, l) => n + Buffer.from(l.data, "base64").length, 0);
    const released = await stuck.release();
    if (!chatterState.State.Running) errorKinds["stuck client: the chatter container stopped while its attach was stuck"] = 1;
    log(`soak: clients done (${done} calls); settling ${opts.settleS} s`);
    await new Promise((r) => setTimeout(r, opts.settleS * 1000));
    const after = await figures(daemon, vms);

    const callFigures: Record<string, CallFigures> = {};
    for (const name of names) {
      const l = latencies[name]!;
      const p = l.length ? percentiles(l) : { p50: NaN, p99: NaN, max: NaN };
      callFigures[name] = { requests: l.length + failures[name]!, errors: failures[name]!, p50_ms: Math.round(p.p50), p99_ms: Math.round(p.p99), max_ms: Math.round(p.max) };
    }
    const all = Object.values(latencies).flat();
    const growthOf = (a: GuestFigures, b: GuestFigures) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k as keyof GuestFigures] - b[k as keyof GuestFigures]])) as Record<keyof GuestFigures, number>;
    const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
    return {
      clients: opts.clients,
      duration_s: opts.durationS,
      settle_s: opts.settleS,
      vms,
      requests: done,
      errors,
      error_kinds: errorKinds,
      calls: callFigures,
      p99_all_calls_with_stuck_client_ms: all.length ? Math.round(percentiles(all).p99) : NaN,
      stuck_client: { container: "soak-chatter (about 50 KiB/s of output, never read)", chatter_output_bytes: chatterLogBytes, bytes_left_for_it: released.bytes, closed_by_daemon: released.closedByDaemon },
      daemon_rss_kib_timeline: rssTimeline,
      before,
      after,
      growth: {
        daemon_rss_kib: after.daemon_rss_kib - before.daemon_rss_kib,
        daemon_rss_guest_memory_kib: after.daemon_rss_guest_memory_kib - before.daemon_rss_guest_memory_kib,
        daemon_rss_code_kib: after.daemon_rss_code_kib - before.daemon_rss_code_kib,
        daemon_code_mappings: after.daemon_code_mappings - before.daemon_code_mappings,
        daemon_fds: after.daemon_fds - before.daemon_fds,
        guests: Object.fromEntries(vms.map((vm) => [vm, growthOf(after.guests[vm]!, before.guests[vm]!)])),
      },
    };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n(the daemon said: ${daemon.stderr().slice(-2000)})`, { cause: err });
  } finally {
    await daemon.stop();
  }
}

/** A short human summary of a report. */
export function summaryOf(r: SoakReport): string {
  const lines = [`soak: ${r.clients} clients (and one stuck attach) for ${r.duration_s} s over VMs ${r.vms.join(", ")}: ${r.requests} requests, ${r.errors} errors`];
  for (const [k, n] of Object.entries(r.error_kinds)) lines.push(`  error ×${n}: ${k}`);
  for (const [k, c] of Object.entries(r.calls)) lines.push(`  ${k.padEnd(16)} ${String(c.requests).padStart(6)} requests, ${c.errors} errors, p50 ${c.p50_ms} ms, p99 ${c.p99_ms} ms, max ${c.max_ms} ms`);
  lines.push(`  p99 of every call with the stuck client attached: ${r.p99_all_calls_with_stuck_client_ms} ms`);
  const st = r.stuck_client;
  lines.push(`  stuck client: the container printed ${Math.round(st.chatter_output_bytes / 1024)} KiB, ${Math.round(st.bytes_left_for_it / 1024)} KiB were left for the client, ${st.closed_by_daemon ? "the daemon had closed its connection" : "its connection was still open"}`);
  const mib = (k: number) => Math.round(k / 1024);
  lines.push(`  daemon RSS through the run (s: MiB, of which guest memories, compiled code): ${r.daemon_rss_kib_timeline.filter((_, i, a) => i % Math.ceil(a.length / 12) === 0).map(([t, k, g, c]) => `${t}: ${mib(k)} (${mib(g)}, ${mib(c)})`).join(", ")}`);
  lines.push(
    `  daemon RSS ${mib(r.before.daemon_rss_kib)} → ${mib(r.after.daemon_rss_kib)} MiB, of which guest memories ${mib(r.before.daemon_rss_guest_memory_kib)} → ${mib(r.after.daemon_rss_guest_memory_kib)} MiB, compiled code ${mib(r.before.daemon_rss_code_kib)} → ${mib(r.after.daemon_rss_code_kib)} MiB (${r.before.daemon_code_mappings} → ${r.after.daemon_code_mappings} mappings); fds ${r.before.daemon_fds} → ${r.after.daemon_fds}`,
  );
  for (const vm of r.vms) {
    const b = r.before.guests[vm]!;
    const a = r.after.guests[vm]!;
    const parts = (Object.keys(b) as Array<keyof GuestFigures>).map((k) => `${k} ${b[k]}→${a[k]}`);
    lines.push(`  ${vm}: ${parts.join(", ")}`);
    const pb = r.before.guest_processes[vm] ?? {};
    const pa = r.after.guest_processes[vm] ?? {};
    const changed = [...new Set([...Object.keys(pb), ...Object.keys(pa)])].filter((k) => pb[k] !== pa[k]).map((k) => `${k} ${pb[k] ?? 0}→${pa[k] ?? 0}`);
    if (changed.length) lines.push(`    processes that changed: ${changed.join(", ")}`);
  }
  return lines.join("\n");
}

/** A number option: `--NAME N` / `--NAME=N` on the command line, else the environment variable, else the default. */
function option(name: string, env: string, fallback: number): number {
  const args = process.argv;
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  const raw = i < 0 ? process.env[env] : args[i]!.includes("=") ? args[i]!.split("=")[1] : args[i + 1];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} (or ${env}) must be a positive number, not '${raw}'`);
  return n;
}

/** `npm run bench -- soak [--clients N] [--duration SECONDS]` (or SOAK_CLIENTS, SOAK_DURATION_S): writes bench/results/soak.json. */
export async function run(): Promise<void> {
  const { writeResult } = await import("./stats.ts");
  const opts: SoakOptions = {
    clients: option("clients", "SOAK_CLIENTS", 32),
    durationS: option("duration", "SOAK_DURATION_S", 600),
    extraVms: option("vms", "SOAK_EXTRA_VMS", 2),
    settleS: option("settle", "SOAK_SETTLE_S", 15),
    log: (l) => process.stderr.write(`${l}\n`),
  };
  // The machine's load moves every latency here: say what it was.
  const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
  const report = await runSoak(opts);
  const loadAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  const path = writeResult("soak", {
    description:
      "a hyperlab daemon process with VM default and two more; N clients (a new connection per request) loop over run --rm, exec, logs, ps, stats (stream=false) and inspect through the Docker API (VM default) and /v1 (every VM), while one more client holds a Docker attach to a chatty container and never reads it; figures before and after (after a settle period), the guest's page cache dropped before each",
    targets: { errors: 0, growth: "none beyond noise" },
    load_average_1_5_15_min: { start: loadAtStart, end: loadAtEnd },
    ...report,
  });
  console.log(`${summaryOf(report)}\n→ ${path}`);
}
