// `docker` inside the page's guests. Every VM of the page gets, as the
// daemon's do, /var/run/docker.sock served by the Docker API scoped to that
// VM, here on the page's thread over the page's container engines
// (src/daemon/guest-docker.ts, shared with the Node daemon), and its docker
// client on first use, fetched from the site. The Docker API's code, its
// HTTP parser and the code that fetches tools are loaded on first use: a
// visitor who never types `docker` downloads none of them. What each VM's docker did (its last API
// calls, its client's download) is kept here for the stack view and the
// element's progress bar.
import type { DockerCall } from "../daemon/docker/api.ts";
import { type ToolPhase, serveGuestDocker } from "../daemon/guest-docker.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import { llhttpWasmUrl } from "./assets.ts";
import { pageVmContainers } from "./page-containers.ts";
import type { ToolDownload } from "./page-tools.ts";

/** How many API calls the page keeps for each VM. */
export const KEPT_CALLS = 12;

/** The tool a guest's `docker` is. */
export const DOCKER_CLIENT = "docker";

/** What one VM's docker did, as the page shows it. */
export interface DockerActivity {
  /** the last Docker API calls of the VM's guest, oldest first (at most KEPT_CALLS) */
  calls: DockerCall[];
  /** all the calls it made */
  total: number;
  /** the docker client's first use in this VM: fetching it (with the download's bytes), writing it into the guest, there */
  client?: { phase: ToolPhase; download?: ToolDownload; error?: string };
}

/** docker in the page's VMs: served for each VM, with what each did. */
export class PageDocker {
  private readonly activities = new Map<string, DockerActivity>();
  private readonly listeners = new Set<(vm: string) => void>();
  private tools: typeof import("./page-tools.ts").pageTools | undefined;
  /** the registries of VMs that have one of their own (a lab's) */
  private readonly registries = new Map<string, { fetch: typeof fetch }>();

  constructor(hypervisor: Hypervisor) {
    serveGuestDocker(pageVmContainers(hypervisor), hypervisor, {
      lazy: true,
      registryFetch: (vm) => this.registries.get(vm)?.fetch,
      loadTool: async (name) => (await this.pageTools()).load(name),
      llhttp: async () => {
        const url = llhttpWasmUrl();
        const response = await fetch(url);
        if (!response.ok) throw new Error(`the server answered ${url} with HTTP ${response.status}`);
        return WebAssembly.compile(await response.arrayBuffer());
      },
      onApi: (vm, api) =>
        api.onCall((call) => {
          const a = this.activity(vm);
          a.calls.push(call);
          a.total++;
          if (a.calls.length > KEPT_CALLS) a.calls.shift();
          this.changed(vm);
        }),
      onTool: (vm, name, phase, err) => {
        if (name !== DOCKER_CLIENT) return;
        this.activity(vm).client = { phase, error: err === undefined ? undefined : String((err as Error)?.message ?? err) };
        this.changed(vm);
      },
      onError: (vm, err) => console.warn(`hyperlab: VM ${vm} gets no /var/run/docker.sock: ${err.message}`),
    });
    hypervisor.onEvent((e) => {
      if (e.type !== "state" || e.state !== "destroyed") return;
      this.activities.delete(e.vm);
      this.registries.delete(e.vm);
    });
  }

  /** What VM `vm`'s docker did so far. */
  activity(vm: string): DockerActivity {
    let a = this.activities.get(vm);
    if (!a) this.activities.set(vm, (a = { calls: [], total: 0 }));
    if (a.client?.phase === "load") a.client.download = this.tools?.download(DOCKER_CLIENT);
    return a;
  }

  /**
   * Gives VM `vm` an empty registry of its own at `address` (a lab's
   * machine.registry): its docker's pushes and pulls of names at that
   * address go to it, in the page's memory, for as long as the VM lives.
   */
  async giveRegistry(vm: string, address: string): Promise<void> {
    const { MemoryRegistry } = await import("../containers/memory-registry.ts");
    if (!this.registries.has(vm)) this.registries.set(vm, new MemoryRegistry(address));
  }

  /** Calls `listener` with a VM's name after each change of its activity. Returns the unsubscribe. */
  onChange(listener: (vm: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** The page's guest tools, loaded on the first tool a guest asks for. */
  private async pageTools(): Promise<typeof import("./page-tools.ts").pageTools> {
    if (this.tools) return this.tools;
    const { pageTools } = await import("./page-tools.ts");
    if (!this.tools) {
      this.tools = pageTools;
      // The client's download is the page's (once for all its VMs): each VM fetching it hears of it.
      pageTools.onChange((name) => {
        if (name !== DOCKER_CLIENT) return;
        for (const [vm, a] of this.activities) if (a.client?.phase === "load") this.changed(vm);
      });
    }
    return pageTools;
  }

  private changed(vm: string): void {
    for (const l of this.listeners) l(vm);
  }
}

const served = new WeakMap<Hypervisor, PageDocker>();

/** docker in the VMs of the page's hypervisor, set up on first use (before its VMs run, so each gets its socket). Legal any time. */
export function pageDocker(hypervisor: Hypervisor): PageDocker {
  let docker = served.get(hypervisor);
  if (!docker) served.set(hypervisor, (docker = new PageDocker(hypervisor)));
  return docker;
}
