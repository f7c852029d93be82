// `npm run bench -- hypervisor`: the hypervisor's figures in one file,
// bench/results/hypervisor.json: VMs in workers (starts, fork, 16 VMs, CPU
// shares), snapshots (restore in one thread, sizes, codecs), delta snapshots
// against whole ones (bench/delta-snapshot.ts) and the memory
// engine against plain TypeScript. Each part runs on its own, one after the
// other, so none measures while another loads the machine.
import { benchDeltaSnapshot } from "./delta-snapshot.ts";
import { benchHypervisor } from "./hypervisor.ts";
import { benchMemory } from "./memory.ts";
import { benchSnapshot } from "./snapshot.ts";
import { writeResult } from "./stats.ts";

/** Runs the parts one after the other and writes bench/results/hypervisor.json. */
export async function run(): Promise<void> {
  const runs = Number(process.env.HYPERVISOR_RUNS ?? 10);
  const vms = await benchHypervisor(runs);
  const snapshots = await benchSnapshot(Number(process.env.SNAPSHOT_RUNS ?? 7));
  const memory = await benchMemory(Number(process.env.MEMORY_RUNS ?? 7));
  const deltas = await benchDeltaSnapshot(Number(process.env.DELTA_RUNS ?? 7));
  const { description, targets, ...rest } = vms;
  const path = writeResult("hypervisor", { description, ...rest, targets, snapshots, delta_snapshots: deltas, memory_engine: memory });
  console.log(`hypervisor: wrote ${path}`);
}
