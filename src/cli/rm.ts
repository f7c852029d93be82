// `hyperlab rm`: removes containers (their bundle, layer and cgroup in the guest).
import { parseVerb } from "./args.ts";
import { VM_HELP, VM_OPTION, containersPath, enc, forEachContainer } from "./container-refs.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab rm [-f] [--vm NAME] CONTAINER...";
const HELP = `Usage: ${USAGE}

Removes containers.

Options:
  -f, --force   kill a running container first
${VM_HELP}
  -h, --help    show this help
`;

export const rmVerb: Verb = {
  name: "rm",
  summary: "remove containers (-f: kill a running one first)",
  run: async (args) => {
    const parsed = parseVerb("rm", USAGE, args, { options: { force: { type: "boolean", short: "f" }, ...VM_OPTION }, positionals: { min: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const force = parsed.values.force ? "?force=1" : "";
    return forEachContainer("rm", parsed.positionals, (d, ref) => d.call("DELETE", containersPath(parsed.values.vm, `/${enc(ref)}${force}`)));
  },
};
