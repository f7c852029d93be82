// What the host and a VM worker say to each other: the worker's API (the
// calls Comlink carries) and the messages and figures that cross with them.
// Both sides import this file and neither imports the other, so the worker's
// bundle holds none of the host's spawning code and the host none of the
// worker's emulator.
import type { HyperlabError } from "../errors.ts";
import type { AgentClient, ExecOptions, ExecResult, ListenOptions, StreamTarget } from "../guest/agent.ts";
import type { GuestImage } from "../hardware/guest-image.ts";
import type { DeltaBase } from "./delta-snapshot.ts";
import type { DeltaSnapshot, Snapshot } from "./snapshot.ts";
import type { OpenedStream } from "./stream-port.ts";
import type { PortCounters } from "./switch-port.ts";

/** How often the worker reports its counters (the scheduler's clock), ms. */
export const SAMPLE_MS = 20;

/** What a worker needs to build its machine. */
export interface WorkerConfig {
  name: string;
  image: GuestImage;
  /** v86's compiled WebAssembly, shared with the host (compiled once per process) */
  wasm: WebAssembly.Module;
  memoryMiB: number;
  cmdline?: string;
}

/** What a worker builds a machine ahead for (see VmWorkerApi.prepare): a restore of a snapshot with these options. */
export interface PrepareConfig {
  image: GuestImage;
  wasm: WebAssembly.Module;
  memoryMiB: number;
  /** the snapshot's extra kernel arguments (its header's vm.cmdline) */
  cmdline?: string;
  /** a state like the one to be restored (e.g. the boot snapshot's): its RAM pages are faulted in ahead */
  pagesOf?: Uint8Array;
}

/** How long a start took, in the worker. */
export interface StartReport {
  /** until the machine ran (booted, or its state loaded) */
  machineMs: number;
  /** until the guest agent answered (and, after a restore, the guest clock was set) */
  wallMs: number;
  /** a restore's steps: building the emulator, loading the state, reaching the agent, setting the clock */
  phases?: { emulatorMs: number; stateMs: number; agentMs?: number; clockMs?: number };
}

/** Byte counters of the VM's devices. */
export interface DeviceCounters {
  /** serial console bytes from the guest / to the guest */
  consoleOut: number;
  consoleIn: number;
  /** control channel (virtio console) bytes from the guest / to the guest */
  controlOut: number;
  controlIn: number;
}

/** Cumulative counters of one VM, sent every SAMPLE_MS. */
export interface WorkerSample extends DeviceCounters {
  instructions: number;
  /** wall ms the emulator was allowed to run (neither paused nor held) */
  runMs: number;
  /** of that, ms the worker's event loop was busy (low when the guest halts) */
  activeMs: number;
}

/** Messages from a worker to the host, on the events port. */
export type WorkerEvent =
  | { type: "console"; data: string }
  | ({ type: "sample" } & WorkerSample)
  | { type: "stopped"; code: HyperlabError["code"]; message: string; detail?: Record<string, unknown> };

/** Exec options that can cross the worker boundary (stdin given whole, not streamed). */
export type VmExecOptions = Omit<ExecOptions, "stdin"> & { stdin?: string | Uint8Array };

/** The agent's file-system requests a host may make by name through `agentRequest` (what a container engine does besides exec and file I/O). */
export const AGENT_REQUESTS = ["stat", "mkdir", "remove", "mount", "umount"] as const;
/** One of AGENT_REQUESTS. */
export type AgentRequest = (typeof AGENT_REQUESTS)[number];

/** What a process started by `spawn` tells its listener, in order: its output, then its end (or why it could not go on). */
export type ProcessEvent =
  | { type: "output"; stream: 1 | 2; data: Uint8Array }
  | { type: "exited"; exitCode: number; signal: number }
  | { type: "failed"; code: HyperlabError["code"]; message: string; detail?: Record<string, unknown> };

/** What the host can do to a process started by `spawn`. */
export type ProcessInput =
  | { type: "write"; data: string | Uint8Array }
  | { type: "close-stdin" }
  | { type: "resize"; rows: number; cols: number }
  | { type: "kill"; signal?: number };

/** A host directory shared with a VM's guest over its 9p device (`mount -t 9p host9p`): one entry of the guest's synthetic root. */
export interface FileShare {
  /** its name in the guest's 9p root: letters, digits, '_', '.', '-' */
  name: string;
  /** the host directory (resolved by the worker: it must exist and be a directory) */
  hostPath: string;
  /** the guest may read but not change it */
  readOnly: boolean;
  /** make the directory (and its parents) when it is missing, as `docker run -v` does */
  create?: boolean;
}

/** A VM's place on a hypervisor network, as its worker configures the guest's eth0 (networks.ts assigns it). */
export interface NetworkPlug {
  network: string;
  /** `aa:bb:cc:dd:ee:ff`, locally administered */
  mac: string;
  /** the VM's IPv4 address */
  address: string;
  /** the subnet's prefix length */
  prefix: number;
  /** the guest's /etc/hosts, whole */
  hosts: string;
}

/** Frames and bytes through a VM's switch port. */
export type { PortCounters } from "./switch-port.ts";

/** Guest memory as the guest's /proc/meminfo tells it, in KiB. */
export interface GuestMemory {
  totalKiB: number;
  availableKiB: number;
  usedKiB: number;
}

/**
 * The API a VM worker serves (vm-worker.ts); the host calls it through
 * Comlink (rpc.ts), where every method returns a promise. One worker holds
 * one VM: each method says in which of its states it is legal.
 */
export interface VmWorkerApi {
  /** Takes the port the worker's events go out on. Called once by the host right after spawning. */
  connect(port: MessagePort): void;
  /** Builds the machine for a cold boot. Legal once, instead of restore(). */
  init(config: WorkerConfig): void;
  /** Powers on, waits for the guest and its agent. Legal once, after init. */
  boot(opts?: { timeoutMs?: number }): Promise<StartReport>;
  /** Builds a machine ahead for a later restore() with these options. Legal before init() or restore(); a second call replaces the first. */
  prepare(config: PrepareConfig): Promise<void>;
  /** Builds the machine from a snapshot instead of booting (`paused`: a warm VM, left for activate()). Legal once, instead of init(). */
  restore(config: WorkerConfig, snapshot: Snapshot, opts?: { timeoutMs?: number; paused?: boolean }): Promise<StartReport>;
  /** Lets a restored machine run, connects to its agent and sets the guest's clock. Legal once, after restore(). */
  activate(opts?: { timeoutMs?: number }): Promise<StartReport>;
  /** The whole machine's state with our header, moved to the host. Legal while running or paused. */
  snapshot(): Promise<Snapshot>;
  /** The machine's state as a delta against `base`, moved to the host. Legal while running or paused. */
  deltaSnapshot(base: DeltaBase): Promise<DeltaSnapshot>;
  /** XXH3-64 of every 4 KiB page of guest RAM, moved to the host. Legal while running or paused. */
  pageHashes(): Promise<BigUint64Array>;
  /** Pauses the emulator for the VM's user. Legal while running. */
  pause(): Promise<void>;
  /** Undoes pause(). Legal while paused. */
  resume(): Promise<void>;
  /** Holds (or releases) the emulator for the CPU scheduler; independent of the user's pause. */
  hold(held: boolean): Promise<void>;
  /** Runs a process in the guest and returns its exit status and output. Legal while running. */
  exec(argv: string[], opts?: VmExecOptions): Promise<ExecResult>;
  /** Writes a file in the guest. Legal while running. */
  writeFile(path: string, data: string | Uint8Array, opts?: { mode?: number; append?: boolean }): Promise<void>;
  /** Reads a file from the guest (moved to the host, not copied). Legal while running. */
  readFile(path: string): Promise<Uint8Array>;
  /** One of the agent's file-system requests (AGENT_REQUESTS), by name, with its arguments. Legal while running. */
  agentRequest<M extends AgentRequest>(method: M, ...args: Parameters<AgentClient[M]>): Promise<Awaited<ReturnType<AgentClient[M]>>>;
  /** Starts a guest process whose output and end go to `listener`; resolves with a handle for processInput() and its PID. Legal while running. */
  spawn(argv: string[], opts: ExecOptions, listener: (e: ProcessEvent) => unknown): Promise<{ handle: number; pid: number; requestId?: number }>;
  /** Follows a process that ran when the VM's snapshot was taken (AgentClient.adopt), as spawn() does a new one. Legal while running. */
  adopt(requestId: number, opts: { pid: number; what: string }, listener: (e: ProcessEvent) => unknown): Promise<{ handle: number; pid: number }>;
  /** Feeds, resizes or signals a process from spawn(). Legal until it has ended. */
  processInput(handle: number, input: ProcessInput): Promise<void>;
  /** The guest's own view of its memory. Legal while running. */
  guestMemory(): Promise<GuestMemory>;
  /** Opens a stream to a socket in the guest, relayed on `port` (stream-port.ts); resolves once connected. Legal while running. */
  openStream(target: StreamTarget, port: MessagePort): Promise<OpenedStream>;
  /** Listens on a Unix socket in the guest; each connection is announced on `port` with a port of its own. Legal while running. */
  listen(path: string, opts: Omit<ListenOptions, "grant">, port: MessagePort): Promise<{ id: number }>;
  /** Stops a listener from listen(). Legal while it listens. */
  unlisten(id: number): Promise<void>;
  /**
   * Shares a host directory with the guest over its 9p device (replacing a
   * share of that name); resolves with the directory as resolved (realpath).
   * Legal once the machine is built; NOT_SUPPORTED where the worker has no
   * host file system (a browser), INVALID_ARGUMENT for a path that is not a directory.
   */
  share(share: FileShare): Promise<string>;
  /** Stops sharing `name` (the guest's open files in it answer ESTALE). Legal any time. */
  unshare(name: string): Promise<void>;
  /**
   * Gives the guest's eth0 this MAC and address (and its /etc/hosts) through
   * the agent, and lets its frames through its switch port. Legal while running.
   */
  plugNetwork(plug: NetworkPlug): Promise<void>;
  /** Connects the switch port to a peer's (a MessagePort whose other end is in the peer's worker). Legal any time. */
  addNetworkPeer(id: string, port: MessagePort): void;
  /** Disconnects a peer's port. Legal any time. */
  dropNetworkPeer(id: string): void;
  /** Rewrites the guest's /etc/hosts (a network's members changed). Legal while running. */
  setHosts(hosts: string): Promise<void>;
  /** Frames and bytes through the switch port. Legal any time. */
  networkCounters(): PortCounters;
  /** Types into the serial console (the human's terminal). Legal while booting, running or paused. */
  writeConsole(data: string | Uint8Array): void;
  /** The counters now (also sent every SAMPLE_MS). Legal any time. */
  counterSample(): WorkerSample;
  /** Powers the machine off. Legal in any state. */
  stop(): Promise<void>;
  /** Ends the worker abruptly, as a crash would (for tests of the host's handling). */
  crash(exitCode: number): void;
}
