// `hyperlab daemon`: keeps one guest and its container engine running and
// serves them on a Unix socket, so that container commands share them (the
// Docker split of a CLI and a daemon).
import { ContainerEngine } from "../containers/engine.ts";
import { nodeImageStore } from "../containers/node-store.ts";
import { startGuest } from "../guest/node-guest.ts";
import { HyperlabError } from "../errors.ts";
import { defaultSocketPath, isAlive, serveApi } from "./daemon-api.ts";

const HELP = `Usage: hyperlab daemon [--socket PATH]

Boots a guest, keeps it running and serves the container API on a Unix socket
(default ${defaultSocketPath()}; or $HYPERLAB_SOCKET). While it runs,
'hyperlab run', 'ps', 'exec', 'logs', 'stop', 'kill', 'rm', 'inspect' and
'stats' use its guest. Stop it with Ctrl-C or SIGTERM.
`;

/** Runs `hyperlab daemon` until SIGINT or SIGTERM. */
export async function daemonCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(HELP);
    return 0;
  }
  const at = args.indexOf("--socket");
  const socketPath = at >= 0 && args[at + 1] ? args[at + 1]! : defaultSocketPath();
  // Checked again when listening; this only spares booting a guest for nothing.
  if (await isAlive(socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${socketPath}`);
  const guest = await startGuest();
  const engine = new ContainerEngine(guest.agent, nodeImageStore());
  let server;
  try {
    server = await serveApi(engine, socketPath);
  } catch (err) {
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
  await guest.stop();
  return code;
}
