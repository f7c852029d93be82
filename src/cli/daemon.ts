// `hyperlab daemon`: keeps one guest and its container engine running, and a
// hypervisor for VMs, and serves them on a Unix socket, so that container and
// VM commands share them (the Docker split of a CLI and a daemon).
import { parseArgs } from "node:util";
import { ContainerEngine } from "../containers/engine.ts";
import { nodeImageStore } from "../containers/node-store.ts";
import { startGuest } from "../guest/node-guest.ts";
import { HyperlabError } from "../errors.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { defaultSocketPath, isAlive, serveApi } from "./daemon-api.ts";

const HELP = `Usage: hyperlab daemon [OPTIONS]

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

function count(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new HyperlabError("INVALID_ARGUMENT", `--${name} needs a whole number, not '${value}'`);
  return n;
}

/** Runs `hyperlab daemon` until SIGINT or SIGTERM. */
export async function daemonCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        socket: { type: "string" },
        "memory-budget": { type: "string" },
        "warm-pool": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `${(err as Error).message}. See 'hyperlab daemon --help'.`);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const socketPath = values.socket ?? defaultSocketPath();
  const memoryBudgetMiB = count("memory-budget", values["memory-budget"]);
  const warmPool = count("warm-pool", values["warm-pool"]) ?? 1;
  // Checked again when listening; this only spares booting a guest for nothing.
  if (await isAlive(socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${socketPath}`);
  const guest = await startGuest();
  const engine = new ContainerEngine(guest.agent, nodeImageStore());
  let server;
  let hypervisor: Hypervisor | undefined;
  try {
    hypervisor = await Hypervisor.create({ memoryBudgetMiB, warmPool });
    server = await serveApi(engine, socketPath, { hypervisor });
  } catch (err) {
    await hypervisor?.close();
    await guest.stop();
    throw err;
  }
  process.stderr.write(`hyperlab: daemon ready on ${socketPath}\n`);
  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const stop = () => {
      stopping = true;
      resolve(0);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    guest.machine.onStopped((reason) => {
      if (stopping) return;
      process.stderr.write(`hyperlab: the daemon's guest stopped: ${reason.message}\n`);
      resolve(1);
    });
  });
  const code = await stopped;
  await server.close();
  await hypervisor.close();
  await guest.stop();
  return code;
}
