// The host's memory budget: each VM reserves its guest RAM here when it is
// created and returns it when it is destroyed, so the hypervisor refuses to
// over-commit the host instead of letting the process die of memory.
import { HyperlabError } from "../errors.ts";

/**
 * Share of the host's memory the default budget hands to guests. Half: each
 * VM also costs memory that is not its guest RAM (its worker's JavaScript
 * heap, v86's tables and JIT cache, about 20–40 MiB), and the host itself must
 * keep running.
 */
export const DEFAULT_NODE_FRACTION = 0.5;

/**
 * Share of `navigator.deviceMemory` for the default budget in a browser: a
 * quarter, since a tab shares the device with the browser and other tabs, and
 * `deviceMemory` is rounded (and capped at 8 GiB) by the browser.
 */
export const DEFAULT_BROWSER_FRACTION = 0.25;

/** Budget used when the host's memory cannot be learnt (a browser without `navigator.deviceMemory`). */
export const FALLBACK_BUDGET_MIB = 1024;

/**
 * The default budget in MiB: `DEFAULT_NODE_FRACTION` of `os.totalmem()` in
 * Node, `DEFAULT_BROWSER_FRACTION` of `navigator.deviceMemory` in a browser.
 */
export async function defaultBudgetMiB(): Promise<number> {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (proc?.versions?.node) {
    const os = await import("node:os");
    return Math.floor((os.totalmem() / 2 ** 20) * DEFAULT_NODE_FRACTION);
  }
  const gib = (globalThis as { navigator?: { deviceMemory?: number } }).navigator?.deviceMemory;
  return gib ? Math.floor(gib * 1024 * DEFAULT_BROWSER_FRACTION) : FALLBACK_BUDGET_MIB;
}

/** One VM's hold on the budget; `release()` returns it (once). */
export interface Reservation {
  readonly owner: string;
  readonly mib: number;
  release(): void;
}

/** A fixed amount of host memory (MiB) shared out to VMs. */
export class MemoryBudget {
  private readonly held = new Map<Reservation, number>();

  /** `totalMiB`: what all VMs together may reserve. */
  constructor(readonly totalMiB: number) {
    if (!Number.isFinite(totalMiB) || totalMiB <= 0) {
      throw new HyperlabError("INVALID_ARGUMENT", `a memory budget must be a positive number of MiB, not ${totalMiB}`);
    }
  }

  /** MiB reserved by VMs now. */
  get usedMiB(): number {
    let n = 0;
    for (const mib of this.held.values()) n += mib;
    return n;
  }

  /** MiB still free. */
  get freeMiB(): number {
    return this.totalMiB - this.usedMiB;
  }

  /** Reserves `mib` for `owner` or throws RESOURCE_EXHAUSTED stating what was asked and what is free. */
  reserve(owner: string, mib: number): Reservation {
    if (!Number.isFinite(mib) || mib <= 0) {
      throw new HyperlabError("INVALID_ARGUMENT", `VM ${owner} must ask for a positive amount of memory, not ${mib} MiB`);
    }
    const free = this.freeMiB;
    if (mib > free) {
      throw new HyperlabError(
        "RESOURCE_EXHAUSTED",
        `cannot create VM ${owner}: it asks for ${mib} MiB of memory but only ${free} MiB of the host budget (${this.totalMiB} MiB) is free. ` +
          `Destroy a VM, ask for less memory, or give the hypervisor a larger budget.`,
        { askedMiB: mib, freeMiB: free, totalMiB: this.totalMiB },
      );
    }
    const reservation: Reservation = {
      owner,
      mib,
      release: () => void this.held.delete(reservation),
    };
    this.held.set(reservation, mib);
    return reservation;
  }

  /** Who holds how much, for `hyperlab stats`. */
  reservations(): Array<{ owner: string; mib: number }> {
    return [...this.held.keys()].map((r) => ({ owner: r.owner, mib: r.mib }));
  }
}
