// The hypervisor: runs several isolated VMs on one host, each in its own
// worker, each with memory reserved from the host's budget and a CPU share
// the scheduler enforces by emulated instructions (placement.ts). New VMs
// start from the boot snapshot (instant start), or from a warm pool of VMs
// restored ahead and kept paused (warm-pool.ts). The same API in Node and in
// a browser; what differs (loading images, spawning workers, the boot
// snapshot) is a Platform (platform.ts). This file keeps the registry of VMs
// and their lifecycle: create, restore, fork, snapshot, destroy, events.
import { HyperlabError } from "../errors.ts";
import { checkMemoryMiB, defaultMemoryMiB } from "../hardware/machine.ts";
import { bootSnapshotKeyOf } from "./boot-snapshot.ts";
import { type MemoryBudget, type Reservation, defaultBudgetMiB } from "./budget.ts";
import { type DeltaBase, decodeSnapshot } from "./delta-snapshot.ts";
import { ImageCache, type LoadedImage } from "./image-cache.ts";
import { DEFAULT_NETWORK, Networks } from "./networks.ts";
import { PAGE_SIZE, type SharingStats, loadMemoryEngine } from "./memory-engine.ts";
import { Placement } from "./placement.ts";
import { type Platform, defaultPlatform } from "./platform.ts";
import type { VmWorker } from "./rpc.ts";
import type { SchedulerOptions } from "./scheduler.ts";
import { shareSnapshot } from "./shared-memory.ts";
import { type Snapshot, encodeSnapshot, imageDigest, readSnapshotHeader, stateDigest } from "./snapshot.ts";
import { METRICS_MS, Vm, type VmEvent, type VmHost, type VmInfo, type VmMetrics, type VmOrigin, type VmSnapshotOptions } from "./vm.ts";
import { WarmPool } from "./warm-pool.ts";
import type { StartReport, WorkerConfig } from "./worker-protocol.ts";

/** What differs between hosts (see platform.ts), part of the hypervisor's options. */
export type { Platform };

/** How to build a hypervisor. */
export interface HypervisorOptions {
  /** MiB all VMs together may reserve (default: see budget.ts, a fraction of host memory) */
  memoryBudgetMiB?: number;
  /**
   * Workers kept spawned ahead of need, so that creating a VM does not wait
   * for one (default 1). Once a VM has been restored from the boot snapshot,
   * each spare also builds its emulator ahead for that memory size, with the
   * snapshot's RAM pages faulted in (~30 MB each, not reserved from the
   * budget), so that a restore only loads the state.
   */
  spareWorkers?: number;
  /**
   * VMs kept restored from the boot snapshot, their agent connected and
   * their clock set, then paused, so that `createVm` with the pool's memory
   * size hands one over at once (default 0). They reserve their memory from
   * the budget while they wait; the pool refills in the background.
   */
  warmPool?: number;
  /** guest RAM of the warm pool's VMs (default: the image's default) */
  warmPoolMemoryMiB?: number;
  /** CPU scheduler tuning, and its period in ms (default 20) */
  scheduler?: SchedulerOptions & { periodMs?: number };
  /** replaces parts of the default platform (required in part in a browser: see Platform) */
  platform?: Partial<Platform>;
}

/** What a new VM is made of. */
export interface CreateVmOptions {
  /** unique name (letters, digits, `_.-`); default vm-<n> */
  name?: string;
  /** the guest image (see Platform.loadImage); default the default guest */
  image?: string;
  /**
   * the guest profile: "default" (the default) or one the image's manifest
   * lists, e.g. "lxc" (docs/profiles.md); each has its own boot snapshot.
   * An unknown one fails with INVALID_ARGUMENT listing the known ones.
   */
  profile?: string;
  /** guest RAM in MiB, reserved from the budget (default: the image's default, 128; a profile may ask for more) */
  memoryMiB?: number;
  /** relative CPU weight among VMs (default 1) */
  cpuShare?: number;
  /** start it now (default true); false leaves it `created` for `vm.start()` */
  start?: boolean;
  /** boot the kernel instead of restoring the boot snapshot */
  cold?: boolean;
  /** extra kernel arguments (implies a cold boot: the boot snapshot has the default ones) */
  cmdline?: string;
  /** how long the guest may take to come up (default 60 s) */
  timeoutMs?: number;
  /** the network its card is plugged into (default `default`; `none`: unplugged) */
  net?: string;
}

/** Options of a VM restored from a snapshot (its memory comes from the snapshot). */
export interface RestoreOptions {
  name?: string;
  /** the image the snapshot was taken of (default: the default guest); another one fails with SNAPSHOT_MISMATCH */
  image?: string;
  /** the profile the snapshot was taken of (default: the one whose image id the snapshot names, else "default"); another one fails with SNAPSHOT_MISMATCH */
  profile?: string;
  /** if given, must equal the snapshot's memory (SNAPSHOT_MISMATCH otherwise) */
  memoryMiB?: number;
  cpuShare?: number;
  timeoutMs?: number;
  /** the network its card is plugged into, with a fresh MAC and address (default `default`; `none`: unplugged) */
  net?: string;
}

/**
 * Identical pages among the running and paused VMs: what Linux KSM would
 * merge. Counted by the memory engine over page hashes each VM's worker
 * computed of its own RAM (see SharingStats for each figure).
 */
export interface PageSharing extends SharingStats {
  /** the VMs counted, in the order of `list()` */
  names: string[];
  /** bytes per page (4096) */
  pageSize: number;
  /** wall ms to hash every VM's RAM and count */
  ms: number;
}

/** Allocation and use of the host, for `hyperlab stats`. */
export interface HypervisorStats {
  budget: { totalMiB: number; usedMiB: number; freeMiB: number; warmPoolMiB: number };
  vms: Array<VmInfo & { metrics?: VmMetrics }>;
  /** pages shareable across the running and paused VMs (absent when none is) */
  sharing?: PageSharing;
}

/** An event of any VM of the hypervisor (the VM's name is in `vm`). */
export type HypervisorEvent = VmEvent;

/** What a VM start did, for benchmarks and logs. */
export interface StartInfo extends StartReport {
  origin: VmOrigin;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const DEFAULT_TIMEOUT_MS = 60_000;
/** How long a VM's worker may take to hash its RAM for stats() before it is left out. */
const PAGE_HASH_TIMEOUT_MS = 10_000;

/** What register() needs to know about a new VM. */
interface Registration {
  name?: string;
  image?: string;
  profile?: string;
  memoryMiB: number;
  cpuShare?: number;
  origin: VmOrigin;
  /** the worker the VM will run in (default: a spare or a new one) */
  worker?: Promise<VmWorker>;
  /** what the VM's memory is reserved under, when it is not reserved here */
  reservation?: Reservation;
  /** starts the machine in `worker` */
  start: (vm: Vm, worker: VmWorker) => Promise<StartReport>;
  /** records kept in the snapshot it starts from (see Vm.records) */
  records?: Record<string, unknown>;
  /** the network it joins once started (default `default`) */
  net?: string;
}

/**
 * Runs VMs. Build with `Hypervisor.create()`; end with `close()`, which
 * destroys every VM. Every method is legal until close().
 */
export class Hypervisor {
  /** the host memory VMs reserve from */
  readonly budget: MemoryBudget;
  /** the networks VMs' cards plug into (networks.ts); `default` always exists until removed */
  readonly networks = new Networks();
  private readonly platform: Platform;
  private readonly vms = new Map<string, Vm>();
  private readonly listeners = new Set<(e: HypervisorEvent) => void>();
  private readonly placement: Placement;
  private readonly images: ImageCache;
  private readonly pool: WarmPool;
  private readonly starts = new WeakMap<Vm, StartInfo>();
  /** VMs forked or restored whose RAM descends from the boot snapshot (those started from it are known by origin) */
  private readonly fromBootSnapshot = new WeakSet<Vm>();
  private readonly metricsTimer: ReturnType<typeof setInterval>;
  private counter = 0;
  private closed = false;

  private constructor(budgetMiB: number, opts: HypervisorOptions) {
    this.placement = new Placement(budgetMiB, opts.scheduler, () => this.list());
    this.budget = this.placement.budget;
    this.platform = { ...defaultPlatform(), ...opts.platform };
    this.images = new ImageCache(this.platform);
    this.pool = new WarmPool(
      { platform: this.platform, images: this.images, budget: this.budget, closed: () => this.closed },
      { spareWorkers: opts.spareWorkers ?? 1, warmVms: opts.warmPool ?? 0 },
    );
    this.metricsTimer = setInterval(() => this.tickMetrics(), METRICS_MS);
    (this.metricsTimer as { unref?: () => void }).unref?.();
  }

  /** A hypervisor with a memory budget (default: a fraction of the host's memory, see budget.ts). */
  static async create(opts: HypervisorOptions = {}): Promise<Hypervisor> {
    const hv = new Hypervisor(opts.memoryBudgetMiB ?? (await defaultBudgetMiB()), opts);
    await hv.pool.start(opts.warmPoolMemoryMiB);
    return hv;
  }

  /** Subscribes to every VM's events (state, batched console, metrics). Returns an unsubscribe function. */
  onEvent(listener: (e: HypervisorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Creates a VM: reserves its memory (RESOURCE_EXHAUSTED stating asked and
   * free if the budget cannot hold it), gives it a worker, and unless
   * `start: false` starts it and resolves once its guest agent answers. It
   * starts from the warm pool when one of its size waits there, else from
   * the boot snapshot, else (`cold`, `cmdline`, no snapshot on this
   * platform) by booting the kernel. If starting fails the VM is destroyed
   * and the error thrown.
   */
  async createVm(opts: CreateVmOptions = {}): Promise<Vm> {
    this.networks.check(opts.net ?? DEFAULT_NETWORK);
    const loaded = await this.images.image(opts.image, opts.profile);
    const memoryMiB = opts.memoryMiB ?? defaultMemoryMiB(loaded.image);
    // A profile's minimum is refused here, before any memory is reserved (its machine would refuse it in the worker).
    if (loaded.profile) checkMemoryMiB(loaded.image, memoryMiB);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const cold = opts.cold || !!opts.cmdline || !this.platform.bootSnapshot;
    const config = async (name: string): Promise<WorkerConfig> => ({ name, image: loaded.shared, wasm: await this.images.v86(), memoryMiB, cmdline: opts.cmdline });
    let vm: Vm;
    const warm = !cold && opts.image === undefined && !loaded.profile ? this.pool.takeWarm(memoryMiB) : undefined;
    if (warm) {
      try {
        vm = this.register({
          ...opts,
          memoryMiB,
          origin: "pool",
          worker: warm.worker,
          reservation: warm.reservation,
          start: async (_v, w) => {
            // Its agent is connected and its clock runs with the host's (v86's TSC follows host time across a pause).
            const t0 = performance.now();
            await w.api.resume();
            const ms = performance.now() - t0;
            return { machineMs: ms, wallMs: ms };
          },
        });
      } catch (err) {
        this.pool.giveBack(warm); // a refused VM (bad name, share) leaves the pool as it was
        throw err;
      }
    } else if (cold) {
      vm = this.register({
        ...opts,
        memoryMiB,
        origin: "boot",
        start: async (v, w) => {
          await w.api.init(await config(v.name));
          return w.api.boot({ timeoutMs });
        },
      });
    } else {
      vm = this.register({
        ...opts,
        memoryMiB,
        origin: "snapshot",
        start: async (v, w) => {
          // A missing boot snapshot is built by a cold boot first: the VM's own time limit covers it.
          const snapshot = this.pool.bootState(memoryMiB, await this.platform.bootSnapshot!(loaded.image, memoryMiB, { timeoutMs: opts.timeoutMs }), loaded);
          return w.api.restore(await config(v.name), snapshot, { timeoutMs });
        },
      });
    }
    if (opts.start === false) return vm;
    await this.startOrDestroy(vm);
    return vm;
  }

  /**
   * A new running VM from snapshot bytes (as `vm.snapshot()` returns them).
   * A delta snapshot is applied to this host's boot snapshot of its image
   * and memory size. Fails with SNAPSHOT_CORRUPT (damaged bytes) or
   * SNAPSHOT_MISMATCH (another image, memory size or format; a delta whose
   * base is not this host's boot snapshot), naming the reason, before any VM exists.
   */
  async restore(bytes: Uint8Array, opts: RestoreOptions = {}): Promise<Vm> {
    this.networks.check(opts.net ?? DEFAULT_NETWORK);
    const loaded = await this.images.image(opts.image, opts.profile ?? (await this.profileOfSnapshot(bytes, opts.image)));
    let delta = false;
    const snapshot = await decodeSnapshot(
      bytes,
      { image: { id: loaded.image.id, sha256: await imageDigest(loaded.image) }, memoryMiB: opts.memoryMiB },
      {
        codec: this.platform.codec,
        base: async (_base, header) => {
          delta = true;
          if (!this.platform.bootSnapshot || header.vm.firmware !== "direct") return undefined;
          const snapshot = await this.platform.bootSnapshot(loaded.image, header.vm.memoryMiB);
          return { snapshot, key: bootSnapshotKeyOf(snapshot) };
        },
      },
    );
    return this.startFromSnapshot(snapshot, loaded, { ...opts, origin: "restore", fromBootSnapshot: delta });
  }

  /**
   * The profile a snapshot was taken of, found by its image id among the
   * profiles of image `ref` (so a profile VM's snapshot restores without
   * naming its profile); undefined for the default guest, or when no
   * profile matches (decoding then reports the mismatch).
   */
  private async profileOfSnapshot(bytes: Uint8Array, ref: string | undefined): Promise<string | undefined> {
    let id: string;
    try {
      id = readSnapshotHeader(bytes).image.id;
    } catch {
      return undefined; // decoding reports what is wrong with it
    }
    const base = await this.images.image(ref);
    if (id === base.image.id) return undefined;
    for (const name of Object.keys(base.image.manifest.profiles ?? {})) {
      const profile = await this.images.image(ref, name).catch(() => undefined);
      if (profile?.image.id === id) return name;
    }
    return undefined;
  }

  /** The VMs, oldest first. */
  list(): Vm[] {
    return [...this.vms.values()];
  }

  /** The VM with this name, id or unique id prefix; VM_NOT_FOUND otherwise. */
  get(ref: string): Vm {
    const byName = this.vms.get(ref);
    if (byName) return byName;
    const matches = [...this.vms.values()].filter((v) => v.id === ref || (ref.length >= 3 && v.id.startsWith(ref)));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new HyperlabError("INVALID_ARGUMENT", `'${ref}' matches ${matches.length} VMs: give more of the id, or the name`);
    const names = [...this.vms.keys()];
    throw new HyperlabError("VM_NOT_FOUND", `no VM named or with id '${ref}'${names.length ? ` (there are: ${names.join(", ")})` : " (there are none)"}`, { ref });
  }

  /** Destroys the VM `ref` (any state), returning its memory to the budget. */
  async destroy(ref: string): Promise<void> {
    await this.get(ref).destroy();
  }

  /** How a VM started (origin and times in its worker), once it has. */
  startInfo(vm: Vm): StartInfo | undefined {
    return this.starts.get(vm);
  }

  /**
   * Allocation and use: the budget, every VM's figures (guest memory read
   * from running guests) and, unless `sharing: false`, the pages the
   * running and paused VMs could share (see pageSharing).
   */
  async stats(opts: { sharing?: boolean } = {}): Promise<HypervisorStats> {
    const [vms, sharing] = await Promise.all([
      Promise.all(this.list().map(async (vm) => ({ ...vm.info(), metrics: vm.state === "destroyed" ? undefined : await vm.metrics().catch(() => undefined) }))),
      // Only a report: the memory engine failing to load leaves the figures out, not the stats.
      opts.sharing === false ? undefined : this.pageSharing().catch(() => undefined),
    ]);
    const b = this.budget;
    return { budget: { totalMiB: b.totalMiB, usedMiB: b.usedMiB, freeMiB: b.freeMiB, warmPoolMiB: this.pool.reservedMiB }, vms, sharing };
  }

  /**
   * How many pages of the running and paused VMs are identical (what KSM
   * would merge): each VM's worker hashes its own RAM with the memory engine
   * (all at once, each in its thread), and the engine counts the hashes
   * here. A VM that does not answer within 10 s (or stops meanwhile) is
   * left out; `names` says which were counted. Undefined when no VM is
   * running or paused. Legal until close().
   */
  async pageSharing(): Promise<PageSharing | undefined> {
    const t0 = performance.now();
    const live = this.list().filter((vm) => vm.state === "running" || vm.state === "paused");
    const hashed = await Promise.all(
      live.map((vm) =>
        within(vm.pageHashes(), PAGE_HASH_TIMEOUT_MS, `VM ${vm.name} to hash its guest pages`).then(
          (hashes) => ({ name: vm.name, hashes }),
          () => undefined,
        ),
      ),
    );
    const counted = hashed.filter((h) => h !== undefined);
    if (counted.length === 0) return undefined;
    const engine = await loadMemoryEngine();
    const stats = engine.sharingStats(counted.map((h) => h.hashes));
    return { ...stats, names: counted.map((h) => h.name), pageSize: PAGE_SIZE, ms: performance.now() - t0 };
  }

  /**
   * Resolves once pending refills are done: the spare workers spawned (with
   * their machines built ahead, when they can be) and the warm pool holding
   * its VMs, restored and paused. Legal any time; after close() it resolves at once.
   */
  ready(): Promise<void> {
    return this.pool.ready();
  }

  /** Destroys every VM and stops the hypervisor's timers, warm pool and spare workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.placement.close();
    clearInterval(this.metricsTimer);
    await Promise.all(this.list().map((vm) => vm.destroy()));
    await this.pool.close();
  }

  /** Starts `vm`; on failure destroys it and throws the reason. */
  private async startOrDestroy(vm: Vm): Promise<void> {
    try {
      await vm.start();
    } catch (err) {
      await vm.destroy();
      throw err;
    }
  }

  private async startFromSnapshot(snapshot: Snapshot, loaded: LoadedImage, opts: RestoreOptions & { origin: VmOrigin; fromBootSnapshot?: boolean }): Promise<Vm> {
    const shared = shareSnapshot(snapshot);
    const { memoryMiB, cmdline } = snapshot.header.vm;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const vm = this.register({
      name: opts.name,
      image: opts.image,
      profile: loaded.profile || undefined,
      memoryMiB,
      cpuShare: opts.cpuShare,
      origin: opts.origin,
      records: snapshot.header.records,
      net: opts.net,
      start: async (v, w) => w.api.restore({ name: v.name, image: loaded.shared, wasm: await this.images.v86(), memoryMiB, cmdline }, shared, { timeoutMs }),
    });
    if (opts.fromBootSnapshot) this.fromBootSnapshot.add(vm);
    await this.startOrDestroy(vm);
    return vm;
  }

  /** `n` copies of `vm` (see Vm.fork): one snapshot, restored n times. */
  private async fork(vm: Vm, worker: VmWorker, n: number): Promise<Vm[]> {
    this.placement.checkFork(vm, n);
    const records = vm.collectRecords();
    const snapshot = await worker.api.snapshot();
    snapshot.header.records = records;
    const loaded = await this.images.image(vm.image === "default" ? undefined : vm.image, vm.profile);
    const names = Array.from({ length: n }, () => this.freeName(`${vm.name}-fork-`));
    const forks = await Promise.allSettled(
      names.map((name) =>
        this.startFromSnapshot(snapshot, loaded, {
          name,
          image: loaded.ref || undefined,
          cpuShare: vm.cpuShare,
          origin: "fork",
          fromBootSnapshot: this.descendsFromBootSnapshot(vm),
          // A fork joins its parent's network with a MAC and address of its own.
          net: vm.network?.name ?? "none",
        }),
      ),
    );
    const failed = forks.find((f): f is PromiseRejectedResult => f.status === "rejected");
    if (failed) {
      await Promise.all(forks.map((f) => (f.status === "fulfilled" ? f.value.destroy() : undefined)));
      throw failed.reason;
    }
    return forks.map((f) => (f as PromiseFulfilledResult<Vm>).value);
  }

  /** `vm`'s snapshot as bytes: a delta against the boot snapshot when it descends from it (unless `full`), else whole. */
  private async snapshot(vm: Vm, worker: VmWorker, opts: VmSnapshotOptions): Promise<Uint8Array> {
    const base = opts.full ? undefined : await this.deltaBase(vm);
    const records = vm.collectRecords();
    const snap = base ? await worker.api.deltaSnapshot(base) : await worker.api.snapshot();
    snap.header.records = records;
    return encodeSnapshot(snap, { compression: opts.compression, codec: this.platform.codec });
  }

  /** True when `vm`'s RAM started as the boot snapshot's: started from it or the warm pool, or forked or restored from such a VM. */
  private descendsFromBootSnapshot(vm: Vm): boolean {
    return vm.origin === "snapshot" || vm.origin === "pool" || this.fromBootSnapshot.has(vm);
  }

  /** The boot snapshot `vm` descends from, as its worker needs it for a delta snapshot; undefined when there is none. */
  private async deltaBase(vm: Vm): Promise<DeltaBase | undefined> {
    if (!this.platform.bootSnapshot || !this.descendsFromBootSnapshot(vm)) return undefined;
    const loaded = await this.images.image(vm.image === "default" ? undefined : vm.image, vm.profile);
    const snapshot = await this.platform.bootSnapshot(loaded.image, vm.memoryMiB);
    // The sha256 is computed once per boot snapshot; the state itself is shared with the worker, not copied.
    return { snapshot: shareSnapshot(snapshot), key: bootSnapshotKeyOf(snapshot) ?? "", sha256: await stateDigest(snapshot, this.platform.codec) };
  }

  /** Registers a new VM handle (reserving its memory unless given a reservation) that starts with `r.start`. */
  private register(r: Registration): Vm {
    if (this.closed) throw new HyperlabError("VM_INVALID_STATE", "cannot create a VM: the hypervisor is closed");
    const name = r.name ?? this.freeName("vm-");
    if (!NAME.test(name)) {
      throw new HyperlabError("INVALID_ARGUMENT", `invalid VM name '${name}': use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit`);
    }
    if (this.vms.has(name)) throw new HyperlabError("INVALID_ARGUMENT", `a VM named ${name} already exists; choose another name or destroy it first`);
    const memoryMiB = r.memoryMiB;
    const cpuShare = r.cpuShare ?? 1;
    const reservation = this.placement.admit(name, memoryMiB, cpuShare, r.reservation);

    // A VM restored from a snapshot takes a spare prepared for its size, if one is; a boot builds its own machine.
    if (r.origin !== "boot") this.pool.prepareFor(memoryMiB);
    const ready = r.worker ?? this.pool.takeWorker(r.origin === "boot" ? undefined : memoryMiB);
    ready.catch(() => {}); // a failed spawn surfaces in vm.start()
    let started: Promise<void> | undefined;
    const host: VmHost = {
      ready,
      start: (v, worker) =>
        (started ??= r.start(v, worker)
          .then(async (report) => {
            const member = await this.networks.attach(v.name, worker, r.net ?? DEFAULT_NETWORK);
            if (member) v.network = { name: r.net ?? DEFAULT_NETWORK, mac: member.mac, address: member.address };
            this.starts.set(v, { origin: r.origin, ...report });
          })
          // Refills wait until this start is done and its first commands have had the CPU.
          .finally(() => this.pool.scheduleRefill())),
      snapshot: (v, worker, opts) => this.snapshot(v, worker, opts),
      fork: (v, worker, n) => this.fork(v, worker, n),
      shareChanged: (v) => this.placement.shareChanged(v),
      destroyed: (v) => {
        void this.networks.detach(v.name);
        this.vms.delete(v.name);
        this.placement.remove(v);
      },
    };
    const vm = new Vm({ id: randomId(), name, memoryMiB, cpuShare, image: r.image ?? "default", profile: r.profile, origin: r.origin, reservation, records: r.records }, host);
    this.vms.set(name, vm);
    this.placement.add(vm);
    vm.onEvent((e) => {
      for (const l of this.listeners) l(e);
      if (e.type === "state" && e.state === "stopped") {
        this.placement.remove(vm);
        void this.networks.detach(vm.name);
      }
    });
    return vm;
  }

  private freeName(prefix: string): string {
    let name: string;
    do name = `${prefix}${++this.counter}`;
    while (this.vms.has(name));
    return name;
  }

  private tickMetrics(): void {
    for (const vm of this.vms.values()) vm.tickMetrics();
  }
}

function randomId(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `p`, or a TIMEOUT error naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HyperlabError("TIMEOUT", `timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
