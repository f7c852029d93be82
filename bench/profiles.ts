// The figures docs/profiles.md gives for the lxc profile: its restore, and
// what LXC's commands cost in the guest, each in wall ms and emulated
// instructions (vm.metrics().cpu.instructions around the call), over a few
// fresh VMs restored from the profile's boot snapshot.
// Run: npm run bench -- profiles   (PROFILE_RUNS, default 3; writes bench/results/profiles.json)
import { Hypervisor } from "../src/hypervisor/hypervisor.ts";
import type { Vm } from "../src/hypervisor/vm.ts";
import { summarize, writeResult } from "./stats.ts";

const runs = Number(process.env.PROFILE_RUNS ?? 3);
const steps: Array<[string, string]> = [
  ["lxc-create -t busybox", "lxc-create -n c1 -t busybox"],
  ["lxc-start", "lxc-start -n c1"],
  ["lxc-attach -- true", "lxc-attach -n c1 -- true"],
  ["lxc-info", "lxc-info -n c1"],
  ["lxc-stop", "lxc-stop -n c1"],
  ["lxc-execute -- true", "lxc-execute -n c1 -- true"],
  ["lxc-destroy", "lxc-destroy -n c1"],
];

const failures: string[] = [];

async function measure(vm: Vm, script: string): Promise<{ ms: number; instructions: number } | undefined> {
  const i0 = (await vm.metrics()).cpu.instructions;
  const t0 = performance.now();
  const r = await vm.exec(["/bin/sh", "-c", script], { timeoutMs: 120_000 });
  const ms = performance.now() - t0;
  const instructions = (await vm.metrics()).cpu.instructions - i0;
  if (r.exitCode !== 0) {
    failures.push(`'${script}' exited ${r.exitCode}: ${(r.stdout + r.stderr).trim()}`);
    return undefined;
  }
  return { ms, instructions };
}

export async function run(): Promise<void> {
  const hv = await Hypervisor.create({ memoryBudgetMiB: 512, spareWorkers: 0 });
  const results: Record<string, { ms: number[]; instructions: number[] }> = {};
  const add = (name: string, m: { ms: number; instructions: number } | undefined) => {
    if (!m) return;
    const r = (results[name] ??= { ms: [], instructions: [] });
    r.ms.push(Math.round(m.ms));
    r.instructions.push(m.instructions);
  };
  try {
    // The first VM of each profile may build its boot snapshot: not counted.
    await (await hv.createVm({ profile: "lxc", timeoutMs: 300_000 })).destroy();
    await (await hv.createVm({ timeoutMs: 300_000 })).destroy();
    for (let i = 0; i < runs; i++) {
      for (const profile of ["default", "lxc"]) {
        const vm = await hv.createVm({ profile, name: `${profile}-${i}` });
        const start = hv.startInfo(vm)!;
        add(`restore (${profile})`, { ms: start.wallMs, instructions: 0 });
        if (profile === "lxc") {
          for (const [name, script] of steps) add(name, await measure(vm, script));
        }
        await vm.destroy();
      }
    }
  } finally {
    await hv.close();
}
const out = Object.fromEntries(
  Object.entries(results).map(([name, r]) => [name, { runs: r.ms.length, wallMs: summarize(r.ms), instructions: summarize(r.instructions) }]),
);
console.log(`wrote ${writeResult("profiles", { description: "The lxc profile: restore against the default guest's, and LXC's commands in the guest (wall ms, emulated instructions), fresh VMs from each profile's boot snapshot.", figures: out, failures })}`);
}
