// The live stack view beside a VM's terminal: five layers, top to bottom,
// each read from the real system. Containers, runtime and kernel come from
// the guest (through its agent: /proc, cgroups, crun); hypervisor and
// hardware from the hypervisor's own figures for this page's VMs.
import type { HypervisorStats } from "../hypervisor/hypervisor.ts";
import type { PageVm } from "./page-vm.ts";
import { type GuestStack, LIVE_SCRIPT, STATIC_SCRIPT, parseGuestStack } from "./stack-data.ts";

/** How often the view reads the system again, ms. */
const REFRESH_MS = 3000;

const STYLE = `
.stackview { padding: 8px 10px; font-size: 13px; color: #1d2330; }
.stackview h3 { margin: 10px 0 4px; font-size: 12px; letter-spacing: .04em; text-transform: uppercase; color: #4a5568; }
.stackview section { border: 1px solid #d6dde7; border-radius: 6px; padding: 6px 8px; background: #fff; margin-bottom: 6px; }
.stackview dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; margin: 0; }
.stackview dt { color: #4a5568; }
.stackview dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.stackview .mono { font: 12px ui-monospace, monospace; }
.stackview .muted { color: #6b7686; }
.stackview .diagram { font: 12px ui-monospace, monospace; white-space: pre; color: #2d3748; margin: 4px 0 0; }
.stackview .here { background: #fff3c4; }
`;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  node.append(...children);
  return node;
}

function list(rows: Array<[string, string]>): HTMLDListElement {
  const dl = el("dl");
  for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { text: v }));
  return dl;
}

function mib(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} MiB`;
}

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

/** The stack view of one VM, drawn into `box` and refreshed while the VM runs and the page is visible. */
export class StackView {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private staticPart: string | undefined;
  private disposed = false;
  private readonly content = el("div", { className: "stackview" });

  constructor(
    private readonly box: HTMLElement,
    private readonly vm: PageVm,
  ) {
    this.box.replaceChildren(el("style", { text: STYLE }), this.content);
    this.content.append(el("p", { className: "muted", text: "The stack appears once the VM is running." }));
    const off = vm.on((e) => {
      if (e.type === "phase" && e.phase === "ready") {
        off();
        void this.refresh();
      }
    });
    if (vm.phase === "ready") void this.refresh();
  }

  /** Stops refreshing. */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
  }

  private async refresh(): Promise<void> {
    if (this.disposed) return;
    try {
      if (document.visibilityState !== "hidden" && this.vm.state === "running") {
        this.staticPart ??= (await this.vm.exec(["/bin/sh", "-c", STATIC_SCRIPT], { timeoutMs: 20_000 })).stdout;
        const [live, metrics, stats] = await Promise.all([
          this.vm.exec(["/bin/sh", "-c", LIVE_SCRIPT], { timeoutMs: 20_000 }),
          this.vm.metrics(),
          this.vm.hypervisor()?.stats(),
        ]);
        if (!this.disposed) this.draw(parseGuestStack(live.stdout, this.staticPart), metrics, stats);
      }
    } catch {
      // The VM stopped or is busy: the element shows why; try again later.
    }
    if (!this.disposed && this.vm.state !== "stopped" && this.vm.state !== "destroyed") {
      this.timer = setTimeout(() => void this.refresh(), REFRESH_MS);
    }
  }

  private draw(guest: GuestStack, metrics: Awaited<ReturnType<PageVm["metrics"]>>, stats: HypervisorStats | undefined): void {
    const containers = el("section", { className: "layer-containers" });
    containers.dataset.layer = "containers";
    if (guest.containers.length === 0) {
      containers.append(el("p", { className: "muted", text: "No containers in this VM. Each would be processes with their own namespaces and cgroup, started by the runtime below." }));
    } else {
      containers.append(list(guest.containers.map((c) => [c.id, `PID ${c.pid} (as the VM sees it), ${c.status}`])));
    }

    const runtime = el("section", { className: "layer-runtime" }, list([
      ["crun", guest.crun || "not found"],
      ["runc", guest.runc || "not found"],
    ]));
    runtime.dataset.layer = "runtime";

    const cgroupTree = el("div", { className: "mono", text: guest.cgroups.join("\n") });
    cgroupTree.style.whiteSpace = "pre";
    const kernel = el("section", { className: "layer-kernel" },
      list([
        ["release", `Linux ${guest.release}`],
        ["uptime", `${guest.uptimeSeconds.toFixed(1)} s`],
        ["namespaces of PID 1", guest.namespaces.map((n) => `${n.type} ${n.inode}`).join(", ")],
        ["cgroup v2 controllers", guest.controllers.join(" ")],
      ]),
      el("h3", { text: "cgroup tree" }),
      cgroupTree,
    );
    kernel.dataset.layer = "kernel";

    const hypervisor = el("section", { className: "layer-hypervisor" });
    hypervisor.dataset.layer = "hypervisor";
    if (stats) {
      const { budget } = stats;
      hypervisor.append(
        list([
          ["memory budget", `${budget.usedMiB} of ${budget.totalMiB} MiB reserved by VMs`],
          ...stats.vms.map((v): [string, string] => [
            `${v.name}${v.name === metrics.name ? " (this)" : ""}`,
            `${v.state}, ${v.memoryMiB} MiB, CPU share ${v.cpuShare}, from ${v.origin}`,
          ]),
        ]),
      );
    }

    const guestMem = metrics.memory.guest;
    const hardware = el("section", { className: "layer-hardware" }, list([
      ["CPU", `x86 (emulated), ${count(metrics.cpu.instructionsPerSecond)} instructions/s, ${count(metrics.cpu.instructions)} so far`],
      ["memory", `${metrics.memory.allocatedMiB} MiB${guestMem ? `, guest uses ${mib(guestMem.usedKiB)}` : ""}`],
      ["serial console", `${count(metrics.devices.consoleOut)} B out, ${count(metrics.devices.consoleIn)} B in`],
      ["virtio console (agent)", `${count(metrics.devices.controlOut)} B out, ${count(metrics.devices.controlIn)} B in`],
    ]));
    hardware.dataset.layer = "hardware";

    const diagram = el("div", { className: "diagram" });
    const levels = ["hardware (this computer)", "host operating system", "browser (this tab)", "hyperlab hypervisor  ← Type 2: above an OS", "VMs (this one and its siblings)", "containers"];
    diagram.textContent = levels.map((l, i) => `${"  ".repeat(i)}${i ? "└ " : ""}${l}`).join("\n");

    this.content.replaceChildren(
      el("h3", { text: "Containers" }), containers,
      el("h3", { text: "Runtime" }), runtime,
      el("h3", { text: "Kernel" }), kernel,
      el("h3", { text: "Hypervisor" }), hypervisor,
      el("h3", { text: "Hardware" }), hardware,
      el("h3", { text: "Where hyperlab sits" }), diagram,
    );
  }
}
