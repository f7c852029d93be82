// A page's VMs kept across reloads (`<hyperlab-vm persist>`). The element's
// VM and the VMs made from the stack view (created, forked, restored) are
// saved in the browser (page-save-store.ts) as their snapshots: a delta
// against the site's boot snapshot for a VM that came from it (the changed
// pages only, computed in the VM's worker), compressed; the containers'
// records ride in each snapshot (the engine's records, see vm.ts
// provideRecords). A save is taken a moment after activity stops (console
// output, typing, clicks, VMs coming and going) with the element's shell at
// its prompt (a command finished), or after a longer quiet while a command
// runs (a `docker pull` prints nothing for a while), at least every
// MAX_WAIT_MS while output goes on, and when the page is hidden or left (best effort:
// a reload may end the page before that one is written, and the previous
// save stays whole). A reload brings the VMs back in the state they were
// saved in: running ones running, paused ones paused.
import { HyperlabError } from "../errors.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { type LoadedSave, SaveUnusable, clearSave, readSave, writeSave } from "./page-save-store.ts";
import { PROMPT, isElementVm } from "./page-vm.ts";

/** How long the page must be quiet, its shell at the prompt, before its VMs are saved, ms. */
export const IDLE_MS = 2000;
/** How long it must be quiet while a command runs (no prompt yet), ms. */
export const BUSY_IDLE_MS = 15_000;
/** The longest a save waits while output goes on, ms. */
export const MAX_WAIT_MS = 60_000;

/** The shell's prompt at the end of the console's output: the command typed has finished. */
const PROMPT_AT_END = new RegExp(`(?:${PROMPT.source})$`);

/** The options of the element's VM, as saved: a save made with others is not restored. */
export interface SavedOptions {
  image?: string;
  profile?: string;
  memoryMiB?: number;
  cmdline?: string;
}

/** One saved VM (its snapshot is the save's part of the same index). */
export interface SavedVm {
  name: string;
  /** the element's own VM, or one made from the stack view */
  role: "element" | "other";
  state: "running" | "paused";
  cpuShare: number;
  /** the network its card was plugged into ("none": unplugged) */
  net: string;
}

/** What a page save records besides the snapshots. */
export interface PageSaveMeta {
  options: SavedOptions;
  vms: SavedVm[];
}

/** What one save did, for the element's data attributes and the note's figures. */
export interface SaveReport {
  vms: number;
  /** bytes of all snapshots */
  bytes: number;
  /** ms for the snapshots (VMs paused meanwhile, one at a time) */
  snapshotMs: number;
  /** ms to write them into the browser's storage */
  writeMs: number;
  savedAt: string;
}

/** A save read back and checked against the element's options, ready to restore. */
export interface PageRestore {
  savedAt: string;
  element: Uint8Array;
  others: Array<{ vm: SavedVm; bytes: Uint8Array }>;
  elementState: SavedVm["state"];
}

/** Why a save was not restored (the visitor reads it), or the save to restore. */
export type LoadResult = { kind: "none" } | { kind: "restore"; restore: PageRestore } | { kind: "unusable"; reason: string };

/** Whether the page's address asks for a fresh start (`?fresh`). */
export function freshRequested(): boolean {
  return new URL(location.href).searchParams.has("fresh");
}

/** Takes `?fresh` out of the address bar, so that the next reload brings the new machine back. */
export function dropFreshParam(): void {
  const url = new URL(location.href);
  if (!url.searchParams.has("fresh")) return;
  url.searchParams.delete("fresh");
  history.replaceState(history.state, "", url.href);
}

function describe(o: SavedOptions): string {
  return [`image ${o.image ?? "default"}`, `profile ${o.profile ?? "default"}`, `memory ${o.memoryMiB === undefined ? "default" : `${o.memoryMiB} MiB`}`, ...(o.cmdline ? [`cmdline '${o.cmdline}'`] : [])].join(", ");
}

/**
 * The save under `key`, checked (parts whole, made with the same options);
 * a save that cannot be used is forgotten and its reason returned.
 */
export async function loadPageSave(key: string, options: SavedOptions): Promise<LoadResult> {
  let loaded: LoadedSave<PageSaveMeta> | undefined;
  try {
    loaded = await readSave<PageSaveMeta>(key);
  } catch (err) {
    const reason = err instanceof SaveUnusable ? err.message : `the browser's storage could not be read (${(err as Error)?.message ?? err})`;
    await clearSave(key).catch(() => {});
    return { kind: "unusable", reason };
  }
  if (!loaded) return { kind: "none" };
  const { meta } = loaded.pointer;
  const at = meta?.vms?.findIndex((v) => v.role === "element") ?? -1;
  if (at < 0 || meta.vms.length !== loaded.parts.length) {
    await clearSave(key).catch(() => {});
    return { kind: "unusable", reason: "its list of VMs does not match its parts" };
  }
  const same = (a: SavedOptions, b: SavedOptions) => a.image === b.image && (a.profile ?? "default") === (b.profile ?? "default") && a.memoryMiB === b.memoryMiB && a.cmdline === b.cmdline;
  if (!same(meta.options, options)) {
    await clearSave(key).catch(() => {});
    return { kind: "unusable", reason: `it was made for a VM with other options (${describe(meta.options)}; this one has ${describe(options)})` };
  }
  return {
    kind: "restore",
    restore: {
      savedAt: loaded.pointer.savedAt,
      element: loaded.parts[at]!,
      elementState: meta.vms[at]!.state,
      others: meta.vms.flatMap((vm, i) => (i === at ? [] : [{ vm, bytes: loaded.parts[i]! }])),
    },
  };
}

/**
 * Brings back the other VMs of a save (after the element's VM runs), one at
 * a time, each under its saved name and in its saved state; a VM that
 * cannot come back is reported through `onError` and the rest go on.
 */
export async function restoreOthers(hv: Hypervisor, others: PageRestore["others"], onError: (name: string, err: HyperlabError) => void): Promise<number> {
  let restored = 0;
  for (const { vm, bytes } of others) {
    try {
      const free = !hv.list().some((v) => v.name === vm.name);
      const net = vm.net === "none" || hv.networks.list().some((n) => n.name === vm.net) ? vm.net : undefined;
      const back = await hv.restore(bytes, { name: free ? vm.name : undefined, cpuShare: vm.cpuShare, net });
      if (vm.state === "paused") await back.pause();
      restored++;
    } catch (err) {
      onError(vm.name, err instanceof HyperlabError ? err : new HyperlabError("SNAPSHOT_CORRUPT", String((err as Error)?.message ?? err)));
    }
  }
  return restored;
}

/**
 * Saves a page element's VMs under `key` while it lives (see the file's
 * comment). Saves one at a time; a save asked for during one runs after it.
 */
export class PageSaver {
  private dirty = false;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private firstDirtyAt = 0;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly offs: Array<() => void> = [];
  /** the end of the element's console output (to tell whether its shell is at the prompt) */
  private consoleTail = "";
  /** the latest save's figures */
  last: SaveReport | undefined;

  constructor(
    private readonly key: string,
    private readonly hv: Hypervisor,
    private readonly opts: {
      options: SavedOptions;
      /** the element's VM now (undefined or not live: nothing is saved, the previous save stays) */
      element: () => Vm | undefined;
      /** activity on the element itself (typing, clicks) */
      target: EventTarget;
      onSaved: (report: SaveReport) => void;
      onError: (err: unknown) => void;
    },
  ) {
    this.offs.push(
      hv.onEvent((e) => {
        if (e.type === "console" && e.vm === opts.element()?.name) this.consoleTail = (this.consoleTail + e.data).slice(-200);
        if (e.type === "console" || e.type === "state") this.touch();
      }),
    );
    const touch = () => this.touch();
    for (const type of ["keydown", "click", "drop"]) {
      opts.target.addEventListener(type, touch);
      this.offs.push(() => opts.target.removeEventListener(type, touch));
    }
    const leaving = () => {
      if (this.dirty) void this.saveNow();
    };
    const hidden = () => document.visibilityState === "hidden" && leaving();
    addEventListener("pagehide", leaving);
    document.addEventListener("visibilitychange", hidden);
    this.offs.push(
      () => removeEventListener("pagehide", leaving),
      () => document.removeEventListener("visibilitychange", hidden),
    );
  }

  /** Notes activity: a save follows once the page has been quiet (see the file's comment). */
  touch(): void {
    if (this.stopped) return;
    const now = performance.now();
    if (!this.dirty) this.firstDirtyAt = now;
    this.dirty = true;
    clearTimeout(this.idleTimer);
    const left = Math.max(0, this.firstDirtyAt + MAX_WAIT_MS - now);
    this.idleTimer = setTimeout(() => {
      if (PROMPT_AT_END.test(this.consoleTail) || left <= IDLE_MS) return void this.saveNow();
      // A command is running: wait for a longer quiet (or the prompt, which is activity and comes back here).
      this.idleTimer = setTimeout(() => void this.saveNow(), Math.max(0, Math.min(BUSY_IDLE_MS, left) - IDLE_MS));
    }, Math.min(IDLE_MS, left));
  }

  /** Saves now (after the save under way, if one is). Resolves when the save is written or has failed (reported to onError). */
  saveNow(): Promise<void> {
    clearTimeout(this.idleTimer);
    if (this.stopped) return Promise.resolve();
    const run = (this.running ?? Promise.resolve()).then(() => this.save());
    this.running = run;
    void run.finally(() => {
      if (this.running === run) this.running = undefined;
    });
    return run;
  }

  /** Stops saving; resolves once a save under way is over. Legal any time. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.idleTimer);
    for (const off of this.offs.splice(0)) off();
    await this.running;
  }

  /** Stops saving and forgets the save. */
  async forget(): Promise<void> {
    await this.stop();
    await clearSave(this.key);
  }

  private async save(): Promise<void> {
    if (this.stopped || !this.dirty) return;
    const element = this.opts.element();
    const live = (vm: Vm) => vm.state === "running" || vm.state === "paused";
    if (!element || !live(element)) return;
    this.dirty = false;
    try {
      const t0 = performance.now();
      const vms = [element, ...this.hv.list().filter((vm) => vm !== element && !isElementVm(vm.name) && live(vm))];
      const saved: SavedVm[] = [];
      const parts: Uint8Array[] = [];
      for (const vm of vms) {
        let bytes: Uint8Array;
        try {
          bytes = await vm.snapshot({ compression: "deflate-raw" });
        } catch (err) {
          if (vm !== element && !live(vm)) continue; // destroyed meanwhile
          throw err;
        }
        parts.push(bytes);
        saved.push({ name: vm.name, role: vm === element ? "element" : "other", state: vm.state === "paused" ? "paused" : "running", cpuShare: vm.cpuShare, net: vm.network?.name ?? "none" });
      }
      const t1 = performance.now();
      if (this.stopped) return;
      const pointer = await writeSave<PageSaveMeta>(this.key, { options: this.opts.options, vms: saved }, parts);
      const report: SaveReport = {
        vms: parts.length,
        bytes: parts.reduce((n, p) => n + p.length, 0),
        snapshotMs: t1 - t0,
        writeMs: performance.now() - t1,
        savedAt: pointer.savedAt,
      };
      this.last = report;
      this.opts.onSaved(report);
    } catch (err) {
      this.dirty = true; // tried again on the next activity
      this.opts.onError(err);
    }
  }
}
