// `docker build` against hyperlab's daemon: a six-step Dockerfile (FROM
// busybox, ENV, WORKDIR, COPY, RUN, CMD) built cold (--no-cache), again
// with every step cached, and with only its last step changed; whole docker
// CLI processes (the real CLI, classic builder), medians of 5. One build of
// each kind is also sent straight to POST /build and timed step by step
// (when each line of the progress stream came), to say where the time goes.
// Then registries: lua:5.4 pushed to Debian's docker-registry on the
// loopback (docker push through the daemon, to a new repository each time,
// so every layer goes up), and pulled back: by docker pull through the
// daemon (its layers are built in, so only manifest and config travel), and
// cold, into a store that has none of its blobs (every layer fetched,
// checked against its digest and written: what a page's first use pulls).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packTar } from "modern-tar";
import { nodeImageStore } from "../src/containers/node-store.ts";
import { pullFromRegistry } from "../src/containers/registry-transfer.ts";
import { registryInstalled, startRegistry } from "../test/integration/registry.ts";
import { startDaemonProcess } from "./daemon-process.ts";
import { summarize, writeResult } from "./stats.ts";

const RUNS = Number(process.env.BUILD_RUNS ?? 5);
const DOCKER_CLI = process.env.HYPERLAB_DOCKER_CLI ?? (existsSync("/usr/local/bin/docker") ? "/usr/local/bin/docker" : "docker");
const TARGETS = { cold_ms: 2000, full_cache_ms: 300, last_step_ms: 800, pull_ms: 1000 };

/** The six steps; `cmd` is the last step's word (changed to bust only that step). */
const dockerfile = (cmd: string) => `FROM busybox
ENV GREETING=hello
WORKDIR /app
COPY hello.txt ./
RUN cat hello.txt && echo built > /built
CMD ["echo", "${cmd}"]
`;

/** Runs `docker ARGS` as a whole process; resolves with its wall ms (it must exit 0). */
function timedDocker(args: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(DOCKER_CLI, args, { env: { ...process.env, ...env }, timeout: 120_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`docker ${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve(performance.now() - t0);
    });
  });
}

/** One build sent straight to POST /build: each progress line with the ms it came at. */
function tracedBuild(socket: string, query: string, tar: Uint8Array): Promise<Array<{ ms: number; line: string }>> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const lines: Array<{ ms: number; line: string }> = [];
    const req = request({ socketPath: socket, path: `/v1.50/build?${query}`, method: "POST", headers: { "content-type": "application/x-tar" } }, (res) => {
      let buf = "";
      res.on("data", (d: Buffer) => {
        buf += d.toString();
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const v = JSON.parse(buf.slice(0, nl)) as { stream?: string; aux?: unknown; error?: string };
          buf = buf.slice(nl + 1);
          if (v.error) return reject(new Error(v.error));
          const line = (v.stream ?? (v.aux ? "aux" : "")).trim();
          if (line) lines.push({ ms: Math.round((performance.now() - t0) * 10) / 10, line });
        }
      });
      res.on("end", () => lines.push({ ms: Math.round((performance.now() - t0) * 10) / 10, line: "end" }) && resolve(lines));
    });
    req.on("error", reject);
    req.end(tar);
  });
}

/** Per step: how long from its "Step" line to the next one (and the RUN step's phases). */
function breakdown(lines: Array<{ ms: number; line: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  const steps = lines.map((l, i) => ({ ...l, i })).filter((l) => l.line.startsWith("Step "));
  for (const [k, s] of steps.entries()) {
    const end = steps[k + 1]?.ms ?? lines.find((l) => l.line === "aux")?.ms ?? lines.at(-1)!.ms;
    out[s.line.replace(/^Step (\d+)\/\d+ : (\S+).*/, "$1 $2")] = Math.round((end - s.ms) * 10) / 10;
  }
  const at = (re: RegExp) => lines.find((l) => re.test(l.line))?.ms;
  const run = steps.find((s) => s.line.includes(": RUN"))?.ms;
  const running = at(/^---> Running in/);
  const removed = at(/^Removing intermediate container/);
  if (run !== undefined && running !== undefined) out["RUN: container created"] = Math.round((running - run) * 10) / 10;
  if (running !== undefined && removed !== undefined) out["RUN: ran, layer committed, container removed"] = Math.round((removed - running) * 10) / 10;
  // The last step's figure includes writing the index (its cache entries and the tag) once for the build.
  out["tag and answer"] = Math.round((lines.at(-1)!.ms - (lines.find((l) => l.line === "aux")?.ms ?? lines.at(-1)!.ms)) * 10) / 10;
  return out;
}

/**
 * Push and pull of lua:5.4 with a registry on the loopback (see the file
 * comment), `RUNS` times each, after one of each to warm up.
 */
async function registryRuns(env: Record<string, string>, dir: string): Promise<Record<string, unknown>> {
  if (!registryInstalled) throw new Error("the registry benchmark needs Debian's docker-registry: apt-get install docker-registry");
  const registry = await startRegistry();
  try {
    const samples = { push: [] as number[], pull: [] as number[], pullCold: [] as number[] };
    let layers = 0;
    let bytes = 0;
    for (let i = -1; i < RUNS; i++) {
      const name = `${registry.domain}/lua-${i + 1}:5.4`;
      await timedDocker(["tag", "lua:5.4", name], env);
      const push = await timedDocker(["push", name], env);
      await timedDocker(["rmi", name], env);
      const pull = await timedDocker(["pull", name], env);
      // Cold: a store whose built-in layout is empty, under a data root of its own.
      const layout = join(dir, `empty-layout-${i + 1}`);
      mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
      writeFileSync(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
      const store = nodeImageStore(layout, { dataRoot: join(dir, `cold-${i + 1}`) });
      const t0 = performance.now();
      const image = await pullFromRegistry(store, name, () => {});
      const cold = performance.now() - t0;
      layers = image.layers.length;
      bytes = image.size;
      if (i >= 0) {
        samples.push.push(push);
        samples.pull.push(pull);
        samples.pullCold.push(cold);
      }
    }
    return { layers, bytes, push_ms: summarize(samples.push), pull_ms: summarize(samples.pull), pull_cold_ms: summarize(samples.pullCold) };
  } finally {
    await registry.stop();
  }
}

/** Runs the build benchmark and writes bench/results/build.json. */
export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-bench-build-"));
  const socket = join(dir, "hyperlab.sock");
  const ctx = join(dir, "context");
  const daemon = await startDaemonProcess(socket, ["--warm-pool", "0", "--data-root", join(dir, "data")]);
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "docker-config") };
  const build = (...extra: string[]) => timedDocker(["build", "-q", ...extra, "-t", "bench-build", ctx], env);
  const contextTar = () =>
    packTar([
      { header: { name: "Dockerfile", size: Buffer.byteLength(readFileSync(join(ctx, "Dockerfile"))), type: "file" }, body: readFileSync(join(ctx, "Dockerfile")) },
      { header: { name: "hello.txt", size: 3, type: "file" }, body: "hi\n" },
    ]);
  try {
    mkdirSync(ctx);
    writeFileSync(join(ctx, "hello.txt"), "hi\n");
    writeFileSync(join(ctx, "Dockerfile"), dockerfile("ready"));
    // The first build after the daemon started: the guest unpacks busybox's layer and v86 compiles the code a build runs.
    const first = await build("--no-cache");
    // Warm-up for the rest.
    for (let i = 0; i < 2; i++) await build("--no-cache");
    const samples = { cold: [] as number[], full: [] as number[], last: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      writeFileSync(join(ctx, "Dockerfile"), dockerfile("ready"));
      samples.cold.push(await build("--no-cache"));
      samples.full.push(await build());
      // Only the CMD differs from the build before (a new word each time): five steps cached, one made.
      writeFileSync(join(ctx, "Dockerfile"), dockerfile(`run-${i}-${Date.now()}`));
      samples.last.push(await build());
      process.stderr.write(".");
    }
    process.stderr.write("\n");
    writeFileSync(join(ctx, "Dockerfile"), dockerfile("traced"));
    const traces = {
      cold: breakdown(await tracedBuild(socket, "nocache=1&t=bench-trace", await contextTar())),
      full_cache: breakdown(await tracedBuild(socket, "t=bench-trace", await contextTar())),
    };
    writeFileSync(join(ctx, "Dockerfile"), dockerfile(`traced-${Date.now()}`));
    const lastTrace = breakdown(await tracedBuild(socket, "t=bench-trace", await contextTar()));
    const registry = await registryRuns(env, dir);
    const cold = summarize(samples.cold);
    const full = summarize(samples.full);
    const last = summarize(samples.last);
    const path = writeResult("build", {
      description:
        "docker build -q of a six-step Dockerfile (FROM busybox, ENV, WORKDIR, COPY, RUN, CMD) against one hyperlab daemon, whole docker CLI processes " +
        `(${DOCKER_CLI}, classic builder): cold (--no-cache, busybox already in the guest), every step cached, only the last step changed; then one build of each sent to POST /build, timed step by step (ms)`,
      runs: RUNS,
      first_build_after_daemon_start_ms: Math.round(first * 10) / 10,
      cold_ms: cold,
      full_cache_ms: full,
      last_step_ms: last,
      steps_ms: { ...traces, last_step: lastTrace },
      registry: {
        description:
          "lua:5.4 and Debian's docker-registry (distribution 2.8) on the loopback: docker push through the daemon to a new repository each run (every layer uploaded), " +
          "docker pull through the daemon after docker rmi (layers already in the store: manifest and config fetched), and a cold pull into a store with none of its blobs (every layer fetched, checked, written; what the target is for)",
        ...registry,
      },
      targets: TARGETS,
      met: {
        cold: cold.median <= TARGETS.cold_ms,
        full_cache: full.median <= TARGETS.full_cache_ms,
        last_step: last.median <= TARGETS.last_step_ms,
        pull: (registry.pull_cold_ms as { median: number }).median <= TARGETS.pull_ms,
      },
    });
    const r = registry as { push_ms: { median: number }; pull_ms: { median: number }; pull_cold_ms: { median: number } };
    console.log(
      `build: first after start ${Math.round(first)} ms; cold ${cold.median} ms (${cold.min}–${cold.max}), full cache ${full.median} ms (${full.min}–${full.max}), last step ${last.median} ms (${last.min}–${last.max}); ` +
        `lua:5.4 push ${r.push_ms.median} ms, pull ${r.pull_ms.median} ms, cold pull ${r.pull_cold_ms.median} ms → ${path}`,
    );
  } finally {
    daemon.kill("SIGTERM");
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  }
}
