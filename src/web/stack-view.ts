// The live stack view beside a VM's terminal: six layers, top to bottom,
// each read from the real system, with the controls of the two layers a
// visitor acts on. The Docker API layer shows the guest's docker client and
// the calls it makes to this tab's Docker API, as they come; the Containers
// layer shows the page's pulls of images from the site's registry. Containers,
// runtime and kernel come from the guest
// (through its agent: /proc, cgroups, the runtimes); hypervisor and hardware
// from the hypervisor's own figures for this page's VMs. Containers can be
// run and opened in a terminal; VMs created, paused, snapshotted, forked and
// destroyed; and one more VM and one more container started side by side.
// Each layer is a panel in stack/; this file lays them out and reads for them.
import type { VmMetrics } from "../hypervisor/vm.ts";
import type { PageVm } from "./page-vm.ts";
import { pageImages } from "./page-containers.ts";
import { pageDocker } from "./page-docker.ts";
import { ComparisonPanel } from "./stack/comparison-panel.ts";
import { ContainersPanel } from "./stack/containers-panel.ts";
import { DockerPanel } from "./stack/docker-panel.ts";
import { el } from "./stack/dom.ts";
import { HardwarePanel } from "./stack/hardware-panel.ts";
import type { Refresh, StackHooks } from "./stack/hooks.ts";
import { HypervisorPanel } from "./stack/hypervisor-panel.ts";
import { ImagesPanel } from "./stack/images-panel.ts";
import { KernelPanel } from "./stack/kernel-panel.ts";
import { Refresher } from "./stack/refresher.ts";
import { PODMAN_PROCESSES_SCRIPT, PodmanPanel } from "./stack/podman-panel.ts";
import { RuntimePanel } from "./stack/runtime-panel.ts";
import { SystemsPanel } from "./stack/systems-panel.ts";
import { STACK_STYLE } from "./stack/style.ts";
import { LIVE_SCRIPT, STATIC_SCRIPT, parseGuestStack } from "./stack-data.ts";

export type { StackHooks } from "./stack/hooks.ts";
export { splitCommand } from "./stack/text.ts";

/** How often the view reads the guest again (a few processes in it), ms. */
const REFRESH_MS = 3000;
/** How often it reads the hypervisor's figures again (no guest work), ms. */
const HYPERVISOR_REFRESH_MS = 1000;
/** How often it counts the pages VMs could share (every VM hashes its RAM), ms. */
const SHARING_REFRESH_MS = 10_000;

/** Where hyperlab sits, from the hardware up, drawn under the layers. */
const LEVELS = ["hardware (this computer)", "host operating system", "browser (this tab)", "hyperlab hypervisor  ← Type 2: above an OS", "VMs (this one and its siblings)", "containers"];

/** The stack view of one VM, drawn into `box` and refreshed while the page is visible. */
export class StackView {
  private staticPart: string | undefined;
  private disposed = false;
  /** each VM's latest metrics event, by name */
  private readonly latestMetrics = new Map<string, VmMetrics>();
  private offMetrics: (() => void) | undefined;
  private offDocker: (() => void) | undefined;
  private offImages: (() => void) | undefined;
  private readonly panels: {
    docker: DockerPanel;
    containers: ContainersPanel;
    images: ImagesPanel;
    runtime: RuntimePanel;
    podman?: PodmanPanel;
    kernel: KernelPanel;
    hypervisor: HypervisorPanel;
    comparison: ComparisonPanel;
    hardware: HardwarePanel;
  };

  constructor(
    box: HTMLElement,
    private readonly vm: PageVm,
    hooks: StackHooks,
  ) {
    const content = el("div", { className: "stackview" });
    const layer = (name: string, title: string) => {
      const s = el("section", { className: `layer-${name}` });
      s.dataset.layer = name;
      content.append(el("h3", { text: title }), s);
      return s;
    };
    const refresh: Refresh = { all: () => this.refreshNow(), hypervisor: () => this.hypervisorLoop.now() };
    const docker = new DockerPanel(layer("docker", "Docker API (client → daemon)"));
    const containersLayer = layer("containers", "Containers");
    const containers = new ContainersPanel(containersLayer, vm, hooks, refresh);
    const images = new ImagesPanel(containersLayer);
    const runtimeLayer = layer("runtime", "Runtime");
    const runtime = new RuntimePanel(runtimeLayer, vm);
    // A podman-profile VM: Podman's processes (no daemon, a conmon per container) before the list of systems.
    const podman = vm.profile === "podman" ? new PodmanPanel(runtimeLayer) : undefined;
    // Its measurements hold this view's reads of the guest: their shells would count as processes left running.
    new SystemsPanel(runtimeLayer, vm, () => this.guestLoop.hold());
    const kernel = new KernelPanel(layer("kernel", "Kernel"));
    const hypervisorLayer = layer("hypervisor", "Hypervisor");
    const hypervisor = new HypervisorPanel(hypervisorLayer, vm, hooks, refresh);
    const comparison = new ComparisonPanel(hypervisorLayer, vm, refresh);
    const hardware = new HardwarePanel(layer("hardware", "Hardware"));
    this.panels = { docker, containers, images, runtime, podman, kernel, hypervisor, comparison, hardware };
    content.append(
      el("h3", { text: "Where hyperlab sits" }),
      el("div", { className: "diagram", text: LEVELS.map((l, i) => `${"  ".repeat(i)}${i ? "└ " : ""}${l}`).join("\n") }),
    );
    box.replaceChildren(el("style", { text: STACK_STYLE }), content);
    const off = vm.on((e) => {
      if (e.type === "phase" && e.phase === "ready") {
        off();
        void this.refreshNow();
      }
    });
    if (vm.phase === "ready") void this.refreshNow();
  }

  /** Stops refreshing. */
  dispose(): void {
    this.disposed = true;
    this.hypervisorLoop.stop();
    this.guestLoop.stop();
    this.sharingLoop.stop();
    this.offMetrics?.();
    this.offDocker?.();
    this.offImages?.();
  }

  /** Reads everything again now (after an action), then on the usual schedule. */
  refreshNow(): Promise<void> {
    void this.sharingLoop.now();
    return Promise.all([this.hypervisorLoop.now(), this.guestLoop.now()]).then(() => {});
  }

  /**
   * The hypervisor's and the hardware's layers, drawn in any state (a paused
   * VM keeps its Resume button) from what the hypervisor knows at once: its
   * VMs and budget, and each VM's latest metrics event (sent every second;
   * nothing here waits for a guest).
   */
  private readonly hypervisorLoop = new Refresher(HYPERVISOR_REFRESH_MS, async () => {
    const hv = this.vm.hypervisor();
    if (!hv || this.disposed) return;
    this.offMetrics ??= hv.onEvent((e) => {
      if (e.type === "metrics") this.latestMetrics.set(e.vm, e.metrics);
      else if (e.type === "state" && e.state === "destroyed") this.latestMetrics.delete(e.vm);
    });
    // The Docker API layer is drawn as its calls come (each call, each step of the client's download).
    if (!this.offDocker && this.vm.handle) {
      const docker = pageDocker(hv);
      const name = this.vm.handle.name;
      const draw = () => this.panels.docker.draw(docker.activity(name));
      this.offDocker = docker.onChange((vm) => vm === name && !this.disposed && draw());
      draw();
    }
    // The page's pulls from the site's registry are drawn as each step comes.
    if (!this.offImages) {
      const site = pageImages(hv);
      const draw = () => this.panels.images.draw(site.pulls(), site.registryUrl);
      this.offImages = site.onChange(() => !this.disposed && draw());
      draw();
    }
    this.panels.hypervisor.draw(hv, this.latestMetrics);
    const own = this.vm.handle && this.latestMetrics.get(this.vm.handle.name);
    if (own) this.panels.hardware.draw(own);
  });

  /** Pages the page's VMs could share (what KSM would merge), hashed by the memory engine in each VM's worker. */
  private readonly sharingLoop = new Refresher(SHARING_REFRESH_MS, async () => {
    const sharing = await this.vm.hypervisor()?.pageSharing().catch(() => undefined);
    if (this.disposed) return;
    this.panels.hypervisor.drawSharing(sharing);
  });

  /** The guest's layers (containers, runtime, kernel), read through the agent while the VM runs. */
  private readonly guestLoop = new Refresher(REFRESH_MS, async () => {
    if (this.vm.handle?.state !== "running") return;
    try {
      this.staticPart ??= (await this.vm.exec(["/bin/sh", "-c", STATIC_SCRIPT], { timeoutMs: 20_000 })).stdout;
      const live = await this.vm.exec(["/bin/sh", "-c", LIVE_SCRIPT], { timeoutMs: 20_000 });
      const guest = parseGuestStack(live.stdout, this.staticPart);
      const containers = await this.vm.containers().list(new Map(guest.containers.map((c) => [c.id, c.pid])));
      const podmanPs = this.panels.podman && (await this.vm.exec(["/bin/sh", "-c", PODMAN_PROCESSES_SCRIPT], { timeoutMs: 20_000 })).stdout;
      if (this.disposed) return;
      if (podmanPs !== undefined) this.panels.podman?.draw(podmanPs);
      this.panels.containers.draw(containers);
      this.panels.runtime.draw(guest, containers);
      this.panels.kernel.draw(guest, containers);
    } catch {
      // The VM stopped, paused or is busy: the element shows why; the next refresh tries again.
    }
  });
}
