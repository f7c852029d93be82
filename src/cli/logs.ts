// `hyperlab logs`: a container's output so far, stdout and stderr apart.
import { parseVerb } from "./args.ts";
import { VM_HELP, VM_OPTION, containerDaemon, containersPath, enc } from "./container-refs.ts";
import { writeOutput } from "./terminal.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab logs [--vm NAME] CONTAINER";
const HELP = `Usage: ${USAGE}

Prints what a container wrote so far: its stdout to stdout, its stderr to stderr.

Options:
${VM_HELP}
`;

export const logsVerb: Verb = {
  name: "logs",
  summary: "print a container's output",
  run: async (args) => {
    const parsed = parseVerb("logs", USAGE, args, { options: { ...VM_OPTION }, positionals: { min: 1, max: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const logs = await (await containerDaemon("logs")).call<Array<{ stream: 1 | 2; data: string }>>("GET", containersPath(parsed.values.vm, `/${enc(parsed.positionals[0]!)}/logs`));
    for (const l of logs) writeOutput(l.stream, Buffer.from(l.data, "base64"));
    return 0;
  },
};
