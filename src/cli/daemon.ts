// `hyperlab daemon`: starts the daemon (src/daemon/) in this process and
// keeps it until SIGINT or SIGTERM, when it saves its VMs for the next start.
import { resolve } from "node:path";
import { startDaemon } from "../daemon/daemon.ts";
import { parseTcpHost } from "../daemon/server.ts";
import { defaultSocketPath } from "../daemon/socket.ts";
import { parseVerb, wholeNumber } from "./args.ts";
import type { Verb } from "./verb.ts";

const USAGE = "hyperlab daemon [OPTIONS]";
const HELP = `Usage: ${USAGE}

Starts a hypervisor with one VM named 'default' and serves their API on a
Unix socket (docs/api.md). Every VM hosts containers: while the daemon runs,
'hyperlab run', 'ps', 'exec', 'logs', 'stop', 'kill', 'rm', 'inspect' and
'stats CONTAINER' use the VM named by --vm (default: 'default'), and
'hyperlab vm ...' and 'stats' the hypervisor. Stop it with Ctrl-C or SIGTERM:
it saves each VM (a delta snapshot, with its containers) in the data root,
and the next start on that data root brings them back, running ones running.
After a crash (SIGKILL, a power cut) the next start starts each VM fresh and
lists its containers as exited (255) with why (docs/reliability.md).

Options:
  --socket PATH          where to listen (default ${defaultSocketPath()}; or $HYPERLAB_SOCKET)
  --memory-budget MIB    memory all VMs together may reserve (default: half the host's memory)
  --warm-pool N          VMs kept restored and paused for instant 'vm create' (default 1)
  --data-root DIR        where images, volumes and the VMs across restarts are kept
                         (default \$XDG_DATA_HOME/hyperlab, else ~/.local/share/hyperlab)
  --host tcp://127.0.0.1:PORT
                         also serve on this loopback TCP port (never another
                         address: the API controls every VM and container)
  -h, --help             show this help
`;

/** Runs `hyperlab daemon` until SIGINT or SIGTERM. */
async function daemonCommand(args: string[]): Promise<number> {
  const parsed = parseVerb("daemon", USAGE, args, {
    options: {
      socket: { type: "string" },
      "memory-budget": { type: "string" },
      "warm-pool": { type: "string" },
      "data-root": { type: "string" },
      host: { type: "string", short: "H" },
    },
    positionals: { max: 0 },
  });
  if (parsed === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const { values } = parsed;
  const tcp = values.host === undefined ? undefined : parseTcpHost(values.host);
  const daemon = await startDaemon({
    socketPath: values.socket ?? defaultSocketPath(),
    memoryBudgetMiB: wholeNumber("--memory-budget", values["memory-budget"]),
    warmPool: wholeNumber("--warm-pool", values["warm-pool"]) ?? 1,
    dataRoot: values["data-root"] === undefined ? undefined : resolve(values["data-root"]),
    tcp,
  });
  process.stderr.write(`hyperlab: the Docker Engine API answers on the same socket: export DOCKER_HOST=unix://${daemon.socketPath}\n`);
  if (tcp && daemon.tcpPort !== undefined) process.stderr.write(`hyperlab: and on tcp://${tcp.host.includes(":") ? `[${tcp.host}]` : tcp.host}:${daemon.tcpPort} (loopback only)\n`);
  process.stderr.write(`hyperlab: images and data in ${daemon.dataRoot}\n`);
  process.stderr.write(`hyperlab: daemon ready on ${daemon.socketPath}\n`);
  // A VM that stops on its own (a guest panic, its worker dying) is reported; the daemon serves on.
  daemon.hypervisor.onEvent((e) => {
    if (e.type === "state" && e.state === "stopped" && e.reason && e.reason.code !== "GUEST_STOPPED") {
      process.stderr.write(`hyperlab: VM ${e.vm} stopped: ${e.reason.message} [${e.reason.code}]\n`);
    }
  });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  // Its VMs are saved for the next start; a second signal stops at once (the next start then reports them lost).
  const now = () => {
    process.stderr.write("hyperlab: stopping without saving the rest: the next start reports unsaved VMs as lost\n");
    process.exit(130);
  };
  process.once("SIGINT", now);
  process.once("SIGTERM", now);
  process.stderr.write("hyperlab: saving the VMs for the next start (a second Ctrl-C stops at once)\n");
  const report = await daemon.close({ save: true });
  for (const s of report?.saved ?? []) process.stderr.write(`hyperlab: VM ${s.vm} saved (${(s.bytes / 2 ** 20).toFixed(1)} MiB)\n`);
  for (const f of report?.failed ?? []) process.stderr.write(`hyperlab: VM ${f.vm} could not be saved: ${f.reason}\n`);
  return 0;
}

export const daemonVerb: Verb = {
  name: "daemon",
  summary: "keep a guest and a hypervisor running and serve their API on a Unix socket",
  run: daemonCommand,
};
