// Delta snapshots against whole ones, through the hypervisor as users take
// them: each run starts a VM from the boot snapshot, runs `echo hi` in it,
// pauses it, and takes its snapshot four ways (delta or whole, stored
// uncompressed or deflate-raw), then decodes each and restores the delta
// and the whole one into new VMs until `exec echo ok` answers.
//
// `npx tsx bench/delta-snapshot.ts [RUNS]` prints the result as JSON.
import { pathToFileURL } from "node:url";
import { loadNodeImage } from "../src/hardware/node.ts";
import { nodeBootSnapshot, nodeCodec } from "../src/hypervisor/boot-snapshot-node.ts";
import { decodeSnapshot } from "../src/hypervisor/delta-snapshot.ts";
import { Hypervisor } from "../src/hypervisor/hypervisor.ts";
import { readSnapshotHeader } from "../src/hypervisor/snapshot.ts";
import type { Vm, VmSnapshotOptions } from "../src/hypervisor/vm.ts";
import { type Summary, summarize } from "./stats.ts";

const MIB = 128;

interface Run {
  changedPages: number;
  bytes: Record<Way, number>;
  snapshotMs: Record<Way, number>;
  decodeMs: Record<Way, number>;
  restoreToExecMs: { delta: number; whole: number };
}

type Way = "delta_none" | "delta_deflate" | "whole_none" | "whole_deflate";
const WAYS: Record<Way, VmSnapshotOptions> = {
  delta_none: { compression: "none" },
  delta_deflate: { compression: "deflate-raw" },
  whole_none: { full: true, compression: "none" },
  whole_deflate: { full: true, compression: "deflate-raw" },
};

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

/** Restores `bytes` into a new VM until exec('echo ok') answers; destroys it. */
async function restoreToExec(hv: Hypervisor, bytes: Uint8Array): Promise<number> {
  const [vm, ms] = await timed(async () => {
    const vm = await hv.restore(bytes);
    await vm.exec(["echo", "ok"]);
    return vm;
  });
  await vm.destroy();
  return ms;
}

/** Sizes and times of delta and whole snapshots of a VM after `echo hi`, `runs` times. */
export async function benchDeltaSnapshot(runs: number) {
  const image = await loadNodeImage();
  const base = await nodeBootSnapshot(image, { memoryMiB: MIB });
  const hv = await Hypervisor.create({ memoryBudgetMiB: 4 * MIB, spareWorkers: 1 });
  const all: Run[] = [];
  try {
    // One untimed round first: workers, the memory engine and V8's tiers warm up.
    for (let i = -1; i < runs; i++) {
      const vm: Vm = await hv.createVm({ memoryMiB: MIB });
      await vm.exec(["echo", "hi"]);
      await vm.pause();
      const bytes = {} as Record<Way, Uint8Array>;
      const snapshotMs = {} as Record<Way, number>;
      const decodeMs = {} as Record<Way, number>;
      for (const [way, opts] of Object.entries(WAYS) as Array<[Way, VmSnapshotOptions]>) {
        [bytes[way], snapshotMs[way]] = await timed(() => vm.snapshot(opts));
        [, decodeMs[way]] = await timed(() => decodeSnapshot(bytes[way], {}, { codec: nodeCodec, base: async () => ({ snapshot: base }) }));
      }
      await vm.destroy();
      const restoreToExecMs = { delta: await restoreToExec(hv, bytes.delta_deflate), whole: await restoreToExec(hv, bytes.whole_deflate) };
      const sizes = Object.fromEntries(Object.entries(bytes).map(([w, b]) => [w, b.length])) as Record<Way, number>;
      if (i >= 0) all.push({ changedPages: readSnapshotHeader(bytes.delta_none).delta!.changedPages, bytes: sizes, snapshotMs, decodeMs, restoreToExecMs });
    }
  } finally {
    await hv.close();
  }
  const per = (pick: (r: Run) => number): Summary => summarize(all.map(pick));
  const ways = (pick: (r: Run, w: Way) => number) => Object.fromEntries((Object.keys(WAYS) as Way[]).map((w) => [w, per((r) => pick(r, w))]));
  const percent = (r: Run, a: Way, b: Way) => (r.bytes[a] / r.bytes[b]) * 100;
  const deltaPercent = per((r) => percent(r, "delta_none", "whole_none"));
  return {
    description: `a ${MIB} MiB VM from the boot snapshot after exec('echo hi'), paused: vm.snapshot() as a delta against the boot snapshot vs whole ({ full: true }), each stored uncompressed and deflate-raw`,
    runs: all.length,
    changed_pages: per((r) => r.changedPages),
    bytes: ways((r, w) => r.bytes[w]),
    delta_percent_of_whole: {
      uncompressed: deltaPercent,
      deflate_raw: per((r) => percent(r, "delta_deflate", "whole_deflate")),
      delta_deflate_of_whole_uncompressed_state: per((r) => percent(r, "delta_deflate", "whole_none")),
    },
    snapshot_ms: { description: "vm.snapshot() until the bytes are on the host (pause, save, delta in the worker, encode)", ...ways((r, w) => r.snapshotMs[w]) },
    decode_ms: { description: "decodeSnapshot, the delta ones applied to the decoded boot snapshot", ...ways((r, w) => r.decodeMs[w]) },
    restore_to_exec_ms: {
      description: "hv.restore(deflate-raw bytes) until exec('echo ok') answers",
      delta: per((r) => r.restoreToExecMs.delta),
      whole: per((r) => r.restoreToExecMs.whole),
    },
    target_delta_percent_max: 5,
    met: deltaPercent.max <= 5,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const result = await benchDeltaSnapshot(Number(process.argv[2] ?? 7));
  console.log(JSON.stringify(result, null, 2));
  process.exit(0);
}
