// VMs made ready before they are asked for. Spare workers are spawned ahead,
// so that a new VM does not wait for one; once a VM has been restored from
// the boot snapshot, each spare also builds its emulator ahead for that
// memory size with the snapshot's RAM pages faulted in. Warm VMs are
// restored from the boot snapshot, run one command and wait paused, their
// memory reserved, so that createVm hands one over at once. Both refill in
// the background once VM starts have quietened.
import { defaultMemoryMiB } from "../hardware/machine.ts";
import { BOOT_SNAPSHOT_CMDLINE } from "./boot-snapshot.ts";
import type { MemoryBudget, Reservation } from "./budget.ts";
import type { ImageCache, LoadedImage } from "./image-cache.ts";
import type { Platform } from "./platform.ts";
import type { VmWorker } from "./rpc.ts";
import { isShared, shareSnapshot } from "./shared-memory.ts";
import type { Snapshot } from "./snapshot.ts";

/**
 * Quiet time after a VM start before spares and the warm pool are refilled:
 * spawning a worker and building its emulator take 100–300 ms of CPU, which
 * on a small host would slow the new VM's first commands.
 */
const REFILL_DELAY_MS = 150;

/** A worker spawned ahead of need. */
interface Spare {
  worker: Promise<VmWorker>;
  /** set once its worker has died (it is then never handed out) */
  dead?: boolean;
  /** the memory size its machine was built ahead for (see VmWorkerApi.prepare), once asked */
  memoryMiB?: number;
  /** settles once that machine is built, or failed to be (the worker then builds one when it restores) */
  prepared?: Promise<void>;
}

/** A VM restored from the boot snapshot and paused, waiting to be handed over by takeWarm(). */
export interface WarmVm {
  /** resolves once the VM is warm (restored, warmed up, paused) */
  worker: Promise<VmWorker>;
  /** the worker itself, as soon as it is spawned */
  spawned: Promise<VmWorker>;
  reservation: Reservation;
  memoryMiB: number;
  /** restored, warmed up and paused: ready to hand over */
  ready: boolean;
}

/** What the pool needs of the hypervisor that owns it. */
export interface WarmPoolHost {
  platform: Platform;
  images: ImageCache;
  /** warm VMs reserve their memory here while they wait */
  budget: MemoryBudget;
  /** true once the hypervisor is closing: nothing is spawned, restored or prepared any more */
  closed(): boolean;
}

/** How many spare workers and warm VMs to keep (see HypervisorOptions). */
export interface WarmPoolTargets {
  spareWorkers: number;
  warmVms: number;
}

/**
 * The spare workers and warm VMs of one hypervisor. Built with it, started
 * by start(); every method is legal until close().
 */
export class WarmPool {
  private readonly spares: Spare[] = [];
  private readonly warm: WarmVm[] = [];
  /** the memory size spares are prepared for: that of the VM last started from a snapshot */
  private spareMemoryMiB: number | undefined;
  /** boot snapshots the hypervisor has restored, by memory size (their pages are faulted in ahead in spares) */
  private readonly bootStates = new Map<number, Snapshot>();
  private warmMemoryMiB = 0;
  private refillTimer: ReturnType<typeof setTimeout> | undefined;
  private refillDue: Promise<void> | undefined;
  private refillDone: (() => void) | undefined;
  private refilling: Promise<void> | undefined;

  /** `host`: what the pool spawns, loads and reserves with; `targets`: how much it keeps ready. */
  constructor(
    private readonly host: WarmPoolHost,
    private readonly targets: WarmPoolTargets,
  ) {}

  /**
   * Spawns the first spares and, with a warm pool, restores its first VMs
   * with `warmMemoryMiB` of RAM (default: the image's default, the image then
   * loaded first). Legal once, right after construction.
   */
  async start(warmMemoryMiB?: number): Promise<void> {
    this.topUpSpares();
    if (this.targets.warmVms > 0) {
      this.warmMemoryMiB = warmMemoryMiB ?? defaultMemoryMiB((await this.host.images.image()).image);
      this.topUpWarmPool();
    }
  }

  /** MiB the warm VMs hold reserved while they wait. */
  get reservedMiB(): number {
    return this.warm.reduce((n, w) => n + w.memoryMiB, 0);
  }

  /** A warm VM of `memoryMiB`, if one is ready (one still being restored is left to the pool). */
  takeWarm(memoryMiB: number): WarmVm | undefined {
    const at = this.warm.findIndex((w) => w.ready && w.memoryMiB === memoryMiB);
    return at < 0 ? undefined : this.warm.splice(at, 1)[0];
  }

  /** Puts back a warm VM from takeWarm() that no VM took (its VM was refused), first in line as it was. */
  giveBack(warm: WarmVm): void {
    this.warm.unshift(warm);
  }

  /** Prepares spares from now on for VMs restored with `memoryMiB` of RAM: the size of the VM last restored. */
  prepareFor(memoryMiB: number): void {
    this.spareMemoryMiB = memoryMiB;
  }

  /**
   * A spare worker (one prepared for `memoryMiB` if there is one), else a new
   * one. The spares are topped up once the VM has started.
   */
  takeWorker(memoryMiB?: number): Promise<VmWorker> {
    // A spare whose worker has died since it was spawned is dropped, not handed out.
    for (let i = this.spares.length - 1; i >= 0; i--) if (this.spares[i]!.dead) this.spares.splice(i, 1);
    const at = memoryMiB === undefined ? -1 : this.spares.findIndex((s) => s.memoryMiB === memoryMiB);
    const spare = this.spares.splice(Math.max(0, at), 1)[0];
    return spare?.worker ?? this.host.platform.spawnWorker();
  }

  /** Notes the boot snapshot a VM of `memoryMiB` restores (spares fault its pages in ahead); returns it shared with workers. */
  bootState(memoryMiB: number, snapshot: Snapshot, loaded: LoadedImage): Snapshot {
    const shared = shareSnapshot(snapshot);
    if (loaded.ref === "" && loaded.profile === "") this.bootStates.set(memoryMiB, shared);
    return shared;
  }

  /**
   * Refills the warm pool and the spares once no VM has started for
   * REFILL_DELAY_MS (each start postpones it). ready() waits for it.
   */
  scheduleRefill(): void {
    if (this.host.closed()) return;
    clearTimeout(this.refillTimer);
    this.refillDue ??= new Promise<void>((resolve) => (this.refillDone = resolve)).finally(() => {
      this.refillDue = undefined;
      this.refillDone = undefined;
    });
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.refillDone?.();
      // Warm VMs first: they take the prepared spares, which are then replaced.
      this.topUpWarmPool();
      this.topUpSpares();
      this.prepareSpares();
    }, REFILL_DELAY_MS);
  }

  /** Resolves once pending refills are done (see Hypervisor.ready); at once once the hypervisor is closing. */
  async ready(): Promise<void> {
    // One step of a refill can start another (a warm VM ready prepares the spares): wait until no step is left.
    const awaited = new Set<Promise<unknown>>();
    for (;;) {
      const pending = [
        this.refillDue as Promise<unknown> | undefined,
        this.refilling,
        ...this.spares.map((s) => s.prepared ?? s.worker),
        ...this.warm.filter((w) => !w.ready).map((w) => w.worker),
      ].filter((p): p is Promise<unknown> => p !== undefined && !awaited.has(p));
      if (this.host.closed() || pending.length === 0) return;
      for (const p of pending) awaited.add(p);
      await Promise.all(pending.map((p) => p.then(() => {}, () => {})));
    }
  }

  /** Ends the spares and the warm VMs and returns the latter's memory. Legal once the hypervisor is closing. */
  async close(): Promise<void> {
    clearTimeout(this.refillTimer);
    this.refillDone?.();
    await this.refilling;
    // Warm VMs still warming up are ended too: their worker, not their warm-up, is awaited.
    const workers = [...this.spares.splice(0).map((s) => s.worker), ...this.warm.splice(0).map((w) => (w.reservation.release(), w.spawned))];
    await Promise.all(workers.map((s) => s.then((w) => w.terminate(), () => {})));
  }

  /**
   * Builds a machine ahead in every spare not yet asked to: for the memory
   * size of the VM last started from a snapshot (default: the warm pool's,
   * else the image's default), with the RAM pages of that size's boot
   * snapshot faulted in when this hypervisor has restored it. Loads nothing:
   * until the image and v86 are loaded for a VM, spares stay unprepared.
   */
  private prepareSpares(): void {
    // Only where VMs start from snapshots, and once the default image and v86 are loaded.
    const ready = this.host.images.loaded();
    if (!this.host.platform.bootSnapshot || !ready || this.host.closed()) return;
    const { image: loaded, wasm } = ready;
    const memoryMiB = this.spareMemoryMiB ?? (this.warmMemoryMiB || defaultMemoryMiB(loaded.image));
    const boot = this.bootStates.get(memoryMiB);
    // Without shared memory the state would be copied to each spare: the pages are then left to the restore.
    const pagesOf = boot && isShared(boot.state) ? boot.state : undefined;
    const cmdline = boot?.header.vm.cmdline ?? BOOT_SNAPSHOT_CMDLINE;
    for (const spare of this.spares) {
      if (spare.prepared) continue;
      spare.memoryMiB = memoryMiB;
      // A spare that fails to prepare is still a worker: its restore builds the machine itself.
      spare.prepared = spare.worker.then((w) => w.api.prepare({ image: loaded.shared, wasm, memoryMiB, cmdline, pagesOf })).catch(() => {});
    }
  }

  /**
   * Spawns spare workers one at a time until there are enough, so that the
   * refill never competes much with VMs that are starting.
   */
  private topUpSpares(): void {
    if (this.refilling || this.host.closed() || this.spares.length >= this.targets.spareWorkers) return;
    this.refilling = (async () => {
      while (!this.host.closed() && this.spares.length < this.targets.spareWorkers) {
        const spare = this.host.platform.spawnWorker();
        const ok = await spare.then(
          () => true,
          () => false,
        );
        if (!ok) break; // reported when a VM needs a worker
        if (this.host.closed()) void spare.then((w) => w.terminate());
        else {
          const entry: Spare = { worker: spare };
          spare.then((w) => w.died.then(() => (entry.dead = true)), () => (entry.dead = true));
          this.spares.push(entry);
        }
        this.prepareSpares();
      }
    })().finally(() => (this.refilling = undefined));
  }

  /** Restores VMs into the warm pool, paused, until it holds its target (as the budget allows). */
  private topUpWarmPool(): void {
    if (!this.host.platform.bootSnapshot || this.warmMemoryMiB === 0) return;
    while (!this.host.closed() && this.warm.length < this.targets.warmVms) {
      const memoryMiB = this.warmMemoryMiB;
      let reservation: Reservation;
      try {
        reservation = this.host.budget.reserve("(warm pool)", memoryMiB);
      } catch {
        return; // the budget is full: VMs come first
      }
      const worker = this.takeWorker(memoryMiB);
      const entry: WarmVm = { reservation, memoryMiB, ready: false, spawned: worker, worker: this.warmUp(worker, memoryMiB, () => (entry.ready = true)) };
      entry.worker.catch(() => {
        // A warm VM that failed to restore is dropped; createVm falls back to a restore of its own.
        const at = this.warm.indexOf(entry);
        if (at >= 0) this.warm.splice(at, 1);
        reservation.release();
        void worker.then((w) => w.terminate(), () => {});
      });
      this.warm.push(entry);
    }
  }

  /** Restores the boot snapshot in `worker`, runs one command, pauses it: a warm VM. */
  private async warmUp(worker: Promise<VmWorker>, memoryMiB: number, onReady: () => void): Promise<VmWorker> {
    const [w, loaded] = await Promise.all([worker, this.host.images.image()]);
    const snapshot = this.bootState(memoryMiB, await this.host.platform.bootSnapshot!(loaded.image, memoryMiB), loaded);
    await w.api.restore({ name: "warm", image: loaded.shared, wasm: await this.host.images.v86(), memoryMiB }, snapshot, {});
    // One command warms v86's JIT (the first after a restore is several times slower), then it waits paused.
    await w.api.exec(["true"]);
    await w.api.pause();
    onReady();
    // The image and v86 are loaded now: spares spawned before can be prepared.
    this.prepareSpares();
    return w;
  }
}
