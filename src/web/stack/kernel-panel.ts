// The Kernel layer: the guest's Linux, its namespaces (and which of them each
// container has of its own) and its cgroup tree: what isolates containers.
import type { ContainerView } from "../page-containers.ts";
import type { GuestStack } from "../stack-data.ts";
import { el, list } from "./dom.ts";

/** The Kernel layer of the stack view, drawn into `parent`; `draw` shows what the guest reports. */
export class KernelPanel {
  private readonly box = el("div");

  constructor(parent: HTMLElement) {
    parent.append(this.box);
  }

  /** Shows the kernel, its namespaces beside those of each container in `views`, and its cgroup tree. */
  draw(guest: GuestStack, views: ContainerView[]): void {
    const cgroupTree = el("div", { className: "mono", text: guest.cgroups.join("\n") });
    cgroupTree.style.whiteSpace = "pre-wrap";
    cgroupTree.style.overflowWrap = "anywhere";
    const withNs = views.filter((v) => v.pid1 && guest.containerNamespaces[v.pid1]);
    const rows: Node[] = [
      list([
        ["release", `Linux ${guest.release}`],
        ["uptime", `${guest.uptimeSeconds.toFixed(1)} s`],
        ["namespaces of PID 1", guest.namespaces.map((n) => `${n.type} ${n.inode}`).join(", ")],
        ["cgroup v2 controllers", guest.controllers.join(" ")],
      ]),
    ];
    if (withNs.length) {
      // Each namespace is an inode: the same number means shared with the VM's own processes, another means the container's own.
      const table = el("table", { className: "namespaces" });
      table.append(el("tr", {}, el("th", { text: "namespace" }), el("th", { text: "VM (PID 1)" }), ...withNs.map((v) => el("th", { text: v.container.name }))));
      for (const ns of guest.namespaces.filter((n) => !n.type.endsWith("_for_children"))) {
        const tr = el("tr", {}, el("td", { text: ns.type }), el("td", { text: String(ns.inode) }));
        for (const v of withNs) {
          const inode = guest.containerNamespaces[v.pid1!]!.find((n) => n.type === ns.type)?.inode;
          const own = inode !== undefined && inode !== ns.inode;
          const td = el("td", { className: own ? "own" : undefined, text: inode === undefined ? "?" : own ? `${inode}` : "shared" });
          tr.append(td);
        }
        table.append(tr);
      }
      rows.push(el("h3", { text: "namespaces: the VM vs its containers" }), table);
    }
    rows.push(el("h3", { text: "cgroup tree" }), cgroupTree);
    this.box.replaceChildren(...rows);
  }
}
