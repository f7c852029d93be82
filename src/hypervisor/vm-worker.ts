// The worker side of one VM: owns its Machine (the emulator) and the
// connection to its guest agent, and serves them to the host through Comlink.
// Console output and counters go to the host as batched events on their own
// port: one message per sample period or per few KiB, never per byte.
import * as Comlink from "comlink";
import { HyperlabError } from "../errors.ts";
import { type AgentChannel, AgentClient, type ExecOptions, type ExecResult, type GuestListener, type GuestProcess, type ListenOptions, type StreamTarget } from "../guest/agent.ts";
import type { StreamEnd } from "../guest/agent-stream.ts";
import type { GuestImage } from "../hardware/guest-image.ts";
import { Machine } from "../hardware/machine.ts";
import { P9Error } from "../hardware/p9-message.ts";
import { P9Server } from "../hardware/p9-server.ts";
import { type DeltaBase, makeDeltaSnapshot } from "./delta-snapshot.ts";
import { loadMemoryEngine } from "./memory-engine.ts";
import { type DeltaSnapshot, type Snapshot, captureSnapshot, checkSnapshot, imageDigest } from "./snapshot.ts";
import type { NodeEndpoint } from "comlink/dist/esm/node-adapter.mjs";
import {
  AGENT_REQUESTS,
  type AgentRequest,
  type DeviceCounters,
  type FileShare,
  type GuestMemory,
  type NetworkPlug,
  type PortCounters,
  type PrepareConfig,
  type ProcessEvent,
  type ProcessInput,
  SAMPLE_MS,
  type StartReport,
  type VmExecOptions,
  type VmWorkerApi,
  type WorkerConfig,
  type WorkerEvent,
  type WorkerSample,
} from "./worker-protocol.ts";
import { type OpenedStream, announceConnection, announceListenerClosed, relayStream } from "./stream-port.ts";
import { installErrorTransfer, moved } from "./worker-transfer.ts";
import { type FramePort, SwitchPort } from "./switch-port.ts";

/** Console text is sent once this much is pending, or at the next sample. */
const CONSOLE_BATCH = 4096;
const encoder = new TextEncoder();

const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === "string";
/**
 * The host's file system for the guest's 9p device: only in Node (a page has
 * no host directories). The worker reaches only the directories the host
 * names in share(), each confined to itself (see p9-node-fs.ts).
 */
const nodeFs = isNode ? await import("../hardware/p9-node-fs.ts") : undefined;

function needMachine(machine: Machine | undefined, action: string): Machine {
  if (!machine) throw new HyperlabError("VM_INVALID_STATE", `cannot ${action}: the VM has no machine yet (it was not started)`);
  return machine;
}

function needAgent(agent: AgentClient | undefined, action: string): AgentClient {
  if (!agent) throw new HyperlabError("VM_INVALID_STATE", `cannot ${action}: the guest agent is not connected (the VM is not running)`);
  return agent;
}

/** Parses the KiB figures of /proc/meminfo. */
function parseMeminfo(text: string): GuestMemory {
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  const totalKiB = kib("MemTotal");
  const availableKiB = kib("MemAvailable");
  return { totalKiB, availableKiB, usedKiB: totalKiB - availableKiB };
}

/** One VM's worker: the object exposed to the host. */
class VmWorkerImpl implements VmWorkerApi {
  private port: MessagePort | undefined;
  private config: WorkerConfig | undefined;
  /** a machine built ahead for a restore, and the options it was built with */
  private prepared: { machine: Machine; key: string } | undefined;
  private machine: Machine | undefined;
  private agent: AgentClient | undefined;
  /** what the agent said of itself when the snapshot this VM was restored from was taken */
  private snapshotAgent: Snapshot["header"]["agent"] = null;
  private userPaused = false;
  private held = false;
  /** snapshots being taken: the CPU stays stopped meanwhile */
  private saving = 0;
  private runChange: Promise<void> = Promise.resolve();
  private sampler: ReturnType<typeof setInterval> | undefined;
  private consolePending = "";
  private readonly counters: DeviceCounters = { consoleOut: 0, consoleIn: 0, controlOut: 0, controlIn: 0 };
  /** processes started by spawn(), by handle, until they end */
  private readonly processes = new Map<number, GuestProcess>();
  private nextProcess = 1;
  /** listeners from listen(), by id, until unlisten() or the agent goes */
  private readonly listeners = new Map<number, GuestListener>();
  private runMs = 0;
  private activeMs = 0;
  private lastT = 0;
  private lastActive = 0;
  /** the 9p server of this VM's machine (every machine the worker builds gets it): its exports are the shared host directories */
  private readonly fileShare = new P9Server(nodeFs ? new nodeFs.NodeFsBackend() : undefined);
  /** the card's port on its network's switch: closed until plugNetwork(), and while the user has the VM paused */
  private plugged = false;
  private readonly switchPort = new SwitchPort(
    (frame) => this.machine?.sendFrame(frame),
    () => this.plugged && !this.userPaused,
  );

  /** Takes the port the worker's events go out on. Called once by the host right after spawning. */
  connect(port: MessagePort): void {
    this.port = port;
  }

  /** Builds the machine for a cold boot (machine state created). Legal once, instead of restore(). */
  init(config: WorkerConfig): void {
    if (this.machine) throw new HyperlabError("VM_INVALID_STATE", `cannot init: this worker already has VM ${this.config?.name}`);
    this.config = config;
    this.dropPrepared();
    this.adoptMachine(new Machine({ image: config.image, wasm: config.wasm, memoryMiB: config.memoryMiB, cmdline: config.cmdline, fileShare: this.fileShare }));
  }

  /** Powers on, waits for the guest and its agent. Legal once, after init. */
  async boot(opts: { timeoutMs?: number } = {}): Promise<StartReport> {
    const machine = needMachine(this.machine, "boot");
    this.startSampling();
    const t0 = performance.now();
    await machine.boot({ timeoutMs: opts.timeoutMs });
    const machineMs = performance.now() - t0;
    this.agent = await AgentClient.connect(this.countingChannel(machine), { timeoutMs: opts.timeoutMs });
    await this.applyRun();
    return { machineMs, wallMs: performance.now() - t0 };
  }

  /**
   * Builds a machine for a later restore() now (v86's emulator, and the RAM
   * pages `pagesOf` holds faulted in), so that the restore only loads its
   * state: what a spare worker does while it waits. A restore with other
   * options builds its own machine. Legal before init() or restore(); a
   * second call replaces the first. Resolves once the machine is built.
   */
  async prepare(config: PrepareConfig): Promise<void> {
    if (this.machine || this.config) throw new HyperlabError("VM_INVALID_STATE", `cannot prepare: this worker already has VM ${this.config?.name}`);
    this.dropPrepared();
    const firmware = "direct" as const;
    const machine = new Machine({ image: config.image, wasm: config.wasm, memoryMiB: config.memoryMiB, firmware, cmdline: config.cmdline, fileShare: this.fileShare });
    const ready = machine.prepare({ pagesOf: config.pagesOf });
    this.prepared = { machine, key: machineKey(config.image.id, config.memoryMiB, firmware, config.cmdline) };
    await ready;
  }

  /** The prepared machine if it was built for these options (else it is dropped). */
  private takePrepared(image: GuestImage, vm: Snapshot["header"]["vm"]): Machine | undefined {
    const prepared = this.prepared;
    this.prepared = undefined;
    if (!prepared) return undefined;
    if (prepared.key === machineKey(image.id, vm.memoryMiB, vm.firmware, vm.cmdline) && prepared.machine.state === "created") return prepared.machine;
    void prepared.machine.stop().catch(() => {});
    return undefined;
  }

  private dropPrepared(): void {
    void this.prepared?.machine.stop().catch(() => {});
    this.prepared = undefined;
  }

  /**
   * Builds the machine from a snapshot instead of booting. With `paused` the
   * machine stays paused and the agent unconnected until `activate()` (a warm
   * VM); otherwise it is activated at once. Legal once, instead of init().
   */
  async restore(config: WorkerConfig, snapshot: Snapshot, opts: { timeoutMs?: number; paused?: boolean } = {}): Promise<StartReport> {
    if (this.machine || this.config) throw new HyperlabError("VM_INVALID_STATE", `cannot restore: this worker already has VM ${this.config?.name}`);
    this.config = config;
    this.snapshotAgent = snapshot.header.agent;
    const t0 = performance.now();
    checkSnapshot(snapshot.header, { image: { id: config.image.id, sha256: await imageDigest(config.image) } });
    const { memoryMiB, firmware, cmdline } = snapshot.header.vm;
    const machine = this.takePrepared(config.image, snapshot.header.vm) ?? new Machine({ image: config.image, wasm: config.wasm, memoryMiB, firmware, cmdline, fileShare: this.fileShare });
    const report = await machine.restore(snapshot.state, { timeoutMs: opts.timeoutMs, paused: true });
    this.adoptMachine(machine);
    this.userPaused = true;
    const machineMs = performance.now() - t0;
    const phases = { emulatorMs: report.phases.emulator.wallMs, stateMs: report.phases.state.wallMs };
    if (opts.paused) return { machineMs, wallMs: machineMs, phases };
    const active = await this.activate(opts);
    return { machineMs, wallMs: performance.now() - t0, phases: { ...phases, agentMs: active.phases?.agentMs, clockMs: active.phases?.clockMs } };
  }

  /**
   * Lets a restored machine run, connects to its agent and sets the guest's
   * clock (it stood still since the snapshot). Legal once, after restore().
   */
  async activate(opts: { timeoutMs?: number } = {}): Promise<StartReport> {
    const machine = needMachine(this.machine, "activate");
    if (this.agent) throw new HyperlabError("VM_INVALID_STATE", `cannot activate: VM ${this.config?.name} is active already`);
    const t0 = performance.now();
    this.startSampling();
    this.userPaused = false;
    await this.applyRun();
    const machineMs = performance.now() - t0;
    const agent = await AgentClient.attach(this.countingChannel(machine), { timeoutMs: opts.timeoutMs, agent: this.snapshotAgent });
    this.agent = agent;
    const t1 = performance.now();
    await agent.setClock();
    const t2 = performance.now();
    return { machineMs, wallMs: t2 - t0, phases: { emulatorMs: 0, stateMs: 0, agentMs: t1 - t0, clockMs: t2 - t1 } };
  }

  /**
   * The whole machine's state with our header. The CPU is stopped for the
   * copy (a consistent picture) and then runs as before. The state moves to
   * the host. Legal while running or paused.
   */
  async snapshot(): Promise<Snapshot> {
    const machine = needMachine(this.machine, "snapshot");
    const config = this.config!;
    this.saving++;
    try {
      await this.applyRun();
      const snap = await captureSnapshot(machine, { image: config.image, agent: this.agentInfo() });
      return Comlink.transfer(snap, [snap.state.buffer as ArrayBuffer]);
    } finally {
      this.saving--;
      await this.applyRun();
    }
  }

  /**
   * The machine's state as a delta against `base` (a boot snapshot of the
   * same image and memory size): guest RAM as the pages that differ (the
   * memory engine, in this worker), v86's other buffers where they differ.
   * The CPU is stopped meanwhile, as for snapshot(). Legal while running or paused.
   */
  async deltaSnapshot(base: DeltaBase): Promise<DeltaSnapshot> {
    const machine = needMachine(this.machine, "snapshot");
    const config = this.config!;
    const engine = await loadMemoryEngine();
    this.saving++;
    try {
      await this.applyRun();
      const full = await captureSnapshot(machine, { image: config.image, agent: this.agentInfo() });
      // Still stopped: RAM is what the state just saved.
      const delta = makeDeltaSnapshot(full, machine.memory(), base, engine);
      return Comlink.transfer(delta, [delta.state.buffer as ArrayBuffer, delta.memory.buffer as ArrayBuffer]);
    } finally {
      this.saving--;
      await this.applyRun();
    }
  }

  /**
   * XXH3-64 of every 4 KiB page of guest RAM, computed here by the memory
   * engine (one pass; the emulator does not run meanwhile, it shares this
   * thread) and moved to the host. Legal while running or paused.
   */
  async pageHashes(): Promise<BigUint64Array> {
    const machine = needMachine(this.machine, "hash guest pages");
    const engine = await loadMemoryEngine();
    const hashes = engine.hashPages(machine.memory());
    return Comlink.transfer(hashes, [hashes.buffer as ArrayBuffer]);
  }

  private adoptMachine(machine: Machine): void {
    this.machine = machine;
    machine.onFrame((frame) => this.switchPort.fromCard(frame));
    machine.onConsole((text) => {
      this.counters.consoleOut += encoder.encode(text).length;
      this.consolePending += text;
      if (this.consolePending.length >= CONSOLE_BATCH) this.flushConsole();
    });
    machine.onStopped((reason) => {
      this.flushConsole();
      this.sample();
      clearInterval(this.sampler);
      this.post({ type: "stopped", code: reason.code, message: reason.message, detail: reason.detail });
    });
  }

  /** The connected agent (or the one the VM was restored with) as a snapshot records it. */
  private agentInfo(): Snapshot["header"]["agent"] {
    if (!this.agent) return this.snapshotAgent;
    return { ...this.agent.agent, nextRequestId: this.agent.nextRequestId };
  }

  /** Pauses the emulator for the VM's user. Legal while running. */
  async pause(): Promise<void> {
    this.userPaused = true;
    await this.applyRun();
  }

  /** Undoes pause(). Legal while paused. */
  async resume(): Promise<void> {
    this.userPaused = false;
    await this.applyRun();
  }

  /** Holds (or releases) the emulator for the CPU scheduler; independent of the user's pause. */
  async hold(held: boolean): Promise<void> {
    if (held === this.held) return;
    this.held = held;
    await this.applyRun();
  }

  /**
   * Makes the emulator run or not as the user's pause, the scheduler's hold
   * and snapshots say. One change at a time: a resume while a pause waits for
   * v86's loop to stop would cancel that stop, and the pause would never end.
   */
  private applyRun(): Promise<void> {
    const machine = needMachine(this.machine, "pause or resume");
    const change = this.runChange.then(async () => {
      this.account();
      const shouldRun = !this.userPaused && !this.held && this.saving === 0;
      if (machine.state === "paused" && shouldRun) await machine.resume();
      else if (machine.state === "running" && !shouldRun) await machine.pause();
    });
    this.runChange = change.catch(() => {});
    return change;
  }

  /** Runs a process in the guest and returns its exit status and output. Legal while running. */
  /** Configures the guest's eth0 through the agent, then opens the switch port. Legal while running. */
  async plugNetwork(plug: NetworkPlug): Promise<void> {
    const agent = needAgent(this.agent, "plug the VM into a network");
    // A restored guest may still have the snapshot's MAC and address: both are replaced.
    const script = [
      "set -e",
      "ip link set eth0 down",
      `ip link set eth0 address ${plug.mac}`,
      "ip addr flush dev eth0",
      `ip addr add ${plug.address}/${plug.prefix} dev eth0`,
      "ip link set eth0 up",
    ].join("\n");
    const r = await agent.exec(["/bin/sh", "-c", script], { timeoutMs: 10_000 });
    if (r.exitCode !== 0) {
      const err = r.stderr.trim();
      throw new HyperlabError("GUEST_BOOT_FAILED", `the VM's network card did not come up (network ${plug.network}, ${plug.address}): ${err || `exit status ${r.exitCode}`}`);
    }
    await agent.writeFile("/etc/hosts", plug.hosts);
    this.plugged = true;
  }

  /** Connects the switch port to a peer's. Legal any time. */
  addNetworkPeer(id: string, port: MessagePort): void {
    this.switchPort.addPeer(id, port as unknown as FramePort);
  }

  /** Disconnects a peer's port. Legal any time. */
  dropNetworkPeer(id: string): void {
    this.switchPort.dropPeer(id);
  }

  /** Rewrites the guest's /etc/hosts. Legal while running. */
  async setHosts(hosts: string): Promise<void> {
    await needAgent(this.agent, "update /etc/hosts").writeFile("/etc/hosts", hosts);
  }

  /** Frames and bytes through the switch port. Legal any time. */
  networkCounters(): PortCounters {
    return { ...this.switchPort.counters };
  }

  async exec(argv: string[], opts: VmExecOptions = {}): Promise<ExecResult> {
    return needAgent(this.agent, "exec").exec(argv, opts);
  }

  /** Writes a file in the guest. Legal while running. */
  async writeFile(path: string, data: string | Uint8Array, opts: { mode?: number; append?: boolean } = {}): Promise<void> {
    await needAgent(this.agent, "write a file").writeFile(path, data, opts);
  }

  /** Reads a file from the guest (moved to the host, not copied). Legal while running. */
  async readFile(path: string): Promise<Uint8Array> {
    return moved(await needAgent(this.agent, "read a file").readFile(path));
  }

  /** One of the agent's file-system requests (AGENT_REQUESTS), by name, with its arguments. Legal while running. */
  async agentRequest<M extends AgentRequest>(method: M, ...args: Parameters<AgentClient[M]>): Promise<Awaited<ReturnType<AgentClient[M]>>> {
    if (!AGENT_REQUESTS.includes(method)) {
      throw new HyperlabError("INVALID_ARGUMENT", `'${String(method)}' is not an agent request a host may make by name (those are: ${AGENT_REQUESTS.join(", ")})`);
    }
    const agent = needAgent(this.agent, method);
    return (agent[method] as (...a: unknown[]) => Promise<Awaited<ReturnType<AgentClient[M]>>>).apply(agent, args);
  }

  /**
   * Starts a guest process and streams it: its output, then its end, go to
   * `listener` (a Comlink proxy from the host) as the agent delivers them.
   * Resolves with a handle for processInput() and the guest PID once it
   * runs. Legal while running.
   */
  async spawn(argv: string[], opts: ExecOptions, listener: (e: ProcessEvent) => unknown): Promise<{ handle: number; pid: number; requestId?: number }> {
    const proc = needAgent(this.agent, "spawn a process").spawn(argv, opts);
    return { ...(await this.stream(proc, listener)), requestId: proc.requestId };
  }

  /**
   * Follows a process that was running in the guest when its snapshot was
   * taken (see AgentClient.adopt), as spawn() follows a new one. Legal while
   * running, in a VM restored from a snapshot.
   */
  async adopt(requestId: number, opts: { pid: number; what: string }, listener: (e: ProcessEvent) => unknown): Promise<{ handle: number; pid: number }> {
    const proc = needAgent(this.agent, "follow a process").adopt(requestId, opts);
    return this.stream(proc, listener);
  }

  /** Sends a process's output, then its end, to `listener` (a Comlink proxy from the host); resolves with its handle and PID once it runs. */
  private async stream(proc: GuestProcess, listener: (e: ProcessEvent) => unknown): Promise<{ handle: number; pid: number }> {
    const handle = this.nextProcess++;
    this.processes.set(handle, proc);
    // A view into a larger frame would carry the whole frame's buffer across: each chunk gets its own.
    proc.onOutput((stream, data) => void listener({ type: "output", stream, data: data.slice() }));
    void proc.exited
      .then(
        (r) => listener({ type: "exited", exitCode: r.exitCode, signal: r.signal }),
        (err: unknown) => {
          const e = err instanceof HyperlabError ? err : new HyperlabError("AGENT_ERROR", String((err as Error)?.message ?? err));
          return listener({ type: "failed", code: e.code, message: e.message, detail: e.detail });
        },
      )
      .catch(() => {})
      .finally(() => {
        this.processes.delete(handle);
        (listener as { [Comlink.releaseProxy]?: () => void })[Comlink.releaseProxy]?.();
      });
    return { handle, pid: await proc.pid };
  }

  /** Feeds, resizes or signals a process from spawn(). Legal until it has ended. */
  async processInput(handle: number, input: ProcessInput): Promise<void> {
    const proc = this.processes.get(handle);
    if (!proc) throw new HyperlabError("INVALID_ARGUMENT", `there is no running process with handle ${handle} (it has ended)`);
    switch (input.type) {
      case "write":
        return proc.write(input.data);
      case "close-stdin":
        return proc.closeStdin();
      case "resize":
        return proc.resize(input.rows, input.cols);
      case "kill":
        return proc.kill(input.signal);
    }
  }

  /** The guest's own view of its memory. Legal while running. */
  async guestMemory(): Promise<GuestMemory> {
    const bytes = await needAgent(this.agent, "read guest memory use").readFile("/proc/meminfo");
    return parseMeminfo(new TextDecoder().decode(bytes));
  }

  /**
   * Opens a stream to a socket in the guest and relays it on `port`
   * (stream-port.ts): bytes go to and from the host on the port, not through
   * Comlink. Resolves with its id and the agent's window once connected.
   * Legal while running.
   */
  async openStream(target: StreamTarget, port: MessagePort): Promise<OpenedStream> {
    try {
      const stream = (await needAgent(this.agent, "open a stream").connect(target, { grant: "manual" })) as StreamEnd;
      relayStream(stream, port);
      return { id: stream.id, credit: stream.sendCredit };
    } catch (err) {
      port.close();
      throw err;
    }
  }

  /**
   * Listens on a Unix socket in the guest; each connection is announced on
   * `port` with a port of its own (stream-port.ts), and the listener's end
   * too. Legal while running.
   */
  async listen(path: string, opts: Omit<ListenOptions, "grant">, port: MessagePort): Promise<{ id: number }> {
    try {
      const listener = await needAgent(this.agent, "listen on a socket").listen(path, (s) => announceConnection(s as StreamEnd, port), { ...opts, grant: "manual" });
      this.listeners.set(listener.id, listener);
      void listener.closed.then((err) => {
        this.listeners.delete(listener.id);
        announceListenerClosed(port, err);
      });
      return { id: listener.id };
    } catch (err) {
      port.close();
      throw err;
    }
  }

  /** Stops a listener from listen(). Legal while it listens. */
  async unlisten(id: number): Promise<void> {
    const listener = this.listeners.get(id);
    if (!listener) throw new HyperlabError("INVALID_ARGUMENT", `there is no listener with id ${id} (it was closed)`);
    await listener.close();
  }

  /**
   * Shares a host directory with the guest over its 9p device; resolves
   * with the directory resolved. Legal any time; NOT_SUPPORTED in a browser.
   */
  async share(share: FileShare): Promise<string> {
    if (!nodeFs) throw new HyperlabError("NOT_SUPPORTED", "a VM in a browser has no host directories to share: use a volume, or drop files onto the terminal");
    try {
      if (share.create) nodeFs.makeDirectory(share.hostPath);
      const root = nodeFs.resolveExportRoot(share.hostPath);
      this.fileShare.setExport({ name: share.name, root, readOnly: share.readOnly });
      return root;
    } catch (err) {
      if (!(err instanceof P9Error)) throw err;
      const [reason, why] = err.errno === 2 ? ["missing", "it does not exist"] : err.errno === 20 ? ["not-directory", "it is not a directory"] : err.errno === 13 ? ["denied", "permission denied"] : ["other", err.message];
      throw new HyperlabError("INVALID_ARGUMENT", `cannot share ${share.hostPath} with the guest: ${why}`, { path: share.hostPath, reason });
    }
  }

  /** Stops sharing `name`. Legal any time. */
  async unshare(name: string): Promise<void> {
    this.fileShare.removeExport(name);
  }

  /** Types into the serial console (the human's terminal). Legal while booting, running or paused. */
  writeConsole(data: string | Uint8Array): void {
    const machine = needMachine(this.machine, "write to the console");
    machine.write(data);
    this.counters.consoleIn += typeof data === "string" ? encoder.encode(data).length : data.length;
  }

  /** The counters now (also sent every SAMPLE_MS). */
  counterSample(): WorkerSample {
    this.account();
    return { instructions: this.machine?.instructions() ?? 0, runMs: this.runMs, activeMs: this.activeMs, ...this.counters };
  }

  /** Powers the machine off. Legal in any state. */
  async stop(): Promise<void> {
    this.dropPrepared();
    this.agent?.close();
    await this.machine?.stop();
    clearInterval(this.sampler);
  }

  /** Ends the worker abruptly, as a crash would (for tests of the host's handling). */
  crash(exitCode: number): void {
    if (isNode) (globalThis as unknown as { process: { exit(code: number): never } }).process.exit(exitCode);
    else (globalThis as unknown as { close(): void }).close();
  }

  private countingChannel(machine: Machine): AgentChannel {
    return {
      onControl: (l) =>
        machine.onControl((bytes) => {
          this.counters.controlOut += bytes.length;
          l(bytes);
        }),
      writeControl: (bytes) => {
        this.counters.controlIn += bytes.length;
        machine.writeControl(bytes);
      },
      onStopped: (l) => machine.onStopped(l),
    };
  }

  private startSampling(): void {
    if (this.sampler) return;
    this.lastT = performance.now();
    this.lastActive = elu()?.active ?? 0;
    this.sampler = setInterval(() => {
      this.flushConsole();
      this.sample();
    }, SAMPLE_MS);
  }

  /** Adds the time since the last call to runMs/activeMs if the emulator was running meanwhile. */
  private account(): void {
    const now = performance.now();
    const active = elu()?.active;
    // What the emulator did, not what was asked: a hold that arrives while the
    // machine boots takes effect only once it runs.
    const state = this.machine?.state;
    if ((state === "running" || state === "booting") && this.lastT) {
      this.runMs += now - this.lastT;
      // Without a measure of the event loop (browsers), count the VM as busy.
      this.activeMs += active === undefined ? now - this.lastT : active - this.lastActive;
    }
    this.lastT = now;
    this.lastActive = active ?? 0;
  }

  private sample(): void {
    this.post({ type: "sample", ...this.counterSample() });
  }

  private flushConsole(): void {
    if (!this.consolePending) return;
    const data = this.consolePending;
    this.consolePending = "";
    this.post({ type: "console", data });
  }

  private post(event: WorkerEvent): void {
    this.port?.postMessage(event);
  }
}

/** What a machine must be built with to restore a snapshot: image, memory size, firmware, kernel arguments. */
function machineKey(image: string, memoryMiB: number, firmware: string, cmdline = ""): string {
  return JSON.stringify([image, memoryMiB, firmware, cmdline]);
}

/** Node's measure of this thread's event loop (undefined in browsers). */
function elu(): { active: number } | undefined {
  const perf = performance as Performance & { eventLoopUtilization?: () => { active: number } };
  return perf.eventLoopUtilization?.();
}

installErrorTransfer();
async function hostEndpoint(): Promise<Comlink.Endpoint> {
  if (!isNode) return globalThis as unknown as Comlink.Endpoint;
  const [{ default: nodeEndpoint }, { parentPort }] = await Promise.all([import("comlink/dist/esm/node-adapter.mjs"), import("node:worker_threads")]);
  return nodeEndpoint(parentPort as unknown as NodeEndpoint);
}
const endpoint = await hostEndpoint();
Comlink.expose(new VmWorkerImpl(), endpoint);
