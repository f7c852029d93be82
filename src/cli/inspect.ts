// `hyperlab inspect`: containers' details as JSON.
import { parseVerb } from "./args.ts";
import { containerDaemon, enc } from "./container-refs.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab inspect CONTAINER...";
const HELP = `Usage: ${USAGE}

Prints containers' details as a JSON array.
`;

export const inspectVerb: Verb = {
  name: "inspect",
  summary: "print a container's details as JSON",
  run: async (args) => {
    const parsed = parseVerb("inspect", USAGE, args, { options: {}, positionals: { min: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const d = await containerDaemon("inspect");
    const out = [];
    for (const ref of parsed.positionals) out.push(await d.call("GET", `/containers/${enc(ref)}/json`));
    write(JSON.stringify(out, null, 4) + "\n");
    return 0;
  },
};
