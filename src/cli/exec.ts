// `hyperlab exec`: a command in a running container, its output streamed;
// with -i/-t over an upgraded two-way stream (stdin, terminal size).
import { API_VERSION } from "../daemon/socket.ts";
import { usageError } from "./args.ts";
import { containerDaemon, containersPath, enc } from "./container-refs.ts";
import { openStream } from "./daemon-client.ts";
import { attachTerminal, terminalSize, writeOutput } from "./terminal.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab exec [-i] [-t] [-e KEY=VALUE] [--vm NAME] CONTAINER COMMAND [ARG...]";
const HELP = `Usage: ${USAGE}

Runs a command in a running container and exits with its status.

Options:
  -i, --interactive     keep stdin open
  -t, --tty             allocate a pseudo-terminal
  -e, --env KEY=VALUE   set an environment variable (repeatable)
      --vm NAME         the VM the container is in (default: default)
  -h, --help            show this help
`;

interface ExecFlags {
  vm?: string;
  interactive?: boolean;
  tty?: boolean;
  env: string[];
}

/** Flags end at the container, as in Docker: what follows is the command. */
function parseExecArgs(args: string[]): { flags: ExecFlags; ref: string; argv: string[] } | "help" {
  const flags: ExecFlags = { env: [] };
  let i = 0;
  for (; i < args.length && args[i]!.startsWith("-"); i++) {
    const arg = args[i]!;
    const letters = /^-[a-zA-Z]+$/.test(arg) ? [...arg.slice(1)] : [];
    if (arg === "--help" || arg === "-h") return "help";
    if (letters.length && letters.every((c) => c === "i" || c === "t")) {
      if (letters.includes("i")) flags.interactive = true;
      if (letters.includes("t")) flags.tty = true;
    } else if (arg === "--interactive") flags.interactive = true;
    else if (arg === "--tty") flags.tty = true;
    else if (arg === "-e" || arg === "--env") {
      const v = args[++i];
      if (v === undefined) throw usageError("exec", USAGE, `flag ${arg} needs a value`);
      flags.env.push(v);
    } else if (arg.startsWith("--env=")) flags.env.push(arg.slice("--env=".length));
    else if (arg === "--vm") {
      flags.vm = args[++i];
      if (flags.vm === undefined) throw usageError("exec", USAGE, `flag ${arg} needs a value`);
    } else if (arg.startsWith("--vm=")) flags.vm = arg.slice("--vm=".length);
    else throw usageError("exec", USAGE, `unknown flag: ${arg}`);
  }
  const [ref, ...argv] = args.slice(i);
  if (!ref || argv.length === 0) throw usageError("exec", USAGE, `'hyperlab exec' needs a container and a command.`);
  return { flags, ref, argv };
}

export const execVerb: Verb = {
  name: "exec",
  summary: "run a command in a running container (-i: keep stdin open, -t: allocate a terminal, -e KEY=VALUE)",
  run: async (args) => {
    const parsed = parseExecArgs(args);
    if (parsed === "help") return write(HELP), 0;
    const { flags, ref, argv } = parsed;
    const client = await containerDaemon("exec");
    if (!flags.interactive && !flags.tty) {
      return client.stream("POST", containersPath(flags.vm, `/${enc(ref)}/exec`), { argv, env: flags.env }, writeOutput);
    }
    const options = { argv, env: flags.env, interactive: flags.interactive, tty: flags.tty ? terminalSize() : undefined };
    const stream = await openStream(client.socketPath, `/${API_VERSION}${containersPath(flags.vm, `/${enc(ref)}/exec`)}?options=${enc(JSON.stringify(options))}`, writeOutput);
    return attachTerminal(stream, flags);
  },
};

