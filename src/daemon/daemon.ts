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
import { DaemonState, type Recovery, type SaveReport } from "./daemon-state.ts";
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
  /** where the daemon keeps what outlives it (images, volumes, its VMs across restarts: see daemon-state.ts); default: defaultDataRoot() */
  dataRoot?: string;
  /** where it says what it brought back or could not (default: stderr) */
  log?: (line: string) => void;
}

/** A running daemon. */
export interface Daemon {
  readonly socketPath: string;
  /** the TCP port it also serves on (when asked to) */
  readonly tcpPort?: number;
  readonly hypervisor: Hypervisor;
  /** the data root in use */
  readonly dataRoot: string;
  /** what the start brought back of the previous daemon's VMs */
  readonly recovery: Recovery;
  /**
   * Stops serving and destroys the VMs. With `save`, each VM's snapshot and
   * containers are kept first, and the next daemon on this data root brings
   * them back (what `hyperlab daemon` does on SIGTERM); without, the next one
   * starts with none.
   */
  close(opts?: { save?: boolean }): Promise<SaveReport | undefined>;
}

/** Starts the hypervisor, its `default` VM and the server; resolves once the socket answers. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  // Checked again when listening; this only spares starting VMs for nothing.
  if (await isAlive(opts.socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${opts.socketPath}`);
  const dataRoot = opts.dataRoot ?? defaultDataRoot();
  const log = opts.log ?? ((line: string) => void process.stderr.write(line + "\n"));
  ensureDataRoot(dataRoot);
  const state = await DaemonState.open(dataRoot, log);
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
  let recovery: Recovery;
  try {
    // The previous daemon's VMs first (the `default` one among them, as it was), then `default` if it has none.
    recovery = await state.recover(hypervisor, containers);
    for (const vm of recovery.restored) log(`hyperlab: VM ${vm} restored from its snapshot`);
    for (const l of recovery.lost) log(`hyperlab: VM ${l.vm} started fresh: ${l.reason}${l.containers ? `; its ${l.containers} container(s) are listed exited` : ""}`);
    for (const d of recovery.dropped) log(`hyperlab: ${d.vm} not brought back: ${d.reason}`);
    if (!hypervisor.list().some((vm) => vm.name === DEFAULT_VM)) await hypervisor.createVm({ name: DEFAULT_VM, memoryMiB: opts.defaultVmMemoryMiB });
    server = await serveApi(containers, hypervisor, opts.socketPath, { tcp: opts.tcp });
  } catch (err) {
    // What was brought back is kept again for the next start: a start that fails loses nothing.
    await state.save(hypervisor, containers).catch((e: unknown) => log(`hyperlab: could not keep the VMs for the next start: ${(e as Error).message}`));
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
    recovery,
    close: async (how = {}) => {
      await api.close();
      guestDocker.close();
      let report: SaveReport | undefined;
      try {
        if (how.save) report = await state.save(hypervisor, containers);
        else await state.forget();
      } finally {
        containers.close();
        await hypervisor.close();
      }
      return report;
    },
  };
}
