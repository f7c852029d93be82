// `hyperlab stop`: SIGTERM to each container, SIGKILL after the grace time.
import { parseVerb, wholeNumber } from "./args.ts";
import { VM_HELP, VM_OPTION, containersPath, enc, forEachContainer } from "./container-refs.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab stop [-t SECONDS] [--vm NAME] CONTAINER...";
const HELP = `Usage: ${USAGE}

Stops running containers: SIGTERM, then SIGKILL if still running after the grace time.

Options:
  -t, --time SECONDS   grace time before SIGKILL (default 10)
${VM_HELP}
  -h, --help           show this help
`;

export const stopVerb: Verb = {
  name: "stop",
  summary: "stop containers (SIGTERM, then SIGKILL after -t seconds, default 10)",
  run: async (args) => {
    const parsed = parseVerb("stop", USAGE, args, { options: { time: { type: "string", short: "t" }, ...VM_OPTION }, positionals: { min: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const t = wholeNumber("--time", parsed.values.time) ?? 10;
    return forEachContainer("stop", parsed.positionals, (d, ref) => d.call("POST", containersPath(parsed.values.vm, `/${enc(ref)}/stop?t=${t}`)));
  },
};
