// The Hardware layer: the emulated machine under the page's VM (its CPU,
// RAM and the two consoles), from the hypervisor's metrics.
import type { VmMetrics } from "../../hypervisor/vm.ts";
import { el, list } from "./dom.ts";
import { count, mib } from "./text.ts";

/** The Hardware layer of the stack view, drawn into `parent`; `draw` shows the page VM's latest metrics. */
export class HardwarePanel {
  private readonly box = el("div");

  constructor(parent: HTMLElement) {
    parent.append(this.box);
  }

  /** Shows the CPU, memory and devices as `metrics` counts them. */
  draw(metrics: VmMetrics): void {
    const guestMem = metrics.memory.guest;
    this.box.replaceChildren(
      list([
        ["CPU", `x86 (emulated), ${count(metrics.cpu.instructionsPerSecond)} instructions/s, ${count(metrics.cpu.instructions)} so far`],
        ["memory", `${metrics.memory.allocatedMiB} MiB${guestMem ? `, guest uses ${mib(guestMem.usedKiB * 1024)}` : ""}`],
        ["serial console", `${count(metrics.devices.consoleOut)} B out, ${count(metrics.devices.consoleIn)} B in`],
        ["virtio console (agent)", `${count(metrics.devices.controlOut)} B out, ${count(metrics.devices.controlIn)} B in`],
      ]),
    );
  }
}
