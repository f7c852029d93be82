// The hyperlab daemon: a hypervisor whose VMs host containers (the VM named
// `default` is created at start, from the warm pool or the boot snapshot),
// one container engine per VM, and the server that serves them on a Unix
// socket, so that container and VM commands share them (the Docker split of
// a CLI and a daemon). Every guest runs in its VM's worker: this thread
// serves the API and never runs an emulator.
import { nodeImageStore } from "../containers/node-store.ts";
import { DEFAULT_VM, VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { type TcpListen, serveApi } from "./server.ts";
import { isAlive } from "./socket.ts";

/** How a daemon is started. */
export interface DaemonOptions {
  socketPath: string;
  /** memory all VMs together may reserve, MiB (default: half the host's memory) */
  memoryBudgetMiB?: number;
  /** VMs kept restored and paused for instant creates */
  warmPool?: number;
  /** guest RAM of the `default` VM, MiB (default: the image's default) */
  defaultVmMemoryMiB?: number;
  /** also serve on this loopback TCP address */
  tcp?: TcpListen;
}

/** A running daemon. */
export interface Daemon {
  readonly socketPath: string;
  /** the TCP port it also serves on (when asked to) */
  readonly tcpPort?: number;
  readonly hypervisor: Hypervisor;
  /** stops serving and destroys the VMs (their containers with them) */
  close(): Promise<void>;
}

/** Starts the hypervisor, its `default` VM and the server; resolves once the socket answers. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  // Checked again when listening; this only spares starting VMs for nothing.
  if (await isAlive(opts.socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${opts.socketPath}`);
  const hypervisor = await Hypervisor.create({ memoryBudgetMiB: opts.memoryBudgetMiB, warmPool: opts.warmPool });
  const containers = new VmContainers(hypervisor, nodeImageStore());
  let server;
  try {
    await hypervisor.createVm({ name: DEFAULT_VM, memoryMiB: opts.defaultVmMemoryMiB });
    server = await serveApi(containers, hypervisor, opts.socketPath, { tcp: opts.tcp });
  } catch (err) {
    containers.close();
    await hypervisor.close();
    throw err;
  }
  const api = server;
  return {
    socketPath: opts.socketPath,
    tcpPort: api.tcpPort,
    hypervisor,
    close: async () => {
      await api.close();
      containers.close();
      await hypervisor.close();
    },
  };
}
