// `hyperlab network ...`: a VM's container networks, through the daemon
// (docs/api.md). A table: subcommand → its usage and handler. Networks live
// in the daemon's VMs: without a daemon, these commands say how to start it.
import { HyperlabError } from "../errors.ts";
import type { NetworkJson } from "../daemon/v1.ts";
import { type Subcommand, type VerbOptions, type VerbSpec, runSubcommand, subcommand } from "./args.ts";
import { enc } from "./container-refs.ts";
import { type DaemonClient, needDaemon } from "./daemon-client.ts";
import { ago, table } from "./format.ts";
import { type Verb, write } from "./verb.ts";

const HELP = `Usage: hyperlab network COMMAND [OPTIONS]

Manages a VM's container networks. Each user network is a bridge of its own
in the guest: its containers reach each other by container name (and
--network-alias), and not the containers of other networks. Run a container
on one with 'hyperlab run --network NAME'.

Commands:
  create [--subnet CIDR] [--gateway IP] [--internal] [--label KEY=VALUE]... NAME
                              create a network (default subnet: the first free
                              /24 of 10.89.0.0/16; --internal: no default route)
  ls                          list networks (bridge and none are predefined)
  inspect NETWORK...          print networks' details as JSON, with their
                              containers
  rm NETWORK...               remove networks (refused while a container on one
                              runs)

Every command takes --vm NAME: the daemon's VM (default: default).
NETWORK is a name or an id prefix.
`;

const VM_OPTION = { vm: { type: "string" } } as const;
const daemon = (verb: string): Promise<DaemonClient> => needDaemon(verb, "Networks live in the daemon's VMs.");
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
/** /networks of the VM named, or of `default`. */
const networksPath = (vm: string | undefined, rest = "") => (vm === undefined ? `/networks${rest}` : `/vms/${enc(vm)}/networks${rest}`);


/** A `network` subcommand; each takes --vm. */
function sub<O extends VerbOptions>(usage: string, spec: VerbSpec<O>, run: Subcommand["run"]): Subcommand {
  return subcommand("network", usage, { ...spec, options: { ...VM_OPTION, ...spec.options } }, run);
}

/** `KEY=VALUE` labels as a map (a bare KEY is an empty value, as in Docker). */
function labels(given: unknown): Record<string, string> | undefined {
  if (!Array.isArray(given) || !given.length) return undefined;
  return Object.fromEntries(
    (given as string[]).map((l) => {
      const at = l.indexOf("=");
      if (at === 0) throw new HyperlabError("INVALID_ARGUMENT", `invalid label '${l}': use KEY=VALUE`);
      return at < 0 ? [l, ""] : [l.slice(0, at), l.slice(at + 1)];
    }),
  );
}

/** Each `network` subcommand. */
const subcommands: Record<string, Subcommand> = {
  create: sub(
    "create [--subnet CIDR] [--gateway IP] [--internal] [--label KEY=VALUE]... [--vm NAME] NAME",
    {
      options: { subnet: { type: "string" }, gateway: { type: "string" }, internal: { type: "boolean" }, label: { type: "string", multiple: true } },
      positionals: { min: 1, max: 1 },
    },
    async (v, [name]) => {
      const net = await (await daemon("network create")).call<NetworkJson>("POST", networksPath(str(v.vm)), {
        name,
        subnet: str(v.subnet),
        gateway: str(v.gateway),
        internal: v.internal === true,
        labels: labels(v.label),
      });
      write(`${net.id}\n`);
      return 0;
    },
  ),
  ls: sub("ls [--vm NAME]", { options: {}, positionals: { max: 0 } }, async (v) => {
    const nets = await (await daemon("network ls")).call<NetworkJson[]>("GET", networksPath(str(v.vm)));
    const rows = nets.map((n) => [
      n.id.slice(0, 12),
      n.name,
      n.driver,
      n.subnet || "-",
      n.gateway || "-",
      String(n.containers.filter((c) => c.status === "running").length),
      n.builtin ? "-" : ago(new Date(n.createdAt)),
    ]);
    write(table(["NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY", "RUNNING", "CREATED"], rows));
    return 0;
  }),
  inspect: sub("inspect [--vm NAME] NETWORK...", { options: {}, positionals: { min: 1 } }, async (v, refs) => {
    const d = await daemon("network inspect");
    const out = [];
    for (const ref of refs) out.push(await d.call<NetworkJson>("GET", networksPath(str(v.vm), `/${enc(ref)}`)));
    write(JSON.stringify(out, null, 4) + "\n");
    return 0;
  }),
  rm: sub("rm [--vm NAME] NETWORK...", { options: {}, positionals: { min: 1 } }, async (v, refs) => {
    const d = await daemon("network rm");
    for (const ref of refs) {
      await d.call("DELETE", networksPath(str(v.vm), `/${enc(ref)}`));
      write(`${ref}\n`);
    }
    return 0;
  }),
};

export const networkVerb: Verb = {
  name: "network",
  summary: "manage container networks: create, ls, inspect, rm",
  run: (args) => runSubcommand("network", HELP, subcommands, args),
};
