// `hyperlab ps`: the containers of one of the daemon's VMs (or of all), in
// Docker's columns.
import type { ContainerJson } from "../daemon/v1.ts";
import { parseVerb, usageError } from "./args.ts";
import { VM_OPTION, containerDaemon, containersPath } from "./container-refs.ts";
import { ago, table } from "./format.ts";
import { portsColumn } from "../containers/ports.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab ps [-a] [-q] [--vm NAME | --all-vms]";
const HELP = `Usage: ${USAGE}

Lists the containers of one of the daemon's VMs (running ones unless -a).

Options:
  -a, --all          show all containers, not only running ones
  -q, --quiet        print only container ids
      --vm NAME      the VM whose containers to list (default: default)
      --all-vms      every VM's containers, with a VM column
  -h, --help         show this help
`;

function status(c: ContainerJson): string {
  if (c.status === "running") return `Up ${ago(new Date(c.startedAt!)).replace(/ ago$/, "")}`;
  if (c.status === "exited") return `Exited (${c.exitCode}) ${ago(new Date(c.finishedAt!))}`;
  return "Created";
}

export const psVerb: Verb = {
  name: "ps",
  summary: "list containers (-a: all, not only running; --all-vms: in every VM)",
  run: async (args) => {
    const parsed = parseVerb("ps", USAGE, args, {
      options: { all: { type: "boolean", short: "a" }, quiet: { type: "boolean", short: "q" }, "all-vms": { type: "boolean" }, ...VM_OPTION },
      positionals: { max: 0 },
    });
    if (parsed === "help") return write(HELP), 0;
    const { all, quiet, vm } = parsed.values;
    const allVms = parsed.values["all-vms"] === true;
    if (allVms && vm !== undefined) throw usageError("ps", USAGE, "--vm and --all-vms cannot be used together.");
    const query = new URLSearchParams();
    if (all) query.set("all", "1");
    if (allVms) query.set("allVms", "1");
    const list = await (await containerDaemon("ps")).call<ContainerJson[]>("GET", `${containersPath(vm)}${query.size ? `?${query}` : ""}`);
    if (quiet) {
      write(list.map((c) => `${c.id.slice(0, 12)}\n`).join(""));
      return 0;
    }
    const head = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"];
    const row = (c: ContainerJson) => [c.id.slice(0, 12), c.image, JSON.stringify(c.command.join(" ").slice(0, 20)), ago(new Date(c.createdAt)), status(c), c.status === "running" ? portsColumn(c.ports, c.exposedPorts.filter((p) => !c.ports.some((b) => b.containerPort === p))) : "", c.name];
    write(allVms ? table(["VM", ...head], list.map((c) => [c.vm, ...row(c)])) : table(head, list.map(row)));
    return 0;
  },
};
