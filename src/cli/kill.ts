// `hyperlab kill`: a signal to each container's init.
import { parseVerb } from "./args.ts";
import { VM_HELP, VM_OPTION, containersPath, enc, forEachContainer } from "./container-refs.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab kill [-s SIGNAL] [--vm NAME] CONTAINER...";
const HELP = `Usage: ${USAGE}

Sends a signal to running containers (to each one's PID 1).

Options:
  -s, --signal SIGNAL   the signal, by name or number (default KILL)
${VM_HELP}
  -h, --help            show this help
`;

export const killVerb: Verb = {
  name: "kill",
  summary: "send a signal to containers (-s SIGNAL, default KILL)",
  run: async (args) => {
    const parsed = parseVerb("kill", USAGE, args, { options: { signal: { type: "string", short: "s" }, ...VM_OPTION }, positionals: { min: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const signal = parsed.values.signal ?? "KILL";
    return forEachContainer("kill", parsed.positionals, (d, ref) => d.call("POST", containersPath(parsed.values.vm, `/${enc(ref)}/kill?signal=${enc(signal)}`)));
  },
};
