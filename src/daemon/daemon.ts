// The hyperlab daemon: a hypervisor whose VMs host containers (the VM named
// `default` is created at start, from the warm pool or the boot snapshot),
// one container engine per VM, and the server that serves them on a Unix
// socket, so that container and VM commands share them (the Docker split of
// a CLI and a daemon). Every guest runs in its VM's worker: this thread
// serves the API and never runs an emulator.
import { defaultDataRoot, ensureDataRoot, nodeImageStore } from "../containers/node-store.ts";
import { nodeVolumes } from "../containers/node-volumes.ts";
import { DEFAULT_VM, VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import { loadNodeTool } from "../hardware/node.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { nodeLlhttpModule } from "./docker/llhttp-node.ts";
import { serveGuestDocker } from "./guest-docker.ts";
import { nodePortPublisher } from "./port-relay.ts";
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
  /** where the daemon keeps what outlives it (its image store: tags, loaded images); default: defaultDataRoot() */
  dataRoot?: string;
}

/** A running daemon. */
export interface Daemon {
  readonly socketPath: string;
  /** the TCP port it also serves on (when asked to) */
  readonly tcpPort?: number;
  readonly hypervisor: Hypervisor;
  /** the data root in use */
  readonly dataRoot: string;
  /** stops serving and destroys the VMs (their containers with them) */
  close(): Promise<void>;
}

/** Starts the hypervisor, its `default` VM and the server; resolves once the socket answers. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  // Checked again when listening; this only spares starting VMs for nothing.
  if (await isAlive(opts.socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${opts.socketPath}`);
  const dataRoot = opts.dataRoot ?? defaultDataRoot();
  ensureDataRoot(dataRoot);
  const hypervisor = await Hypervisor.create({ memoryBudgetMiB: opts.memoryBudgetMiB, warmPool: opts.warmPool });
  // Volumes are folders of the data root, shared into whichever VM mounts them: they outlive containers, VMs and the daemon.
  const containers = new VmContainers(hypervisor, nodeImageStore(undefined, { dataRoot }), {
    volumes: nodeVolumes(dataRoot),
    tools: async (name) => (await loadNodeTool(name)).data,
    // Published ports listen on this machine and relay through the container's VM.
    ports: (vm) => nodePortPublisher(vm),
  });
  // Every VM that runs gets /var/run/docker.sock (the Docker API scoped to it) and its docker client on first use.
  const guestDocker = serveGuestDocker(containers, hypervisor, {
    loadTool: async (name) => (await loadNodeTool(name)).data,
    llhttp: nodeLlhttpModule,
    onError: (vm, err) => process.stderr.write(`hyperlab: VM ${vm} gets no /var/run/docker.sock: ${err.message} [${err.code}]\n`),
  });
  let server;
  try {
    await hypervisor.createVm({ name: DEFAULT_VM, memoryMiB: opts.defaultVmMemoryMiB });
    server = await serveApi(containers, hypervisor, opts.socketPath, { tcp: opts.tcp });
  } catch (err) {
    guestDocker.close();
    containers.close();
    await hypervisor.close();
    throw err;
  }
  const api = server;
  return {
    socketPath: opts.socketPath,
    tcpPort: api.tcpPort,
    hypervisor,
    dataRoot,
    close: async () => {
      await api.close();
      guestDocker.close();
      containers.close();
      await hypervisor.close();
    },
  };
}
