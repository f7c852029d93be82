// Containers on a page VM. The page's VMs host containers as the daemon's do:
// one engine per VM (src/containers/vm-containers.ts) on the page's thread,
// its requests to the guest going to the VM's agent in the VM's worker, one
// Comlink call each, and the images pulled from the site's registry the
// first time a container uses them (page-images.ts).
import { type Container, ContainerEngine, type ContainerStats, type CreateOptions } from "../containers/engine.ts";
import { VmContainers } from "../containers/vm-containers.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { GuestProcess } from "../guest/agent.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { siteRegistryUrl } from "./assets.ts";
import { SiteImages } from "./page-images.ts";
import { type PortLinks, pagePorts } from "./page-ports.ts";

const registries = new WeakMap<Hypervisor, VmContainers>();
const images = new WeakMap<Hypervisor, SiteImages>();

/** The page's images: pulled from the site's registry on first use, kept for the page's session (page-images.ts). Legal any time. */
export function pageImages(hypervisor: Hypervisor): SiteImages {
  let site = images.get(hypervisor);
  if (!site) images.set(hypervisor, (site = new SiteImages(siteRegistryUrl())));
  return site;
}

/** The container engines of the page's VMs: one set per hypervisor, images from the site's registry. Legal any time. */
export function pageVmContainers(hypervisor: Hypervisor): VmContainers {
  let registry = registries.get(hypervisor);
  // Published ports become links the site's service worker relays (page-ports.ts).
  if (!registry) registries.set(hypervisor, (registry = new VmContainers(hypervisor, pageImages(hypervisor).store, { ports: (vm) => pagePorts(hypervisor).publisher(vm) })));
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

  /** The page's images (the same for every VM): its pulls from the site's registry. */
  get images(): SiteImages {
    return pageImages(this.hypervisor);
  }

  /**
   * Creates and starts a container in the background (`docker run -d`),
   * pulling its image from the site's registry first if the page does not
   * have it yet (`pulled` says so); resolves once it runs, with how long
   * the run took (the pull not counted).
   */
  async run(opts: CreateOptions, onPull?: () => void): Promise<{ container: Container; ms: number; pulled: boolean }> {
    let pulled = false;
    await this.images.store.ensure(opts.image, () => {
      if (!pulled) onPull?.();
      pulled = true;
    });
    const t0 = performance.now();
    // No network unless it publishes ports (a published port is reached at its address on the bridge).
    const { container } = await this.engine.run({ network: opts.ports?.length || opts.publishAll ? "bridge" : "none", ...opts });
    return { container, ms: performance.now() - t0, pulled };
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
