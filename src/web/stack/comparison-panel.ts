// The VM-vs-container comparison, in the Hypervisor layer: one more VM
// (booted, and from a snapshot) and one more container started here, so
// that what each costs is measured rather than claimed.
import type { Hypervisor } from "../../hypervisor/hypervisor.ts";
import type { PageContainers } from "../page-containers.ts";
import { BOOT_IMAGE, RESTORE_IMAGE, pageHost } from "../page-host.ts";
import type { PageVm } from "../page-vm.ts";
import { button, el, showStatus } from "./dom.ts";
import type { Refresh } from "./hooks.ts";
import { mib, seconds } from "./text.ts";

/** One side of the VM-vs-container comparison. */
interface Measured {
  title: string;
  name: string;
  startMs: number;
  how: string;
  memory: string;
  memoryNote: string;
  carries: string;
}

/** The VM-vs-container comparison of the stack view, drawn into `parent` (the Hypervisor layer's section). */
export class ComparisonPanel {
  private readonly status = el("p", { className: "status" });
  private readonly result = el("div");
  private comparing = false;
  private compareCount = 0;

  constructor(
    parent: HTMLElement,
    private readonly vm: Pick<PageVm, "hypervisor" | "containers">,
    private readonly refresh: Refresh,
  ) {
    parent.append(
      el("h3", { text: "VM vs container" }),
      el("p", { className: "muted", text: "Start one more VM (booted, and from a snapshot) and one more container, and compare what each costs." }),
      el("div", { className: "actions" }, button("Measure", () => void this.compare(), { name: "compare" })),
      this.status,
      this.result,
    );
  }

  /**
   * Starts one more VM (twice: booting its kernel, and restoring the boot
   * snapshot) and one more container, and shows side by side the time each
   * took to start and the memory each costs: the handout's claims (VMs boot
   * slowly and carry a whole OS; containers start fast and share the kernel)
   * as numbers measured here, and what a snapshot changes.
   */
  private async compare(): Promise<void> {
    const hv = this.vm.hypervisor();
    if (!hv || this.comparing) return;
    this.comparing = true;
    const status = this.status;
    const n = ++this.compareCount;
    try {
      const containers = this.vm.containers();
      // What each start needs is fetched or copied first, so that the times are starts, not downloads.
      showStatus(status, "Fetching the kernel and initramfs, and copying the busybox image into this VM (once)…");
      await Promise.all([pageHost().prepare({ restore: false }), containers.engine.pull("busybox")]);
      showStatus(status, "Booting one more VM (its own Linux kernel)…");
      const booted = await this.measureVm(hv, `compare-boot-${n}`, true);
      void this.refresh.hypervisor();
      showStatus(status, "Starting one more VM from the boot snapshot…");
      const restored = await this.measureVm(hv, `compare-restore-${n}`, false);
      void this.refresh.hypervisor();
      showStatus(status, "Starting one more container in this VM…");
      const ctr = await this.measureContainer(containers, `compare-ctr-${n}`);
      showStatus(status, "");
      this.draw([booted, restored, ctr]);
    } catch (err) {
      showStatus(status, err);
    } finally {
      this.comparing = false;
    }
    void this.refresh.all();
  }

  private async measureVm(hv: Hypervisor, name: string, boot: boolean): Promise<Measured> {
    const memoryMiB = pageHost().defaultMemoryMiB;
    const t0 = performance.now();
    const vm = await hv.createVm({ name, image: boot ? BOOT_IMAGE : RESTORE_IMAGE, cold: boot, memoryMiB });
    const startMs = performance.now() - t0;
    const guest = (await vm.metrics()).memory.guest;
    return {
      title: boot ? "one more VM, booted" : "one more VM, from a snapshot",
      name,
      startMs,
      how: boot ? "boots its own Linux kernel, then its init and agent" : "restores the boot snapshot: a VM saved right after its boot",
      memory: `${vm.memoryMiB} MiB`,
      memoryNote: `reserved for its RAM; its own kernel and processes use ${guest ? mib(guest.usedKiB * 1024) : "?"} of it`,
      carries: "a whole OS: kernel, init, shell",
    };
  }

  private async measureContainer(containers: PageContainers, name: string): Promise<Measured> {
    const { container, ms } = await containers.run({ image: "busybox", command: ["sleep", "3600"], name });
    const stats = await containers.engine.stats(container.id);
    return {
      title: "one more container",
      name,
      startMs: ms,
      how: "crun run: namespaces, a cgroup, an overlayfs root; no kernel to start",
      memory: mib(stats.memoryBytes),
      memoryNote: "its cgroup's memory.current: its processes and the files they touched",
      carries: "one process tree; shares this VM's kernel",
    };
  }

  private draw(sides: Measured[]): void {
    const table = el("table", { className: "compare" });
    const row = (label: string, cells: Array<Node | string>) =>
      table.append(el("tr", {}, el("td", { text: label }), ...cells.map((c) => el("td", {}, typeof c === "string" ? document.createTextNode(c) : c))));
    row("", sides.map((m) => el("strong", { text: m.title })));
    row("", sides.map((m) => el("span", { className: "muted", text: m.name })));
    row("time to start", sides.map((m) => el("span", { className: "big", text: seconds(m.startMs) })));
    row("how", sides.map((m) => m.how));
    row("memory it costs", sides.map((m) => el("span", { className: "big", text: m.memory })));
    row("", sides.map((m) => m.memoryNote));
    row("carries", sides.map((m) => m.carries));
    table.dataset.ms = sides.map((m) => Math.round(m.startMs)).join(" ");
    this.result.replaceChildren(table);
  }
}
