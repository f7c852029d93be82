// The hypervisor's figures: a Comlink call to a VM worker, restore to a usable
// shell from the boot snapshot and from the warm pool, fork(8), 16 VMs of
// 96 MiB in one process all answering exec, and CPU shares 3:1 between two
// busy VMs by emulated instructions. Every VM is a real guest in its own
// worker thread; the boot snapshots are built (once, cached) before timing.
import { loadavg } from "node:os";
import { loadNodeImage, v86Wasm } from "../src/hardware/node.ts";
import { nodeBootSnapshot } from "../src/hypervisor/boot-snapshot-node.ts";
import { Hypervisor } from "../src/hypervisor/hypervisor.ts";
import { spawnVmWorker } from "../src/hypervisor/rpc.ts";
import type { Vm } from "../src/hypervisor/vm.ts";
import { type Summary, summarize, writeResult } from "./stats.ts";

const MIB = 96;
const BUSY_LOOP = "(while :; do :; done) </dev/null >/dev/null 2>&1 & echo $!";

const ms = (t0: number) => performance.now() - t0;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

/** Checks that a VM answers exec with what was asked. */
async function answers(vm: Vm): Promise<void> {
  const r = await vm.exec(["echo", "ok"]);
  if (r.stdout !== "ok\n") throw new Error(`VM ${vm.name} answered ${JSON.stringify(r)} to echo ok`);
}

/** Round trips of a call with no work to a VM worker whose guest runs (idle), in µs. */
async function comlinkRoundTrip(calls: number): Promise<Summary> {
  const worker = await spawnVmWorker();
  try {
    const [image, wasm] = await Promise.all([loadNodeImage(), v86Wasm()]);
    const snapshot = await nodeBootSnapshot(image, { memoryMiB: MIB });
    await worker.api.restore({ name: "rtt", image, wasm, memoryMiB: MIB }, snapshot);
    const times: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      await worker.api.counterSample();
      times.push(ms(t0) * 1000);
    }
    return summarize(times);
  } finally {
    await worker.terminate();
  }
}

/** The load average over the last minute, rounded: these figures move with it (the machine is shared). */
function load(): number {
  return Math.round(loadavg()[0]! * 100) / 100;
}

/**
 * New VM from the boot snapshot until exec("echo ok") answers, in ms. Before
 * each, the hypervisor is ready: a spare worker is spawned and its emulator
 * built ahead, with the boot snapshot's RAM pages faulted in.
 */
async function restoreToShell(hv: Hypervisor, runs: number) {
  const total: number[] = [];
  const phases = { create: [] as number[], emulator: [] as number[], state: [] as number[], agent: [] as number[], clock: [] as number[], first_exec: [] as number[] };
  for (let i = 0; i < runs; i++) {
    await hv.ready();
    const t0 = performance.now();
    const vm = await hv.createVm({ name: `restore-${i}`, memoryMiB: MIB });
    const t1 = performance.now();
    await answers(vm);
    total.push(ms(t0));
    phases.create.push(t1 - t0);
    phases.first_exec.push(ms(t1));
    const p = hv.startInfo(vm)!.phases!;
    phases.emulator.push(p.emulatorMs);
    phases.state.push(p.stateMs);
    phases.agent.push(p.agentMs ?? 0);
    phases.clock.push(p.clockMs ?? 0);
    await vm.destroy();
  }
  return {
    description: "createVm from the boot snapshot (decoded in memory; a spare worker with its emulator built ahead) until exec('echo ok') answers",
    wall_ms: summarize(total),
    phases_ms: {
      description:
        "createVm until it resolved (host), of which in the worker: waiting for the emulator built ahead, loading the state, the agent's first answer, setting the guest clock (SET_TIME); then the first exec from the host",
      create: summarize(phases.create),
      emulator: summarize(phases.emulator),
      state: summarize(phases.state),
      agent: summarize(phases.agent),
      clock: summarize(phases.clock),
      first_exec: summarize(phases.first_exec),
    },
  };
}

/** createVm from the warm pool until exec("echo ok") answers, in ms. */
async function warmPool(runs: number) {
  const hv = await Hypervisor.create({ warmPool: 1, warmPoolMemoryMiB: MIB, spareWorkers: 1 });
  try {
    const times: number[] = [];
    const handover: number[] = [];
    const firstExec: number[] = [];
    for (let i = 0; i < runs; i++) {
      await hv.ready();
      const t0 = performance.now();
      const vm = await hv.createVm({ name: `warm-${i}`, memoryMiB: MIB });
      const t1 = performance.now();
      await answers(vm);
      times.push(ms(t0));
      handover.push(t1 - t0);
      firstExec.push(ms(t1));
      if (vm.origin !== "pool") throw new Error(`VM ${vm.name} did not come from the warm pool`);
      await vm.destroy();
    }
    return {
      description: "createVm handed a warm VM (restored, warmed, paused) until exec('echo ok') answers",
      wall_ms: summarize(times),
      phases_ms: {
        description: "createVm until it resolved (the VM resumed and running), then the first exec (v86 runs the agent's fork and exec of busybox, ~0.6 M instructions, mostly in its interpreter)",
        handover: summarize(handover),
        first_exec: summarize(firstExec),
      },
    };
  } finally {
    await hv.close();
  }
}

/** fork(8) of a running VM until all 8 answer exec; spare workers spawned ahead. */
async function fork8(runs: number) {
  const hv = await Hypervisor.create({ spareWorkers: 8 });
  try {
    const parent = await hv.createVm({ name: "parent", memoryMiB: MIB });
    await parent.writeFile("/root/parent", "yes\n");
    const times: number[] = [];
    const forked: number[] = [];
    for (let i = 0; i < runs; i++) {
      await hv.ready();
      const t0 = performance.now();
      const forks = await parent.fork(8);
      forked.push(ms(t0));
      await Promise.all(forks.map(answers));
      times.push(ms(t0));
      for (const f of forks) if ((await f.readFile("/root/parent")).length !== 4) throw new Error(`fork ${f.name} lacks the parent's file`);
      await Promise.all(forks.map((f) => f.destroy()));
    }
    return {
      description: "vm.fork(8) (one snapshot, 8 restores in spare workers with their emulators built ahead) until all 8 answer exec('echo ok')",
      wall_ms: summarize(times),
      fork_resolved_ms: summarize(forked),
    };
  } finally {
    await hv.close();
  }
}

/** Time to spawn a VM worker (thread, tsx, modules) until it answers. */
async function workerSpawn(runs: number): Promise<Summary> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const w = await spawnVmWorker();
    times.push(ms(t0));
    await w.terminate();
  }
  return summarize(times);
}

/** 16 VMs of 96 MiB at once in this process, all answering exec; wall time and memory. */
async function sixteen() {
  const hv = await Hypervisor.create({ spareWorkers: 0 });
  const rss0 = process.memoryUsage().rss;
  try {
    const t0 = performance.now();
    const vms = await Promise.all(Array.from({ length: 16 }, (_, i) => hv.createVm({ name: `vm${i}`, memoryMiB: MIB })));
    const createdMs = ms(t0);
    const t1 = performance.now();
    await Promise.all(vms.map(answers));
    const execMs = ms(t1);
    const rss = process.memoryUsage().rss;
    const stats = await hv.stats();
    const guestUsed = stats.vms.reduce((n, v) => n + (v.metrics?.memory.guest?.usedKiB ?? 0), 0) / 1024;
    return {
      description: "16 VMs of 96 MiB created at once from the boot snapshot in one Node process, then all answering exec('echo ok')",
      vms: vms.length,
      running: vms.filter((v) => v.state === "running").length,
      create_all_ms: Math.round(createdMs),
      exec_all_ms: Math.round(execMs),
      memory: {
        allocated_mib: 16 * MIB,
        guest_used_mib: Math.round(guestUsed),
        process_rss_growth_mib: Math.round((rss - rss0) / 2 ** 20),
        process_rss_mib: Math.round(rss / 2 ** 20),
        rss_per_vm_mib: Math.round((rss - rss0) / 2 ** 20 / 16),
      },
    };
  } finally {
    await hv.close();
  }
}

/** Two busy VMs with shares 3 and 1 for `seconds`: the ratio of their emulated instructions. */
async function cpuShares(seconds: number) {
  const hv = await Hypervisor.create({ spareWorkers: 0 });
  try {
    const [a, b] = await Promise.all([hv.createVm({ name: "share3", memoryMiB: MIB, cpuShare: 3 }), hv.createVm({ name: "share1", memoryMiB: MIB, cpuShare: 1 })]);
    for (const vm of [a!, b!]) await vm.exec(["sh", "-c", BUSY_LOOP]);
    await sleep(2000);
    const i0 = [a!.sample!.instructions, b!.sample!.instructions];
    await sleep(seconds * 1000);
    const d = [a!.sample!.instructions - i0[0]!, b!.sample!.instructions - i0[1]!];
    const ratio = d[0]! / d[1]!;
    return {
      description: `two VMs each running a busy loop (sh: while :; do :; done), shares 3 and 1, over ${seconds} s: ratio of emulated instructions`,
      instructions: { share3: d[0], share1: d[1] },
      instructions_per_second: { share3: Math.round(d[0]! / seconds), share1: Math.round(d[1]! / seconds) },
      ratio: Math.round(ratio * 1000) / 1000,
      error_percent: Math.round((ratio / 3 - 1) * 1000) / 10,
    };
  } finally {
    await hv.close();
  }
}

/** Runs every hypervisor measurement; `runs` repetitions of each timed start. */
export async function benchHypervisor(runs = 10) {
  // Boot snapshots are built once and cached; building one is not what is measured.
  const hv = await Hypervisor.create({ spareWorkers: 1 });
  try {
    await (await hv.createVm({ name: "prepare", memoryMiB: MIB })).destroy();
    const say = (what: string) => process.stderr.write(`hypervisor bench: ${what}\n`);
    const loadBefore = load();
    say("comlink round trip");
    const rtt = await comlinkRoundTrip(500);
    say("restore to shell");
    const restore = await restoreToShell(hv, runs);
    await hv.close();
    say("warm pool");
    const warm = await warmPool(runs);
    say("worker spawn");
    const spawn = await workerSpawn(Math.min(runs, 5));
    say("fork(8)");
    const fork = await fork8(Math.max(1, Math.min(runs, 3)));
    say("16 VMs");
    const many = await sixteen();
    say("CPU shares");
    const shares = await cpuShares(10);
    return {
      description: "VMs in worker threads (one v86 each), driven through Comlink; Node, this checkout's default guest",
      load_average_1min: { description: "the host's load average before and after (2 cores, shared with other jobs: wall times grow with it)", before: loadBefore, after: load() },
      comlink_round_trip_us: { description: "a call with no work to a VM worker whose guest is idle", ...rtt },
      worker_spawn_ms: { description: "spawning a VM worker thread (tsx registered in it, modules loaded) until it answers", ...spawn },
      restore_to_shell: restore,
      warm_pool: warm,
      fork_8: fork,
      sixteen_vms: many,
      cpu_shares_3_to_1: shares,
      targets: {
        restore_to_shell_median_ms: 150,
        warm_pool_median_ms: 20,
        fork_8_total_ms: 1500,
        sixteen_vms_all_answer: true,
        cpu_shares_error_percent: 10,
      },
    };
  } finally {
    await hv.close();
  }
}

/** `npm run bench -- hypervisor`: writes bench/results/hypervisor.json. */
export async function run(): Promise<void> {
  const result = await benchHypervisor(Number(process.env.HYPERVISOR_RUNS ?? 10));
  process.stderr.write(`${writeResult("hypervisor", result)}\n`);
}
