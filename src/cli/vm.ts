// `hyperlab vm ...` and `hyperlab stats`: the hypervisor's VMs, through the
// daemon (docs/api.md). A table: subcommand → handler. VMs live in the
// daemon: without one, these commands say how to start it.
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { HyperlabError } from "../errors.ts";
import type { ExecResult } from "../guest/agent.ts";
import type { HypervisorStats, PageSharing } from "../hypervisor/hypervisor.ts";
import { readSnapshotHeader } from "../hypervisor/snapshot.ts";
import type { VmInfo } from "../hypervisor/vm.ts";
import { containerVerbs } from "./containers.ts";
import { type DaemonClient, defaultSocketPath, findDaemon } from "./daemon-api.ts";
import { ago, humanSize, table } from "./format.ts";

const HELP = `Usage: hyperlab vm COMMAND [OPTIONS]

Manages the daemon's VMs: each a whole Linux guest in its own worker, with its
own memory (reserved from the host's budget) and CPU share.

Commands:
  create [--name NAME] [--memory MIB] [--cpu-share N] [--cold]
                              create and start a VM (from the warm pool or the
                              boot snapshot; --cold boots the kernel)
  ls                          list VMs
  exec VM COMMAND [ARG...]    run a command in a VM, with its exit status
  pause VM...                 stop VMs' CPUs (memory and devices stay)
  resume VM...                let paused VMs run again
  snapshot VM FILE [--full]   save a VM's state to FILE (of a VM started from
                              the boot snapshot, only what differs from it;
                              --full stores the whole state)
  restore FILE [--name NAME] [--cpu-share N]
                              start a new VM from a snapshot file
  fork VM [-n N]              make N running copies of a VM (default 1)
  update --cpu-share N VM...  change VMs' CPU share (applies at once)
  rm VM...                    destroy VMs (any state) and free their memory

VM is a name or an id prefix. 'hyperlab stats' shows the memory budget,
each VM's allocation and use, and the pages the VMs could share.
`;

async function daemon(verb: string): Promise<DaemonClient> {
  const client = await findDaemon();
  if (!client) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `'hyperlab ${verb}' needs a running daemon (none answers on ${defaultSocketPath()}): VMs live in the daemon. Start one with 'hyperlab daemon &'.`,
    );
  }
  return client;
}

const write = (s: string) => void process.stdout.write(s);
const enc = encodeURIComponent;

/** Runs a parseArgs call, turning its complaints into INVALID_ARGUMENT. */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `${(err as Error).message}. See 'hyperlab vm --help'.`);
  }
}

function need(values: string[], n: number, usage: string): void {
  if (values.length < n) throw new HyperlabError("INVALID_ARGUMENT", `usage: hyperlab vm ${usage}`);
}

function number(flag: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new HyperlabError("INVALID_ARGUMENT", `${flag} needs a positive number, not '${String(value)}'`);
  return n;
}

/** POSTs `path(vm)` for each VM named and prints its name. */
async function each(verb: string, args: string[], path: (vm: string) => string, method = "POST"): Promise<number> {
  need(args, 1, `${verb} VM...`);
  const d = await daemon(`vm ${verb}`);
  for (const vm of args) {
    await d.call(method, path(vm));
    write(`${vm}\n`);
  }
  return 0;
}

const mib = (n: number) => `${n} MiB`;

/** Each `vm` subcommand: its handler, resolving to the exit status. */
const subcommands: Record<string, (args: string[]) => Promise<number>> = {
  create: async (args) => {
    const options = {
      name: { type: "string" },
      memory: { type: "string", short: "m" },
      "cpu-share": { type: "string" },
      cold: { type: "boolean" },
    } as const;
    const { values } = parsed(() => parseArgs({ args, options, strict: true }));
    const vm = await (await daemon("vm create")).call<VmInfo>("POST", "/vms", {
      name: values.name,
      memoryMiB: number("--memory", values.memory),
      cpuShare: number("--cpu-share", values["cpu-share"]),
      cold: values.cold,
    });
    write(`${vm.name}\n`);
    return 0;
  },
  ls: async () => {
    const vms = await (await daemon("vm ls")).call<VmInfo[]>("GET", "/vms");
    const rows = vms.map((v) => [v.name, v.id.slice(0, 12), v.state, mib(v.memoryMiB), String(v.cpuShare), v.origin, ago(new Date(v.createdAt))]);
    write(table(["NAME", "VM ID", "STATE", "MEMORY", "CPU SHARE", "STARTED FROM", "CREATED"], rows));
    return 0;
  },
  exec: async (args) => {
    need(args, 2, "exec VM COMMAND [ARG...]");
    const [vm, ...argv] = args;
    const r = await (await daemon("vm exec")).call<ExecResult>("POST", `/vms/${enc(vm!)}/exec`, { argv });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    return r.signal ? 128 + r.signal : r.exitCode;
  },
  pause: (args) => each("pause", args, (vm) => `/vms/${enc(vm)}/pause`),
  resume: (args) => each("resume", args, (vm) => `/vms/${enc(vm)}/resume`),
  rm: (args) => each("rm", args, (vm) => `/vms/${enc(vm)}`, "DELETE"),
  snapshot: async (args) => {
    const { values, positionals } = parsed(() => parseArgs({ args, options: { full: { type: "boolean" } }, allowPositionals: true, strict: true }));
    need(positionals, 2, "snapshot VM FILE [--full]");
    const [vm, file] = positionals;
    const { data } = await (await daemon("vm snapshot")).bytes("POST", `/vms/${enc(vm!)}/snapshot${values.full ? "?full=1" : ""}`);
    await writeFile(file!, data);
    const delta = readSnapshotHeader(data).delta;
    write(`${file} (${humanSize(data.length)}${delta ? `, ${delta.changedPages} pages changed since the boot snapshot` : ""})\n`);
    return 0;
  },
  restore: async (args) => {
    const { values, positionals } = parsed(() => parseArgs({ args, options: { name: { type: "string" }, "cpu-share": { type: "string" } }, allowPositionals: true, strict: true }));
    need(positionals, 1, "restore FILE [--name NAME] [--cpu-share N]");
    let bytes: Buffer;
    try {
      bytes = await readFile(positionals[0]!);
    } catch (err) {
      throw new HyperlabError("INVALID_ARGUMENT", `cannot read snapshot file ${positionals[0]}: ${(err as Error).message}`);
    }
    const query = new URLSearchParams();
    if (values.name) query.set("name", String(values.name));
    const share = number("--cpu-share", values["cpu-share"]);
    if (share !== undefined) query.set("cpuShare", String(share));
    const { data } = await (await daemon("vm restore")).bytes("POST", `/vms/restore?${query}`, bytes);
    write(`${(JSON.parse(data.toString("utf8")) as VmInfo).name}\n`);
    return 0;
  },
  fork: async (args) => {
    const { values, positionals } = parsed(() => parseArgs({ args, options: { count: { type: "string", short: "n" } }, allowPositionals: true, strict: true }));
    need(positionals, 1, "fork VM [-n N]");
    const count = number("-n", values.count) ?? 1;
    const forks = await (await daemon("vm fork")).call<VmInfo[]>("POST", `/vms/${enc(positionals[0]!)}/fork`, { count });
    for (const f of forks) write(`${f.name}\n`);
    return 0;
  },
  update: async (args) => {
    const { values, positionals } = parsed(() => parseArgs({ args, options: { "cpu-share": { type: "string" } }, allowPositionals: true, strict: true }));
    const cpuShare = number("--cpu-share", values["cpu-share"]);
    if (cpuShare === undefined) throw new HyperlabError("INVALID_ARGUMENT", "usage: hyperlab vm update --cpu-share N VM...");
    need(positionals, 1, "update --cpu-share N VM...");
    const d = await daemon("vm update");
    for (const vm of positionals) {
      await d.call("PATCH", `/vms/${enc(vm)}`, { cpuShare });
      write(`${vm}\n`);
    }
    return 0;
  },
};

/** Runs `hyperlab vm SUBCOMMAND ...`. */
export async function vmCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === "--help" || sub === "-h" || rest.includes("--help")) {
    write(HELP);
    return 0;
  }
  const run = subcommands[sub];
  if (!run) throw new HyperlabError("INVALID_ARGUMENT", `'${sub}' is not a 'hyperlab vm' command. See 'hyperlab vm --help'.`);
  return run(rest);
}

/** Page sharing as `hyperlab stats` prints it: counts of pages, and what they come to in MiB. */
export function sharingLines(p: PageSharing): string {
  const size = (pages: number) => `${((pages * p.pageSize) / 2 ** 20).toFixed(1)} MiB`;
  const n = (x: number) => x.toLocaleString("en-US");
  return (
    `pages shareable across VMs: ${n(p.crossVmPages)} of ${n(p.totalPages)} (${size(p.crossVmPages)}; ${p.vms} VM${p.vms === 1 ? "" : "s"}: ${p.names.join(", ")})\n` +
    `identical pages (what KSM would merge): ${n(p.shareablePages)}, ${n(p.zeroPages)} of them zero; merging frees ${n(p.savedPages)} pages (${size(p.savedPages)})\n`
  );
}

/**
 * `hyperlab stats`: the memory budget, the pages the running and paused VMs
 * could share (identical pages, what KSM would merge), and each VM's
 * allocation and use (CPU by emulated instructions, memory allocated vs used
 * by the guest, device bytes). With container names it shows those containers.
 */
export async function statsCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    write(
      "Usage: hyperlab stats [CONTAINER...]\n\nWithout arguments: the daemon's memory budget, the pages its VMs could share, and each VM's allocation and use.\n" +
        "With containers: their memory, CPU and pids usage.\n",
    );
    return 0;
  }
  if (args.length > 0) return containerVerbs.stats!.run(args);
  const s = await (await daemon("stats")).call<HypervisorStats>("GET", "/stats");
  const b = s.budget;
  write(`memory budget: ${mib(b.usedMiB)} of ${mib(b.totalMiB)} reserved (${mib(b.freeMiB)} free; warm pool ${mib(b.warmPoolMiB)})\n`);
  if (s.sharing) write(sharingLines(s.sharing));
  write("\n");
  const rows = s.vms.map((v) => {
    const m = v.metrics;
    const guest = m?.memory.guest;
    return [
      v.name,
      v.state,
      String(v.cpuShare),
      m ? `${(m.cpu.instructionsPerSecond / 1e6).toFixed(1)}M` : "-",
      m ? `${(m.cpu.instructions / 1e6).toFixed(0)}M` : "-",
      mib(v.memoryMiB),
      guest ? `${(guest.usedKiB / 1024).toFixed(1)} MiB` : "-",
      m ? `${humanSize(m.devices.consoleOut + m.devices.consoleIn)} / ${humanSize(m.devices.controlOut + m.devices.controlIn)}` : "-",
    ];
  });
  write(table(["VM", "STATE", "CPU SHARE", "INSTR/S", "INSTRUCTIONS", "MEM ALLOCATED", "MEM USED (GUEST)", "CONSOLE / AGENT BYTES"], rows));
  return 0;
}
