// `hyperlab vm ...`: the hypervisor's VMs, through the daemon (docs/api.md).
// A table: subcommand → its usage and handler. VMs live in the daemon:
// without one, these commands say how to start it.
import { readFile, writeFile } from "node:fs/promises";
import { HyperlabError } from "../errors.ts";
import type { ExecResult } from "../guest/agent.ts";
import { readSnapshotHeader } from "../hypervisor/snapshot.ts";
import type { NetworkInfo } from "../hypervisor/networks.ts";
import type { VmInfo } from "../hypervisor/vm.ts";
import { type Subcommand as VerbSubcommand, type VerbOptions, type VerbSpec, parseVerb, pickSubcommand, positiveNumber, subcommand } from "./args.ts";
import { type DaemonClient, needDaemon } from "./daemon-client.ts";
import { ago, humanSize, table } from "./format.ts";
import { type Verb, write } from "./verb.ts"
;

const HELP = `Usage: hyperlab vm COMMAND [OPTIONS]

Manages the daemon's VMs: each a whole Linux guest in its own worker, with its
own memory (reserved from the host's budget) and CPU share.

Commands:
  create [--name NAME] [--memory MIB] [--cpu-share N] [--cold] [--net NAME]
         [--profile NAME]
                              create and start a VM (from the warm pool or the
                              boot snapshot; --cold boots the kernel) on
                              network NAME (default 'default'; 'none': unplugged),
                              running guest profile NAME (default 'default';
                              'lxc': LXC 5.0, see docs/profiles.md)
  net create NAME [--subnet CIDR] [--isolated]
                              create a network of VMs (a virtual switch)
  net ls                      list the networks
  net inspect NAME            a network's subnet and VMs (MAC, address), as JSON
  net rm NAME                 remove a network no VM is on
  ls                          list VMs
  inspect VM                  a VM's details (profile, memory, network…), as JSON
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

const daemon = (verb: string): Promise<DaemonClient> => needDaemon(verb, "VMs live in the daemon.");
const enc = encodeURIComponent;
const mib = (n: number) => `${n} MiB`;

/** One `vm` subcommand (its options are strings and booleans). */
type Subcommand = VerbSubcommand<Record<string, string | boolean | undefined>>;

const sub = <O extends VerbOptions>(usage: string, spec: VerbSpec<O>, run: Subcommand["run"]): Subcommand => subcommand("vm", usage, spec, run);

/** Sends `method path(vm)` for each VM named and prints its name. */
async function each(verb: string, vms: string[], path: (vm: string) => string, method = "POST"): Promise<number> {
  const d = await daemon(`vm ${verb}`);
  for (const vm of vms) {
    await d.call(method, path(vm));
    write(`${vm}\n`);
  }
  return 0;
}

const str = (v: string | boolean | undefined): string | undefined => (typeof v === "string" ? v : undefined);

/** Each `vm` subcommand. */
const subcommands: Record<string, Subcommand> = {
  create: sub(
    "create [--name NAME] [--memory MIB] [--cpu-share N] [--cold] [--net NAME] [--profile NAME]",
    { options: { name: { type: "string" }, memory: { type: "string", short: "m" }, "cpu-share": { type: "string" }, cold: { type: "boolean" }, net: { type: "string" }, profile: { type: "string" } }, positionals: { max: 0 } },
    async (v) => {
      const vm = await (await daemon("vm create")).call<VmInfo>("POST", "/vms", {
        name: str(v.name),
        memoryMiB: positiveNumber("--memory", str(v.memory)),
        cpuShare: positiveNumber("--cpu-share", str(v["cpu-share"])),
        cold: v.cold === true,
        net: str(v.net),
        profile: str(v.profile),
      });
      write(`${vm.name}\n`);
      return 0;
    },
  ),
  ls: sub("ls", { options: {}, positionals: { max: 0 } }, async () => {
    const vms = await (await daemon("vm ls")).call<VmInfo[]>("GET", "/vms");
    const rows = vms.map((v) => [v.name, v.id.slice(0, 12), v.state, v.profile ?? "default", mib(v.memoryMiB), String(v.cpuShare), v.origin, v.network ? `${v.network.name} ${v.network.address}` : "-", ago(new Date(v.createdAt))]);
    write(table(["NAME", "VM ID", "STATE", "PROFILE", "MEMORY", "CPU SHARE", "STARTED FROM", "NETWORK", "CREATED"], rows));
    return 0;
  }),
  inspect: sub("inspect VM", { options: {}, positionals: { min: 1, max: 1 } }, async (_v, [vm]) => {
    const info = await (await daemon("vm inspect")).call<VmInfo>("GET", `/vms/${enc(vm!)}`);
    write(`${JSON.stringify(info, null, 2)}\n`);
    return 0;
  }),
  exec: sub("exec VM COMMAND [ARG...]", { options: {}, positionals: { min: 1, max: 1 } }, async (_v, [vm, ...argv]) => {
    const r = await (await daemon("vm exec")).call<ExecResult>("POST", `/vms/${enc(vm!)}/exec`, { argv });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    return r.signal ? 128 + r.signal : r.exitCode;
  }),
  pause: sub("pause VM...", { options: {}, positionals: { min: 1 } }, (_v, vms) => each("pause", vms, (vm) => `/vms/${enc(vm)}/pause`)),
  resume: sub("resume VM...", { options: {}, positionals: { min: 1 } }, (_v, vms) => each("resume", vms, (vm) => `/vms/${enc(vm)}/resume`)),
  rm: sub("rm VM...", { options: {}, positionals: { min: 1 } }, async (_v, vms) => {
    const d = await daemon("vm rm");
    for (const vm of vms) {
      // A VM's containers go with it: say which.
      const { containers } = await d.call<{ containers: Array<{ name: string }> }>("DELETE", `/vms/${enc(vm)}`);
      write(containers.length ? `${vm} (with its containers: ${containers.map((c) => c.name).join(", ")})\n` : `${vm}\n`);
    }
    return 0;
  }),
  snapshot: sub("snapshot VM FILE [--full]", { options: { full: { type: "boolean" } }, positionals: { min: 2, max: 2 } }, async (v, [vm, file]) => {
    const { data } = await (await daemon("vm snapshot")).bytes("POST", `/vms/${enc(vm!)}/snapshot${v.full ? "?full=1" : ""}`);
    await writeFile(file!, data);
    const delta = readSnapshotHeader(data).delta;
    write(`${file} (${humanSize(data.length)}${delta ? `, ${delta.changedPages} pages changed since the boot snapshot` : ""})\n`);
    return 0;
  }),
  restore: sub(
    "restore FILE [--name NAME] [--cpu-share N]",
    { options: { name: { type: "string" }, "cpu-share": { type: "string" } }, positionals: { min: 1, max: 1 } },
    async (v, [file]) => {
      let bytes: Buffer;
      try {
        bytes = await readFile(file!);
      } catch (err) {
        throw new HyperlabError("INVALID_ARGUMENT", `cannot read snapshot file ${file}: ${(err as Error).message}`);
      }
      const query = new URLSearchParams();
      if (str(v.name)) query.set("name", str(v.name)!);
      const share = positiveNumber("--cpu-share", str(v["cpu-share"]));
      if (share !== undefined) query.set("cpuShare", String(share));
      const { data } = await (await daemon("vm restore")).bytes("POST", `/vms/restore?${query}`, bytes);
      write(`${(JSON.parse(data.toString("utf8")) as VmInfo).name}\n`);
      return 0;
    },
  ),
  fork: sub(
    "fork VM [-n N]",
    {
      options: { count: { type: "string", short: "n" } },
      positionals: { min: 1, max: 1 },
      extraHint: ([vm, n]) => `The number of copies is given with -n: 'hyperlab vm fork ${vm} -n ${n}'.`,
    }, async (v, [vm]) => {
    const count = positiveNumber("-n", str(v.count)) ?? 1;
    const forks = await (await daemon("vm fork")).call<VmInfo[]>("POST", `/vms/${enc(vm!)}/fork`, { count });
    for (const f of forks) write(`${f.name}\n`);
    return 0;
  }),
  net: sub(
    "net create NAME [--subnet CIDR] [--isolated] | net ls | net inspect NAME | net rm NAME",
    { options: { subnet: { type: "string" }, isolated: { type: "boolean" } }, positionals: { min: 1, max: 2 } },
    async (v, [action, name]) => {
      const d = await daemon(`vm net ${action}`);
      const needName = () => {
        if (!name) throw new HyperlabError("INVALID_ARGUMENT", `'hyperlab vm net ${action}' needs a network name.\nSee 'hyperlab vm --help'.`);
        return name;
      };
      if ((v.subnet !== undefined || v.isolated !== undefined) && action !== "create") {
        throw new HyperlabError("INVALID_ARGUMENT", `--subnet and --isolated belong to 'hyperlab vm net create', not 'net ${action}'.`);
      }
      switch (action) {
        case "create": {
          const n = await d.call<NetworkInfo>("POST", "/vm-networks", { name: needName(), subnet: str(v.subnet), isolated: v.isolated === true });
          write(`${n.name} ${n.subnet}\n`);
          return 0;
        }
        case "ls": {
          if (name) throw new HyperlabError("INVALID_ARGUMENT", "'hyperlab vm net ls' takes no arguments.");
          const nets = await d.call<NetworkInfo[]>("GET", "/vm-networks");
          write(table(["NAME", "SUBNET", "GATEWAY", "ISOLATED", "VMS"], nets.map((n) => [n.name, n.subnet, n.gateway, n.isolated ? "yes" : "no", n.vms.map((m) => m.vm).join(",") || "-"])));
          return 0;
        }
        case "inspect":
          write(`${JSON.stringify(await d.call<NetworkInfo>("GET", `/vm-networks/${enc(needName())}`), null, 2)}\n`);
          return 0;
        case "rm":
          await d.call("DELETE", `/vm-networks/${enc(needName())}`);
          write(`${name}\n`);
          return 0;
        default:
          throw new HyperlabError("INVALID_ARGUMENT", `'${action}' is not a 'hyperlab vm net' command (create, ls, inspect, rm).\nSee 'hyperlab vm --help'.`);
      }
    },
  ),
  update: sub("update --cpu-share N VM...", { options: { "cpu-share": { type: "string" } }, positionals: { min: 1 } }, async (v, vms) => {
    const cpuShare = positiveNumber("--cpu-share", str(v["cpu-share"]));
    if (cpuShare === undefined) throw new HyperlabError("INVALID_ARGUMENT", "'hyperlab vm update' needs --cpu-share N\nUsage: hyperlab vm update --cpu-share N VM...");
    const d = await daemon("vm update");
    for (const vm of vms) {
      await d.call("PATCH", `/vms/${enc(vm)}`, { cpuShare });
      write(`${vm}\n`);
    }
    return 0;
  }),
};

export const vmVerb: Verb = {
  name: "vm",
  summary: "manage VMs: create, ls, inspect, exec, pause, resume, snapshot, restore, fork, update, rm, net",
  run: async (args) => {
    const [name, ...rest] = args;
    const command = pickSubcommand("vm", subcommands, name);
    if (command === "help") return write(HELP), 0;
    // `vm exec VM COMMAND...`: what follows the VM is the guest's command, flags and all.
    const parseArgs = name === "exec" ? rest.slice(0, Math.max(1, rest.findIndex((a) => !a.startsWith("-")) + 1)) : rest;
    const parsed = parseVerb(`vm ${name}`, command.usage, parseArgs, command.spec);
    if (parsed === "help") return write(HELP), 0;
    const positionals = name === "exec" ? [...parsed.positionals, ...rest.slice(parseArgs.length)] : parsed.positionals;
    if (name === "exec" && positionals.length < 2) {
      throw new HyperlabError("INVALID_ARGUMENT", `'hyperlab vm exec' needs a VM and a command.\nUsage: ${command.usage}\nSee 'hyperlab vm --help'.`);
    }
    return command.run(parsed.values as Record<string, string | boolean | undefined>, positionals);
  },
};
