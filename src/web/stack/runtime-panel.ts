// The Runtime layer: the OCI runtimes the guest has (crun, runc) and the
// bundle each running container was started from.
import type { ContainerView } from "../page-containers.ts";
import type { PageVm } from "../page-vm.ts";
import type { GuestStack } from "../stack-data.ts";
import { el, list } from "./dom.ts";

/** The Runtime layer of the stack view, drawn into `parent`; `draw` shows what the guest reports. */
export class RuntimePanel {
  private readonly box = el("div");
  /** each running container's bundle view, by container id */
  private readonly bundles = new Map<string, HTMLDetailsElement>();

  constructor(
    parent: HTMLElement,
    private readonly vm: Pick<PageVm, "exec">,
  ) {
    parent.append(this.box);
  }

  /** Shows the runtimes' versions and the bundle of each running container in `views`. */
  draw(guest: GuestStack, views: ContainerView[]): void {
    const running = views.filter((v) => v.container.status === "running");
    this.box.replaceChildren(
      list([
        ["crun", guest.crun || "not found"],
        ["runc", guest.runc || "not found"],
        ...running.map((v): [string, string] => [v.container.name, `OCI bundle /run/hyperlab/containers/${v.container.id.slice(0, 12)}…: config.json, rootfs (overlayfs over ${v.container.image.layers.length} image layer${v.container.image.layers.length === 1 ? "" : "s"})`]),
      ]),
      ...running.map((v) => this.bundleView(v.container.id, v.container.name)),
    );
    for (const id of [...this.bundles.keys()]) if (!running.some((v) => v.container.id === id)) this.bundles.delete(id);
  }

  /**
   * A container's OCI bundle config, read from the guest when opened: what the
   * runtime was told (namespaces, mounts, cgroup limits, hooks). Kept across
   * redraws so an open one stays open.
   */
  private bundleView(id: string, name: string): HTMLDetailsElement {
    let details = this.bundles.get(id);
    if (details) return details;
    details = el("details", { className: "bundle" });
    const body = el("pre", { className: "mono", text: "reading config.json…" });
    body.style.whiteSpace = "pre-wrap";
    body.style.maxHeight = "20em";
    body.style.overflow = "auto";
    details.append(el("summary", { text: `config.json of ${name}` }), body);
    let read = false;
    details.addEventListener("toggle", () => {
      if (!details!.open || read) return;
      read = true;
      const path = `/run/hyperlab/containers/${id}/config.json`;
      this.vm.exec(["cat", path], { timeoutMs: 20_000 }).then(
        (r) => {
          try {
            body.textContent = JSON.stringify(JSON.parse(r.stdout), null, 2);
          } catch {
            body.textContent = r.stdout || r.stderr || `${path}: empty`;
          }
        },
        (err: Error) => {
          read = false;
          body.textContent = `could not read ${path}: ${err.message}`;
        },
      );
    });
    this.bundles.set(id, details);
    return details;
  }
}
