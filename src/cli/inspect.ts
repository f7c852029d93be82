// `hyperlab inspect`: containers' details as JSON.
import { parseVerb } from "./args.ts";
import { VM_HELP, VM_OPTION, containerDaemon, containersPath, enc } from "./container-refs.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab inspect [--vm NAME] CONTAINER...";
const HELP = `Usage: ${USAGE}

Prints containers' details as a JSON array.

Options:
${VM_HELP}
`;

export const inspectVerb: Verb = {
  name: "inspect",
  summary: "print a container's details as JSON",
  run: async (args) => {
    const parsed = parseVerb("inspect", USAGE, args, { options: { ...VM_OPTION }, positionals: { min: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const d = await containerDaemon("inspect");
    const out = [];
    for (const ref of parsed.positionals) out.push(await d.call("GET", containersPath(parsed.values.vm, `/${enc(ref)}/json`)));
    write(JSON.stringify(out, null, 4) + "\n");
    return 0;
  },
};
