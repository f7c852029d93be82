// One VM as a page element sees it: start it, follow its console and state,
// type into it, resize its terminal, and know when its shell prompt appears.
// A thin layer over the hypervisor's Vm, so the element never talks to
// workers itself.
import { HyperlabError } from "../errors.ts";
import { ConsoleWindow } from "../hardware/console-window.ts";
import type { ExecResult } from "../guest/agent.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm, VmEvent, VmMetrics } from "../hypervisor/vm.ts";
import type { VmState } from "../hypervisor/vm-state.ts";
import { PageContainers } from "./page-containers.ts";
import { pageDocker } from "./page-docker.ts";
import { BOOT_IMAGE, RESTORE_IMAGE, pageHost } from "./page-host.ts";
import type { StartPhase } from "./progress.ts";

/**
 * The console shell's prompt (PS1 '\u@\h:\w\$ ' in the guest's /etc/profile),
 * possibly followed by the cursor position query busybox's line editor sends.
 */
export const PROMPT = /\w+@[\w.-]+:[^\r\n]*[#$] (?:\x1b\[6n)?/;

/** What a page VM is made with (the element's attributes). */
export interface PageVmOptions {
  /** guest image (the site has "default") */
  image?: string;
  /** guest profile: "default" (or none) or one the site's manifest lists, e.g. "podman" (docs/profiles.md); the site's snapshot of it is downloaded only for such a VM */
  profile?: string;
  /** guest RAM in MiB (default: the image's default) */
  memoryMiB?: number;
  /** extra kernel arguments (a cold boot; for demonstrations and tests) */
  cmdline?: string;
  /** how long the guest may take to come up (default 60 s) */
  timeoutMs?: number;
  /**
   * a saved state (a snapshot, e.g. a lab's progress kept in the browser) to
   * restore instead of starting a fresh guest; its memory must be `memoryMiB`
   * when that is given (SNAPSHOT_MISMATCH otherwise)
   */
  state?: Uint8Array;
  /**
   * when restoring `state` fails (damaged, from another site build, another
   * memory size, a restore that does not come up): start a fresh guest
   * instead, after a `restore-failed` event saying why (default: fail)
   */
  freshOnFailure?: boolean;
}

/** What a page VM tells its element. */
export type PageVmEvent =
  | { type: "phase"; phase: StartPhase }
  | { type: "console"; data: string }
  | { type: "state"; state: VmState }
  /** the VM cannot go on (boot failed, guest panic, worker died, budget refused): say so in place */
  | { type: "error"; error: HyperlabError }
  /** restoring the saved state failed (`freshOnFailure`): a fresh guest starts instead */
  | { type: "restore-failed"; error: HyperlabError }
  /** the prompt appeared: ms since the page's navigation started, and since this VM was asked for */
  | { type: "prompt"; sinceNavigationMs: number; sinceStartMs: number };

let counter = 0;
/** The names of the VMs page elements own (the rest of the page's hypervisor's VMs were made from the stack view). */
const elementVms = new Set<string>();

/** Whether VM `name` belongs to a page element (a <hyperlab-vm>), not made from the stack view. Legal any time. */
export function isElementVm(name: string): boolean {
  return elementVms.has(name);
}

/** One VM of the page, started by `start()`. */
export class PageVm {
  readonly name = `page-vm-${++counter}`;
  private vm: Vm | undefined;
  private hv: Hypervisor | undefined;
  private readonly listeners = new Set<(e: PageVmEvent) => void>();
  private readonly console = new ConsoleWindow();
  private _phase: StartPhase = "download";
  private promptSeen = false;
  private running = false;
  private size: { rows: number; cols: number } | undefined;
  private sizeApplied = "";
  private sizing: Promise<void> = Promise.resolve();
  private resizeTimer: ReturnType<typeof setTimeout> | undefined;
  private failed = false;
  private _restored = false;
  private _containers: PageContainers | undefined;
  private destroying = false;
  /** true while a saved state is being restored: its VM's end is the restore's failure, reported by start() */
  private restoringState = false;

  constructor(private readonly options: PageVmOptions = {}) {
    elementVms.add(this.name);
  }

  /** The phase it is in now. */
  get phase(): StartPhase {
    return this._phase;
  }

  /** The guest profile this VM runs (undefined: the default guest). */
  get profile(): string | undefined {
    return this.options.profile === "default" ? undefined : this.options.profile;
  }

  /** The VM's state in the hypervisor (undefined before it is created). */
  get state(): VmState | undefined {
    return this.vm?.state;
  }

  /** Subscribes to this VM's events. Returns an unsubscribe function. */
  on(listener: (e: PageVmEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Downloads what is missing, creates the VM and starts it: it restores the
   * site's boot snapshot when the site has one for its memory size, else (or
   * with `cmdline`) it boots the kernel. Resolves once the shell prompt is on
   * the console; failures are also sent as `error` events. Legal once.
   */
  async start(): Promise<void> {
    const t0 = performance.now();
    this.setPhase("download");
    const host = pageHost();
    if (this.options.state) {
      try {
        return await this.startFromState(this.options.state, t0);
      } catch (err) {
        const error = asError(err);
        if (!this.options.freshOnFailure) {
          this.fail(error);
          throw error;
        }
        this.vm = undefined;
        this.running = false;
        this.promptSeen = false;
        this.emit({ type: "restore-failed", error });
        this.setPhase("download");
      }
    }
    try {
      const image = this.options.image ?? BOOT_IMAGE;
      const profile = this.options.profile === "default" ? undefined : this.options.profile;
      const memoryMiB = this.options.memoryMiB ?? (profile ? host.profileMemoryMiB(profile) : host.defaultMemoryMiB);
      const restore = image === BOOT_IMAGE && !this.options.cmdline && memoryMiB !== undefined && host.hasBootSnapshot(memoryMiB, profile);
      this._restored = restore;
      // Another image name is refused by createVm; nothing is downloaded for it.
      const downloaded = image === BOOT_IMAGE ? host.prepare({ restore, memoryMiB, profile }) : Promise.resolve();
      downloaded.catch(() => {});
      const hv = (this.hv = await host.hypervisor);
      // Before the VM runs: as it comes up, its guest gets /var/run/docker.sock and its docker client on first use.
      pageDocker(hv);
      // Console text arrives while the VM boots, before createVm could hand us the Vm: listen by name.
      const off = hv.onEvent((e) => e.vm === this.name && this.onVmEvent(e));
      const vm = (this.vm = await hv.createVm({
        name: this.name,
        image: image !== BOOT_IMAGE ? image : restore ? RESTORE_IMAGE : BOOT_IMAGE,
        profile,
        memoryMiB,
        cmdline: this.options.cmdline,
        cold: !restore,
        timeoutMs: this.options.timeoutMs,
        start: false,
      }));
      try {
        await downloaded;
      } catch (err) {
        off();
        await vm.destroy();
        throw err;
      }
      this.setPhase(restore ? "restore" : "boot");
      const prompt = this.console.waitFor(PROMPT, {
        timeoutMs: this.options.timeoutMs ?? 60_000,
        what: "the shell prompt on the serial console",
        from: 0,
      });
      prompt.catch(() => {});
      try {
        await vm.start();
      } catch (err) {
        off();
        await vm.destroy();
        throw err;
      }
      this.running = true;
      // A restored shell printed its prompt before the snapshot was taken: Ctrl-L has it clear the screen and draw it again.
      if (restore) this.write("\x0c");
      this.applySize();
      this.setPhase("prompt");
      await prompt;
      const now = performance.now();
      this.promptSeen = true;
      this.setPhase("ready");
      this.emit({ type: "prompt", sinceNavigationMs: now, sinceStartMs: now - t0 });
    } catch (err) {
      this.fail(err);
      throw err;
    }
  }

  /**
   * start() from a saved state: the hypervisor restores it (a delta against
   * the site's boot snapshot fetches that first). The shell was at some
   * point of its work when the state was saved, so no prompt is waited for:
   * Ctrl-L asks it to draw its line again, and the VM is ready once it runs.
   */
  private async startFromState(state: Uint8Array, t0: number): Promise<void> {
    const hv = (this.hv = await pageHost().hypervisor);
    pageDocker(hv);
    const off = hv.onEvent((e) => e.vm === this.name && this.onVmEvent(e));
    this._restored = true;
    this.setPhase("restore");
    this.restoringState = true;
    try {
      this.vm = await hv.restore(state, { name: this.name, memoryMiB: this.options.memoryMiB, timeoutMs: this.options.timeoutMs });
    } catch (err) {
      off(); // a fresh start listens again
      this._restored = false;
      throw err;
    } finally {
      this.restoringState = false;
    }
    this.running = true;
    this.promptSeen = true;
    this.write("\x0c");
    this.applySize();
    this.setPhase("ready");
    const now = performance.now();
    this.emit({ type: "prompt", sinceNavigationMs: now, sinceStartMs: now - t0 });
  }

  /** Whether the VM was restored from the site's boot snapshot (false: it booted its kernel). Known once start() began. */
  get restored(): boolean {
    return this._restored;
  }

  /** Types into the serial console. Legal while the VM boots or runs (ignored otherwise). */
  write(data: string): void {
    const vm = this.vm;
    if (!vm || (vm.state !== "running" && vm.state !== "booting")) return;
    vm.writeConsole(data).catch(() => {});
  }

  /**
   * Tells the guest the terminal's size (rows and columns of ttyS0, through
   * the agent's `stty`), so full-screen programs and line editing fit. Calls
   * are coalesced; the last size wins. Legal any time: applied once running.
   */
  resize(rows: number, cols: number): void {
    this.size = { rows, cols };
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => this.applySize(), 100);
  }

  /** Runs a process in the guest through its agent. Legal while running. */
  exec(argv: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (!this.vm) return Promise.reject(new HyperlabError("VM_INVALID_STATE", `cannot exec: VM ${this.name} was not created yet`));
    return this.vm.exec(argv, opts);
  }

  /** The VM's CPU, memory and device figures. Legal once created. */
  metrics(): Promise<VmMetrics> {
    if (!this.vm) return Promise.reject(new HyperlabError("VM_INVALID_STATE", `cannot read metrics: VM ${this.name} was not created yet`));
    return this.vm.metrics();
  }

  /** The hypervisor's handle on this VM (for the stack view's controls: pause, snapshot, fork, destroy). Undefined before it is created. */
  get handle(): Vm | undefined {
    return this.vm;
  }

  /** The containers of this VM (the engine on this page, its images from the site). Legal once running. */
  containers(): PageContainers {
    if (!this.vm || !this.running) throw new HyperlabError("VM_INVALID_STATE", `cannot run containers: VM ${this.name} is not running yet`);
    this._containers ??= new PageContainers(this.hv!, this.vm);
    return this._containers;
  }

  /** The hypervisor this VM runs in (for the stack view's budget and VM list). */
  hypervisor(): Hypervisor | undefined {
    return this.hv;
  }

  /** Ends the VM and returns its memory. Legal any time; twice is a no-op. */
  async destroy(): Promise<void> {
    this.destroying = true;
    clearTimeout(this.resizeTimer);
    this.running = false;
    this.console.close(new HyperlabError("GUEST_STOPPED", `VM ${this.name} was destroyed`));
    await this.vm?.destroy();
    this.listeners.clear();
    elementVms.delete(this.name);
  }

  /**
   * Sets the guest tty's size to the latest one asked for. One `stty` at a
   * time: two in flight could finish out of order and leave the older size.
   */
  private applySize(): void {
    this.sizing = this.sizing.then(async () => {
      const size = this.size;
      const vm = this.vm;
      if (!size || !vm || !this.running || vm.state !== "running") return;
      const key = `${size.rows}x${size.cols}`;
      if (key === this.sizeApplied) return;
      const r = await vm
        .exec(["stty", "-F", "/dev/ttyS0", "rows", String(size.rows), "cols", String(size.cols)], { timeoutMs: 10_000 })
        .catch(() => undefined);
      if (r?.exitCode === 0) this.sizeApplied = key;
    });
  }

  private onVmEvent(e: VmEvent): void {
    switch (e.type) {
      case "console":
        if (!this.promptSeen) this.console.push(e.data);
        this.emit({ type: "console", data: e.data });
        return;
      case "state":
        // A restore that failed ends its VM; start() reports the failure (or starts fresh).
        if (this.restoringState && (e.state === "stopped" || e.state === "destroyed")) return;
        this.emit({ type: "state", state: e.state });
        if (e.state === "stopped" && e.reason) {
          this.running = false;
          this.fail(new HyperlabError(e.reason.code as HyperlabError["code"], e.reason.message));
        } else if (e.state === "destroyed" && !this.destroying) {
          // Destroyed from the stack view's controls, not by its element.
          this.running = false;
          this.fail(new HyperlabError("GUEST_STOPPED", `VM ${this.name} was destroyed (from the Hypervisor layer's controls); its memory went back to the page's budget`));
        }
        return;
      case "metrics":
        return;
    }
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    const error = asError(err);
    this.console.close(error);
    this.emit({ type: "error", error });
  }

  private setPhase(phase: StartPhase): void {
    this._phase = phase;
    // A performance mark per phase (ms since navigation), for the browser benchmark and the devtools timeline.
    performance.mark(`hyperlab ${this.name} ${phase}`);
    this.emit({ type: "phase", phase });
  }

  private emit(e: PageVmEvent): void {
    for (const l of this.listeners) l(e);
  }
}

/** `err` as a coded error (an uncoded one is a failed start). */
function asError(err: unknown): HyperlabError {
  return err instanceof HyperlabError ? err : new HyperlabError("GUEST_BOOT_FAILED", String((err as Error)?.message ?? err));
}
