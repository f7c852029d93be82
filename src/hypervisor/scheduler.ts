// CPU shares between VMs, enforced by emulated instructions. Each VM has a
// virtual time vt = instructions / share; a busy VM whose virtual time runs
// ahead of the slowest busy VM is held (its emulator paused) until the others
// catch up, so over time busy VMs execute instructions in proportion to their
// shares. Wall time is not used for fairness: on a shared host it is noisy,
// while v86's instruction counter is stable to a few percent.
//
// The scheduler is pure: the hypervisor feeds it one sample per VM every
// period and applies the holds it returns.

/** One VM's counters, cumulative since the VM started (the scheduler takes differences). */
export interface CpuSample {
  id: string;
  /** emulated instructions since power on */
  instructions: number;
  /** wall ms the VM's emulator was allowed to run (not held by the scheduler) */
  runMs: number;
  /** wall ms of that the emulator was busy (its event loop active): low when the guest halts */
  activeMs: number;
  /** false when the VM cannot run at all (paused by its user, stopped): it takes no part */
  runnable: boolean;
}

/** What the scheduler knows of one VM. */
export interface CpuAccount {
  id: string;
  share: number;
  /** virtual time: instructions executed divided by share, with idle time forgiven */
  vt: number;
  /** true while the VM uses all the CPU it is given (its guest does not halt) */
  busy: boolean;
  /** true while the scheduler holds it because it is ahead */
  held: boolean;
  /** instructions per second over the last period it ran */
  rate: number;
}

/** Tuning of the scheduler. */
export interface SchedulerOptions {
  /**
   * Share of its running time a VM's emulator must be busy to count as busy
   * (default 0.8). An idle guest halts and its emulator sleeps; such VMs
   * neither hold others back nor bank credit (work conserving).
   */
  busyFraction?: number;
  /**
   * How far (in wall ms of its own running) a busy VM may run ahead of the
   * slowest busy VM before it is held (default 20). Bigger: fewer pauses;
   * smaller: a tighter ratio over short spans.
   */
  leadMs?: number;
}

/** Smallest and largest CPU share a VM may have. */
export const MIN_SHARE = 0.01;
export const MAX_SHARE = 10_000;

interface Entry extends CpuAccount {
  last?: CpuSample;
}

/** True when `share` is a usable CPU share. */
export function validShare(share: number): boolean {
  return Number.isFinite(share) && share >= MIN_SHARE && share <= MAX_SHARE;
}

/** Proportional CPU shares by emulated instructions (see the file comment). */
export class CpuScheduler {
  private readonly vms = new Map<string, Entry>();
  private readonly busyFraction: number;
  private readonly leadMs: number;

  constructor(opts: SchedulerOptions = {}) {
    this.busyFraction = opts.busyFraction ?? 0.8;
    this.leadMs = opts.leadMs ?? 20;
  }

  /** Starts accounting for a VM with `share` (relative weight, e.g. 1 or 3). */
  add(id: string, share: number): void {
    this.vms.set(id, { id, share, vt: this.floor() ?? 0, busy: false, held: false, rate: 0 });
  }

  /** Forgets a VM (destroyed or stopped). */
  remove(id: string): void {
    this.vms.delete(id);
  }

  /** Changes a VM's share; it applies from the next period on. */
  setShare(id: string, share: number): void {
    const e = this.vms.get(id);
    if (e) e.share = share;
  }

  /** The scheduler's view of every VM. */
  accounts(): CpuAccount[] {
    return [...this.vms.values()].map(({ last: _last, ...a }) => ({ ...a }));
  }

  /** Virtual time of the slowest busy VM, or undefined when no VM is busy. */
  private floor(): number | undefined {
    let min: number | undefined;
    for (const e of this.vms.values()) if (e.busy && (min === undefined || e.vt < min)) min = e.vt;
    return min;
  }

  /**
   * Takes one sample per VM and returns the ids of the VMs to hold until the
   * next call (every other VM runs). VMs without a sample are left as they are.
   */
  step(samples: readonly CpuSample[]): Set<string> {
    for (const s of samples) {
      const e = this.vms.get(s.id);
      if (!e) continue;
      const last = e.last;
      e.last = s;
      if (!s.runnable) {
        e.busy = false;
        e.held = false;
        continue;
      }
      if (!last) continue;
      const executed = Math.max(0, s.instructions - last.instructions);
      const ranMs = s.runMs - last.runMs;
      e.vt += executed / e.share;
      // A held VM did not run, so it says nothing new about being busy.
      if (ranMs > 0.5) {
        e.busy = (s.activeMs - last.activeMs) / ranMs >= this.busyFraction;
        e.rate = (executed / ranMs) * 1000;
      }
    }

    const floor = this.floor();
    const held = new Set<string>();
    if (floor === undefined) {
      for (const e of this.vms.values()) e.held = false;
      return held;
    }
    for (const e of this.vms.values()) {
      // Idle or paused time is not banked: a VM that wakes up competes from the present.
      if (!e.busy && !e.held) e.vt = Math.max(e.vt, floor);
      if (!e.last?.runnable) continue;
      // How far ahead of the slowest busy VM, in wall ms of this VM's own running.
      const leadMs = e.rate > 0 ? (((e.vt - floor) * e.share) / e.rate) * 1000 : 0;
      // Hysteresis: hold beyond the allowed lead, release once caught up.
      e.held = e.held ? e.vt > floor : leadMs > this.leadMs;
      if (e.held) held.add(e.id);
    }
    return held;
  }
}
