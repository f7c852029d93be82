// `hyperlab daemon`: starts the daemon (src/daemon/) in this process and
// keeps it until SIGINT or SIGTERM.
import { startDaemon } from "../daemon/daemon.ts";
import { defaultSocketPath } from "../daemon/socket.ts";
import { parseVerb, wholeNumber } from "./args.ts";
import type { Verb } from "./verb.ts";

const USAGE = "hyperlab daemon [OPTIONS]";
const HELP = `Usage: ${USAGE}

Starts a guest for containers and a hypervisor for VMs, and serves their API
on a Unix socket (docs/api.md). While it runs, 'hyperlab run', 'ps', 'exec',
'logs', 'stop', 'kill', 'rm', 'inspect' and 'stats CONTAINER' use its guest,
and 'hyperlab vm ...' and 'stats' its hypervisor. Stop it with Ctrl-C or
SIGTERM (its VMs are destroyed).

Options:
  --socket PATH          where to listen (default ${defaultSocketPath()}; or $HYPERLAB_SOCKET)
  --memory-budget MIB    memory all VMs together may reserve (default: half the host's memory)
  --warm-pool N          VMs kept restored and paused for instant 'vm create' (default 1)
  -h, --help             show this help
`;

/** Runs `hyperlab daemon` until SIGINT or SIGTERM. */
async function daemonCommand(args: string[]): Promise<number> {
  const parsed = parseVerb("daemon", USAGE, args, {
    options: {
      socket: { type: "string" },
      "memory-budget": { type: "string" },
      "warm-pool": { type: "string" },
    },
    positionals: { max: 0 },
  });
  if (parsed === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const { values } = parsed;
  const daemon = await startDaemon({
    socketPath: values.socket ?? defaultSocketPath(),
    memoryBudgetMiB: wholeNumber("--memory-budget", values["memory-budget"]),
    warmPool: wholeNumber("--warm-pool", values["warm-pool"]) ?? 1,
  });
  process.stderr.write(`hyperlab: daemon ready on ${daemon.socketPath}\n`);
  const code = await new Promise<number>((resolve) => {
    process.once("SIGINT", () => resolve(0));
    process.once("SIGTERM", () => resolve(0));
    void daemon.guestStopped.then((reason) => {
      process.stderr.write(`hyperlab: the daemon's guest stopped: ${reason.message}\n`);
      resolve(1);
    });
  });
  await daemon.close();
  return code;
}

export const daemonVerb: Verb = {
  name: "daemon",
  summary: "keep a guest and a hypervisor running and serve their API on a Unix socket",
  run: daemonCommand,
};
