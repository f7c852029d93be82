// The hypervisor: runs several isolated VMs on one host, each in its own
// worker, each with memory reserved from the host's budget and a CPU share
// the scheduler enforces by emulated instructions. New VMs start from the
// boot snapshot (instant start), or from a warm pool of VMs restored ahead
// and kept paused. The same API in Node and in a browser; what differs
// (loading images, spawning workers, the boot snapshot) is a Platform.
import { HyperlabError } from "../errors.ts";
import type { GuestImage } from "../hardware/guest-image.ts";
import { defaultMemoryMiB } from "../hardware/machine.ts";
import { MemoryBudget, type Reservation, defaultBudgetMiB } from "./budget.ts";
import { type VmWorker, spawnVmWorker } from "./rpc.ts";
import { CpuScheduler, MAX_SHARE, MIN_SHARE, type SchedulerOptions, validShare } from "./scheduler.ts";
import { BOOT_SNAPSHOT_CMDLINE, bootSnapshotKeyOf } from "./boot-snapshot.ts";
import type { DeltaBase } from "./delta-snapshot.ts";
import { PAGE_SIZE, type SharingStats, loadMemoryEngine } from "./memory-engine.ts";
import { type Snapshot, type SnapshotCodec, decodeSnapshot, encodeSnapshot, imageDigest, stateDigest, webCodec } from "./snapshot.ts";
import { METRICS_MS, Vm, type VmEvent, type VmHost, type VmInfo, type VmMetrics, type VmOrigin, type VmSnapshotOptions } from "./vm.ts";
import type { StartReport, WorkerConfig } from "./vm-worker.ts";

/** What differs between hosts: where images, v86 and boot snapshots come from, how workers start. */
export interface Platform {
  /** the guest image named `ref` (Node: a folder of artifacts; default: the checkout's guest-images/dist) */
  loadImage(ref?: string): Promise<GuestImage>;
  /** v86's compiled WebAssembly (compiled once, shared with every worker) */
  wasm(): Promise<WebAssembly.Module>;
  /** a new VM worker, connected */
  spawnWorker(): Promise<VmWorker>;
  /** the boot snapshot of `image` with `memoryMiB` of RAM (undefined: no instant start, VMs boot cold) */
  bootSnapshot?: (image: GuestImage, memoryMiB: number) => Promise<Snapshot>;
  /** compression and checksums for snapshots (default: web streams and WebCrypto) */
  codec?: SnapshotCodec;
}

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
  /** guest RAM in MiB, reserved from the budget (default: the image's default, 128) */
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
}

/** Options of a VM restored from a snapshot (its memory comes from the snapshot). */
export interface RestoreOptions {
  name?: string;
  /** the image the snapshot was taken of (default: the default guest); another one fails with SNAPSHOT_MISMATCH */
  image?: string;
  /** if given, must equal the snapshot's memory (SNAPSHOT_MISMATCH otherwise) */
  memoryMiB?: number;
  cpuShare?: number;
  timeoutMs?: number;
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
/**
 * Quiet time after a VM start before spares and the warm pool are refilled:
 * spawning a worker and building its emulator take 100–300 ms of CPU, which
 * on a small host would slow the new VM's first commands.
 */
const REFILL_DELAY_MS = 150;
/** How long a VM's worker may take to hash its RAM for stats() before it is left out. */
const PAGE_HASH_TIMEOUT_MS = 10_000;

const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === "string";

/** The default platform: Node reads the checkout's artifacts and caches boot snapshots; browsers must pass loadImage and wasm. */
function defaultPlatform(): Platform {
  const missing = (what: string) => () =>
    Promise.reject(new HyperlabError("INVALID_ARGUMENT", `in a browser the hypervisor needs platform.${what} (there is no default)`));
  if (!isNode) return { loadImage: missing("loadImage"), wasm: missing("wasm"), spawnWorker: spawnVmWorker, codec: webCodec };
  const node = import("../hardware/node.ts");
  const snapshots = import("./boot-snapshot-node.ts");
  let codec: SnapshotCodec | undefined;
  void snapshots.then((s) => (codec = s.nodeCodec));
  return {
    loadImage: async (ref) => (await node).loadNodeImage(ref),
    wasm: async () => (await node).v86Wasm(),
    spawnWorker: spawnVmWorker,
    bootSnapshot: async (image, memoryMiB) => (await snapshots).nodeBootSnapshot(image, { memoryMiB }),
    get codec() {
      return codec ?? webCodec;
    },
  };
}

const canShare = typeof SharedArrayBuffer === "function" && (!("crossOriginIsolated" in globalThis) || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false);

/**
 * Copies bytes into a SharedArrayBuffer (where the host has them), so that
 * every worker they are posted to shares them instead of receiving a copy.
 */
function share(bytes: Uint8Array): Uint8Array {
  if (!canShare) return bytes;
  const view = new Uint8Array(new SharedArrayBuffer(bytes.length));
  view.set(bytes);
  return view as unknown as Uint8Array;
}

/** The image with its bytes in one SharedArrayBuffer (the machine copies them into guest RAM itself). */
function shareImage(image: GuestImage): GuestImage {
  if (!canShare) return image;
  const parts = [image.loader, image.kernel, image.vmlinux, ...image.layers, image.bios, image.vgaBios];
  const shared = new SharedArrayBuffer(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  const put = (p: Uint8Array) => {
    const view = new Uint8Array(shared, at, p.length);
    view.set(p);
    at += p.length;
    return view as unknown as Uint8Array;
  };
  return {
    id: image.id,
    release: image.release,
    manifest: image.manifest,
    loader: put(image.loader),
    kernel: put(image.kernel),
    vmlinux: put(image.vmlinux),
    layers: image.layers.map(put),
    bios: put(image.bios),
    vgaBios: put(image.vgaBios),
  };
}

const sharedSnapshots = new WeakMap<Snapshot, Snapshot>();

/** A snapshot whose state workers share (copied once per snapshot). */
function shareSnapshot(snapshot: Snapshot): Snapshot {
  let shared = sharedSnapshots.get(snapshot);
  if (!shared) {
    shared = { header: snapshot.header, state: share(snapshot.state) };
    sharedSnapshots.set(snapshot, shared);
  }
  return shared;
}

/** A loaded image: as loaded (for digests and boot snapshots) and shared (for workers). */
interface LoadedImage {
  ref: string;
  image: GuestImage;
  shared: GuestImage;
}

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

/** A VM restored from the boot snapshot and paused, waiting to be handed over. */
interface WarmVm {
  /** resolves once the VM is warm (restored, warmed up, paused) */
  worker: Promise<VmWorker>;
  /** the worker itself, as soon as it is spawned */
  spawned: Promise<VmWorker>;
  reservation: Reservation;
  memoryMiB: number;
  /** restored, warmed up and paused: ready to hand over */
  ready: boolean;
}

/** What register() needs to know about a new VM. */
interface Registration {
  name?: string;
  image?: string;
  memoryMiB: number;
  cpuShare?: number;
  origin: VmOrigin;
  /** the worker the VM will run in (default: a spare or a new one) */
  worker?: Promise<VmWorker>;
  /** what the VM's memory is reserved under, when it is not reserved here */
  reservation?: Reservation;
  /** starts the machine in `worker` */
  start: (vm: Vm, worker: VmWorker) => Promise<StartReport>;
}

/**
 * Runs VMs. Build with `Hypervisor.create()`; end with `close()`, which
 * destroys every VM. Every method is legal until close().
 */
export class Hypervisor {
  /** the host memory VMs reserve from */
  readonly budget: MemoryBudget;
  private readonly platform: Platform;
  private readonly vms = new Map<string, Vm>();
  private readonly listeners = new Set<(e: HypervisorEvent) => void>();
  private readonly scheduler: CpuScheduler;
  private readonly images = new Map<string, Promise<LoadedImage>>();
  private readonly spares: Spare[] = [];
  private readonly spareTarget: number;
  /** the memory size spares are prepared for: that of the VM last started from a snapshot */
  private spareMemoryMiB: number | undefined;
  /** boot snapshots this hypervisor has restored, by memory size (their pages are faulted in ahead in spares) */
  private readonly bootStates = new Map<number, Snapshot>();
  /** what image() and v86() resolved to, once they have (spares are prepared with them, never load them) */
  private defaultImage: LoadedImage | undefined;
  private wasmModule: WebAssembly.Module | undefined;
  private refillTimer: ReturnType<typeof setTimeout> | undefined;
  private refillDue: Promise<void> | undefined;
  private refillDone: (() => void) | undefined;
  private readonly warm: WarmVm[] = [];
  private readonly warmTarget: number;
  private warmMemoryMiB = 0;
  private readonly starts = new WeakMap<Vm, StartInfo>();
  /** VMs forked or restored whose RAM descends from the boot snapshot (those started from it are known by origin) */
  private readonly fromBootSnapshot = new WeakSet<Vm>();
  private readonly timers: Array<ReturnType<typeof setInterval>>;
  private wasm: Promise<WebAssembly.Module> | undefined;
  private refilling: Promise<void> | undefined;
  private counter = 0;
  private closed = false;

  private constructor(budgetMiB: number, opts: HypervisorOptions) {
    this.budget = new MemoryBudget(budgetMiB);
    this.platform = { ...defaultPlatform(), ...opts.platform };
    this.scheduler = new CpuScheduler(opts.scheduler);
    this.spareTarget = opts.spareWorkers ?? 1;
    this.warmTarget = opts.warmPool ?? 0;
    const period = opts.scheduler?.periodMs ?? 20;
    this.timers = [setInterval(() => this.schedule(), period), setInterval(() => this.tickMetrics(), METRICS_MS)];
    for (const t of this.timers) (t as { unref?: () => void }).unref?.();
  }

  /** A hypervisor with a memory budget (default: a fraction of the host's memory, see budget.ts). */
  static async create(opts: HypervisorOptions = {}): Promise<Hypervisor> {
    const hv = new Hypervisor(opts.memoryBudgetMiB ?? (await defaultBudgetMiB()), opts);
    hv.topUpSpares();
    if (hv.warmTarget > 0) {
      hv.warmMemoryMiB = opts.warmPoolMemoryMiB ?? defaultMemoryMiB((await hv.image()).image);
      hv.topUpWarmPool();
    }
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
    const loaded = await this.image(opts.image);
    const memoryMiB = opts.memoryMiB ?? defaultMemoryMiB(loaded.image);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const cold = opts.cold || !!opts.cmdline || !this.platform.bootSnapshot;
    const config = async (name: string): Promise<WorkerConfig> => ({ name, image: loaded.shared, wasm: await this.v86(), memoryMiB, cmdline: opts.cmdline });
    let vm: Vm;
    const warm = !cold && opts.image === undefined ? this.takeWarm(memoryMiB) : undefined;
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
        this.warm.unshift(warm); // a refused VM (bad name, share) leaves the pool as it was
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
          const snapshot = this.bootState(memoryMiB, await this.platform.bootSnapshot!(loaded.image, memoryMiB), loaded);
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
    const loaded = await this.image(opts.image);
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
    return { budget: { totalMiB: b.totalMiB, usedMiB: b.usedMiB, freeMiB: b.freeMiB, warmPoolMiB: this.warm.reduce((n, w) => n + w.memoryMiB, 0) }, vms, sharing };
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
      if (this.closed || pending.length === 0) return;
      for (const p of pending) awaited.add(p);
      await Promise.all(pending.map((p) => p.then(() => {}, () => {})));
    }
  }

  /** Destroys every VM and stops the hypervisor's timers, warm pool and spare workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all(this.list().map((vm) => vm.destroy()));
    clearTimeout(this.refillTimer);
    this.refillDone?.();
    await this.refilling;
    // Warm VMs still warming up are ended too: their worker, not their warm-up, is awaited.
    const workers = [...this.spares.splice(0).map((s) => s.worker), ...this.warm.splice(0).map((w) => (w.reservation.release(), w.spawned))];
    await Promise.all(workers.map((s) => s.then((w) => w.terminate(), () => {})));
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
      memoryMiB,
      cpuShare: opts.cpuShare,
      origin: opts.origin,
      start: async (v, w) => w.api.restore({ name: v.name, image: loaded.shared, wasm: await this.v86(), memoryMiB, cmdline }, shared, { timeoutMs }),
    });
    if (opts.fromBootSnapshot) this.fromBootSnapshot.add(vm);
    await this.startOrDestroy(vm);
    return vm;
  }

  /** `n` copies of `vm` (see Vm.fork): one snapshot, restored n times. */
  private async fork(vm: Vm, worker: VmWorker, n: number): Promise<Vm[]> {
    const asked = n * vm.memoryMiB;
    if (asked > this.budget.freeMiB) {
      throw new HyperlabError(
        "RESOURCE_EXHAUSTED",
        `cannot fork VM ${vm.name} into ${n}: that asks for ${n} × ${vm.memoryMiB} = ${asked} MiB of memory but only ${this.budget.freeMiB} MiB of the host budget (${this.budget.totalMiB} MiB) is free`,
        { askedMiB: asked, freeMiB: this.budget.freeMiB, totalMiB: this.budget.totalMiB },
      );
    }
    const snapshot = await worker.api.snapshot();
    const loaded = await this.image(vm.image === "default" ? undefined : vm.image);
    const names = Array.from({ length: n }, () => this.freeName(`${vm.name}-fork-`));
    const forks = await Promise.allSettled(
      names.map((name) => this.startFromSnapshot(snapshot, loaded, { name, image: loaded.ref || undefined, cpuShare: vm.cpuShare, origin: "fork", fromBootSnapshot: this.descendsFromBootSnapshot(vm) })),
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
    const snap = base ? await worker.api.deltaSnapshot(base) : await worker.api.snapshot();
    return encodeSnapshot(snap, { compression: opts.compression, codec: this.platform.codec });
  }

  /** True when `vm`'s RAM started as the boot snapshot's: started from it or the warm pool, or forked or restored from such a VM. */
  private descendsFromBootSnapshot(vm: Vm): boolean {
    return vm.origin === "snapshot" || vm.origin === "pool" || this.fromBootSnapshot.has(vm);
  }

  /** The boot snapshot `vm` descends from, as its worker needs it for a delta snapshot; undefined when there is none. */
  private async deltaBase(vm: Vm): Promise<DeltaBase | undefined> {
    if (!this.platform.bootSnapshot || !this.descendsFromBootSnapshot(vm)) return undefined;
    const loaded = await this.image(vm.image === "default" ? undefined : vm.image);
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
    if (!Number.isInteger(memoryMiB) || memoryMiB <= 0) {
      throw new HyperlabError("INVALID_ARGUMENT", `memory must be a whole, positive number of MiB, not ${memoryMiB}`);
    }
    const cpuShare = r.cpuShare ?? 1;
    if (!validShare(cpuShare)) throw new HyperlabError("INVALID_ARGUMENT", `a CPU share must be a number from ${MIN_SHARE} to ${MAX_SHARE}, not ${cpuShare}`);
    // A warm VM's memory changes hands: released, and taken again under the VM's name.
    r.reservation?.release();
    const reservation = this.budget.reserve(name, memoryMiB);

    // A VM restored from a snapshot takes a spare prepared for its size, if one is; a boot builds its own machine.
    if (r.origin !== "boot") this.spareMemoryMiB = memoryMiB;
    const ready = r.worker ?? this.takeWorker(r.origin === "boot" ? undefined : memoryMiB);
    ready.catch(() => {}); // a failed spawn surfaces in vm.start()
    let started: Promise<void> | undefined;
    const host: VmHost = {
      ready,
      start: (v, worker) =>
        (started ??= r.start(v, worker)
          .then((report) => void this.starts.set(v, { origin: r.origin, ...report }))
          // Refills wait until this start is done and its first commands have had the CPU.
          .finally(() => this.scheduleRefill())),
      snapshot: (v, worker, opts) => this.snapshot(v, worker, opts),
      fork: (v, worker, n) => this.fork(v, worker, n),
      shareChanged: (v) => this.scheduler.setShare(v.id, v.cpuShare),
      destroyed: (v) => {
        this.vms.delete(v.name);
        this.scheduler.remove(v.id);
      },
    };
    const vm = new Vm({ id: randomId(), name, memoryMiB, cpuShare, image: r.image ?? "default", origin: r.origin, reservation }, host);
    this.vms.set(name, vm);
    this.scheduler.add(vm.id, cpuShare);
    vm.onEvent((e) => {
      for (const l of this.listeners) l(e);
      if (e.type === "state" && e.state === "stopped") this.scheduler.remove(vm.id);
    });
    return vm;
  }

  private freeName(prefix: string): string {
    let name: string;
    do name = `${prefix}${++this.counter}`;
    while (this.vms.has(name));
    return name;
  }

  /**
   * A spare worker (one prepared for `memoryMiB` if there is one), else a new
   * one. The spares are topped up once the VM has started.
   */
  private takeWorker(memoryMiB?: number): Promise<VmWorker> {
    // A spare whose worker has died since it was spawned is dropped, not handed out.
    for (let i = this.spares.length - 1; i >= 0; i--) if (this.spares[i]!.dead) this.spares.splice(i, 1);
    const at = memoryMiB === undefined ? -1 : this.spares.findIndex((s) => s.memoryMiB === memoryMiB);
    const spare = this.spares.splice(Math.max(0, at), 1)[0];
    return spare?.worker ?? this.platform.spawnWorker();
  }

  /**
   * Refills the warm pool and the spares once no VM has started for
   * REFILL_DELAY_MS (each start postpones it). ready() waits for it.
   */
  private scheduleRefill(): void {
    if (this.closed) return;
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

  /** True once spares can be prepared: the default image and v86 are loaded, and VMs start from snapshots here. */
  private canPrepare(): boolean {
    return !!this.platform.bootSnapshot && !!this.defaultImage && !!this.wasmModule && !this.closed;
  }

  /**
   * Builds a machine ahead in every spare not yet asked to: for the memory
   * size of the VM last started from a snapshot (default: the warm pool's,
   * else the image's default), with the RAM pages of that size's boot
   * snapshot faulted in when this hypervisor has restored it. Loads nothing:
   * until the image and v86 are loaded for a VM, spares stay unprepared.
   */
  private prepareSpares(): void {
    if (!this.canPrepare()) return;
    const loaded = this.defaultImage!;
    const wasm = this.wasmModule!;
    const memoryMiB = this.spareMemoryMiB ?? (this.warmMemoryMiB || defaultMemoryMiB(loaded.image));
    const boot = this.bootStates.get(memoryMiB);
    // Without shared memory the state would be copied to each spare: the pages are then left to the restore.
    const pagesOf = boot && typeof SharedArrayBuffer === "function" && boot.state.buffer instanceof SharedArrayBuffer ? boot.state : undefined;
    const cmdline = boot?.header.vm.cmdline ?? BOOT_SNAPSHOT_CMDLINE;
    for (const spare of this.spares) {
      if (spare.prepared) continue;
      spare.memoryMiB = memoryMiB;
      // A spare that fails to prepare is still a worker: its restore builds the machine itself.
      spare.prepared = spare.worker.then((w) => w.api.prepare({ image: loaded.shared, wasm, memoryMiB, cmdline, pagesOf })).catch(() => {});
    }
  }

  /** Notes the boot snapshot a VM of `memoryMiB` restores (spares fault its pages in ahead); returns it shared with workers. */
  private bootState(memoryMiB: number, snapshot: Snapshot, loaded: LoadedImage): Snapshot {
    const shared = shareSnapshot(snapshot);
    if (loaded.ref === "") this.bootStates.set(memoryMiB, shared);
    return shared;
  }

  /**
   * Spawns spare workers one at a time until there are enough, so that the
   * refill never competes much with VMs that are starting.
   */
  private topUpSpares(): void {
    if (this.refilling || this.closed || this.spares.length >= this.spareTarget) return;
    this.refilling = (async () => {
      while (!this.closed && this.spares.length < this.spareTarget) {
        const spare = this.platform.spawnWorker();
        const ok = await spare.then(
          () => true,
          () => false,
        );
        if (!ok) break; // reported when a VM needs a worker
        if (this.closed) void spare.then((w) => w.terminate());
        else {
          const entry: Spare = { worker: spare };
          spare.then((w) => w.died.then(() => (entry.dead = true)), () => (entry.dead = true));
          this.spares.push(entry);
        }
        this.prepareSpares();
      }
    })().finally(() => (this.refilling = undefined));
  }

  /** A warm VM of `memoryMiB`, if one is ready (one still being restored is left to the pool). */
  private takeWarm(memoryMiB: number): WarmVm | undefined {
    const at = this.warm.findIndex((w) => w.ready && w.memoryMiB === memoryMiB);
    return at < 0 ? undefined : this.warm.splice(at, 1)[0];
  }

  /** Restores VMs into the warm pool, paused, until it holds its target (as the budget allows). */
  private topUpWarmPool(): void {
    if (!this.platform.bootSnapshot || this.warmMemoryMiB === 0) return;
    while (!this.closed && this.warm.length < this.warmTarget) {
      const memoryMiB = this.warmMemoryMiB;
      let reservation: Reservation;
      try {
        reservation = this.budget.reserve("(warm pool)", memoryMiB);
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
    const [w, loaded] = await Promise.all([worker, this.image()]);
    const snapshot = this.bootState(memoryMiB, await this.platform.bootSnapshot!(loaded.image, memoryMiB), loaded);
    await w.api.restore({ name: "warm", image: loaded.shared, wasm: await this.v86(), memoryMiB }, snapshot, {});
    // One command warms v86's JIT (the first after a restore is several times slower), then it waits paused.
    await w.api.exec(["true"]);
    await w.api.pause();
    onReady();
    // The image and v86 are loaded now: spares spawned before can be prepared.
    this.prepareSpares();
    return w;
  }

  /** The image `ref`, loaded once and shared by every worker. */
  private image(ref?: string): Promise<LoadedImage> {
    const key = ref ?? "";
    let loaded = this.images.get(key);
    if (!loaded) {
      loaded = this.platform.loadImage(ref).then((image) => {
        const l = { ref: key, image, shared: shareImage(image) };
        if (key === "") this.defaultImage = l;
        return l;
      });
      this.images.set(key, loaded);
      loaded.catch(() => this.images.delete(key));
    }
    return loaded;
  }

  private v86(): Promise<WebAssembly.Module> {
    return (this.wasm ??= this.platform.wasm().then((m) => (this.wasmModule = m)));
  }

  /** One scheduler period: samples in, holds out. */
  private schedule(): void {
    // Booting VMs are left alone: a boot is short, and the guest needs it done.
    const live = this.list().filter((vm) => vm.sample && (vm.state === "running" || vm.state === "paused"));
    if (live.length === 0) return;
    const held = this.scheduler.step(live.map((vm) => ({ id: vm.id, ...vm.sample!, runnable: vm.state === "running" })));
    for (const vm of live) vm.setHeld(vm.state === "running" && held.has(vm.id));
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
