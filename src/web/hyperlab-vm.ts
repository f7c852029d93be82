// <hyperlab-vm>: a whole Linux machine as one HTML element. Each element runs
// its own VM in its own worker; its terminal, progress bar, errors and (with
// show-stack) the live stack view live in its shadow root, so a course page's
// styles and the element's never mix.
import { HyperlabError } from "../errors.ts";
import { VOLUME_NAME } from "../containers/volumes.ts";
import { DROP_HOME, type DropReport, type DropTarget, type DroppedFile, copyIntoGuest, droppedFiles, volumeNames } from "./drop-files.ts";
import { pageDocker } from "./page-docker.ts";
import { type PageRestore, PageSaver, type SaveReport, type SavedOptions, dropFreshParam, freshRequested, loadPageSave, restoreOthers } from "./page-save.ts";
import { clearSave } from "./page-save-store.ts";
import { type PageVmEvent, PageVm, isElementVm } from "./page-vm.ts";
import { pageHost } from "./page-host.ts";
import { PHASE_LABEL, type StartPhase } from "./progress.ts";
import { StackView } from "./stack-view.ts";
import { TERMINAL_CSS, type TerminalIo, TerminalView, VmTerminal } from "./terminal.ts";

/** What a visitor can do about each error, by code (the message says what happened). */
const WHAT_TO_DO: Readonly<Partial<Record<HyperlabError["code"], string>>> = {
  GUEST_PANIC: "The guest's kernel stopped itself (a kernel panic); the VM is off. Restart it; if it panics again, check the element's cmdline attribute.",
  WORKER_DIED: "The browser ended the VM's worker, most often for lack of memory. Close other tabs or lower the element's memory attribute, then restart.",
  RESOURCE_EXHAUSTED: "The VMs on this page would use more memory than the page's budget. Remove a <hyperlab-vm> or lower their memory attributes, then restart.",
  BOOT_TIMEOUT: "The machine did not come up in time (a busy computer or a throttled background tab). Restart it.",
  IMAGE_NOT_FOUND: "Fix the element's image attribute (or leave it out for the default guest).",
  INVALID_ARGUMENT: "Fix the element's attributes, then restart.",
  GUEST_STOPPED: "The VM is off (its guest powered off, or it was destroyed). Restart it for a new machine.",
};
const DEFAULT_WHAT_TO_DO = "Restart the VM; if it fails again, reload the page.";

const STYLE = `
:host { display: block; font: 14px/1.4 system-ui, sans-serif; color: #1d2330; }
:host([hidden]) { display: none; }
.frame { display: flex; flex-direction: column; height: 100%; min-height: 240px; border: 1px solid #c9d1dc; border-radius: 8px; overflow: hidden; background: #10141a; }
header { display: flex; flex-wrap: wrap; gap: 2px 12px; align-items: baseline; padding: 6px 10px; white-space: nowrap; background: #f3f5f8; border-bottom: 1px solid #c9d1dc; }
header .title { font-weight: 600; }
header .status { color: #4a5568; }
header .ttp { margin-left: auto; color: #2f6f3e; font-variant-numeric: tabular-nums; }
.progress { position: relative; height: 22px; background: #e6eaf0; border-bottom: 1px solid #c9d1dc; }
.progress .bar { position: absolute; inset: 0 auto 0 0; width: 0; background: #7aa7e0; transition: width 120ms linear; }
.progress .label { position: relative; padding: 0 10px; font-size: 12px; line-height: 22px; font-variant-numeric: tabular-nums; }
.progress[hidden] { display: none; }
.main { flex: 1; display: flex; min-height: 0; }
.terms { flex: 1; min-width: 0; display: flex; flex-direction: column; }
.tabs { display: flex; flex-wrap: wrap; gap: 2px; padding: 3px 4px 0; background: #1b212b; }
.tabs[hidden] { display: none; }
.tabs .tab { display: inline-flex; align-items: center; gap: 6px; font: 12px system-ui, sans-serif; color: #c3cad5; background: #262e3a; border: 0; border-radius: 5px 5px 0 0; padding: 3px 8px; cursor: pointer; }
.tabs .tab.active { background: #10141a; color: #fff; }
.tabs .tab .close { color: #8a94a3; }
.tabs .tab .close:hover { color: #fff; }
.panes { flex: 1; min-height: 0; position: relative; }
.pane { position: absolute; inset: 0; padding: 4px; }
.pane[hidden] { display: none; }
.stack { width: 38%; min-width: 260px; max-width: 460px; overflow: auto; background: #f8f9fb; border-left: 1px solid #c9d1dc; }
.stack[hidden] { display: none; }
.error { padding: 12px 14px; background: #fff4f2; color: #7a1c12; border-bottom: 1px solid #e7b4aa; }
.error[hidden] { display: none; }
.error .code { font: 12px ui-monospace, monospace; color: #a0453a; }
.error p { margin: 6px 0; white-space: pre-wrap; }
.error button { font: inherit; padding: 3px 12px; }
.notice { display: flex; gap: 10px; align-items: baseline; padding: 6px 10px; background: #fdf8e6; color: #5b4a12; border-bottom: 1px solid #e6d9a6; font-size: 13px; }
.notice[hidden] { display: none; }
.notice p { margin: 0; flex: 1; white-space: pre-wrap; }
.notice button { font: 12px system-ui, sans-serif; }
header .start-over { font: 12px system-ui, sans-serif; }
header .start-over[hidden] { display: none; }
header .drop-into { font-size: 12px; color: #4a5568; }
header .drop-into select { font: 12px system-ui, sans-serif; max-width: 14em; }
.pane.term.dropping::after { content: attr(data-drop); position: absolute; inset: 8px; display: flex; align-items: center; justify-content: center; text-align: center; padding: 12px; border: 2px dashed #7aa7e0; border-radius: 8px; background: rgba(16, 20, 26, 0.85); color: #d8dee9; font: 15px system-ui, sans-serif; pointer-events: none; }
:host([terminal-only]) header, :host([terminal-only]) .progress { display: none; }
:host([terminal-only]) .frame { border-radius: 0; }
`;

function formatMB(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/**
 * The `<hyperlab-vm>` element. Attributes: `image` (guest image; the site
 * has "default"), `profile` (a guest profile: "lxc", "podman"; the page
 * downloads its boot snapshot only for such an element), `memory` (MiB), `show-stack` (the live stack view beside
 * the terminal), `terminal-only` (no header or progress bar), `cmdline`
 * (extra kernel arguments: a cold boot, for demonstrations), `persist`
 * (keep the page's VMs in this browser and bring them back on reload; its
 * value, if any, names the save: page-save.ts). The VM starts when the
 * element is added to the page and is destroyed when it is removed.
 */
export class HyperlabVmElement extends HTMLElement {
  static readonly observedAttributes = ["show-stack"];
  private vm: PageVm | undefined;
  private terminal: VmTerminal | undefined;
  private stack: StackView | undefined;
  private readonly root: ShadowRoot;
  private readonly parts: {
    status: HTMLElement;
    ttp: HTMLElement;
    progress: HTMLElement;
    bar: HTMLElement;
    label: HTMLElement;
    error: HTMLElement;
    notice: HTMLElement;
    startOver: HTMLButtonElement;
    term: HTMLElement;
    tabs: HTMLElement;
    panes: HTMLElement;
    stack: HTMLElement;
  };
  /** terminals besides the console's (containers, other VMs), in tab order */
  private extraTerminals: Array<{ title: string; view: TerminalView; pane: HTMLElement; tab: HTMLElement; close?: () => void }> = [];
  private offProgress: (() => void) | undefined;
  private offDocker: (() => void) | undefined;
  private _promptMs: number | undefined;
  private saver: PageSaver | undefined;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `
      <style>${TERMINAL_CSS}${STYLE}</style>
      <div class="frame" part="frame">
        <header part="header"><span class="title">Linux VM</span><span class="status"></span><label class="drop-into" title="Files and folders dropped onto the terminal are copied into the guest: into root's home folder, or into a volume that containers mount with -v NAME:/path">drop files into <select><option value="">/root (home)</option><option value="new">a new volume…</option></select></label><span class="ttp"></span><button class="start-over" type="button" hidden title="Forget the machine saved in this browser (files, containers, the other VMs) and start a fresh one">Start over</button></header>
        <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"><div class="bar"></div><span class="label"></span></div>
        <div class="error" role="alert" hidden></div>
        <div class="notice" role="status" hidden><p></p><button type="button" title="Hide this notice">OK</button></div>
        <div class="main">
          <div class="terms"><div class="tabs" role="tablist" hidden></div><div class="panes"><div class="pane term" data-terminal="console"></div></div></div>
          <aside class="stack" hidden></aside>
        </div>
      </div>`;
    const $ = (s: string) => this.root.querySelector(s) as HTMLElement;
    this.parts = {
      status: $(".status"),
      ttp: $(".ttp"),
      progress: $(".progress"),
      bar: $(".bar"),
      label: $(".label"),
      error: $(".error"),
      notice: $(".notice"),
      startOver: $(".start-over") as HTMLButtonElement,
      term: $(".term"),
      tabs: $(".tabs"),
      panes: $(".panes"),
      stack: $(".stack"),
    };
    this.wireDrops();
    this.parts.notice.querySelector("button")!.addEventListener("click", () => (this.parts.notice.hidden = true));
    this.parts.startOver.addEventListener("click", () => {
      if (confirm("Start over with a fresh machine? The files, containers and VMs kept in this browser are forgotten.")) void this.startOver();
    });
  }

  /**
   * Copies files into the guest as a drop onto the terminal does: into the
   * volume named (made if missing; `drop-volume` attribute or the header's
   * choice when none is given), or root's home. Legal once the VM runs.
   */
  async dropFiles(files: ReadonlyArray<DroppedFile | File>, target?: DropTarget): Promise<DropReport> {
    const vm = this.vm?.hypervisor()?.get(this.vm.name);
    if (!vm || this.dataset.state !== "ready") throw new HyperlabError("VM_INVALID_STATE", "files can be dropped once the VM is running");
    const list = files.map((f) => (f instanceof File ? { path: f.name, file: f } : f));
    return copyIntoGuest(vm, list, target ?? this.dropTarget());
  }

  /** Where a drop goes now: the header's choice, else the `drop-volume` attribute, else /root. */
  private dropTarget(): DropTarget {
    const chosen = this.root.querySelector<HTMLSelectElement>(".drop-into select")!.value;
    if (chosen.startsWith("volume:")) return { kind: "volume", name: chosen.slice("volume:".length) };
    const attr = this.getAttribute("drop-volume");
    return attr ? { kind: "volume", name: attr } : { kind: "home" };
  }

  /** Drag and drop onto the console's terminal, and the header's list of where drops go. */
  private wireDrops(): void {
    const pane = this.parts.term;
    const select = this.root.querySelector<HTMLSelectElement>(".drop-into select")!;
    const option = (name: string) => Object.assign(document.createElement("option"), { value: `volume:${name}`, textContent: `volume ${name}` });
    const refresh = async () => {
      const vm = this.vm?.hypervisor()?.get(this.vm.name);
      if (!vm || this.dataset.state !== "ready") return;
      const names = await volumeNames(vm).catch(() => [] as string[]);
      const current = select.value;
      for (const o of [...select.options]) if (o.value.startsWith("volume:")) o.remove();
      for (const n of names) select.insertBefore(option(n), select.querySelector('option[value="new"]'));
      if ([...select.options].some((o) => o.value === current)) select.value = current;
    };
    select.addEventListener("focus", () => void refresh());
    select.addEventListener("mousedown", () => void refresh());
    select.addEventListener("change", () => {
      if (select.value !== "new") return;
      const name = prompt("Name of the volume (letters, digits, '_', '.', '-'): dropped files go into it, and a container mounts it with -v NAME:/path");
      if (name && VOLUME_NAME.test(name)) {
        select.insertBefore(option(name), select.querySelector('option[value="new"]'));
        select.value = `volume:${name}`;
      } else {
        if (name) this.terminal?.notice(`[not a volume name: '${name}' (use letters, digits, '_', '.', '-')]`);
        select.value = "";
      }
    });
    const where = () => {
      const t = this.dropTarget();
      return t.kind === "home" ? `Drop to copy into the guest's ${DROP_HOME}` : `Drop to copy into volume ${t.name} (containers: -v ${t.name}:/path)`;
    };
    pane.addEventListener("dragover", (e) => {
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      pane.dataset.drop = this.dataset.state === "ready" ? where() : "The VM is not running yet";
      pane.classList.add("dropping");
    });
    pane.addEventListener("dragleave", () => pane.classList.remove("dropping"));
    pane.addEventListener("drop", (e) => {
      pane.classList.remove("dropping");
      if (!e.dataTransfer) return;
      e.preventDefault();
      const target = this.dropTarget();
      void droppedFiles(e.dataTransfer)
        .then((files) => this.dropFiles(files, target))
        .then(
          (r) => {
            this.terminal?.notice(`[copied ${r.files} file${r.files === 1 ? "" : "s"} (${formatMB(r.bytes)} MB) into ${r.dir}${target.kind === "volume" ? `: mount it with -v ${target.name}:/path` : ""}]`);
            this.dispatchEvent(new CustomEvent("files-dropped", { detail: r }));
          },
          (err: unknown) => this.terminal?.notice(`[the drop was not copied: ${(err as Error)?.message ?? err}]`),
        );
    });
  }

  /** The page VM behind this element (undefined until connected). */
  get pageVm(): PageVm | undefined {
    return this.vm;
  }

  /** Ms from the page's navigation until this element's prompt appeared (undefined before). */
  get timeToPromptMs(): number | undefined {
    return this._promptMs;
  }

  /** The terminal's rows and columns (0 before it is open). */
  terminalSize(): { rows: number; cols: number } {
    return this.terminal?.size() ?? { rows: 0, cols: 0 };
  }

  /** The console terminal's text (for tests and copying). */
  terminalText(): string {
    return this.terminal?.text() ?? "";
  }

  /** Every terminal's title and text: the console's, then the ones opened from the stack view. */
  terminalTexts(): Array<{ title: string; text: string }> {
    return [{ title: "console", text: this.terminalText() }, ...this.extraTerminals.map((t) => ({ title: t.title, text: t.view.text() }))];
  }

  /**
   * Opens a terminal tab beside the console (a shell in a container, another
   * VM's console) and shows it. Closing the tab calls `close`; a process's
   * end (`exited`) is noted in the terminal.
   */
  openTerminal(title: string, io: TerminalIo, opts: { exited?: Promise<{ exitCode: number; signal: number }>; close?: () => void } = {}): void {
    const pane = document.createElement("div");
    pane.className = "pane";
    pane.dataset.terminal = title;
    this.parts.panes.append(pane);
    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "tab";
    tab.setAttribute("role", "tab");
    const label = document.createElement("span");
    label.textContent = title;
    const close = document.createElement("span");
    close.className = "close";
    close.textContent = "×";
    close.title = "Close this terminal";
    tab.append(label, close);
    this.parts.tabs.append(tab);
    // Shown before the terminal opens in it, so that it is fitted to a box with a size.
    const entry = { title, view: undefined as unknown as TerminalView, pane, tab, close: opts.close };
    this.extraTerminals.push(entry);
    this.showTerminal(pane);
    entry.view = new TerminalView(pane, io);
    entry.view.focus();
    tab.addEventListener("click", (e) => {
      if (e.target === close) this.closeTerminal(entry);
      else this.showTerminal(pane);
    });
    opts.exited?.then(
      (r) => entry.view.notice(`[the process exited with status ${r.signal ? `${128 + r.signal} (signal ${r.signal})` : r.exitCode}]`),
      (err: unknown) => entry.view.notice(`[the process ended: ${(err as Error)?.message ?? err}]`),
    );
  }

  private showTerminal(pane: HTMLElement): void {
    for (const p of this.parts.panes.children) (p as HTMLElement).hidden = p !== pane;
    const tabs = [this.consoleTab(), ...this.extraTerminals.map((t) => t.tab)];
    const panes = [this.parts.term, ...this.extraTerminals.map((t) => t.pane)];
    tabs.forEach((t, i) => t.classList.toggle("active", panes[i] === pane));
    this.parts.tabs.hidden = this.extraTerminals.length === 0;
    const view = pane === this.parts.term ? this.terminal : this.extraTerminals.find((t) => t.pane === pane)?.view;
    view?.refresh();
    view?.focus();
  }

  private closeTerminal(entry: (typeof this.extraTerminals)[number]): void {
    entry.close?.();
    entry.view.dispose();
    entry.pane.remove();
    entry.tab.remove();
    this.extraTerminals = this.extraTerminals.filter((t) => t !== entry);
    this.showTerminal(this.parts.term);
  }

  /** The console's tab (made with the first other terminal). */
  private consoleTab(): HTMLElement {
    let tab = this.parts.tabs.querySelector<HTMLElement>(".tab.console");
    if (!tab) {
      tab = document.createElement("button");
      (tab as HTMLButtonElement).type = "button";
      tab.className = "tab console";
      tab.setAttribute("role", "tab");
      tab.textContent = "VM console";
      tab.addEventListener("click", () => this.showTerminal(this.parts.term));
      this.parts.tabs.prepend(tab);
    }
    return tab;
  }

  connectedCallback(): void {
    if (!this.vm) this.startVm();
  }

  disconnectedCallback(): void {
    // Moved within the page: keep going. Removed: the VM goes.
    queueMicrotask(() => {
      if (!this.isConnected) this.stopVm();
    });
  }

  attributeChangedCallback(): void {
    this.syncStack();
  }

  /**
   * A saved state (snapshot bytes) the VM starts from instead of a fresh
   * guest: set it before the element is added to the page (<hyperlab-lab>
   * does, to bring back a learner's work after a reload).
   */
  state: Uint8Array | undefined;

  /** The options of this element's VM (its attributes). */
  private vmOptions(): SavedOptions {
    const memory = this.getAttribute("memory");
    return {
      image: this.getAttribute("image") ?? undefined,
      profile: this.getAttribute("profile") ?? undefined,
      memoryMiB: memory === null ? undefined : Number(memory),
      cmdline: this.getAttribute("cmdline") ?? undefined,
    };
  }

  /**
   * Starts the element's VM: from `state` (the property) when set; else,
   * with `persist`, from what this browser saved of the page (unless
   * `fresh`); else a fresh guest.
   */
  private startVm(fresh = false): void {
    if (this.hasAttribute("persist") && !this.state) {
      void this.startPersisted(fresh);
      return;
    }
    this.launch(this.state, false);
  }

  private launch(state: Uint8Array | undefined, freshOnFailure: boolean): PageVm {
    const vm = new PageVm({ ...this.vmOptions(), state, freshOnFailure });
    this.vm = vm;
    this._promptMs = undefined;
    this.dataset.state = "starting";
    this.parts.error.hidden = true;
    this.parts.progress.hidden = false;
    this.parts.ttp.textContent = "";
    this.terminal = new VmTerminal(this.parts.term, vm);
    vm.on((e) => this.onVmEvent(e));
    const tracker = pageHost().tracker;
    const draw = () => this.drawProgress(vm.phase);
    this.offProgress = tracker.onChange(draw);
    draw();
    this.syncStack();
    vm.start().catch(() => {}); // shown by the error event
    return vm;
  }

  /** The key this element's save is kept under in the browser: `persist`'s value, else the page's path (and the element's id). */
  private saveKey(): string {
    const named = this.getAttribute("persist");
    return `hyperlab-vm ${named || `${location.pathname}${this.id ? `#${this.id}` : ""}`}`;
  }

  /** Shows a notice above the terminal (what happened to the saved machine); `undefined` hides it. */
  private notice(text: string | undefined): void {
    this.parts.notice.querySelector("p")!.textContent = text ?? "";
    this.parts.notice.hidden = text === undefined;
  }

  /**
   * Starts the VM of a `persist` element: brings back the page's VMs from
   * this browser's save when there is a usable one (else a fresh machine,
   * with a notice saying why), then keeps saving them while the page lives.
   */
  private async startPersisted(fresh: boolean): Promise<void> {
    const key = this.saveKey();
    const options = this.vmOptions();
    this.parts.startOver.hidden = false;
    this.dataset.state = "starting";
    let restore: PageRestore | undefined;
    if (freshRequested()) {
      await clearSave(key).catch(() => {});
      dropFreshParam();
      this.dataset.restore = "fresh";
      this.notice("A fresh machine, as the address asked (?fresh): the one kept in this browser was forgotten.");
    } else if (!fresh) {
      const loaded = await loadPageSave(key, options).catch((err: unknown) => ({ kind: "unusable" as const, reason: String((err as Error)?.message ?? err) }));
      if (loaded.kind === "unusable") {
        this.dataset.restore = "fallback";
        this.notice(`Your saved machine could not be brought back: ${loaded.reason}. This is a fresh machine; it is kept in this browser from now on.`);
      } else if (loaded.kind === "restore") restore = loaded.restore;
      else this.dataset.restore = "fresh";
    }
    // Removed, or started otherwise, while the save was read.
    if (!this.isConnected || this.vm) return;
    const vm = this.launch(restore?.element, true);
    let failed = false;
    vm.on((e) => {
      if (e.type === "restore-failed") {
        failed = true;
        this.dataset.restore = "fallback";
        this.notice(`Your saved machine (from ${new Date(restore!.savedAt).toLocaleString()}) could not be brought back: ${e.error.message} This is a fresh machine; it is kept in this browser from now on.`);
        void clearSave(key).catch(() => {});
      } else if (e.type === "phase" && e.phase === "ready") void this.keepSaving(vm, key, options, failed ? undefined : restore);
    });
  }

  /** Once the VM runs: the other saved VMs come back, then the page's VMs are saved from now on. */
  private async keepSaving(vm: PageVm, key: string, options: SavedOptions, restore: PageRestore | undefined): Promise<void> {
    const hv = vm.hypervisor();
    if (!hv || vm !== this.vm) return;
    if (restore) {
      const problems: string[] = [];
      if (restore.elementState === "paused") await vm.handle?.pause().catch(() => {});
      await restoreOthers(hv, restore.others, (name, err) => problems.push(`VM ${name} could not be brought back: ${err.message}`));
      if (vm !== this.vm) return;
      this.dataset.restore = "saved";
      this.notice(
        `Your machine is back as it was saved in this browser on ${new Date(restore.savedAt).toLocaleString()}` +
          `${restore.others.length ? `, with ${restore.others.length - problems.length} more VM${restore.others.length - problems.length === 1 ? "" : "s"}` : ""}. ` +
          `${problems.length ? `${problems.join(". ")}. ` : ""}"Start over" (or ?fresh in the address) gives a fresh one.`,
      );
    }
    this.saver = new PageSaver(key, hv, {
      options,
      element: () => (vm === this.vm ? vm.handle : undefined),
      target: this,
      onSaved: (r) => this.onSaved(r),
      onError: (err) => console.warn(`hyperlab: the page's VMs could not be saved in this browser: ${(err as Error)?.message ?? err}`),
    });
  }

  private onSaved(r: SaveReport): void {
    this.dataset.saves = String(Number(this.dataset.saves ?? 0) + 1);
    this.dataset.savedAt = r.savedAt;
    this.dataset.savedBytes = String(r.bytes);
    this.dataset.savedVms = String(r.vms);
    this.dataset.saveMs = String(Math.round(r.snapshotMs + r.writeMs));
    this.parts.startOver.title = `Your machine was last kept in this browser at ${new Date(r.savedAt).toLocaleTimeString()} (${formatMB(r.bytes)} MB, ${r.vms} VM${r.vms === 1 ? "" : "s"}, ${Math.round(r.snapshotMs)} ms to take, ${Math.round(r.writeMs)} ms to write). Start over: forget it and start a fresh machine.`;
    this.dispatchEvent(new CustomEvent("saved", { detail: r }));
  }

  /** The saver of a `persist` element (for tests: `saveNow()`). */
  get pageSaver(): PageSaver | undefined {
    return this.saver;
  }

  /** Forgets the save, ends the page's VMs made from the stack view and this element's VM, and starts a fresh one. */
  async startOver(): Promise<void> {
    // The machine is going: no longer ready for input (what is typed until the fresh one's prompt would be lost).
    this.dataset.state = "starting";
    const hv = this.vm?.hypervisor();
    const saver = this.saver;
    this.saver = undefined;
    await saver?.stop();
    await clearSave(this.saveKey()).catch(() => {});
    for (const other of hv?.list() ?? []) if (!isElementVm(other.name)) await other.destroy().catch(() => {});
    this.stopVm();
    this.dataset.restore = "fresh";
    this.dataset.saves = "0";
    this.startVm(true);
    this.notice("A fresh machine: the one kept in this browser was forgotten.");
  }

  private stopVm(): void {
    void this.saver?.stop();
    this.saver = undefined;
    for (const t of [...this.extraTerminals]) this.closeTerminal(t);
    this.offProgress?.();
    this.offDocker?.();
    this.offDocker = undefined;
    this.stack?.dispose();
    this.stack = undefined;
    this.terminal?.dispose();
    this.terminal = undefined;
    void this.vm?.destroy();
    this.vm = undefined;
  }

  private onVmEvent(e: PageVmEvent): void {
    switch (e.type) {
      case "phase":
        this.drawProgress(e.phase);
        if (e.phase === "ready") {
          this.offProgress?.();
          this.parts.progress.hidden = true;
          this.dataset.state = "ready";
          this.terminal?.focus();
          this.watchDockerClient();
        }
        return;
      case "state":
        this.parts.status.textContent = e.state;
        return;
      case "prompt":
        this._promptMs = e.sinceNavigationMs;
        this.dataset.promptMs = String(Math.round(e.sinceNavigationMs));
        this.dataset.start = this.vm?.restored ? "snapshot" : "boot";
        this.parts.ttp.textContent = `prompt ${(e.sinceNavigationMs / 1000).toFixed(2)} s after opening the page`;
        this.parts.ttp.title =
          `Measured in this browser, from the start of the page's navigation until the shell prompt appeared on the console (${(e.sinceStartMs / 1000).toFixed(2)} s from the moment this element asked for its VM). ` +
          (this.vm?.restored ? "The VM was restored from the site's boot snapshot: Linux saved right after it booted." : "The VM booted its kernel.");
        this.dispatchEvent(new CustomEvent("prompt", { detail: e }));
        return;
      case "error":
        this.showError(e.error);
        return;
      case "console":
        return;
    }
  }

  private drawProgress(phase: StartPhase): void {
    const { loadedBytes, totalBytes } = pageHost().tracker.totals();
    const fraction = totalBytes > 0 ? Math.min(1, loadedBytes / totalBytes) : 0;
    // Downloading is most of the wait on a cold cache; the boot's share of the bar is drawn as the rest.
    const shown = phase === "download" ? fraction * 0.8 : phase === "boot" || phase === "restore" ? 0.85 : phase === "prompt" ? 0.95 : 1;
    this.parts.bar.style.width = `${(shown * 100).toFixed(1)}%`;
    this.parts.progress.setAttribute("aria-valuenow", String(Math.round(shown * 100)));
    this.parts.progress.dataset.phase = phase;
    const bytes = totalBytes > 0 ? ` · ${formatMB(loadedBytes)} / ${formatMB(totalBytes)} MB` : loadedBytes > 0 ? ` · ${formatMB(loadedBytes)} MB` : "";
    this.parts.label.textContent = `${PHASE_LABEL[phase]}${bytes}`;
    this.dispatchEvent(new CustomEvent("hyperlab-progress", { bubbles: true, composed: true, detail: { phase, loadedBytes, totalBytes, label: this.parts.label.textContent } }));
  }

  /**
   * The bar comes back while the VM's first `docker` waits for its client:
   * the download from the site (14.6 MB, once per page), then its writing
   * into the guest. The terminal shows nothing meanwhile, so the bar says why.
   */
  private watchDockerClient(): void {
    const hv = this.vm?.hypervisor();
    const name = this.vm?.handle?.name;
    if (!hv || !name || this.offDocker) return;
    const docker = pageDocker(hv);
    const draw = () => {
      const client = docker.activity(name).client;
      const phase = client?.phase;
      const busy = phase === "load" || phase === "install";
      if (this.dataset.state !== "ready") return;
      this.parts.progress.hidden = !busy;
      if (!busy) return;
      const d = client!.download;
      const fraction = phase === "install" ? 1 : d?.totalBytes ? Math.min(1, d.loadedBytes / d.totalBytes) : 0;
      this.parts.bar.style.width = `${(fraction * 100).toFixed(1)}%`;
      this.parts.progress.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
      this.parts.progress.dataset.phase = `docker-${phase}`;
      this.parts.label.textContent =
        phase === "install"
          ? "Writing the docker client into the VM (first docker in this VM)…"
          : d?.done
            ? "Unpacking the docker client and checking it against the guest's manifest…"
            : `Downloading the docker client (first docker on this page)${d?.totalBytes ? ` · ${formatMB(d.loadedBytes)} / ${formatMB(d.totalBytes)} MB` : ""}`;
    };
    this.offDocker = docker.onChange((vm) => vm === name && draw());
  }

  private showError(error: HyperlabError): void {
    this.offProgress?.();
    this.parts.progress.hidden = true;
    this.dataset.state = "error";
    this.dataset.errorCode = error.code;
    const box = this.parts.error;
    box.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = "This VM could not go on.";
    const code = document.createElement("span");
    code.className = "code";
    code.textContent = ` ${error.code}`;
    const message = document.createElement("p");
    message.className = "message";
    message.textContent = error.message;
    const todo = document.createElement("p");
    todo.className = "todo";
    todo.textContent = WHAT_TO_DO[error.code] ?? (error.code.startsWith("IMAGE_") ? "" : DEFAULT_WHAT_TO_DO);
    const restart = document.createElement("button");
    restart.textContent = "Restart the VM";
    restart.addEventListener("click", () => {
      this.stopVm();
      // With persist, a fresh machine too: the last save stays until the new machine is saved over it.
      this.startVm(true);
    });
    box.append(title, code, message, ...(todo.textContent ? [todo] : []), restart);
    box.hidden = false;
  }

  private syncStack(): void {
    const show = this.hasAttribute("show-stack");
    this.parts.stack.hidden = !show;
    if (show && this.vm && !this.stack) this.stack = new StackView(this.parts.stack, this.vm, { openTerminal: (title, io, opts) => this.openTerminal(title, io, opts) });
    if (!show && this.stack) {
      this.stack.dispose();
      this.stack = undefined;
    }
  }
}

/** Registers `<hyperlab-vm>` (once per page). */
export function defineHyperlabVm(name = "hyperlab-vm"): void {
  if (!customElements.get(name)) customElements.define(name, HyperlabVmElement);
}
