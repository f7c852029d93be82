// `hyperlab ps`: the daemon's containers, in Docker's columns.
import type { ContainerJson } from "../daemon/v1.ts";
import { parseVerb } from "./args.ts";
import { containerDaemon } from "./container-refs.ts";
import { ago, table } from "./format.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab ps [-a] [-q]";
const HELP = `Usage: ${USAGE}

Lists the daemon's containers (running ones unless -a).

Options:
  -a, --all     show all containers, not only running ones
  -q, --quiet   print only container ids
  -h, --help    show this help
`;

function status(c: ContainerJson): string {
  if (c.status === "running") return `Up ${ago(new Date(c.startedAt!)).replace(/ ago$/, "")}`;
  if (c.status === "exited") return `Exited (${c.exitCode}) ${ago(new Date(c.finishedAt!))}`;
  return "Created";
}

export const psVerb: Verb = {
  name: "ps",
  summary: "list containers (-a: all, not only running)",
  run: async (args) => {
    const parsed = parseVerb("ps", USAGE, args, { options: { all: { type: "boolean", short: "a" }, quiet: { type: "boolean", short: "q" } }, positionals: { max: 0 } });
    if (parsed === "help") return write(HELP), 0;
    const { all, quiet } = parsed.values;
    const list = await (await containerDaemon("ps")).call<ContainerJson[]>("GET", `/containers${all ? "?all=1" : ""}`);
    if (quiet) {
      write(list.map((c) => `${c.id.slice(0, 12)}\n`).join(""));
      return 0;
    }
    const rows = list.map((c) => [c.id.slice(0, 12), c.image, JSON.stringify(c.command.join(" ").slice(0, 20)), ago(new Date(c.createdAt)), status(c), "", c.name]);
    write(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows));
    return 0;
  },
};
