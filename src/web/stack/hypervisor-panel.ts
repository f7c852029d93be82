// The Hypervisor layer: the page's VMs and the memory budget they share, the
// pages they could share, and the controls a visitor acts on VMs with
// (pause, resume, snapshot, fork, console, destroy, create; restore from a
// snapshot taken here).
import { HyperlabError } from "../../errors.ts";
import type { Hypervisor, PageSharing } from "../../hypervisor/hypervisor.ts";
import type { Vm, VmMetrics } from "../../hypervisor/vm.ts";
import { pageVmContainers } from "../page-containers.ts";
import { RESTORE_IMAGE, pageHost } from "../page-host.ts";
import type { PageVm } from "../page-vm.ts";
import type { TerminalIo } from "../terminal.ts";
import { button, el, list, reconcile, showStatus } from "./dom.ts";
import type { Refresh, StackHooks } from "./hooks.ts";
import { mib, seconds } from "./text.ts";

/** A snapshot taken from the Hypervisor layer, kept in this page. */
interface TakenSnapshot {
  vm: string;
  bytes: Uint8Array;
  ms: number;
  at: Date;
}

/** The Hypervisor layer of the stack view, drawn into `parent`; `draw` shows what the hypervisor knows at once. */
export class HypervisorPanel {
  private readonly vmList = el("div");
  private readonly sharing = el("div");
  private readonly status = el("p", { className: "status" });
  private readonly snapshotList = el("div");
  /** VMs with an action under way (their buttons wait) */
  private readonly busy = new Set<string>();
  private readonly snapshots: TakenSnapshot[] = [];

  constructor(
    parent: HTMLElement,
    private readonly vm: Pick<PageVm, "hypervisor" | "handle">,
    private readonly hooks: StackHooks,
    private readonly refresh: Refresh,
  ) {
    parent.append(
      this.vmList,
      this.sharing,
      el("div", { className: "actions" }, button("Create a VM", () => void this.createVm(), { name: "create-vm" })),
      this.status,
      this.snapshotList,
    );
  }

  /** Shows the budget and each VM of `hv` with its controls; `metrics` (each VM's latest, by name) adds what its guest uses. */
  draw(hv: Hypervisor, metrics: ReadonlyMap<string, VmMetrics>): void {
    const budget = hv.budget;
    const own = this.vm.handle;
    const budgetText = `${budget.usedMiB} of ${budget.totalMiB} MiB reserved by VMs (${budget.freeMiB} MiB free)`;
    reconcile(this.vmList, [
      { key: "budget", signature: budgetText, render: () => list([["memory budget", budgetText]]) },
      ...hv.list().map((vm) => {
        const v = vm.info();
        const guest = metrics.get(v.name)?.memory.guest;
        const busy = this.busy.has(v.name);
        const guestText = guest ? `${mib(guest.usedKiB * 1024)} of its ${v.memoryMiB} MiB` : "";
        // The containers this VM hosts, as `hyperlab stats` lists them under their VM.
        const hosted = pageVmContainers(hv)
          .containersOf(vm, { all: true })
          .map((c) => `${c.name} (${c.image.reference}, ${c.status})`)
          .join(", ");
        return {
          key: `vm ${v.name}`,
          signature: [v.state, busy, guestText, v.stopReason?.code ?? "", hosted].join(" "),
          render: () => {
            const item = el("div", { className: "item vm" });
            item.dataset.vm = v.name;
            item.dataset.state = v.state;
            const head = el(
              "div",
              { className: "head" },
              el("strong", { text: `${v.name}${v.name === own?.name ? " (this)" : ""}` }),
              el("span", { className: `state ${v.state}`, text: v.state }),
              el("span", { className: "muted", text: `${v.memoryMiB} MiB, CPU share ${v.cpuShare}, from ${v.origin}` }),
            );
            const rows: Array<[string, string]> = [];
            if (guestText) rows.push(["guest uses", guestText]);
            rows.push(["containers", hosted || "none"]);
            if (v.stopReason) rows.push(["stopped", `${v.stopReason.code}: ${v.stopReason.message}`]);
            const actions = el("div", { className: "actions" });
            const act = (text: string, name: string, fn: (vm: Vm) => Promise<unknown>, enabled: boolean) =>
              actions.append(button(text, () => void this.vmAction(v.name, fn), { disabled: busy || !enabled, name }));
            const live = v.state === "running" || v.state === "paused";
            if (v.state === "paused") act("Resume", "resume", (vm) => vm.resume(), true);
            else act("Pause", "pause", (vm) => vm.pause(), v.state === "running");
            act("Snapshot", "snapshot", (vm) => this.snapshot(vm), live);
            act("Fork", "fork", (vm) => this.fork(vm), live);
            if (v.name !== own?.name && v.state === "running") actions.append(button("Open its console", () => this.openVmConsole(v.name), { name: "console" }));
            act("Destroy", "destroy", (vm) => vm.destroy(), v.state !== "destroyed");
            item.append(head, ...(rows.length ? [list(rows)] : []), actions);
            return item;
          },
        };
      }),
    ]);
  }

  /** Shows the pages the VMs could share (what KSM would merge), or nothing when they could not be counted. */
  drawSharing(sharing: PageSharing | undefined): void {
    const pages = (n: number) => mib(n * (sharing?.pageSize ?? 4096));
    this.sharing.replaceChildren(
      ...(sharing
        ? [
            list([
              [
                "pages shareable",
                `${pages(sharing.savedPages)} of ${pages(sharing.totalPages)} could be freed by merging identical pages (${sharing.vms} VM${sharing.vms === 1 ? "" : "s"}; ${pages(sharing.zeroPages)} all-zero); ${pages(sharing.crossVmPages)} of contents occur in more than one VM`,
              ],
            ]),
          ]
        : []),
    );
  }

  /** A VM of this page by name, or the reason it is gone. */
  private vmNamed(name: string): Vm {
    const hv = this.vm.hypervisor();
    if (!hv) throw new HyperlabError("VM_INVALID_STATE", "the page's hypervisor is not ready yet");
    return hv.get(name);
  }

  private async vmAction(name: string, fn: (vm: Vm) => Promise<unknown>): Promise<void> {
    this.busy.add(name);
    void this.refresh.hypervisor();
    try {
      await fn(this.vmNamed(name));
    } catch (err) {
      showStatus(this.status, err);
    } finally {
      this.busy.delete(name);
    }
    void this.refresh.all();
  }

  private async snapshot(vm: Vm): Promise<void> {
    showStatus(this.status, `Taking a snapshot of ${vm.name}…`);
    const t0 = performance.now();
    const bytes = await vm.snapshot();
    const taken: TakenSnapshot = { vm: vm.name, bytes, ms: performance.now() - t0, at: new Date() };
    this.snapshots.unshift(taken);
    showStatus(this.status, `Snapshot of ${vm.name}: ${mib(bytes.length)} in ${seconds(taken.ms)} (the whole machine: CPU, devices and memory).`);
    this.drawSnapshots();
  }

  private async fork(vm: Vm): Promise<void> {
    showStatus(this.status, `Forking ${vm.name}…`);
    const t0 = performance.now();
    const [copy] = await vm.fork(1);
    showStatus(this.status, `${copy!.name} is a copy of ${vm.name} as it was a moment ago (its memory, files and processes), made in ${seconds(performance.now() - t0)}.`);
  }

  private async createVm(): Promise<void> {
    const hv = this.vm.hypervisor();
    if (!hv) return;
    showStatus(this.status, "Creating a VM…");
    const t0 = performance.now();
    try {
      const created = await hv.createVm({ image: RESTORE_IMAGE, memoryMiB: pageHost().defaultMemoryMiB });
      showStatus(this.status, `${created.name} is running: restored from the boot snapshot in ${seconds(performance.now() - t0)}, with ${created.memoryMiB} MiB from the budget.`);
    } catch (err) {
      showStatus(this.status, err);
    }
    await this.refresh.all();
  }

  private drawSnapshots(): void {
    const hv = this.vm.hypervisor();
    this.snapshotList.replaceChildren(
      ...this.snapshots.map((s) => {
        const item = el("div", { className: "item snapshot" });
        const download = el("a", { text: "Download" });
        download.href = URL.createObjectURL(new Blob([s.bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
        download.download = `${s.vm}-${s.at.toISOString().replace(/[:.]/g, "-")}.hlsnap`;
        const restore = button("Restore as a new VM", () => {
          if (!hv) return;
          showStatus(this.status, `Restoring the snapshot of ${s.vm}…`);
          const t0 = performance.now();
          hv.restore(s.bytes).then(
            (vm) => showStatus(this.status, `${vm.name} restored from the snapshot of ${s.vm} in ${seconds(performance.now() - t0)}.`),
            (err: unknown) => showStatus(this.status, err),
          ).finally(() => void this.refresh.all());
        }, { name: "restore" });
        item.append(el("div", { className: "head" }, el("strong", { text: `snapshot of ${s.vm}` }), el("span", { className: "muted", text: `${s.at.toLocaleTimeString()}, ${mib(s.bytes.length)}` })), el("div", { className: "actions" }, restore, download));
        return item;
      }),
    );
  }

  /** A terminal tab on another VM's serial console. */
  private openVmConsole(name: string): void {
    let vm: Vm;
    try {
      vm = this.vmNamed(name);
    } catch (err) {
      showStatus(this.status, err);
      return;
    }
    const io: TerminalIo = {
      output: (write) => vm.onEvent((e) => e.type === "console" && write(e.data)),
      input: (data) => void vm.writeConsole(data).catch(() => {}),
      resize: (rows, cols) => void vm.exec(["stty", "-F", "/dev/ttyS0", "rows", String(rows), "cols", String(cols)]).catch(() => {}),
    };
    this.hooks.openTerminal(`${name} (VM console)`, io);
    // Its shell printed its prompt long ago (or in the VM it was copied from): Ctrl-L draws it again.
    void vm.writeConsole("\x0c").catch(() => {});
  }
}
