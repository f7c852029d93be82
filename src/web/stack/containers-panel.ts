// The Containers layer: a form that runs a container in the page's VM (image,
// command, cgroup limits, runtime), and each container with its PID 1,
// limits and use, a terminal into it and its removal.
import { type Limits, parseCpus, parseMemory, parsePidsLimit } from "../../containers/limits.ts";
import { type PortBinding, parsePublish } from "../../containers/ports.ts";
import { type ContainerView, PAGE_CONTAINER_IMAGES, type PageContainers } from "../page-containers.ts";
import type { PageVm } from "../page-vm.ts";
import { processIo } from "../terminal.ts";
import { button, el, labelled, list, reconcile, showStatus } from "./dom.ts";
import type { Refresh, StackHooks } from "./hooks.ts";
import { limitsText, mib, seconds, splitCommand } from "./text.ts";

/** The Containers layer of the stack view, drawn into `parent`; `draw` shows the containers the guest reports. */
export class ContainersPanel {
  private readonly status = el("p", { className: "status" });
  private readonly items = el("div");
  private readonly form: {
    image: HTMLSelectElement;
    command: HTMLInputElement;
    publish: HTMLInputElement;
    memory: HTMLInputElement;
    cpus: HTMLInputElement;
    pids: HTMLInputElement;
    runtime: HTMLSelectElement;
    run: HTMLButtonElement;
  };
  /** why published ports cannot be links here (no service worker), once known */
  private linksBroken: string | undefined;
  /** last CPU reading of each container, for its CPU use between two refreshes */
  private readonly cpuSeen = new Map<string, { us: number; t: number; percent?: number }>();

  constructor(
    parent: HTMLElement,
    private readonly vm: Pick<PageVm, "containers">,
    private readonly hooks: StackHooks,
    private readonly refresh: Refresh,
  ) {
    const image = el("select");
    for (const ref of PAGE_CONTAINER_IMAGES) image.append(el("option", { text: ref }));
    const command = el("input");
    command.value = "sleep 3600";
    command.spellcheck = false;
    const number = (placeholder: string, step: string) => {
      const input = el("input");
      input.type = "number";
      input.min = "0";
      input.step = step;
      input.placeholder = placeholder;
      return input;
    };
    const runtime = el("select");
    for (const r of ["crun", "runc"]) runtime.append(el("option", { text: r }));
    const publish = el("input");
    publish.placeholder = "e.g. 8080:80";
    publish.spellcheck = false;
    publish.name = "publish";
    this.form = {
      image,
      command,
      publish,
      memory: number("no limit", "1"),
      cpus: number("no limit", "0.1"),
      pids: number("no limit", "1"),
      runtime,
      run: button("Run", () => void this.run(), { primary: true, name: "run" }),
    };
    const form = el("form", { className: "run-container" });
    form.append(
      labelled("image", image),
      labelled("command", command, true),
      labelled("publish (-p)", publish),
      labelled("memory (MiB)", this.form.memory),
      labelled("CPUs", this.form.cpus),
      labelled("pids", this.form.pids),
      labelled("runtime", runtime),
      el("label", {}, el("span", { text: "\u00a0" }), this.form.run),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.run();
    });
    this.items.append(el("p", { className: "muted", text: "The stack appears once the VM is running." }));
    parent.append(form, this.status, this.items);
  }

  /** Shows `views`, keeping each unchanged item's node; each one's use is written in place. */
  draw(views: ContainerView[]): void {
    const box = this.items;
    if (views.length === 0) {
      reconcile(box, [
        {
          key: "none",
          signature: "",
          render: () =>
            el("p", { className: "muted", text: "No containers in this VM yet. Run one above: the runtime below starts it as ordinary processes of this VM, with namespaces of their own and a cgroup with its limits." }),
        },
      ]);
      return;
    }
    const now = performance.now();
    const items = reconcile(
      box,
      views.map(({ container: c, pid1 }) => ({
        key: c.id,
        signature: `${c.status} ${pid1 ?? ""} ${(c.published ?? []).map((p) => p.hostPort).join(",")} ${this.linksBroken ?? ""}`,
        render: () => {
          const item = el("div", { className: "item container" });
          item.dataset.container = c.name;
          item.dataset.status = c.status;
          const status = c.status === "exited" ? `exited (${c.exitCode ?? "?"}${c.oomKilled ? ", out of memory" : ""})` : c.status;
          const head = el("div", { className: "head" }, el("strong", { text: c.name }), el("span", { className: "muted", text: c.image.reference }), el("span", { className: `state ${c.status}`, text: status }));
          const rows = list([
            ["PID 1", pid1 ? `${pid1} in the VM (PID 1 in its own PID namespace)` : c.status === "running" ? "…" : "none (exited)"],
            ["hostname", c.hostname],
            ["limits", limitsText(c.limits)],
            ["now", "—"],
            ["runtime", `${c.runtime} · ${c.command.join(" ")}`],
          ]);
          rows.querySelectorAll("dd")[3]!.className = "now";
          if (c.status === "running" && c.published?.length) rows.append(el("dt", { text: "ports" }), this.portLinks(c.published));
          const actions = el("div", { className: "actions" });
          if (c.status === "running") actions.append(button("Open a terminal", () => void this.openTerminal(c.id, c.name), { name: "terminal" }));
          actions.append(button("Remove", () => void this.remove(c.id), { name: "remove" }));
          item.append(head, rows, actions);
          return item;
        },
      })),
    );
    // What changes on every refresh is written in place.
    views.forEach(({ container: c, stats }, i) => {
      let text = "—";
      if (stats) {
        const seen = this.cpuSeen.get(c.id);
        // CPU use between two readings: cgroup CPU time over wall time, as a share of the VM's one CPU.
        const percent = seen && now > seen.t ? ((stats.cpuUsageUs - seen.us) / ((now - seen.t) * 1000)) * 100 : undefined;
        this.cpuSeen.set(c.id, { us: stats.cpuUsageUs, t: now, percent: percent ?? seen?.percent });
        const shown = percent ?? seen?.percent;
        const cpu = shown === undefined ? `${(stats.cpuUsageUs / 1e6).toFixed(2)} s of CPU so far` : `CPU ${Math.max(0, shown).toFixed(0)} %`;
        text = `memory ${mib(stats.memoryBytes)} · ${cpu} · ${stats.pids} ${stats.pids === 1 ? "process" : "processes"}`;
      }
      const dd = items[i]!.querySelector("dd.now");
      if (dd && dd.textContent !== text) dd.textContent = text;
    });
  }

  /** The Run button: a container from the form, in the background, shown in the list once it runs. */
  private async run(): Promise<void> {
    const f = this.form;
    const status = this.status;
    let containers: PageContainers;
    const limits: Limits = {};
    let command: string[];
    let ports: PortBinding[];
    try {
      containers = this.vm.containers();
      if (f.memory.value) limits.memoryBytes = parseMemory(`${f.memory.value}m`);
      if (f.cpus.value) Object.assign(limits, parseCpus(f.cpus.value));
      if (f.pids.value) limits.pidsLimit = parsePidsLimit(f.pids.value);
      command = splitCommand(f.command.value);
      ports = f.publish.value.trim() ? f.publish.value.trim().split(/[\s,]+/).flatMap(parsePublish) : [];
    } catch (err) {
      showStatus(status, err);
      return;
    }
    f.run.disabled = true;
    showStatus(status, `Starting a ${f.image.value} container…`);
    try {
      const image = f.image.value;
      const { container, ms, pulled } = await containers.run({ image, command, limits, runtime: f.runtime.value as "crun" | "runc", ports }, () =>
        showStatus(status, `Pulling ${image} from this site's registry (its first use in this page; see Images below), then starting it…`),
      );
      const published = container.published?.length ? ` Its ${container.published.length === 1 ? "port opens" : "ports open"} from its links below, in a new tab.` : "";
      showStatus(status, `${container.name} started in ${seconds(ms)} (${container.runtime} run, in this VM${pulled ? `, after ${image} was pulled` : ""}).${published}`);
      if (ports.length) {
        const links = await containers.portLinks();
        this.linksBroken = links.ready ? undefined : links.reason;
      }
    } catch (err) {
      showStatus(status, err);
    } finally {
      f.run.disabled = false;
    }
    await this.refresh.all();
  }

  /** A published port's row: a link per port that opens the container's server in a new tab (or why it cannot). */
  private portLinks(published: NonNullable<ContainerView["container"]["published"]>): HTMLElement {
    const dd = el("dd", { className: "ports" });
    const containers = this.vm.containers();
    published.forEach((p, i) => {
      if (i) dd.append(document.createTextNode(" · "));
      const a = el("a", { text: `port ${p.hostPort} → ${p.containerPort}` });
      a.href = containers.portUrl(p.hostPort);
      a.target = "_blank";
      a.rel = "noopener";
      a.dataset.port = String(p.hostPort);
      dd.append(a);
    });
    if (this.linksBroken) dd.append(el("span", { className: "muted", text: ` (links cannot open here: ${this.linksBroken})` }));
    return dd;
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.vm.containers().engine.remove(id, { force: true });
      this.cpuSeen.delete(id);
      showStatus(this.status, "");
    } catch (err) {
      showStatus(this.status, err);
    }
    await this.refresh.all();
  }

  private async openTerminal(id: string, name: string): Promise<void> {
    try {
      const proc = await this.vm.containers().shell(id, { rows: 24, cols: 80 });
      this.hooks.openTerminal(`${name} (container)`, processIo(proc), { exited: proc.exited, close: () => void proc.kill(9).catch(() => {}) });
    } catch (err) {
      showStatus(this.status, err);
    }
  }
}
