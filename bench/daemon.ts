// The daemon as clients meet it: a `hyperlab daemon` process (its VMs in
// worker threads, its own thread serving the API) measured from this one
// over its Unix socket. API round trips (GET /v1/version, the container list
// of every VM) with all VMs idle and with a CPU-bound container in each of
// two VMs, same run; `run --rm busybox true` through the API in `default` and
// in a second VM; and, in the same run, two baselines: the same run on a
// guest on this process's own thread (how the daemon ran containers before),
// and round trips to a trivial Node HTTP server on a Unix socket (the floor
// of this machine and client). Baselines are interleaved with what they are
// compared to, so the machine's drift hits both alike.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerEngine } from "../src/containers/engine.ts";
import { nodeImageStore } from "../src/containers/node-store.ts";
import { startGuest } from "../src/hypervisor/local-guest.ts";
import { call, percentiles, startDaemonProcess, startFloorServer } from "./daemon-process.ts";
import { summarize, writeResult } from "./stats.ts";

const ROUND_TRIPS = Number(process.env.DAEMON_ROUND_TRIPS ?? 500);
const RUNS = Number(process.env.DAEMON_RUNS ?? 20);

/** Round trips of the two API calls and of the floor server's answer, interleaved, `n` times each. */
async function roundTrips(socket: string, floorSocket: string, n: number) {
  const version: number[] = [];
  const list: number[] = [];
  const floor: number[] = [];
  for (let i = 0; i < n; i++) {
    floor.push((await call(floorSocket, "GET", "/v1/version")).ms);
    version.push((await call(socket, "GET", "/v1/version")).ms);
    list.push((await call(socket, "GET", "/v1/containers?allVms=1")).ms);
  }
  return { get_version_ms: percentiles(version), list_containers_all_vms_ms: percentiles(list), floor_trivial_server_ms: percentiles(floor) };
}

/** `run --rm busybox true` through the API in VM `vm`: create, start attached, read to the exit. */
async function runThrough(socket: string, vm: string): Promise<number> {
  const t0 = performance.now();
  const c = JSON.parse((await call(socket, "POST", `/v1/vms/${vm}/containers`, { image: "busybox", command: ["true"], autoRemove: true })).body) as { id: string };
  const out = (await call(socket, "POST", `/v1/vms/${vm}/containers/${c.id}/start?attach=1`)).body;
  if (!out.includes('{"exitCode":0}')) throw new Error(`the run in ${vm} did not exit 0: ${out}`);
  return performance.now() - t0;
}

/** A guest on this process's thread with its engine: how the daemon ran containers before they moved into VMs. */
async function mainThreadGuest() {
  const guest = await startGuest();
  const engine = new ContainerEngine(guest.agent, nodeImageStore());
  return {
    run: async () => {
      const t0 = performance.now();
      const { attachment } = await engine.run({ image: "busybox", command: ["true"], autoRemove: true }, { attached: true });
      if ((await attachment.exited) !== 0) throw new Error("the main-thread run did not exit 0");
      return performance.now() - t0;
    },
    /** pauses its emulator (so it does not share this process's thread with the round trips measured meanwhile) or lets it run */
    hold: (held: boolean) => (held ? guest.machine.pause() : guest.machine.resume()),
    stop: () => guest.stop(),
  };
}

/** Runs the daemon benchmark and writes bench/results/daemon.json. */
export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-bench-daemon-"));
  const socket = join(dir, "hyperlab.sock");
  const floorSocket = join(dir, "floor.sock");
  const floor = await startFloorServer(floorSocket);
  const daemon = await startDaemonProcess(socket);
  const local = await mainThreadGuest();
  try {
    await call(socket, "POST", "/v1/vms", { name: "b" });
    // Warm-up: each guest unpacks busybox's layer once, and v86 compiles the guest's hot code
    // (runs get faster over the first few in a new VM); the first requests load the routes.
    for (let i = 0; i < 5; i++) {
      await runThrough(socket, "default");
      await runThrough(socket, "b");
      await local.run();
    }
    await local.hold(true);
    await roundTrips(socket, floorSocket, 50);

    const idle = await roundTrips(socket, floorSocket, ROUND_TRIPS);
    process.stderr.write(".");
    await local.hold(false);
    const runs = { default: [] as number[], b: [] as number[], mainThread: [] as number[] };
    // Interleaved, and each round starts with the next of the three, so that neither order nor drift favours one.
    const steps: Array<() => Promise<void>> = [
      async () => void runs.default.push(await runThrough(socket, "default")),
      async () => void runs.b.push(await runThrough(socket, "b")),
      async () => void runs.mainThread.push(await local.run()),
    ];
    for (let i = 0; i < RUNS; i++) {
      for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
      if (i % 5 === 4) process.stderr.write(".");
    }

    for (const vm of ["default", "b"]) {
      await call(socket, "POST", `/v1/vms/${vm}/containers`, { image: "busybox", command: ["sh", "-c", "while :; do :; done"], name: "spin" }).then((r) =>
        call(socket, "POST", `/v1/vms/${vm}/containers/${(JSON.parse(r.body) as { id: string }).id}/start`),
      );
    }
    await local.hold(true);
    await new Promise((r) => setTimeout(r, 1000));
    const busy = await roundTrips(socket, floorSocket, ROUND_TRIPS);
    process.stderr.write("\n");
    for (const vm of ["default", "b"]) await call(socket, "DELETE", `/v1/vms/${vm}/containers/spin?force=1`);

    const inDefault = summarize(runs.default);
    const inB = summarize(runs.b);
    const before = summarize(runs.mainThread);
    const worstP99 = Math.max(idle.get_version_ms.p99, idle.list_containers_all_vms_ms.p99, busy.get_version_ms.p99, busy.list_containers_all_vms_ms.p99);
    const path = writeResult("daemon", {
      description:
        "a hyperlab daemon process measured over its Unix socket: API round trips (a new connection each) with all VMs idle and with a CPU-bound container in each of two VMs, interleaved with round trips to a trivial Node HTTP server (floor); run --rm busybox true through the API in VM default and in VM b, interleaved with the same run on a guest on this process's own thread (baseline)",
      runs: RUNS,
      round_trips: ROUND_TRIPS,
      api_idle: idle,
      api_two_vms_spinning: busy,
      run_rm_busybox_true_ms: { in_default: inDefault, in_second_vm: inB, main_thread_guest_baseline: before },
      ratios: {
        second_vm_to_default: Math.round((inB.median / inDefault.median) * 100) / 100,
        default_to_main_thread_baseline: Math.round((inDefault.median / before.median) * 100) / 100,
        busy_p99_to_idle_p99_version: Math.round((busy.get_version_ms.p99 / idle.get_version_ms.p99) * 100) / 100,
        idle_p99_version_to_floor: Math.round((idle.get_version_ms.p99 / idle.floor_trivial_server_ms.p99) * 100) / 100,
        busy_p99_version_to_floor: Math.round((busy.get_version_ms.p99 / busy.floor_trivial_server_ms.p99) * 100) / 100,
      },
      targets: { api_p99_ms: 2, second_vm_within: 1.1, default_to_main_thread_at_most: 1 },
      met: {
        api_p99: worstP99 <= 2,
        second_vm_within_10_percent: inB.median <= inDefault.median * 1.1,
        no_slower_than_main_thread: inDefault.median <= before.median,
      },
    });
    console.log(
      `daemon: GET /v1/version p50/p99 idle ${idle.get_version_ms.p50}/${idle.get_version_ms.p99} ms, two VMs spinning ${busy.get_version_ms.p50}/${busy.get_version_ms.p99} ms ` +
        `(trivial server ${idle.floor_trivial_server_ms.p99} / ${busy.floor_trivial_server_ms.p99} ms); ` +
        `list p99 idle ${idle.list_containers_all_vms_ms.p99} ms, spinning ${busy.list_containers_all_vms_ms.p99} ms; ` +
        `run --rm in default ${inDefault.median} ms, in b ${inB.median} ms, main-thread guest ${before.median} ms → ${path}`,
    );
  } finally {
    await local.hold(false).catch(() => {});
    await local.stop();
    floor.kill();
    daemon.kill("SIGTERM");
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  }
}
