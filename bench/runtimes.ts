// The handout's container systems side by side (docs/profiles.md): each
// starts the same workload, `true` in busybox, in a VM restored from its
// profile's boot snapshot; timed from the host's request to the exit it sees,
// in wall ms and in emulated instructions (vm.metrics().cpu.instructions
// around the call), median of RUNTIME_RUNS (default 10). Also each profile's
// restore (the VM usable), and the processes each system leaves running in
// the guest once its container has ended (a daemon, a shim, a monitor, or
// none). Systems that do not run here are listed with why.
// Run: npm run bench -- runtimes   (writes bench/results/runtimes.json)
import { CONTAINER_SYSTEMS, PROCESS_NAMES_SCRIPT, type SystemState, processCounts, processesAdded } from "../src/containers/container-systems.ts";
import { nodeImageStore } from "../src/containers/node-store.ts";
import { VmContainers } from "../src/containers/vm-containers.ts";
import { Hypervisor } from "../src/hypervisor/hypervisor.ts";
import type { Vm } from "../src/hypervisor/vm.ts";
import { type Summary, summarize, writeResult } from "./stats.ts";

const RUNS = Number(process.env.RUNTIME_RUNS ?? 10);

/** One system's row. */
export interface RuntimeRow {
  system: string;
  /** what starts the workload */
  command: string;
  profile: string;
  state: SystemState;
  why?: string;
  start_ms?: Summary;
  instructions?: Summary;
  /** processes in the guest after the container ended that were not there before (names, with counts) */
  left_running?: Record<string, number>;
  /** what those are, in words */
  left_running_what?: string;
}

type Sample = { ms: number; instructions: number };

/** Times `fn` in wall ms and in the VM's emulated instructions. */
async function measure(vm: Vm, fn: () => Promise<void>): Promise<Sample> {
  const i0 = (await vm.metrics()).cpu.instructions;
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  return { ms, instructions: (await vm.metrics()).cpu.instructions - i0 };
}

/**
 * The guest's processes by name (kernel threads left out), once two listings
 * half a second apart agree (up to 10 s): what a command leaves for a moment
 * as it ends (podman's exec session: its conmon and the cleanup it runs) is
 * not what it left running.
 */
async function processes(vm: Vm): Promise<Map<string, number>> {
  const list = async () => (await vm.exec(["/bin/sh", "-c", PROCESS_NAMES_SCRIPT])).stdout.split("\n").sort().join("\n");
  let last = await list();
  for (const end = Date.now() + 10_000; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await list();
    if (now === last) break;
    last = now;
  }
  return processCounts(last);
}

const added = processesAdded;

async function sh(vm: Vm, script: string): Promise<void> {
  const r = await vm.exec(["/bin/sh", "-c", script], { timeoutMs: 120_000 });
  if (r.exitCode !== 0) throw new Error(`'${script}' exited ${r.exitCode} in VM ${vm.name}: ${(r.stdout + r.stderr).trim()}`);
}

const rowOf = (samples: Sample[]) => ({ start_ms: summarize(samples.map((s) => s.ms)), instructions: summarize(samples.map((s) => s.instructions)) });

export async function run(): Promise<void> {
  const hv = await Hypervisor.create({ memoryBudgetMiB: 1024, spareWorkers: 0, warmPool: 0 });
  const containers = new VmContainers(hv, nodeImageStore());
  const restores: Record<string, number[]> = { default: [], lxc: [], podman: [] };
  const rows: RuntimeRow[] = [];
  try {
    // The first VM of each profile may build its boot snapshot (once per host): not counted.
    for (const profile of ["default", "lxc", "podman"]) await (await hv.createVm({ profile, name: `first-${profile}`, timeoutMs: 300_000 })).destroy();
    for (let i = 0; i < RUNS; i++) {
      for (const profile of ["default", "lxc", "podman"]) {
        const vm = await hv.createVm({ profile, name: `restore-${profile}-${i}` });
        restores[profile]!.push(hv.startInfo(vm)!.wallMs);
        await vm.destroy();
      }
    }

    // hyperlab's engine with each OCI runtime, as `hyperlab run --rm busybox true` does it.
    const vm = await hv.createVm({ name: "runtimes" });
    const engine = containers.engine(vm.name);
    for (const runtime of ["crun", "runc"] as const) {
      const once = () =>
        measure(vm, async () => {
          const { attachment } = await engine.run({ runtime, image: "busybox", command: ["true"], autoRemove: true }, { attached: true });
          const code = await attachment.exited;
          if (code !== 0) throw new Error(`${runtime} run exited ${code}`);
        });
      await once(); // unpacks the image's layer, warms the JIT
      const before = await processes(vm);
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await once());
      rows.push({
        system: `${runtime} (hyperlab's engine)`,
        command: `hyperlab run --rm --runtime ${runtime} busybox true`,
        profile: "default",
        state: "runs",
        ...rowOf(samples),
        left_running: added(before, await processes(vm)),
        left_running_what: "none: the engine's host side follows the container through the agent, so no shim or daemon stays in the guest",
      });
      process.stderr.write(`runtimes: ${runtime} done\n`);
    }
    await vm.destroy();

    // LXC: lxc-execute runs the command as the container's only process (init.lxc.static as PID 1); lxc-start boots the container's init and keeps it.
    const lxc = await hv.createVm({ profile: "lxc", name: "runtimes-lxc" });
    await sh(lxc, "lxc-create -n c1 -t busybox >/dev/null");
    await sh(lxc, "lxc-execute -n c1 -- true");
    let before = await processes(lxc);
    const executes: Sample[] = [];
    for (let i = 0; i < RUNS; i++) executes.push(await measure(lxc, () => sh(lxc, "lxc-execute -n c1 -- true")));
    rows.push({
      system: "LXC (lxc-execute)",
      command: "lxc-execute -n c1 -- true",
      profile: "lxc",
      state: "runs",
      ...rowOf(executes),
      left_running: added(before, await processes(lxc)),
      left_running_what: "none: lxc-execute is the container's monitor for its lifetime and exits with it",
    });
    before = await processes(lxc);
    const starts: Sample[] = [];
    let kept: Record<string, number> = {};
    for (let i = 0; i < RUNS; i++) {
      starts.push(await measure(lxc, () => sh(lxc, "lxc-start -n c1 && lxc-attach -n c1 -- true")));
      if (i === 0) kept = added(before, await processes(lxc));
      await sh(lxc, "lxc-stop -n c1 -k");
    }
    rows.push({
      system: "LXC (lxc-start, then lxc-attach)",
      command: "lxc-start -n c1 && lxc-attach -n c1 -- true",
      profile: "lxc",
      state: "runs",
      ...rowOf(starts),
      left_running: kept,
      left_running_what: "while the container runs: its monitor (lxc-start, which stays as the container's parent) and the container's own processes (busybox init and what it starts); lxc-stop ends them",
    });
    await lxc.destroy();
    process.stderr.write("runtimes: lxc done\n");

    // Podman: no daemon; `podman run` itself sets up the container and leaves conmon as its monitor, on podman's default network (netavark).
    const pod = await hv.createVm({ profile: "podman", name: "runtimes-podman" });
    await sh(pod, "podman run --rm busybox true");
    before = await processes(pod);
    const podRuns: Sample[] = [];
    for (let i = 0; i < RUNS; i++) podRuns.push(await measure(pod, () => sh(pod, "podman run --rm busybox true")));
    rows.push({
      system: "Podman (podman run --rm)",
      command: "podman run --rm busybox true",
      profile: "podman",
      state: "runs",
      ...rowOf(podRuns),
      left_running: added(before, await processes(pod)),
      left_running_what: "none: podman has no daemon, and conmon, the container's monitor, exits with it",
    });
    before = await processes(pod);
    const podDetached: Sample[] = [];
    kept = {};
    for (let i = 0; i < RUNS; i++) {
      podDetached.push(await measure(pod, () => sh(pod, "podman run -d --name c1 busybox sleep 600 >/dev/null && podman exec c1 true")));
      if (i === 0) kept = added(before, await processes(pod));
      await sh(pod, "podman rm -f -t 0 c1 >/dev/null");
    }
    rows.push({
      system: "Podman (podman run -d, then podman exec)",
      command: "podman run -d --name c1 busybox sleep 600 && podman exec c1 true",
      profile: "podman",
      state: "runs",
      ...rowOf(podDetached),
      left_running: kept,
      left_running_what: "while the container runs: conmon, its monitor (one per container; podman itself has exited), and the container's process; podman rm ends them",
    });
    await pod.destroy();
    process.stderr.write("runtimes: podman done\n");
  } finally {
    containers.close();
    await hv.close();
  }
  // The systems that do not run here, with why (one list with the stack view's).
  for (const sys of CONTAINER_SYSTEMS.filter((x) => x.state !== "runs")) rows.push({ system: sys.name, command: sys.command ?? "-", profile: sys.profile ?? "-", state: sys.state, why: sys.why });
  const restore = Object.fromEntries(Object.entries(restores).map(([p, ms]) => [p, summarize(ms)]));
  const crun = rows[0]!.start_ms!.median;
  const path = writeResult("runtimes", {
    description: `The handout's container systems: the same workload (true in busybox) started by each in a VM restored from its profile's boot snapshot, host request to exit seen by the host, ${RUNS} runs each; each profile's restore; processes left running in the guest`,
    runs: RUNS,
    restore_ms: restore,
    systems: rows,
    ratio_to_crun: Object.fromEntries(rows.filter((r) => r.start_ms).map((r) => [r.system, Math.round((r.start_ms!.median / crun) * 10) / 10])),
    targets: { restore_ms: 300, podman_run_ms: 3000, docker_run_ms: 3000 },
  });
  for (const [p, s] of Object.entries(restore)) console.log(`restore (${p}): ${s.min} / ${s.median} / ${s.max} ms`);
  for (const r of rows) console.log(r.start_ms ? `${r.system}: ${r.start_ms.median} ms, ${(r.instructions!.median / 1e6).toFixed(1)} M instructions, left running: ${JSON.stringify(r.left_running)}` : `${r.system}: ${r.state} (${r.why})`);
  console.log(`→ ${path}`);
}
