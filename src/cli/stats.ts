// `hyperlab stats`: the daemon's memory budget, the pages its VMs could
// share and each VM's allocation and use; with container names, those
// containers' memory, CPU and pids.
import type { ContainerStats } from "../containers/engine.ts";
import type { ContainerJson } from "../daemon/v1.ts";
import type { HypervisorStats, PageSharing } from "../hypervisor/hypervisor.ts";
import { parseVerb } from "./args.ts";
import { VM_OPTION, containerDaemon, containersPath, enc } from "./container-refs.ts";
import { humanSize, table } from "./format.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab stats [--no-stream] [--vm NAME] [CONTAINER...]";
const HELP = `Usage: ${USAGE}

Without arguments: the daemon's memory budget, the pages its VMs could share,
and each VM's allocation and use, with the containers each VM hosts under it.
With containers: their memory, CPU and pids usage, read once (--no-stream is
accepted, as Docker users type it); --vm names the VM they are in (default:
default).
`;

const mib = (n: number) => `${n} MiB`;

/** Page sharing as `hyperlab stats` prints it: counts of pages, and what they come to in MiB. */
export function sharingLines(p: PageSharing): string {
  const size = (pages: number) => `${((pages * p.pageSize) / 2 ** 20).toFixed(1)} MiB`;
  const n = (x: number) => x.toLocaleString("en-US");
  return (
    `pages shareable across VMs: ${n(p.crossVmPages)} of ${n(p.totalPages)} (${size(p.crossVmPages)}; ${p.vms} VM${p.vms === 1 ? "" : "s"}: ${p.names.join(", ")})\n` +
    `identical pages (what KSM would merge): ${n(p.shareablePages)}, ${n(p.zeroPages)} of them zero; merging frees ${n(p.savedPages)} pages (${size(p.savedPages)})\n`
  );
}

async function containerStats(vm: string | undefined, refs: string[]): Promise<number> {
  const d = await containerDaemon("stats");
  const rows = [];
  for (const ref of refs) {
    const s = await d.call<ContainerStats>("GET", containersPath(vm, `/${enc(ref)}/stats`));
    rows.push([
      ref,
      `${(s.cpuUsageUs / 1e6).toFixed(2)}s`,
      `${humanSize(s.memoryBytes)} / ${s.memoryLimitBytes ? humanSize(s.memoryLimitBytes) : "-"}`,
      humanSize(s.memoryPeakBytes),
      `${s.pids}${s.pidsLimit ? ` / ${s.pidsLimit}` : ""}`,
    ]);
  }
  write(table(["CONTAINER", "CPU TIME", "MEM USAGE / LIMIT", "MEM PEAK", "PIDS"], rows));
  return 0;
}

async function hypervisorStats(): Promise<number> {
  const s = await (await containerDaemon("stats")).call<Omit<HypervisorStats, "vms"> & { vms: Array<HypervisorStats["vms"][number] & { containers?: ContainerJson[] }> }>("GET", "/stats");
  const b = s.budget;
  write(`memory budget: ${mib(b.usedMiB)} of ${mib(b.totalMiB)} reserved (${mib(b.freeMiB)} free; warm pool ${mib(b.warmPoolMiB)})\n`);
  if (s.sharing) write(sharingLines(s.sharing));
  write("\n");
  const rows = s.vms.flatMap((v) => {
    const m = v.metrics;
    const guest = m?.memory.guest;
    // The containers a VM hosts, one line each under it: the stack as the page's hypervisor panel draws it.
    const hosted = (v.containers ?? []).map((c) => [`  └ ${c.name}`, c.status, "", "", "", "", "", `${c.image} (${c.id.slice(0, 12)})`]);
    return [[
      v.name,
      v.state,
      String(v.cpuShare),
      m ? `${(m.cpu.instructionsPerSecond / 1e6).toFixed(1)}M` : "-",
      m ? `${(m.cpu.instructions / 1e6).toFixed(0)}M` : "-",
      mib(v.memoryMiB),
      guest ? `${(guest.usedKiB / 1024).toFixed(1)} MiB` : "-",
      m ? `${humanSize(m.devices.consoleOut + m.devices.consoleIn)} / ${humanSize(m.devices.controlOut + m.devices.controlIn)}` : "-",
    ], ...hosted];
  });
  write(table(["VM", "STATE", "CPU SHARE", "INSTR/S", "INSTRUCTIONS", "MEM ALLOCATED", "MEM USED (GUEST)", "CONSOLE / AGENT BYTES"], rows));
  return 0;
}

export const statsVerb: Verb = {
  name: "stats",
  summary: "the VMs' memory budget, allocation and use (with containers: their usage)",
  run: async (args) => {
    const parsed = parseVerb("stats", USAGE, args, { options: { "no-stream": { type: "boolean" }, ...VM_OPTION } });
    if (parsed === "help") return write(HELP), 0;
    return parsed.positionals.length ? containerStats(parsed.values.vm, parsed.positionals) : hypervisorStats();
  },
};
