// The Docker CLI against hyperlab's daemon, whole client processes: `docker
// run --rm busybox true` with the real docker CLI beside `hyperlab run --rm
// busybox true` against the same daemon, interleaved; and round trips of
// GET /containers/json (a new connection each) beside a trivial Node server
// on a Unix socket (the floor of this machine and client).
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { call, percentiles, startDaemonProcess, startFloorServer } from "./daemon-process.ts";
import { summarize, writeResult } from "./stats.ts";

const RUNS = Number(process.env.DOCKER_RUNS ?? 10);
const ROUND_TRIPS = Number(process.env.DOCKER_ROUND_TRIPS ?? 500);
const DOCKER_CLI = process.env.HYPERLAB_DOCKER_CLI ?? (existsSync("/usr/local/bin/docker") ? "/usr/local/bin/docker" : "docker");
const bin = fileURLToPath(new URL("../bin/hyperlab.js", import.meta.url));

/** Runs a whole client process; resolves with its wall ms (it must exit 0). */
function timed(file: string, args: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 120_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve(performance.now() - t0);
    });
  });
}

/** Runs the docker benchmark and writes bench/results/docker.json. */
export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-bench-docker-"));
  const socket = join(dir, "hyperlab.sock");
  const floorSocket = join(dir, "floor.sock");
  const floor = await startFloorServer(floorSocket);
  const daemon = await startDaemonProcess(socket);
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "docker-config"), HYPERLAB_SOCKET: socket };
  const docker = () => timed(DOCKER_CLI, ["run", "--rm", "busybox", "true"], env);
  const hyperlab = () => timed(process.execPath, [bin, "run", "--rm", "busybox", "true"], env);
  try {
    // Warm-up: the VM unpacks busybox's layer once and v86 compiles the guest's hot code.
    for (let i = 0; i < 3; i++) {
      await docker();
      await hyperlab();
    }
    const samples = { docker: [] as number[], hyperlab: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      // Alternate which goes first, so that neither order nor drift favours one.
      if (i % 2) {
        samples.hyperlab.push(await hyperlab());
        samples.docker.push(await docker());
      } else {
        samples.docker.push(await docker());
        samples.hyperlab.push(await hyperlab());
      }
      process.stderr.write(".");
    }
    const list: number[] = [];
    const floorTrips: number[] = [];
    for (let i = 0; i < 50; i++) await call(socket, "GET", "/v1.50/containers/json");
    for (let i = 0; i < ROUND_TRIPS; i++) {
      floorTrips.push((await call(floorSocket, "GET", "/containers/json")).ms);
      list.push((await call(socket, "GET", "/v1.50/containers/json")).ms);
    }
    process.stderr.write("\n");
    const d = summarize(samples.docker);
    const h = summarize(samples.hyperlab);
    const trip = percentiles(list);
    const floorTrip = percentiles(floorTrips);
    const ratio = Math.round((d.median / h.median) * 100) / 100;
    const path = writeResult("docker", {
      description:
        "whole client processes against one hyperlab daemon: `docker run --rm busybox true` (the docker CLI, " +
        `${DOCKER_CLI}) and \`hyperlab run --rm busybox true\`, interleaved; GET /containers/json round trips (a new connection each) beside a trivial Node server`,
      runs: RUNS,
      docker_run_ms: d,
      hyperlab_run_ms: h,
      ratio_docker_to_hyperlab: ratio,
      get_containers_json_ms: trip,
      floor_trivial_server_ms: floorTrip,
      targets: { docker_run_median_ms: 300, ratio_docker_to_hyperlab: 1.3, get_containers_json_ms: 2 },
      met: { docker_run_median: d.median <= 300, ratio: ratio <= 1.3, round_trip_p50: trip.p50 <= 2 },
    });
    console.log(
      `docker: docker run --rm busybox true ${d.median} ms (${d.min}–${d.max}), hyperlab run ${h.median} ms (${h.min}–${h.max}), ratio ${ratio}; ` +
        `GET /containers/json p50 ${trip.p50} ms p99 ${trip.p99} ms (trivial server p50 ${floorTrip.p50}, p99 ${floorTrip.p99}) → ${path}`,
    );
  } finally {
    floor.kill();
    daemon.kill("SIGTERM");
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  }
}
