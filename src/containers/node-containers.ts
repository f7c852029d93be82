// Containers of a hypervisor's VMs as Node wires them by default, for
// programs that use hyperlab as a library (and its test helpers): the built-in
// images (guest-images/dist/images) under an optional writable store, and
// the guest tools (docker-init for `init: true`) read from the guest image.
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { loadNodeTool } from "../hardware/node.ts";
import { nodeImageStore } from "./node-store.ts";
import { nodeVolumes } from "./node-volumes.ts";
import type { PortPublisher } from "./ports.ts";
import { VmContainers } from "./vm-containers.ts";

/** How `nodeContainers` keeps images and volumes. */
export interface NodeContainersOptions {
  /**
   * A folder for pulled, built and loaded images and for volumes (as the
   * daemon's data root). Default none: images added stay in memory, and each
   * VM keeps its volumes in its own guest.
   */
  dataRoot?: string;
  /** who publishes the ports of a VM's containers (default none: a container asking for ports is refused) */
  ports?: (vm: Vm) => PortPublisher;
}

/**
 * The container engines of `hypervisor`'s VMs with Node's defaults: the
 * built-in images (busybox, lua:5.1, lua:5.4) and guest tools from the guest
 * image. `containers.engine(vm.name)` is the engine of a running VM. Legal
 * until the hypervisor closes; `close()` it before or with the hypervisor.
 */
export function nodeContainers(hypervisor: Hypervisor, opts: NodeContainersOptions = {}): VmContainers {
  return new VmContainers(hypervisor, nodeImageStore(undefined, { dataRoot: opts.dataRoot }), {
    tools: async (name) => (await loadNodeTool(name)).data,
    ports: opts.ports,
    volumes: opts.dataRoot === undefined ? undefined : nodeVolumes(opts.dataRoot),
  });
}
