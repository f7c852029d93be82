// The live stack view beside a VM's terminal: five layers, top to bottom,
// each read from the real system, with the controls of the two layers a
// visitor acts on. Containers, runtime and kernel come from the guest
// (through its agent: /proc, cgroups, the runtimes); hypervisor and hardware
// from the hypervisor's own figures for this page's VMs. Containers can be
// run and opened in a terminal; VMs created, paused, snapshotted, forked and
// destroyed; and one more VM and one more container started side by side.
import { HyperlabError } from "../errors.ts";
import { type Limits, parseCpus, parseMemory, parsePidsLimit } from "../containers/limits.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm, VmMetrics } from "../hypervisor/vm.ts";
import { type ContainerView, PAGE_CONTAINER_IMAGES, type PageContainers } from "./page-containers.ts";
import { BOOT_IMAGE, RESTORE_IMAGE, pageHost } from "./page-host.ts";
import type { PageVm } from "./page-vm.ts";
import { type GuestStack, LIVE_SCRIPT, STATIC_SCRIPT, parseGuestStack } from "./stack-data.ts";
import { type TerminalIo, processIo } from "./terminal.ts";

/** How often the view reads the guest again (a few processes in it), ms. */
const REFRESH_MS = 3000;
/** How often it reads the hypervisor's figures again (no guest work), ms. */
const HYPERVISOR_REFRESH_MS = 1000;
/** How often it counts the pages VMs could share (every VM hashes its RAM), ms. */
const SHARING_REFRESH_MS = 10_000;

/**
 * Runs `read` every `periodMs` while the page is visible, one at a time;
 * `now()` reads at once (or once more right after a read in progress).
 */
class Refresher {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly periodMs: number,
    private readonly read: () => Promise<void>,
  ) {}

  now(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    clearTimeout(this.timer);
    this.running = (document.visibilityState === "hidden" ? Promise.resolve() : this.read())
      .catch(() => {})
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          void this.now();
        } else this.timer = setTimeout(() => void this.now(), this.periodMs);
      });
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/** What the stack view asks of the element it is in. */
export interface StackHooks {
  /** opens a terminal tab titled `title` on `io`; a process's end (`exited`) is noted in it */
  openTerminal(title: string, io: TerminalIo, opts?: { exited?: Promise<{ exitCode: number; signal: number }>; close?: () => void }): void;
}

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
.stackview form { display: grid; grid-template-columns: repeat(3, 1fr); gap: 4px 6px; margin: 0 0 4px; }
.stackview label { display: flex; flex-direction: column; font-size: 11px; color: #4a5568; min-width: 0; }
.stackview label.wide { grid-column: span 2; }
.stackview input, .stackview select { font: 12px ui-monospace, monospace; padding: 2px 4px; min-width: 0; border: 1px solid #c9d1dc; border-radius: 4px; }
.stackview button { font: 12px system-ui, sans-serif; padding: 2px 8px; border: 1px solid #9fb0c6; border-radius: 4px; background: #eef3f9; cursor: pointer; }
.stackview button:disabled { opacity: .5; cursor: default; }
.stackview button.primary { background: #2f6fb5; color: #fff; border-color: #2f6fb5; }
.stackview .actions { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 4px; }
.stackview .status { margin: 4px 0 0; font-size: 12px; color: #2d3748; white-space: pre-wrap; overflow-wrap: anywhere; }
.stackview .status:empty { display: none; }
.stackview .status.error { color: #7a1c12; background: #fff4f2; border: 1px solid #e7b4aa; border-radius: 4px; padding: 4px 6px; }
.stackview .status.error .code { font: 11px ui-monospace, monospace; color: #a0453a; display: block; }
.stackview .item { border-top: 1px solid #e4e9f0; padding: 5px 0 4px; }
.stackview .item:first-child { border-top: 0; }
.stackview .item .head { display: flex; flex-wrap: wrap; gap: 0 8px; align-items: baseline; }
.stackview .state { font-size: 11px; padding: 0 5px; border-radius: 8px; background: #e6eaf0; }
.stackview .state.running { background: #dcf1e1; color: #23613a; }
.stackview .state.paused { background: #fbefc9; color: #7a5a00; }
.stackview .state.exited, .stackview .state.stopped { background: #f2e3e1; color: #7a1c12; }
.stackview table { border-collapse: collapse; width: 100%; font-size: 12px; }
.stackview th, .stackview td { text-align: left; padding: 2px 4px; border-bottom: 1px solid #e4e9f0; vertical-align: top; font-variant-numeric: tabular-nums; }
.stackview td.own { background: #e8f1fb; }
.stackview .compare td:first-child { color: #4a5568; }
.stackview .compare .big { font-size: 15px; font-weight: 600; }
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

function button(text: string, action: () => void, opts: { primary?: boolean; disabled?: boolean; name?: string } = {}): HTMLButtonElement {
  const b = el("button", { text, className: opts.primary ? "primary" : undefined });
  b.type = "button";
  b.disabled = !!opts.disabled;
  if (opts.name) b.dataset.action = opts.name;
  b.addEventListener("click", action);
  return b;
}

function labelled(text: string, control: HTMLElement, wide = false): HTMLLabelElement {
  const label = el("label", { className: wide ? "wide" : undefined, text });
  label.append(control);
  return label;
}

function mib(bytes: number): string {
  const m = bytes / 2 ** 20;
  return `${m < 10 ? m.toFixed(1) : m.toFixed(0)} MiB`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

/** One keyed item of a list that is drawn again on every refresh. */
interface Keyed {
  key: string;
  /** what the item shows that is not updated in place: a new signature draws the item anew */
  signature: string;
  render(): HTMLElement;
}

/**
 * Shows `items` in `box`, keeping the node of every item whose key and
 * signature are unchanged: a refresh then never replaces a button under the
 * pointer (a click whose press and release land on different nodes is lost).
 */
function reconcile(box: HTMLElement, items: Keyed[]): HTMLElement[] {
  const old = new Map<string, HTMLElement>();
  for (const child of box.children) {
    const e = child as HTMLElement;
    if (e.dataset.key !== undefined) old.set(e.dataset.key, e);
  }
  const nodes = items.map((item) => {
    const kept = old.get(item.key);
    if (kept && kept.dataset.signature === item.signature) return kept;
    const node = item.render();
    node.dataset.key = item.key;
    node.dataset.signature = item.signature;
    return node;
  });
  const same = nodes.length === box.children.length && nodes.every((n, i) => box.children[i] === n);
  if (!same) box.replaceChildren(...nodes);
  return nodes;
}

/** Splits a command line as a shell would for plain words and quoted strings (no variables, no globbing). */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) out.push(m[1]?.replace(/\\(.)/g, "$1") ?? m[2] ?? m[3]!);
  return out;
}

/** A container's limits in words, as cgroup v2 enforces them. */
function limitsText(l: Limits): string {
  const parts: string[] = [];
  if (l.memoryBytes) parts.push(`memory ${mib(l.memoryBytes)}`);
  if (l.cpuQuotaUs) parts.push(`CPU ${(l.cpuQuotaUs / (l.cpuPeriodUs ?? 100_000)).toFixed(2).replace(/\.?0+$/, "")}`);
  if (l.pidsLimit) parts.push(`pids ${l.pidsLimit}`);
  return parts.length ? parts.join(" · ") : "none (it may use the whole VM)";
}

/** Shows an error (or a message) in place: code, then what happened and what to do. */
function showStatus(box: HTMLElement, what: string | unknown): void {
  box.replaceChildren();
  box.classList.toggle("error", typeof what !== "string");
  if (typeof what === "string") {
    box.textContent = what;
    return;
  }
  const err = what instanceof HyperlabError ? what : new HyperlabError("INVALID_ARGUMENT", String((what as Error)?.message ?? what));
  box.append(el("span", { className: "code", text: err.code }), document.createTextNode(err.message));
}

/** A snapshot taken from the Hypervisor layer, kept in this page. */
interface TakenSnapshot {
  vm: string;
  bytes: Uint8Array;
  ms: number;
  at: Date;
}

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

/** The stack view of one VM, drawn into `box` and refreshed while the page is visible. */
export class StackView {
  private staticPart: string | undefined;
  private disposed = false;
  private readonly content = el("div", { className: "stackview" });
  private readonly parts = {
    containerList: el("div"),
    containerStatus: el("p", { className: "status" }),
    runtime: el("div"),
    kernel: el("div"),
    vmList: el("div"),
    sharing: el("div"),
    vmStatus: el("p", { className: "status" }),
    snapshots: el("div"),
    compareStatus: el("p", { className: "status" }),
    compareResult: el("div"),
    hardware: el("div"),
  };
  /** each running container's bundle view, by container id */
  private readonly bundles = new Map<string, HTMLDetailsElement>();
  private readonly form: { image: HTMLSelectElement; command: HTMLInputElement; memory: HTMLInputElement; cpus: HTMLInputElement; pids: HTMLInputElement; runtime: HTMLSelectElement; run: HTMLButtonElement };
  /** VMs with an action under way (their buttons wait) */
  private readonly busy = new Set<string>();
  /** each VM's latest metrics event, by name */
  private readonly latestMetrics = new Map<string, VmMetrics>();
  private offMetrics: (() => void) | undefined;
  private readonly snapshots: TakenSnapshot[] = [];
  /** last CPU reading of each container, for its CPU use between two refreshes */
  private readonly cpuSeen = new Map<string, { us: number; t: number; percent?: number }>();
  private comparing = false;
  private compareCount = 0;

  constructor(
    private readonly box: HTMLElement,
    private readonly vm: PageVm,
    private readonly hooks: StackHooks,
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
    this.form = {
      image,
      command,
      memory: number("no limit", "1"),
      cpus: number("no limit", "0.1"),
      pids: number("no limit", "1"),
      runtime,
      run: button("Run", () => void this.runContainer(), { primary: true, name: "run" }),
    };
    const form = el("form", { className: "run-container" });
    form.append(
      labelled("image", image),
      labelled("command", command, true),
      labelled("memory (MiB)", this.form.memory),
      labelled("CPUs", this.form.cpus),
      labelled("pids", this.form.pids),
      labelled("runtime", runtime),
      el("label", {}, el("span", { text: "\u00a0" }), this.form.run),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.runContainer();
    });

    const section = (layer: string, ...children: Node[]) => {
      const s = el("section", { className: `layer-${layer}` }, ...children);
      s.dataset.layer = layer;
      return s;
    };
    const diagram = el("div", { className: "diagram" });
    const levels = ["hardware (this computer)", "host operating system", "browser (this tab)", "hyperlab hypervisor  ← Type 2: above an OS", "VMs (this one and its siblings)", "containers"];
    diagram.textContent = levels.map((l, i) => `${"  ".repeat(i)}${i ? "└ " : ""}${l}`).join("\n");

    this.content.append(
      el("h3", { text: "Containers" }),
      section("containers", form, this.parts.containerStatus, this.parts.containerList),
      el("h3", { text: "Runtime" }),
      section("runtime", this.parts.runtime),
      el("h3", { text: "Kernel" }),
      section("kernel", this.parts.kernel),
      el("h3", { text: "Hypervisor" }),
      section(
        "hypervisor",
        this.parts.vmList,
        this.parts.sharing,
        el("div", { className: "actions" }, button("Create a VM", () => void this.createVm(), { name: "create-vm" })),
        this.parts.vmStatus,
        this.parts.snapshots,
        el("h3", { text: "VM vs container" }),
        el("p", { className: "muted", text: "Start one more VM (booted, and from a snapshot) and one more container, and compare what each costs." }),
        el("div", { className: "actions" }, button("Measure", () => void this.compare(), { name: "compare" })),
        this.parts.compareStatus,
        this.parts.compareResult,
      ),
      el("h3", { text: "Hardware" }),
      section("hardware", this.parts.hardware),
      el("h3", { text: "Where hyperlab sits" }),
      diagram,
    );
    this.box.replaceChildren(el("style", { text: STYLE }), this.content);
    this.parts.containerList.append(el("p", { className: "muted", text: "The stack appears once the VM is running." }));
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
    this.drawHypervisor(hv);
    const own = this.vm.handle && this.latestMetrics.get(this.vm.handle.name);
    if (own) this.drawHardware(own);
  });

  /** Pages the page's VMs could share (what KSM would merge), hashed by the memory engine in each VM's worker. */
  private readonly sharingLoop = new Refresher(SHARING_REFRESH_MS, async () => {
    const sharing = await this.vm.hypervisor()?.pageSharing().catch(() => undefined);
    if (this.disposed) return;
    const pages = (n: number) => mib(n * (sharing?.pageSize ?? 4096));
    this.parts.sharing.replaceChildren(
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
  });

  /** The guest's layers (containers, runtime, kernel), read through the agent while the VM runs. */
  private readonly guestLoop = new Refresher(REFRESH_MS, async () => {
    if (this.vm.handle?.state !== "running") return;
    try {
      this.staticPart ??= (await this.vm.exec(["/bin/sh", "-c", STATIC_SCRIPT], { timeoutMs: 20_000 })).stdout;
      const live = await this.vm.exec(["/bin/sh", "-c", LIVE_SCRIPT], { timeoutMs: 20_000 });
      const guest = parseGuestStack(live.stdout, this.staticPart);
      const containers = await this.vm.containers().list(new Map(guest.containers.map((c) => [c.id, c.pid])));
      if (this.disposed) return;
      this.drawContainers(containers);
      this.drawRuntime(guest, containers);
      this.drawKernel(guest, containers);
    } catch {
      // The VM stopped, paused or is busy: the element shows why; the next refresh tries again.
    }
  });

  private drawContainers(views: ContainerView[]): void {
    const box = this.parts.containerList;
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
        signature: `${c.status} ${pid1 ?? ""}`,
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
          const actions = el("div", { className: "actions" });
          if (c.status === "running") actions.append(button("Open a terminal", () => void this.openContainerTerminal(c.id, c.name), { name: "terminal" }));
          actions.append(button("Remove", () => void this.removeContainer(c.id), { name: "remove" }));
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

  private drawRuntime(guest: GuestStack, views: ContainerView[]): void {
    const running = views.filter((v) => v.container.status === "running");
    this.parts.runtime.replaceChildren(
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

  private drawKernel(guest: GuestStack, views: ContainerView[]): void {
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
    this.parts.kernel.replaceChildren(...rows);
  }

  private drawHypervisor(hv: Hypervisor): void {
    const budget = hv.budget;
    const own = this.vm.handle;
    const budgetText = `${budget.usedMiB} of ${budget.totalMiB} MiB reserved by VMs (${budget.freeMiB} MiB free)`;
    reconcile(this.parts.vmList, [
      { key: "budget", signature: budgetText, render: () => list([["memory budget", budgetText]]) },
      ...hv.list().map((vm) => {
        const v = vm.info();
        const guest = this.latestMetrics.get(v.name)?.memory.guest;
        const busy = this.busy.has(v.name);
        const guestText = guest ? `${mib(guest.usedKiB * 1024)} of its ${v.memoryMiB} MiB` : "";
        return {
          key: `vm ${v.name}`,
          signature: [v.state, busy, guestText, v.stopReason?.code ?? ""].join(" "),
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

  private drawHardware(metrics: VmMetrics): void {
    const guestMem = metrics.memory.guest;
    this.parts.hardware.replaceChildren(
      list([
        ["CPU", `x86 (emulated), ${count(metrics.cpu.instructionsPerSecond)} instructions/s, ${count(metrics.cpu.instructions)} so far`],
        ["memory", `${metrics.memory.allocatedMiB} MiB${guestMem ? `, guest uses ${mib(guestMem.usedKiB * 1024)}` : ""}`],
        ["serial console", `${count(metrics.devices.consoleOut)} B out, ${count(metrics.devices.consoleIn)} B in`],
        ["virtio console (agent)", `${count(metrics.devices.controlOut)} B out, ${count(metrics.devices.controlIn)} B in`],
      ]),
    );
  }

  /** The Run button: a container from the form, in the background, shown in the list once it runs. */
  private async runContainer(): Promise<void> {
    const f = this.form;
    const status = this.parts.containerStatus;
    let containers: PageContainers;
    const limits: Limits = {};
    let command: string[];
    try {
      containers = this.vm.containers();
      if (f.memory.value) limits.memoryBytes = parseMemory(`${f.memory.value}m`);
      if (f.cpus.value) Object.assign(limits, parseCpus(f.cpus.value));
      if (f.pids.value) limits.pidsLimit = parsePidsLimit(f.pids.value);
      command = splitCommand(f.command.value);
    } catch (err) {
      showStatus(status, err);
      return;
    }
    f.run.disabled = true;
    showStatus(status, `Starting a ${f.image.value} container…`);
    try {
      const { container, ms } = await containers.run({ image: f.image.value, command, limits, runtime: f.runtime.value as "crun" | "runc" });
      showStatus(status, `${container.name} started in ${seconds(ms)} (${container.runtime} run, in this VM).`);
    } catch (err) {
      showStatus(status, err);
    } finally {
      f.run.disabled = false;
    }
    await this.refreshNow();
  }

  private async removeContainer(id: string): Promise<void> {
    try {
      await this.vm.containers().engine.remove(id, { force: true });
      this.cpuSeen.delete(id);
      showStatus(this.parts.containerStatus, "");
    } catch (err) {
      showStatus(this.parts.containerStatus, err);
    }
    await this.refreshNow();
  }

  private async openContainerTerminal(id: string, name: string): Promise<void> {
    try {
      const proc = await this.vm.containers().shell(id, { rows: 24, cols: 80 });
      this.hooks.openTerminal(`${name} (container)`, processIo(proc), { exited: proc.exited, close: () => void proc.kill(9).catch(() => {}) });
    } catch (err) {
      showStatus(this.parts.containerStatus, err);
    }
  }

  /** A VM of this page by name, or the reason it is gone. */
  private vmNamed(name: string): Vm {
    const hv = this.vm.hypervisor();
    if (!hv) throw new HyperlabError("VM_INVALID_STATE", "the page's hypervisor is not ready yet");
    return hv.get(name);
  }

  private async vmAction(name: string, fn: (vm: Vm) => Promise<unknown>): Promise<void> {
    this.busy.add(name);
    void this.hypervisorLoop.now();
    try {
      await fn(this.vmNamed(name));
    } catch (err) {
      showStatus(this.parts.vmStatus, err);
    } finally {
      this.busy.delete(name);
    }
    void this.refreshNow();
  }

  private async snapshot(vm: Vm): Promise<void> {
    showStatus(this.parts.vmStatus, `Taking a snapshot of ${vm.name}…`);
    const t0 = performance.now();
    const bytes = await vm.snapshot();
    const taken: TakenSnapshot = { vm: vm.name, bytes, ms: performance.now() - t0, at: new Date() };
    this.snapshots.unshift(taken);
    showStatus(this.parts.vmStatus, `Snapshot of ${vm.name}: ${mib(bytes.length)} in ${seconds(taken.ms)} (the whole machine: CPU, devices and memory).`);
    this.drawSnapshots();
  }

  private async fork(vm: Vm): Promise<void> {
    showStatus(this.parts.vmStatus, `Forking ${vm.name}…`);
    const t0 = performance.now();
    const [copy] = await vm.fork(1);
    showStatus(this.parts.vmStatus, `${copy!.name} is a copy of ${vm.name} as it was a moment ago (its memory, files and processes), made in ${seconds(performance.now() - t0)}.`);
  }

  private async createVm(): Promise<void> {
    const hv = this.vm.hypervisor();
    if (!hv) return;
    showStatus(this.parts.vmStatus, "Creating a VM…");
    const t0 = performance.now();
    try {
      const created = await hv.createVm({ image: RESTORE_IMAGE, memoryMiB: pageHost().defaultMemoryMiB });
      showStatus(this.parts.vmStatus, `${created.name} is running: restored from the boot snapshot in ${seconds(performance.now() - t0)}, with ${created.memoryMiB} MiB from the budget.`);
    } catch (err) {
      showStatus(this.parts.vmStatus, err);
    }
    await this.refreshNow();
  }

  private drawSnapshots(): void {
    const hv = this.vm.hypervisor();
    this.parts.snapshots.replaceChildren(
      ...this.snapshots.map((s) => {
        const item = el("div", { className: "item snapshot" });
        const download = el("a", { text: "Download" });
        download.href = URL.createObjectURL(new Blob([s.bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
        download.download = `${s.vm}-${s.at.toISOString().replace(/[:.]/g, "-")}.hlsnap`;
        const restore = button("Restore as a new VM", () => {
          if (!hv) return;
          showStatus(this.parts.vmStatus, `Restoring the snapshot of ${s.vm}…`);
          const t0 = performance.now();
          hv.restore(s.bytes).then(
            (vm) => showStatus(this.parts.vmStatus, `${vm.name} restored from the snapshot of ${s.vm} in ${seconds(performance.now() - t0)}.`),
            (err: unknown) => showStatus(this.parts.vmStatus, err),
          ).finally(() => void this.refreshNow());
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
      showStatus(this.parts.vmStatus, err);
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
    const status = this.parts.compareStatus;
    const n = ++this.compareCount;
    try {
      const containers = this.vm.containers();
      // What each start needs is fetched or copied first, so that the times are starts, not downloads.
      showStatus(status, "Fetching the kernel and initramfs, and copying the busybox image into this VM (once)…");
      await Promise.all([pageHost().prepare({ restore: false }), containers.engine.pull("busybox")]);
      showStatus(status, "Booting one more VM (its own Linux kernel)…");
      const booted = await this.measureVm(hv, `compare-boot-${n}`, true);
      void this.hypervisorLoop.now();
      showStatus(status, "Starting one more VM from the boot snapshot…");
      const restored = await this.measureVm(hv, `compare-restore-${n}`, false);
      void this.hypervisorLoop.now();
      showStatus(status, "Starting one more container in this VM…");
      const ctr = await this.measureContainer(containers, `compare-ctr-${n}`);
      showStatus(status, "");
      this.drawComparison([booted, restored, ctr]);
    } catch (err) {
      showStatus(status, err);
    } finally {
      this.comparing = false;
    }
    void this.refreshNow();
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

  private drawComparison(sides: Measured[]): void {
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
    this.parts.compareResult.replaceChildren(table);
  }
}
