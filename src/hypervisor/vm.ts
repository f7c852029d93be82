// The host's handle on one VM: its state, its worker, its share of the host.
// Every method checks the VM's state first (vm-state.ts) and names the state
// when the call is illegal; the work happens in the VM's worker.
import { HyperlabError } from "../errors.ts";
import { proxy, transfer } from "comlink";
import type { AgentClient, ExecOptions, ExecResult, GuestListener, GuestProcess, GuestStream, ListenOptions, StreamTarget } from "../guest/agent.ts";
import type { StreamEnd } from "../guest/agent-stream.ts";
import { DEFAULT_PROFILE } from "../hardware/guest-image.ts";
import type { Reservation } from "./budget.ts";
import type { VmWorker } from "./rpc.ts";
import { MAX_SHARE, MIN_SHARE, validShare } from "./scheduler.ts";
import { portListener, portStream } from "./stream-port.ts";
import type { Compression } from "./snapshot.ts";
import { type VmState, assertState, assertTransition } from "./vm-state.ts";
import type { AgentRequest, DeviceCounters, FileShare, GuestMemory, ProcessEvent, ProcessInput, VmExecOptions, WorkerEvent, WorkerSample } from "./worker-protocol.ts";

/** How a VM came to be. */
export type VmOrigin = "boot" | "snapshot" | "restore" | "fork" | "pool";

/** A VM as lists and the API show it. */
export interface VmInfo {
  id: string;
  name: string;
  state: VmState;
  memoryMiB: number;
  cpuShare: number;
  image: string;
  /** the guest profile it runs ("default", "lxc", …: docs/profiles.md) */
  profile: string;
  origin: VmOrigin;
  createdAt: string;
  /** why it stopped, once it has */
  stopReason?: { code: string; message: string };
  /** its place on a hypervisor network (absent with `--net none`, and until it runs) */
  network?: { name: string; mac: string; address: string };
}

/** How long a call whose agent went away waits to hear that the guest stopped, to fail with why (a panic's line, a power-off). */
const STOP_GRACE_MS = 1000;

/** Per-VM figures: CPU by emulated instructions, memory allocated vs used by the guest, device bytes. */
export interface VmMetrics {
  name: string;
  state: VmState;
  cpu: {
    share: number;
    instructions: number;
    /** over the last second the VM could run */
    instructionsPerSecond: number;
    /** the scheduler holds the VM right now (it ran ahead of its share) */
    held: boolean;
  };
  memory: {
    allocatedMiB: number;
    /** from the guest's /proc/meminfo, when it could be read */
    guest?: GuestMemory;
  };
  devices: DeviceCounters;
}

/** How `vm.snapshot()` writes the snapshot. */
export interface VmSnapshotOptions {
  /**
   * Store the whole state even when the VM descends from the boot snapshot
   * (by default such a VM's snapshot stores only what differs from it, and
   * can only be restored where that boot snapshot is).
   */
  full?: boolean;
  /** how the payload is stored (default deflate-raw) */
  compression?: Compression;
}

/** What a VM tells those who listen. */
export type VmEvent =
  | { type: "state"; vm: string; state: VmState; previous: VmState; reason?: { code: string; message: string } }
  | { type: "console"; vm: string; data: string }
  | { type: "metrics"; vm: string; metrics: VmMetrics };

/** What a VM needs from the hypervisor that owns it. */
export interface VmHost {
  /** a worker with this VM's machine built (state created), spawned on demand */
  readonly ready: Promise<VmWorker>;
  /** starts the machine: a cold boot, or a restore of the boot snapshot */
  start(vm: Vm, worker: VmWorker): Promise<void>;
  /** takes a snapshot of the VM (through its worker) */
  snapshot(vm: Vm, worker: VmWorker, opts: VmSnapshotOptions): Promise<Uint8Array>;
  /** makes `n` running copies of the VM */
  fork(vm: Vm, worker: VmWorker, n: number): Promise<Vm[]>;
  /** the CPU share changed */
  shareChanged(vm: Vm): void;
  /** the VM is gone: forget it and return its memory */
  destroyed(vm: Vm): void;
}

/** Options a VM handle is built with (by the hypervisor). */
export interface VmConfig {
  id: string;
  name: string;
  memoryMiB: number;
  cpuShare: number;
  image: string;
  /** its guest profile (default "default") */
  profile?: string;
  origin: VmOrigin;
  reservation: Reservation;
  /** records kept in the snapshot this VM was restored or forked from (see Vm.records) */
  records?: Record<string, unknown>;
}

/** Wall ms between two metrics events of a running VM. */
export const METRICS_MS = 1000;
/** Metrics events between two readings of the guest's own memory use. */
const GUEST_MEMORY_TICKS = 5;

/**
 * One VM. Created by `Hypervisor.createVm` (or restore, fork); destroyed by
 * `destroy()`. States: `created → booting → running ⇄ paused → stopped`, and
 * `destroyed` from any.
 */
export class Vm {
  readonly id: string;
  readonly name: string;
  readonly memoryMiB: number;
  readonly image: string;
  /** the guest profile it runs ("default" for the default guest) */
  readonly profile: string;
  readonly origin: VmOrigin;
  readonly createdAt = new Date();
  private _state: VmState = "created";
  private _cpuShare: number;
  private _stopReason: HyperlabError | undefined;
  private readonly reservation: Reservation;
  private worker: VmWorker | undefined;
  /** its place on a hypervisor network, set by the hypervisor once it is plugged in (networks.ts) */
  network: VmInfo["network"];
  private readonly listeners = new Set<(e: VmEvent) => void>();
  private latest: WorkerSample | undefined;
  private previous: WorkerSample | undefined;
  private ips = 0;
  private guestMemory: GuestMemory | undefined;
  private _held = false;
  private ticks = 0;
  private holdChange: Promise<void> = Promise.resolve();
  /** how to fail each process from spawn() that has not ended, should the VM stop */
  private readonly processes = new Set<(reason: HyperlabError) => void>();
  /** how to end each open stream and listener, should the VM stop (their ports die with the worker, silently) */
  private readonly links = new Set<(reason: HyperlabError) => void>();
  private readonly recordProviders = new Map<string, () => unknown>();
  /**
   * What the layers above kept about this VM in the snapshot it was restored
   * or forked from (e.g. its containers' records), by key; undefined for a VM
   * that started otherwise. Legal in any state.
   */
  readonly records: Readonly<Record<string, unknown>> | undefined;

  constructor(
    config: VmConfig,
    private readonly host: VmHost,
  ) {
    this.id = config.id;
    this.name = config.name;
    this.memoryMiB = config.memoryMiB;
    this._cpuShare = config.cpuShare;
    this.image = config.image;
    this.profile = config.profile ?? DEFAULT_PROFILE;
    this.origin = config.origin;
    this.reservation = config.reservation;
    this.records = config.records;
    host.ready.then(
      (worker) => this.adoptWorker(worker),
      () => {}, // reported by start()
    );
  }

  /** The VM's state now. Legal in any state. */
  get state(): VmState {
    return this._state;
  }

  /** Its relative CPU weight. Legal in any state. */
  get cpuShare(): number {
    return this._cpuShare;
  }

  /** Why the VM stopped (guest power-off or panic, `stop()`, or WORKER_DIED), once it has. Legal in any state. */
  get stopReason(): HyperlabError | undefined {
    return this._stopReason;
  }

  /** True while the CPU scheduler holds the VM (it ran ahead of its share). Legal in any state. */
  get held(): boolean {
    return this._held;
  }

  /** The latest counters from the worker (every few ms while it runs). Legal in any state. */
  get sample(): WorkerSample | undefined {
    return this.latest;
  }

  /** A plain description for lists and the API. Legal in any state. */
  info(): VmInfo {
    return {
      id: this.id,
      name: this.name,
      state: this._state,
      memoryMiB: this.memoryMiB,
      cpuShare: this._cpuShare,
      image: this.image,
      profile: this.profile,
      origin: this.origin,
      createdAt: this.createdAt.toISOString(),
      stopReason: this._stopReason && { code: this._stopReason.code, message: this._stopReason.message },
      network: this.network,
    };
  }

  /**
   * Makes every snapshot of this VM (and so every fork) keep `provider()`'s
   * value under `key`, read just before the guest's state is saved: how a
   * layer above (the container engine) keeps what the guest's memory does
   * not hold. Returns a function that stops it. Legal in any state.
   */
  provideRecords(key: string, provider: () => unknown): () => void {
    this.recordProviders.set(key, provider);
    return () => this.recordProviders.get(key) === provider && this.recordProviders.delete(key);
  }

  /** The records a snapshot taken now keeps: each provider's value, else what this VM was restored with. Called by the hypervisor. */
  collectRecords(): Record<string, unknown> | undefined {
    const out: Record<string, unknown> = { ...this.records };
    for (const [key, provider] of this.recordProviders) out[key] = provider();
    return Object.keys(out).length ? out : undefined;
  }

  /** Subscribes to this VM's events (state, batched console, metrics). Returns an unsubscribe function. Legal in any state. */
  onEvent(listener: (e: VmEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts the machine and waits for its guest agent. Legal in `created`; resolves in `running`. */
  async start(): Promise<void> {
    this.move("booting", "start");
    try {
      const worker = await this.host.ready;
      if (this.isGone()) throw this.goneError("start");
      await this.host.start(this, worker);
      if (this.isGone()) throw this.goneError("start");
      this.onSample(await worker.api.counterSample());
      this.move("running", "start");
    } catch (err) {
      const reason = err instanceof HyperlabError ? err : new HyperlabError("GUEST_BOOT_FAILED", String((err as Error)?.message ?? err));
      this.markStopped(reason);
      throw this._stopReason ?? reason;
    }
  }

  /** Stops the VM's CPU; memory and devices stay. Legal while running; resolves in `paused`. */
  async pause(): Promise<void> {
    this.move("paused", "pause");
    await this.call(async (w) => {
      await w.api.pause();
      // Counters as the CPU stopped, not from a sample taken before.
      this.onSample(await w.api.counterSample());
    });
  }

  /** Lets a paused VM run again. Legal while paused; resolves in `running`. */
  async resume(): Promise<void> {
    this.move("running", "resume");
    await this.call((w) => w.api.resume());
  }

  /** Powers the VM off (its worker ends; its memory stays reserved until destroy). Legal in created, booting, running or paused. */
  async stop(): Promise<void> {
    assertTransition(this._state, "stopped", { action: "stop", vm: this.name });
    this.markStopped(new HyperlabError("GUEST_STOPPED", `VM ${this.name} was stopped by the host`));
    const worker = this.worker ?? (await this.host.ready.catch(() => undefined));
    await worker?.api.stop().catch(() => {});
    await worker?.terminate();
  }

  /** Ends the VM in any state, returns its memory to the budget. Legal in any state; twice is a no-op. */
  async destroy(): Promise<void> {
    if (this._state === "destroyed") return;
    const previous = this._state;
    this._state = "destroyed";
    this.emit({ type: "state", vm: this.name, state: "destroyed", previous });
    this.reservation.release();
    this.host.destroyed(this);
    const worker = this.worker ?? (await this.host.ready.catch(() => undefined));
    await worker?.terminate();
    this.listeners.clear();
  }

  /** Runs a process in the guest and returns its exit status and output. Legal while running. */
  async exec(argv: string[], opts: VmExecOptions = {}): Promise<ExecResult> {
    assertState(this._state, ["running"], { action: "exec", vm: this.name });
    return this.call((w) => w.api.exec(argv, opts));
  }

  /** Writes a file in the guest (parents created). Legal while running. */
  async writeFile(path: string, data: string | Uint8Array, opts: { mode?: number; append?: boolean } = {}): Promise<void> {
    assertState(this._state, ["running"], { action: "write a file", vm: this.name });
    await this.call((w) => w.api.writeFile(path, data, opts));
  }

  /** Reads a whole file from the guest. Legal while running. */
  async readFile(path: string): Promise<Uint8Array> {
    assertState(this._state, ["running"], { action: "read a file", vm: this.name });
    return this.call((w) => w.api.readFile(path));
  }

  /** One of the guest agent's file-system requests (AGENT_REQUESTS: stat, mkdir, remove, mount, umount). Legal while running. */
  async agentRequest<M extends AgentRequest>(method: M, ...args: Parameters<AgentClient[M]>): Promise<Awaited<ReturnType<AgentClient[M]>>> {
    assertState(this._state, ["running"], { action: method, vm: this.name });
    // The remote API's mapped type loses the method's generic signature; the worker's own is the one checked.
    const request = (w: VmWorker) => (w.api.agentRequest as unknown as (m: M, ...a: unknown[]) => Promise<Awaited<ReturnType<AgentClient[M]>>>)(method, ...args);
    return this.call(request);
  }

  /**
   * Starts a process in the guest and streams it, as the agent's spawn does
   * (a terminal in a container, a command that runs on). Its output arrives
   * in the order the guest wrote it; if the VM stops first, `exited` rejects
   * with the reason. Legal while running.
   */
  spawn(argv: string[], opts: ExecOptions = {}): GuestProcess {
    assertState(this._state, ["running"], { action: "spawn a process", vm: this.name });
    return this.follow((w, onEvent) => w.api.spawn(argv, opts, proxy(onEvent)));
  }

  /**
   * Follows a process that was running in the guest when the snapshot this VM
   * was restored or forked from was taken, by the agent request that started
   * it (`GuestProcess.requestId`), as spawn() follows a new one. Legal while running.
   */
  adopt(requestId: number, opts: { pid: number; what: string }): GuestProcess {
    assertState(this._state, ["running"], { action: "follow a process", vm: this.name });
    return this.follow((w, onEvent) => w.api.adopt(requestId, opts, proxy(onEvent)));
  }

  /** A process handle over `start`, which has the worker stream a process's events to `onEvent`. */
  private follow(start: (w: VmWorker, onEvent: (e: ProcessEvent) => void) => Promise<{ handle: number; pid: number; requestId?: number }>): GuestProcess {
    const listeners: Array<(stream: 1 | 2, data: Uint8Array) => void> = [];
    let settle!: { resolve: (r: { exitCode: number; signal: number }) => void; reject: (err: HyperlabError) => void };
    const exited = new Promise<{ exitCode: number; signal: number }>((resolve, reject) => (settle = { resolve, reject }));
    exited.catch(() => {});
    const fail = (reason: HyperlabError) => settle.reject(reason);
    this.processes.add(fail);
    void exited.finally(() => this.processes.delete(fail)).catch(() => {});
    const onEvent = (e: ProcessEvent) => {
      if (e.type === "output") for (const l of listeners) l(e.stream, e.data);
      else if (e.type === "exited") settle.resolve({ exitCode: e.exitCode, signal: e.signal });
      else settle.reject(new HyperlabError(e.code, e.message, e.detail));
    };
    const started = this.call((w) => start(w, onEvent));
    started.catch((err: unknown) => settle.reject(err instanceof HyperlabError ? err : new HyperlabError("AGENT_ERROR", String(err))));
    const input = async (i: ProcessInput) => {
      const { handle } = await started;
      await this.call((w) => w.api.processInput(handle, i));
    };
    const handle: { requestId?: number } & GuestProcess = {
      pid: started.then((s) => {
        handle.requestId = s.requestId;
        return s.pid;
      }),
      exited,
      onOutput: (l) => void listeners.push(l),
      write: (data) => void input({ type: "write", data }).catch(() => {}),
      closeStdin: () => void input({ type: "close-stdin" }).catch(() => {}),
      kill: (signal) => input({ type: "kill", signal }),
      resize: (rows, cols) => input({ type: "resize", rows, cols }),
    };
    return handle;
  }

  /**
   * Opens a byte stream to a socket in the guest: TCP to `host:port` (an IPv4
   * address, e.g. a container's) or a Unix socket `path`, through the guest
   * agent. Bytes travel on a MessagePort of their own between the host and
   * the VM's worker. AGENT_ERROR with the errno (ECONNREFUSED, EHOSTUNREACH,
   * ENOENT…) when it cannot connect; if the VM stops, the stream closes with
   * the reason. Legal while running.
   */
  async connect(target: StreamTarget): Promise<GuestStream> {
    assertState(this._state, ["running"], { action: "open a stream", vm: this.name });
    const { port1, port2 } = new MessageChannel();
    const opened = await this.call((w) => w.api.openStream(target, transfer(port2, [port2]))).catch((err: unknown) => {
      port1.close();
      throw err;
    });
    const stream = portStream(opened, port1);
    this.endOnStop(stream.closed, (reason) => stream.receiveClose(reason));
    return stream;
  }

  /**
   * Listens on a Unix socket `path` in the guest (mode 0600 unless `mode`
   * says otherwise; parents made; a stale socket replaced): each connection
   * comes to `onConnection` as a stream. If the VM stops, the listener and
   * its streams close with the reason. Legal while running.
   */
  async listen(path: string, onConnection: (stream: GuestStream) => void, opts: Omit<ListenOptions, "grant"> = {}): Promise<GuestListener> {
    assertState(this._state, ["running"], { action: "listen on a socket", vm: this.name });
    const { port1, port2 } = new MessageChannel();
    const accepted = (stream: StreamEnd) => {
      this.endOnStop(stream.closed, (reason) => stream.receiveClose(reason));
      onConnection(stream);
    };
    const { id } = await this.call((w) => w.api.listen(path, opts, transfer(port2, [port2]))).catch((err: unknown) => {
      port1.close();
      throw err;
    });
    const listener = portListener(id, path, port1, accepted, () => this.call((w) => w.api.unlisten(id)));
    this.endOnStop(listener.closed, (reason) => listener.fail(reason));
    return listener;
  }

  /** Calls `end` with the VM's stop reason should the VM stop before `over` settles (a stream's or listener's end). */
  private endOnStop(over: Promise<unknown>, end: (reason: HyperlabError) => void): void {
    if (this._stopReason) return end(this._stopReason);
    this.links.add(end);
    void over.finally(() => this.links.delete(end));
  }

  /**
   * Shares a host directory with the guest over its 9p device (`host9p`;
   * `share.name` is its entry in the guest's 9p root); resolves with the
   * directory resolved. Legal while running or paused; NOT_SUPPORTED in a browser.
   */
  async share(share: FileShare): Promise<string> {
    assertState(this._state, ["running", "paused"], { action: "share a host directory", vm: this.name });
    return this.call((w) => w.api.share(share));
  }

  /** Stops sharing a host directory (see share). Legal while running or paused. */
  async unshare(name: string): Promise<void> {
    assertState(this._state, ["running", "paused"], { action: "stop sharing a host directory", vm: this.name });
    await this.call((w) => w.api.unshare(name));
  }

  /** Types into the VM's serial console (the human's terminal). Legal while booting, running or paused. */
  async writeConsole(data: string | Uint8Array): Promise<void> {
    assertState(this._state, ["booting", "running", "paused"], { action: "write to the console", vm: this.name });
    await this.call((w) => w.api.writeConsole(data));
  }

  /**
   * A snapshot of the VM (encoded with our header, see snapshot.ts). A VM
   * that descends from the boot snapshot (started from it or the warm pool,
   * or forked or restored from such a VM's delta) gets a delta snapshot:
   * only what differs from the boot snapshot; `{ full: true }` stores the
   * whole state. Legal while running or paused; a running VM is paused for
   * the copy and then runs on.
   */
  async snapshot(opts: VmSnapshotOptions = {}): Promise<Uint8Array> {
    assertState(this._state, ["running", "paused"], { action: "snapshot", vm: this.name });
    return this.call((w) => this.host.snapshot(this, w, opts));
  }

  /**
   * XXH3-64 of every 4 KiB page of the guest's RAM, hashed in the VM's
   * worker by the memory engine (for page-sharing statistics). Pause the VM
   * first for hashes that stay valid. Legal while running or paused.
   */
  async pageHashes(): Promise<BigUint64Array> {
    assertState(this._state, ["running", "paused"], { action: "hash guest pages", vm: this.name });
    return this.call((w) => w.api.pageHashes());
  }

  /**
   * `n` new running VMs, each a copy of this one at this moment (names
   * `<name>-fork-<k>`), each with its own memory reservation. Legal while
   * running or paused.
   */
  async fork(n: number): Promise<Vm[]> {
    assertState(this._state, ["running", "paused"], { action: "fork", vm: this.name });
    if (!Number.isInteger(n) || n < 1) throw new HyperlabError("INVALID_ARGUMENT", `fork needs a whole number of copies, at least 1 (not ${n})`);
    return this.call((w) => this.host.fork(this, w, n));
  }

  /** Changes the VM's CPU weight; takes effect at the scheduler's next period. Legal in any state but stopped and destroyed. */
  setCpuShare(share: number): void {
    assertState(this._state, ["created", "booting", "running", "paused"], { action: "set the CPU share", vm: this.name });
    if (!validShare(share)) {
      throw new HyperlabError("INVALID_ARGUMENT", `a CPU share must be a number from ${MIN_SHARE} to ${MAX_SHARE}, not ${share}`);
    }
    this._cpuShare = share;
    this.host.shareChanged(this);
  }

  /**
   * CPU, memory and device figures. The guest's own memory use is read from
   * its /proc/meminfo while it runs; otherwise the last reading is given.
   * Legal in any state but destroyed.
   */
  async metrics(): Promise<VmMetrics> {
    assertState(this._state, ["created", "booting", "running", "paused", "stopped"], { action: "read metrics", vm: this.name });
    if (this._state === "running" && this.worker) {
      this.guestMemory = await this.worker.api.guestMemory().catch(() => this.guestMemory);
    }
    return this.currentMetrics();
  }

  /** Holds or releases the VM for the CPU scheduler (not a state change). Called by the hypervisor. */
  setHeld(held: boolean): void {
    if (held === this._held || !this.worker) return;
    this._held = held;
    const worker = this.worker;
    this.holdChange = this.holdChange.then(() => worker.api.hold(held)).catch(() => {});
  }

  /**
   * Emits a metrics event from the latest counters; called by the hypervisor
   * every METRICS_MS. Every GUEST_MEMORY_TICKS-th time it first reads the
   * guest's memory use (one small file read through the agent).
   */
  tickMetrics(): void {
    if (this._state !== "running" && this._state !== "paused") return;
    if (this._state === "running" && !this._held && this.worker && this.ticks++ % GUEST_MEMORY_TICKS === 0) {
      const worker = this.worker;
      void worker.api.guestMemory().then(
        (m) => (this.guestMemory = m),
        () => {},
      );
    }
    this.emit({ type: "metrics", vm: this.name, metrics: this.currentMetrics() });
  }

  private currentMetrics(): VmMetrics {
    const s = this.latest;
    return {
      name: this.name,
      state: this._state,
      cpu: { share: this._cpuShare, instructions: s?.instructions ?? 0, instructionsPerSecond: Math.round(this.ips), held: this._held },
      memory: { allocatedMiB: this.memoryMiB, guest: this.guestMemory },
      devices: {
        consoleOut: s?.consoleOut ?? 0,
        consoleIn: s?.consoleIn ?? 0,
        controlOut: s?.controlOut ?? 0,
        controlIn: s?.controlIn ?? 0,
      },
    };
  }

  /** Listens to the worker: counters, console, the guest stopping, the worker dying. */
  private adoptWorker(worker: VmWorker): void {
    this.worker = worker;
    worker.onEvent((e) => this.onWorkerEvent(e));
    void worker.died.then((reason) => this.markStopped(reason));
  }

  private onWorkerEvent(e: WorkerEvent): void {
    if (this._state === "destroyed") return;
    switch (e.type) {
      case "sample": {
        const { type: _type, ...sample } = e;
        this.onSample(sample);
        return;
      }
      case "console":
        this.emit({ type: "console", vm: this.name, data: e.data });
        return;
      case "stopped": {
        this.markStopped(new HyperlabError(e.code, e.message, e.detail));
        // The machine is gone; its worker has nothing left to do.
        void this.worker?.terminate();
        return;
      }
    }
  }

  private onSample(sample: WorkerSample): void {
    // Samples come on their own port and answers to calls on another: keep the newest.
    if (this.latest && sample.runMs < this.latest.runMs) return;
    this.latest = sample;
    // Instructions per second of running time, over about a second.
    if (!this.previous) this.previous = sample;
    else if (sample.runMs - this.previous.runMs >= METRICS_MS) {
      this.ips = ((sample.instructions - this.previous.instructions) / (sample.runMs - this.previous.runMs)) * 1000;
      this.previous = sample;
    }
  }

  private markStopped(reason: HyperlabError): void {
    if (this._state === "stopped" || this._state === "destroyed") return;
    const previous = this._state;
    this._state = "stopped";
    this._stopReason = reason;
    this._held = false;
    for (const fail of this.processes) fail(reason);
    for (const end of [...this.links]) end(reason);
    this.emit({ type: "state", vm: this.name, state: "stopped", previous, reason: { code: reason.code, message: reason.message } });
  }

  private move(to: VmState, action: string): void {
    assertTransition(this._state, to, { action, vm: this.name });
    const previous = this._state;
    this._state = to;
    this.emit({ type: "state", vm: this.name, state: to, previous });
  }

  private isGone(): boolean {
    return this._state === "stopped" || this._state === "destroyed";
  }

  private goneError(action: string): HyperlabError {
    return this._stopReason ?? new HyperlabError("VM_INVALID_STATE", `cannot ${action}: VM ${this.name} is ${this._state}`, { state: this._state });
  }

  /** A call to the worker; a worker that died meanwhile gives WORKER_DIED (and the VM is stopped). */
  private async call<T>(fn: (w: VmWorker) => Promise<T>): Promise<T> {
    const worker = this.worker ?? (await this.host.ready);
    try {
      return await fn(worker);
    } catch (err) {
      // A call cut off because the machine stopped (its kernel panicked, the guest powered off) fails
      // with why it stopped: its worker's end, which follows, would tell the caller nothing, and
      // the agent's connection, which a stopping guest closes first, only that the agent is gone.
      if (!(err instanceof HyperlabError)) throw err;
      if (err.code === "WORKER_DIED" && err.detail?.byHost === true && this._stopReason) throw this._stopReason;
      if (err.code === "AGENT_GONE") throw (await this.stopReasonWithin(STOP_GRACE_MS)) ?? err;
      throw err;
    }
  }

  /** Why the VM stopped, if it is stopped or stops within `ms`. */
  private stopReasonWithin(ms: number): Promise<HyperlabError | undefined> {
    if (this._stopReason || this._state === "destroyed") return Promise.resolve(this._stopReason);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        resolve(this._stopReason);
      };
      const off = this.onEvent((e) => {
        if (e.type === "state" && (e.state === "stopped" || e.state === "destroyed")) done();
      });
      const timer = setTimeout(done, ms);
    });
  }

  private emit(e: VmEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own; the VM goes on.
      }
    }
  }
}
