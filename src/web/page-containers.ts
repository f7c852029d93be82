// Containers on a page VM. The page's VMs host containers as the daemon's do:
// one engine per VM (src/containers/vm-containers.ts) on the page's thread,
// its requests to the guest going to the VM's agent in the VM's worker, one
// Comlink call each, and the images from the OCI layout the site ships.
import { HyperlabError } from "../errors.ts";
import { type Container, ContainerEngine, type ContainerStats, type CreateOptions } from "../containers/engine.ts";
import { VmContainers } from "../containers/vm-containers.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import { ImageStore } from "../containers/image-store.ts";
import type { GuestProcess } from "../guest/agent.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { imageLayoutUrl } from "./assets.ts";
import { type PortLinks, pagePorts } from "./page-ports.ts";

/** The site's image store: the OCI layout beside the guest's files, fetched as containers need it. */
export function siteImageStore(base: string = imageLayoutUrl()): ImageStore {
  return new ImageStore(async (path) => {
    const url = new URL(path, base).href;
    let response: Response;
    try {
      response = await fetch(url);
    } catch (err) {
      throw new Error(`the network request for ${url} failed (${(err as Error).message})`);
    }
    if (!response.ok) throw new Error(`the server answered ${url} with HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }, base);
}

const registries = new WeakMap<Hypervisor, VmContainers>();

/** The container engines of the page's VMs: one set per hypervisor, images from the site. Legal any time. */
export function pageVmContainers(hypervisor: Hypervisor): VmContainers {
  let registry = registries.get(hypervisor);
  // Published ports become links the site's service worker relays (page-ports.ts).
  if (!registry) registries.set(hypervisor, (registry = new VmContainers(hypervisor, siteImageStore(), { ports: (vm) => pagePorts(hypervisor).publisher(vm) })));
  return registry;
}

/** A container as the stack view shows it: the engine's record, its init's PID in the VM, and its current use. */
export interface ContainerView {
  container: Container;
  /** PID of the container's init (its PID 1) as the VM sees it, from the runtime's state; undefined once it has exited */
  pid1?: number;
  stats?: ContainerStats;
}

/** The images the page offers, in the order a visitor meets them. */
export const PAGE_CONTAINER_IMAGES = ["busybox", "lua:5.4", "lua:5.1"] as const;

/** The containers of one page VM: the engine, and the figures the stack view shows of each. */
export class PageContainers {
  readonly engine: ContainerEngine;

  constructor(
    private readonly hypervisor: Hypervisor,
    private readonly vm: Vm,
  ) {
    this.engine = pageVmContainers(hypervisor).engine(vm.name);
  }

  /** The link that opens a published port of this VM's containers in a new tab (`<site>/_ports/<vm>/<port>/`). */
  portUrl(hostPort: number): string {
    return pagePorts(this.hypervisor).url(this.vm.name, hostPort);
  }

  /** Whether links to published ports work in this page (the site's service worker), and why not. */
  portLinks(): Promise<PortLinks> {
    return pagePorts(this.hypervisor).links();
  }

  /** Creates and starts a container in the background (`docker run -d`); resolves once it runs, with how long that took. */
  async run(opts: CreateOptions): Promise<{ container: Container; ms: number }> {
    const t0 = performance.now();
    // No network unless it publishes ports (a published port is reached at its address on the bridge).
    const { container } = await this.engine.run({ network: opts.ports?.length || opts.publishAll ? "bridge" : "none", ...opts });
    return { container, ms: performance.now() - t0 };
  }

  /**
   * Every container, newest first, with its PID 1 (from `pids`: container id
   * → PID of its init, as the runtimes list them) and, while it runs, its
   * memory, CPU and pids from its cgroup. Legal while the VM runs.
   */
  async list(pids: ReadonlyMap<string, number>): Promise<ContainerView[]> {
    return Promise.all(
      this.engine.ps({ all: true }).map(async (container) => {
        const running = container.status === "running";
        return {
          container,
          pid1: running ? pids.get(container.id) : undefined,
          stats: running ? await this.engine.stats(container.id).catch(() => undefined) : undefined,
        };
      }),
    );
  }

  /** Opens a shell on a terminal in a running container (`docker exec -it <c> sh`). */
  shell(ref: string, size: { rows: number; cols: number }): Promise<GuestProcess> {
    return this.engine.exec(ref, ["/bin/sh"], { tty: size, interactive: true });
  }
}
