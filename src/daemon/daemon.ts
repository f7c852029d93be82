// The hyperlab daemon: one guest and its container engine, a hypervisor for
// VMs, and the server that serves them on a Unix socket, so that container
// and VM commands share them (the Docker split of a CLI and a daemon).
import { ContainerEngine } from "../containers/engine.ts";
import { nodeImageStore } from "../containers/node-store.ts";
import { HyperlabError } from "../errors.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { startGuest } from "../hypervisor/local-guest.ts";
import { serveApi } from "./server.ts";
import { isAlive } from "./socket.ts";

/** How a daemon is started. */
export interface DaemonOptions {
  socketPath: string;
  /** memory all VMs together may reserve, MiB (default: half the host's memory) */
  memoryBudgetMiB?: number;
  /** VMs kept restored and paused for instant creates */
  warmPool?: number;
}

/** A running daemon. */
export interface Daemon {
  readonly socketPath: string;
  /** resolves with the reason if the daemon's guest stops on its own (the daemon is then of no use) */
  readonly guestStopped: Promise<HyperlabError>;
  /** stops serving, destroys the VMs and powers the guest off */
  close(): Promise<void>;
}

/** Starts the guest, the hypervisor and the server; resolves once the socket answers. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  // Checked again when listening; this only spares booting a guest for nothing.
  if (await isAlive(opts.socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${opts.socketPath}`);
  const guest = await startGuest();
  const engine = new ContainerEngine(guest.agent, nodeImageStore());
  let server;
  let hypervisor: Hypervisor | undefined;
  try {
    hypervisor = await Hypervisor.create({ memoryBudgetMiB: opts.memoryBudgetMiB, warmPool: opts.warmPool });
    server = await serveApi(engine, opts.socketPath, { hypervisor });
  } catch (err) {
    await hypervisor?.close();
    await guest.stop();
    throw err;
  }
  const hv = hypervisor;
  const api = server;
  let closing = false;
  const guestStopped = new Promise<HyperlabError>((resolve) => guest.machine.onStopped((reason) => !closing && resolve(reason)));
  return {
    socketPath: opts.socketPath,
    guestStopped,
    close: async () => {
      closing = true;
      await api.close();
      await hv.close();
      await guest.stop();
    },
  };
}
