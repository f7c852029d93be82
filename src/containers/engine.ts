// The container engine: Docker's verbs on top of a real OCI runtime (crun by
// default, runc on request) inside the guest. The host decides (ids, names,
// addresses, the OCI config); the guest does (overlayfs, cgroups, the runtime).
import { base64ToBytes, bytesToBase64, concatBytes } from "../bytes.ts";
import { HyperlabError, isHyperlabError } from "../errors.ts";
import type { AgentClient, GuestProcess } from "../guest/agent.ts";
import { TOOLS_DIR, type ToolLoader, installGuestTool } from "../guest/guest-tools.ts";
import type { ImageInfo, ImageStore } from "./image-store.ts";
import { type Limits } from "./limits.ts";
import {
  BRIDGE_GATEWAY,
  BRIDGE_PREFIX,
  type HostsEntry,
  NETWORK_HOOK_PATH,
  type Network,
  type NetworkOptions,
  type NetworkRecord,
  NetworkTable,
  allocateAddress,
  bridgeName,
  hostsFile,
  intToIp,
  isAttached,
  ipToInt,
  networkHookArgs,
  prefixOf,
} from "./network.ts";
import { type ArchiveRead, type PathStat, readArchive, statPath, writeArchive } from "./archive.ts";
import { WHITEOUT_SCRIPT, XATTR_LAYER_DIR, whiteoutArgs } from "./guest-layers.ts";
import { checkLayerTar, inflateLayer } from "./layer-tar.ts";
import { type ContainerMount, MountHost, type MountHostOptions, type MountRequest } from "./mounts.ts";
import { bundleConfig } from "./oci-spec.ts";
import { type Confinement, applyConfinement, confinementOf } from "./confinement.ts";
import type { DockerSeccompProfile } from "./seccomp.ts";
import { CRUN_BPF_ANNOTATION, compileSeccomp } from "./seccomp-bpf.ts";
import { type PortBinding, type PortPublisher, type PublishedPort, checkDuplicates, imageTcpPorts, withPublishAll } from "./ports.ts";
import { DEFAULT_TOP_SCRIPT, PS_TOP_SCRIPT, type ProcessTable, isDefaultPsArgs, parseDefaultTop, parsePsTop } from "./top.ts";
import { type ProcessUser, resolveUser } from "./users.ts";

/**
 * What the engine asks of the guest's agent: an AgentClient, or anything that
 * forwards to one (a page's VM, whose agent lives in the VM's worker).
 */
export type EngineAgent = Pick<AgentClient, "exec" | "spawn" | "writeFile" | "readFile" | "stat" | "mkdir" | "remove" | "mount" | "umount"> &
  Partial<Pick<AgentClient, "adopt">>;

/** The OCI runtimes the guest has. */
export const RUNTIMES = ["crun", "runc"] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** Docker's container statuses, as `ps` shows them. */
export type ContainerStatus = "created" | "running" | "exited";

/** What `create` and `run` take (Docker's flags). */
export interface CreateOptions {
  image: string;
  /** the image itself, instead of looking `image` up in the store: a build step's state, which has no name */
  imageInfo?: ImageInfo;
  /** command and arguments (Docker's Cmd), after the entrypoint; default: the image's Cmd (none when `entrypoint` is given) */
  command?: string[];
  /** replaces the image's entrypoint ([] clears it) */
  entrypoint?: string[];
  /** the process's working directory (default: the image's, else /) */
  workingDir?: string;
  /** `user[:group]`, by name or number, resolved in the container's /etc/passwd and /etc/group (default: root) */
  user?: string;
  labels?: Record<string, string>;
  /** the signal `stop` sends first (default SIGTERM) */
  stopSignal?: string;
  /** what an API adapter keeps with the container (JSON; kept in the VM's snapshots) */
  meta?: Record<string, unknown>;
  /** run an init process (tini, Docker's docker-init) as PID 1 that forwards signals and reaps orphans (docker --init) */
  init?: boolean;
  name?: string;
  env?: string[];
  hostname?: string;
  limits?: Limits;
  /** the network by name or id: `bridge` (default), `none`, or a user network (see createNetwork) */
  network?: string;
  /** more names the container answers to on a user network (docker --network-alias) */
  aliases?: string[];
  /** a fixed address on a user network (docker --ip; default: the lowest free one) */
  ipAddress?: string;
  runtime?: Runtime;
  /** remove the container when it exits */
  autoRemove?: boolean;
  /** keep stdin open (docker -i) */
  interactive?: boolean;
  /** allocate a terminal (docker -t) */
  tty?: { rows: number; cols: number };
  /** volumes and host directories to mount (docker -v, --mount; see mounts.ts) */
  mounts?: MountRequest[];
  /** ports to publish while it runs (docker -p; see ports.ts): needs a network (not `none`) and a publisher (the daemon, the page) */
  ports?: PortBinding[];
  /** also publish every exposed port (the image's EXPOSE and `exposedPorts`) on a free host port (docker -P) */
  publishAll?: boolean;
  /** more ports the container exposes besides the image's (docker --expose) */
  exposedPorts?: number[];
  /** capabilities added to Docker's default set (docker --cap-add; `ALL`: every one; see confinement.ts) */
  capAdd?: string[];
  /** capabilities dropped from it (docker --cap-drop; `ALL`: every one, then capAdd's) */
  capDrop?: string[];
  /** mount the root filesystem read-only (docker --read-only) */
  readOnly?: boolean;
  /** the process cannot gain privileges through setuid files or file capabilities (--security-opt no-new-privileges) */
  noNewPrivileges?: boolean;
  /** `unconfined`, or a seccomp profile in Docker's JSON form (default: Docker's default profile) */
  seccomp?: "unconfined" | DockerSeccompProfile;
}

/** How `exec` runs a command in a container (Docker's exec fields). */
export interface ContainerExecOptions {
  /** more `KEY=VALUE` entries over the container's environment */
  env?: string[];
  /** run on a terminal of this size (docker exec -t) */
  tty?: { rows: number; cols: number };
  /** keep stdin open for `write` (docker exec -i) */
  interactive?: boolean;
  /** the working directory (default: the container's) */
  workingDir?: string;
  /** `user[:group]`, by name or number (default: the container's user) */
  user?: string;
  /** a command that cannot start prints nothing: the caller reports `exited`'s startError itself */
  quietStartError?: boolean;
}

/** A process `exec` started in a container. */
export interface ExecProcess extends GuestProcess {
  /** once it has exited: 126 and why, in Docker's words, when the runtime could not start the command */
  readonly exited: Promise<{ exitCode: number; signal: number; startError?: string }>;
  /** its PID as the VM sees it once it runs (undefined when it never started); one file read in the guest */
  processPid(): Promise<number | undefined>;
}

/** How `start` hands the container over. */
export interface StartOptions {
  /**
   * The caller follows the output until exit (an attached `run`): `start`
   * returns as soon as the runtime runs, without waiting for the container's
   * process to have started (default false: wait, so `exec` works at once).
   */
  attached?: boolean;
}

/** One chunk of a container's output, with when it came (ms since 1970). */
export interface LogEntry {
  stream: 1 | 2;
  data: Uint8Array;
  time: number;
}

/**
 * Output a container's log keeps in the host's memory (and in its VM's
 * snapshots): the newest. Past it the oldest output is dropped, as Docker's
 * json-file driver with max-size drops its oldest file; a container that
 * prints without end (`yes`) must not fill the daemon's memory.
 */
export const MAX_LOG_BYTES = 16 * 1024 * 1024;

/**
 * Drops the oldest entries of `logs` (in place) until what stays is at most
 * three quarters of `max` bytes, so a log at its bound is trimmed once per
 * quarter of it, not on every chunk. Returns the bytes that stay.
 */
export function trimLog(logs: LogEntry[], max: number = MAX_LOG_BYTES): number {
  let total = logs.reduce((n, l) => n + l.data.length, 0);
  if (total <= max) return total;
  let drop = 0;
  while (drop < logs.length && total > (max * 3) / 4) total -= logs[drop++]!.data.length;
  logs.splice(0, drop);
  return total;
}

/** One container's record. */
export interface Container {
  id: string;
  name: string;
  image: ImageInfo;
  /** the image as the create named it (`busybox`), which Docker's lists and events show; absent for a build step's state */
  imageName?: string;
  /** the whole argv: entrypoint, then cmd */
  command: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  /** as given (`user[:group]`) */
  user?: string;
  /** as resolved in the container's files */
  processUser?: ProcessUser;
  labels: Record<string, string>;
  stopSignal: string;
  meta: Record<string, unknown>;
  /** why the container's process could not start (its exit code is then 126 or 127) */
  startError?: string;
  /** why the container's files are gone: its VM ended without a snapshot (see adoptLost); it cannot start again */
  lost?: string;
  /** PID 1 is docker-init, the command its child */
  init?: boolean;
  env: string[];
  hostname: string;
  limits: Limits;
  /** the network's name: `bridge`, `none` or a user network's */
  network: string;
  /** the network's id (absent in records from before user networks: the default bridge's or none's) */
  networkId?: string;
  ipAddress?: string;
  /** the subnet's prefix length and the gateway of `ipAddress` (absent in older records: the default bridge's) */
  ipPrefixLen?: number;
  gateway?: string;
  /** more names it answers to on its user network */
  aliases?: string[];
  runtime: Runtime;
  autoRemove: boolean;
  interactive: boolean;
  tty?: { rows: number; cols: number };
  /** its volumes and host directories, as made at create */
  mounts?: ContainerMount[];
  /** how its confinement differs from Docker's default (absent: the default) */
  confinement?: Confinement;
  /** the ports it publishes as asked (a host port 0: any free one, chosen at each start) */
  ports?: PortBinding[];
  /** the ports it exposes (the image's EXPOSE and --expose), ascending */
  exposedPorts?: number[];
  /** its ports as the publisher opened them: set while it runs */
  published?: PublishedPort[];
  createdAt: Date;
  status: ContainerStatus;
  startedAt?: Date;
  finishedAt?: Date;
  exitCode?: number;
  oomKilled: boolean;
  /** frozen by `pause` (the cgroup freezer); its status stays running */
  paused?: boolean;
  /** PID of the container's first process as the VM sees it, once read (see initPid); cleared at each start */
  initPid?: number;
  /** PID of the runtime process (`crun run`) in the guest */
  shimPid?: number;
  /** the agent request that started the runtime process (a restored guest's host follows it by this id) */
  shimRequestId?: number;
  logs: LogEntry[];
}

/** Something that happened to a container, as `docker events` reports it. */
export interface ContainerEvent {
  type: "container";
  /** create, start, die, oom, kill, stop, destroy, … */
  action: string;
  id: string;
  name: string;
  image: string;
  /** ms since 1970 */
  time: number;
  /** e.g. exitCode for die, signal for kill */
  attributes: Record<string, string>;
}

/** When `waitFor` resolves (Docker's wait conditions). */
export type WaitCondition = "not-running" | "next-exit" | "removed";

/** A started container's streams. */
export interface Attachment {
  /** everything the container printed so far, then what it prints next */
  onOutput(listener: (stream: 1 | 2, data: Uint8Array) => void): void;
  write(data: string | Uint8Array): void;
  closeStdin(): void;
  resize(rows: number, cols: number): Promise<void>;
  /** resolves with the container's exit code once it has stopped */
  exited: Promise<number>;
  /**
   * Once it has exited: the error of a start that failed (the runtime could
   * not make the container, or its command could not run; what an unattached
   * start throws), undefined when it ran. Its complaint was output already.
   */
  startError(): HyperlabError | undefined;
}

/** Resource usage of a running container, from its cgroup. */
export interface ContainerStats {
  memoryBytes: number;
  memoryPeakBytes: number;
  memoryLimitBytes?: number;
  cpuUsageUs: number;
  cpuThrottledUs: number;
  pids: number;
  pidsLimit?: number;
  /** CPU time in user and in kernel mode (µs) */
  cpuUserUs?: number;
  cpuSystemUs?: number;
  /** the cgroup's memory.stat counters (bytes and events), e.g. inactive_file */
  memoryStat?: Record<string, number>;
  /** the guest's CPU time since boot, all CPUs (ns), and its CPUs: a container's share as Docker computes it */
  systemCpuNs?: number;
  onlineCpus?: number;
  /** the guest's memory (bytes): what a container without a limit may use */
  guestMemoryBytes?: number;
  /** bytes and packets the container received and sent (absent without a network) */
  network?: { rxBytes: number; rxPackets: number; txBytes: number; txPackets: number };
}

/** A container's record as it is kept in a VM's snapshot (JSON: dates as ISO strings, logs base64). */
export interface ContainerRecord extends Omit<Container, "createdAt" | "startedAt" | "finishedAt" | "logs"> {
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  logs: Array<{ stream: 1 | 2; data: string; time?: number }>;
}

/** A container as its record (see ContainerRecord) describes it: dates and log bytes decoded. */
function containerOfRecord(r: ContainerRecord): Container {
  return {
    ...r,
    createdAt: new Date(r.createdAt),
    startedAt: r.startedAt ? new Date(r.startedAt) : undefined,
    finishedAt: r.finishedAt ? new Date(r.finishedAt) : undefined,
    logs: r.logs.map((l) => ({ stream: l.stream, data: base64ToBytes(l.data), time: l.time ?? Date.parse(r.createdAt) })),
  };
}

/** What an engine knows that its guest's memory does not: its containers' records, kept in the VM's snapshots. */
export interface EngineRecords {
  containers: ContainerRecord[];
  nextAddress: number;
  /** the networks, predefined and user ones (absent in records from before user networks) */
  networks?: NetworkRecord[];
}

const STATE_DIR = "/run/hyperlab/containers";
/** A start waits for its runtime's poststart hook until the guest has been idle this long meanwhile (see waitStarted). */
const START_IDLE_S = 30;
/** ... and no longer than this in any case, however busy the guest. */
const START_MAX_MS = 300_000;
/** Where Docker puts the --init process in a container. */
const INIT_PATH = "/sbin/docker-init";
const LAYER_DIR = "/var/lib/hyperlab/layers";
const CGROUP_ROOT = "/sys/fs/cgroup/hyperlab";
const CONTROLLERS = "+cpu +memory +pids +io";
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Docker's adjectives-and-scientists names, shortened. */
const NAME_PARTS = [
  ["brave", "calm", "eager", "fond", "keen", "lucid", "quirky", "wise", "bold", "jolly"],
  ["curie", "hopper", "lovelace", "turing", "noether", "ritchie", "torvalds", "knuth", "liskov", "hamilton"],
] as const;

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Docker-like verbs on one guest. Every verb checks its arguments before it
 * touches the guest and leaves nothing half-created when it fails.
 */
export class ContainerEngine {
  private readonly containers = new Map<string, Container>();
  private readonly exits = new Map<string, Promise<number>>();
  private prepared: Promise<void> | undefined;
  /** layer digest → its pull in progress or done, so concurrent runs share one pull */
  private readonly pulls = new Map<string, Promise<void>>();
  private nextAddress = 2;
  private networkTable = new NetworkTable();
  /** addresses handed to containers still being created ("networkId address") */
  private readonly reservedAddresses = new Set<string>();
  /** tools installed into the guest (or being installed), by name */
  private readonly tools = new Map<string, Promise<void>>();
  /** containers whose bundle has no started-marker hook yet (see create) */
  private readonly markerless = new Set<string>();
  /** containers removed with their anonymous volumes (docker rm -v) */
  private readonly removeVolumesOf = new Set<string>();
  /** containers being restarted: their stop is not the end of an auto-removed one */
  private readonly restarting = new Set<string>();
  /** OOM kills a container's cgroup counted before its current run (its cgroup outlives each run) */
  private readonly oomKillsBefore = new Map<string, number>();
  private readonly listeners = new Set<(e: ContainerEvent) => void>();
  /** output listeners of `attach`, by container id */
  private readonly attached = new Map<string, Set<(stream: 1 | 2, data: Uint8Array) => void>>();
  /** the runtime process of each running container (its stdin, size and signals) */
  private readonly shims = new Map<string, GuestProcess>();
  /** stdin written through `attach` before the container started */
  private readonly earlyStdin = new Map<string, Array<Uint8Array | "eof">>();
  /**
   * Output held back from `attach` listeners until a start that waits is
   * confirmed: if the process could not start, the runtime's complaint is
   * not the container's output (Docker reports it as the start's error).
   */
  private readonly held = new Map<string, LogEntry[]>();
  /** bytes in each container's log (at least: a log filtered elsewhere only shrinks), to trim it at MAX_LOG_BYTES */
  private readonly logBytes = new Map<string, number>();

  constructor(
    private readonly agent: EngineAgent,
    private readonly store: ImageStore,
    /**
     * `vm`: the VM this engine's guest is, named in its messages; `tools`: programs the host installs into the guest on first use
     * (docker-init for --init); `ports`: who publishes containers' ports (none: -p is refused)
     */
    private readonly opts: { vm?: string; tools?: ToolLoader; ports?: PortPublisher; mounts?: MountHostOptions } = {},
  ) {}

  private mountHostOf: MountHost | undefined;
  /** Makes containers' volumes and host directories real in the guest (`opts.mounts`: where they come from). */
  private get mountHost(): MountHost {
    return (this.mountHostOf ??= new MountHost(this.agent, this.opts.mounts ?? {}));
  }

  /** The volumes this engine's containers mount (undefined: it keeps none). */
  get volumes(): MountHost["volumes"] {
    return this.mountHost.volumes;
  }

  /** The images this engine can run. */
  images(): Promise<ImageInfo[]> {
    return this.store.list();
  }

  /** Containers, newest first; only running ones unless `all`. */
  ps(opts: { all?: boolean } = {}): Container[] {
    return [...this.containers.values()].filter((c) => opts.all || c.status === "running").sort((a, b) => +b.createdAt - +a.createdAt);
  }

  /** A container by id, id prefix or name; CONTAINER_NOT_FOUND otherwise. */
  get(ref: string): Container {
    const byName = [...this.containers.values()].find((c) => c.name === ref);
    if (byName) return byName;
    const matches = [...this.containers.values()].filter((c) => ref.length >= 1 && c.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new HyperlabError("INVALID_ARGUMENT", `'${ref}' matches ${matches.length} containers; give more of the id`);
    }
    throw new HyperlabError("CONTAINER_NOT_FOUND", `no such container: ${ref}${this.opts.vm ? ` (in VM ${this.opts.vm})` : ""}`);
  }

  /** Creates a container (bundle, root filesystem, cgroup) without starting it. */
  async create(opts: CreateOptions, start: StartOptions = {}): Promise<Container> {
    const runtime = opts.runtime ?? "crun";
    if (!RUNTIMES.includes(runtime)) {
      throw new HyperlabError("INVALID_ARGUMENT", `unknown runtime '${runtime}': use ${RUNTIMES.join(" or ")}`);
    }
    if (opts.name !== undefined) {
      if (!NAME_RE.test(opts.name)) {
        throw new HyperlabError("INVALID_ARGUMENT", `invalid container name '${opts.name}': use letters, digits, '_', '.' and '-'`);
      }
      const taken = [...this.containers.values()].find((c) => c.name === opts.name);
      if (taken) {
        throw new HyperlabError(
          "CONTAINER_EXISTS",
          `the container name '${opts.name}' is already in use by container ${taken.id.slice(0, 12)}; remove it or choose another name`,
          { id: taken.id, name: opts.name },
        );
      }
    }
    for (const e of opts.env ?? []) {
      if (!/^[^=]+=/.test(e)) throw new HyperlabError("INVALID_ARGUMENT", `invalid environment entry '${e}': use KEY=VALUE`);
    }
    const image = opts.imageInfo ?? (await this.store.get(opts.image));
    // Docker's rule: the entrypoint, then the command; an entrypoint given here drops the image's Cmd.
    const entrypoint = opts.entrypoint ?? image.config.Entrypoint ?? [];
    const cmd = opts.command?.length ? opts.command : opts.entrypoint !== undefined ? [] : (image.config.Cmd ?? []);
    const command = [...entrypoint, ...cmd];
    if (command.length === 0) {
      throw new HyperlabError("INVALID_ARGUMENT", `image ${image.reference} has no default command; give one after the image name`);
    }
    const stopSignal = opts.stopSignal ?? "SIGTERM";
    if (!/^(SIG)?[A-Z0-9]+$/i.test(stopSignal)) throw new HyperlabError("INVALID_ARGUMENT", `invalid stop signal '${stopSignal}'`);
    for (const [k, v] of Object.entries(opts.labels ?? {})) {
      if (typeof v !== "string") throw new HyperlabError("INVALID_ARGUMENT", `label '${k}' must be a string`);
    }
    const confinement = confinementOf(opts);
    const net = this.networkTable.get(opts.network ?? "bridge");
    const exposed = [...new Set([...imageTcpPorts(image.config.ExposedPorts), ...(opts.exposedPorts ?? [])])].sort((a, b) => a - b);
    const ports = withPublishAll(opts.ports ?? [], exposed, opts.publishAll === true);
    if (ports.length) {
      checkDuplicates(ports);
      if (!this.opts.ports) throw new HyperlabError("NOT_SUPPORTED", "published ports need a host that relays them (the hyperlab daemon, or the page); none does here");
      if (net.name === "none") throw new HyperlabError("INVALID_ARGUMENT", "a container on network none cannot publish ports (-p/-P): nothing could reach it; drop -p or use the default bridge or a user network");
    }
    const endpoint = this.endpoint(net, opts);
    try {
      await this.prepare();
      if (opts.init) await this.ensureTool("docker-init");
      await this.pullLayers(image);
    } catch (err) {
      endpoint.release();
      throw err;
    }
    let mounts: ContainerMount[] | undefined;
    try {
      mounts = opts.mounts?.length ? await this.mountHost.resolve(opts.mounts) : undefined;
    } catch (err) {
      endpoint.release();
      throw err;
    }

    const id = randomHex(32);
    const name = opts.name ?? this.generateName();
    const c: Container = {
      id,
      name,
      image,
      // Docker lists and reports the image as it was asked for (`busybox`), not its full reference.
      imageName: opts.imageInfo ? undefined : opts.image,
      command,
      entrypoint,
      cmd,
      workingDir: opts.workingDir || image.config.WorkingDir || "/",
      // Docker's rule: the user given, else the image's USER.
      user: opts.user || image.config.User || undefined,
      labels: { ...opts.labels },
      stopSignal,
      meta: { ...opts.meta },
      init: opts.init === true || undefined,
      env: mergeEnv(image.config.Env ?? [], opts.env ?? [], opts.tty ? ["TERM=xterm"] : []),
      hostname: opts.hostname ?? id.slice(0, 12),
      limits: opts.limits ?? {},
      network: net.name,
      networkId: net.id,
      ipAddress: endpoint.address,
      ipPrefixLen: endpoint.address ? prefixOf(net) : undefined,
      gateway: endpoint.address ? net.gateway : undefined,
      aliases: endpoint.aliases,
      runtime,
      autoRemove: opts.autoRemove ?? false,
      interactive: opts.interactive ?? false,
      tty: opts.tty,
      ports: ports.length ? ports : undefined,
      exposedPorts: exposed.length ? exposed : undefined,
      mounts,
      confinement,
      createdAt: new Date(),
      status: "created",
      oomKilled: false,
      logs: [],
    };

    const dir = `${STATE_DIR}/${id}`;
    const layers = image.layers.map((l) => `${LAYER_DIR}/${l.digest.replace("sha256:", "")}`).reverse();
    // The started marker's hook costs a process per start: only a start that waits for it
    // (not attached) needs it. A create that does not know yet leaves it out; start adds it then.
    const withMarker = start.attached === false;
    if (!withMarker) this.markerless.add(id);
    // A user is resolved in the container's own files, which exist once its root is mounted: its config comes after.
    const config = c.user === undefined ? this.bundle(c, withMarker) : undefined;
    // The bundle: overlayfs over the image layers with a private writable
    // layer, and the container's parent cgroup. The agent does each step
    // itself (no process started), and it carries out file requests in the
    // order they arrive (docs/agent-protocol.md), so all are sent at once and
    // the mount still comes after the directories it needs.
    try {
      await Promise.all([
        ...["rootfs", "upper", "work"].map((d) => this.agent.mkdir(`${dir}/${d}`)),
        this.agent.mkdir(`${CGROUP_ROOT}/${id}`),
        ...(config ? [this.agent.writeFile(`${dir}/config.json`, JSON.stringify(config, null, 1))] : []),
        this.agent.mount({
          target: `${dir}/rootfs`,
          source: "overlay",
          fstype: "overlay",
          options: `lowerdir=${layers.join(":")},upperdir=${dir}/upper,workdir=${dir}/work`,
        }),
        this.agent.writeFile(`${CGROUP_ROOT}/${id}/cgroup.subtree_control`, CONTROLLERS),
        // A user network's container gets its own /etc/hosts (see network.ts), naming itself until it starts.
        ...(isUserNetwork(c) ? [this.agent.writeFile(`${dir}/hosts`, this.hostsOf(c, [c]))] : []),
      ]);
      // Docker's copy-up: an empty volume gets the image's files at its mount point.
      if (c.mounts?.some((m) => m.type === "volume")) await this.mountHost.populate(c.mounts, `${dir}/rootfs`);
      if (c.user !== undefined) {
        const read = (f: string) => this.agent.readFile(`${dir}/rootfs/etc/${f}`).then((b) => new TextDecoder().decode(b), () => undefined);
        const [passwd, group] = await Promise.all([read("passwd"), read("group")]);
        c.processUser = resolveUser(c.user, { passwd, group });
        await this.agent.writeFile(`${dir}/config.json`, JSON.stringify(this.bundle(c, withMarker), null, 1));
      }
    } catch (err) {
      endpoint.release();
      await this.cleanup(c).catch(() => {});
      if (c.mounts) await this.mountHost.release(c.mounts, (share) => this.shareInUse(share, c), true);
      if (errnoOf(err) === "ENOSPC") throw new HyperlabError("RESOURCE_EXHAUSTED", `cannot create container ${c.name}: ${(err as Error).message}; ${RUN_FULL}`);
      throw err;
    }
    this.containers.set(id, c);
    endpoint.release(); // the container holds its address from now on
    this.emit(c, "create");
    return c;
  }

  /**
   * Starts a created container, or an exited one again (its bundle runs
   * anew: same id, name, files and log); returns its streams.
   */
  async start(ref: string, opts: StartOptions = {}): Promise<Attachment> {
    const c = this.get(ref);
    if (c.status === "running") {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot start container ${c.name}: it is already running`);
    }
    if (c.lost) {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot start container ${c.name}: ${c.lost}; its files went with that guest: remove it (rm ${c.name}) and run it again`);
    }
    if (c.status === "exited") await this.prepareRerun(c);
    if (isUserNetwork(c)) {
      // Its network may have been removed since it was created (Docker allows that while no container on it runs).
      if (!c.networkId || !this.networkTable.withId(c.networkId)) throw new HyperlabError("NETWORK_NOT_FOUND", `network ${c.network} not found`, { network: c.network });
      // Its peers learn its names, and it theirs, before its process runs.
      await this.writeHosts(c.networkId, c);
    }
    const dir = `${STATE_DIR}/${c.id}`;
    if (!opts.attached && this.markerless.has(c.id)) {
      await this.agent.writeFile(`${dir}/config.json`, JSON.stringify(this.bundle(c, true), null, 1));
      this.markerless.delete(c.id);
    }
    // Its ports open before its process runs (as dockerd's): a port in use refuses the start, and it stays as it was.
    if (c.ports?.length) c.published = await this.publishPorts(c);
    if (!opts.attached) this.held.set(c.id, []);
    const shim = this.agent.spawn([c.runtime, "run", "--bundle", dir, "--pid-file", `${dir}/pid`, c.id], {
      stdin: c.interactive ? true : undefined,
      pty: c.tty,
      timeoutMs: Infinity,
    });
    const attachment = this.follow(c, shim);
    // A runtime that never ran leaves no exit to close its ports at.
    c.shimPid = await shim.pid.catch((err: unknown) => {
      this.unpublishPorts(c);
      throw err;
    });
    c.shimRequestId = shim.requestId;
    c.status = "running";
    c.startedAt = new Date();
    this.emit(c, "start");
    for (const chunk of this.earlyStdin.get(c.id) ?? []) chunk === "eof" ? shim.closeStdin() : shim.write(chunk);
    this.earlyStdin.delete(c.id);
    if (!opts.attached) {
      await this.waitStarted(c, attachment.exited).finally(() => this.release(c));
      // Its process could not even start (exit code 126 or 127): a failed start, as Docker reports it.
      // A runtime that failed on its own (exit code 128, as dockerd records it) is the daemon's error, not the request's.
      const failed = startErrorOf(c);
      if (failed) throw failed;
    }
    return attachment;
  }

  /** Opens `c`'s published ports through the engine's publisher (see PortPublisher). */
  private async publishPorts(c: Container): Promise<PublishedPort[]> {
    if (!this.opts.ports) throw new HyperlabError("NOT_SUPPORTED", `container ${c.name} publishes ports, and no host relays them here (the hyperlab daemon or the page does)`);
    if (!c.ipAddress) throw new HyperlabError("INVALID_ARGUMENT", `container ${c.name} has no address to publish ports to (network ${c.network})`);
    return this.opts.ports.publish({ containerId: c.id, containerName: c.name, ipAddress: c.ipAddress, bindings: c.ports ?? [] });
  }

  /** Closes `c`'s published ports (it stopped or went). */
  private unpublishPorts(c: Container): void {
    if (!c.published) return;
    c.published = undefined;
    this.opts.ports?.unpublish(c.id);
  }

  /** The container's OCI runtime config; `startedMarker`: with the poststart hook that marks it started (see waitStarted). */
  private bundle(c: Container, startedMarker: boolean): object {
    const confinement = applyConfinement(c.confinement);
    // crun loads the filter compiled here instead of building it with libseccomp at each start (seccomp-bpf.ts).
    const bpf = c.runtime === "crun" && confinement.seccomp ? compileSeccomp(confinement.seccomp) : undefined;
    const seccompBpf: Record<string, string> = bpf ? { [CRUN_BPF_ANNOTATION]: bpf } : {};
    return bundleConfig({
      args: c.command,
      env: c.env,
      cwd: c.workingDir,
      user: c.processUser,
      hostname: c.hostname,
      cgroupsPath: `/hyperlab/${c.id}/payload`,
      limits: c.limits,
      terminal: !!c.tty,
      // Both runtimes bring up the loopback of a new network namespace: only a bridge needs the hook.
      networkHook: c.ipAddress
        ? { path: NETWORK_HOOK_PATH, args: networkHookArgs(c.ipAddress, c.ipPrefixLen ?? 16, `hl${c.id.slice(0, 8)}`, c.networkId ? this.networkTable.withId(c.networkId) : undefined) }
        : undefined,
      binds: [
        ...(isUserNetwork(c) ? [{ source: `${STATE_DIR}/${c.id}/hosts`, destination: "/etc/hosts" }] : []),
        // Docker's --init: tini as PID 1, from the host's tool, read-only where Docker puts it.
        ...(c.init ? [{ source: `${TOOLS_DIR}/docker-init`, destination: INIT_PATH, readonly: true }] : []),
        // -v and --mount: the guest's view of each volume or host directory (see mounts.ts).
        ...(c.mounts ?? []).map((m) => ({ source: m.guestPath, destination: m.destination, readonly: m.readOnly })),
      ],
      ...(c.init ? { args: [INIT_PATH, "--", ...c.command] } : {}),
      startedMarker: startedMarker ? `${STATE_DIR}/${c.id}/started` : undefined,
      annotations: { "io.hyperlab.name": c.name, "io.hyperlab.image": c.image.reference, ...seccompBpf },
      // With the program in the annotation crun never reads the rules: not written, not parsed.
      confinement: bpf ? { ...confinement, seccomp: undefined } : confinement,
    });
  }

  /** Keeps a running container's output in its log and its exit in its record; the streams callers attach to. */
  private follow(c: Container, shim: GuestProcess): Attachment {
    const listeners: Array<(stream: 1 | 2, data: Uint8Array) => void> = [];
    shim.onOutput((stream, data) => {
      const entry = { stream, data, time: Date.now() };
      c.logs.push(entry);
      const logged = (this.logBytes.get(c.id) ?? 0) + data.length;
      this.logBytes.set(c.id, logged > MAX_LOG_BYTES ? trimLog(c.logs) : logged);
      for (const l of listeners) l(stream, data);
      const held = this.held.get(c.id);
      if (held) held.push(entry);
      else for (const l of this.attached.get(c.id) ?? []) l(stream, data);
    });
    this.shims.set(c.id, shim);
    const exited = shim.exited.then(
      async ({ exitCode, signal }) => this.onExit(c, signal ? 128 + signal : exitCode),
      async (err: unknown) => {
        await this.onShimLost(c, shim, err);
        throw err;
      },
    );
    exited.catch(() => {});
    this.exits.set(c.id, exited);
    return {
      // Output that came before the caller listened (a quick command) is replayed first.
      onOutput: (l) => {
        for (const { stream, data } of c.logs) l(stream, data);
        listeners.push(l);
      },
      write: (d) => shim.write(d),
      closeStdin: () => shim.closeStdin(),
      resize: (rows, cols) => shim.resize(rows, cols),
      exited,
      startError: () => startErrorOf(c),
    };
  }

  /** The containers' records, for the VM's snapshot (see `restoreRecords`). */
  records(): EngineRecords {
    return {
      nextAddress: this.nextAddress,
      networks: this.networkTable.records(),
      containers: [...this.containers.values()].map((c) => ({
        ...c,
        createdAt: c.createdAt.toISOString(),
        startedAt: c.startedAt?.toISOString(),
        finishedAt: c.finishedAt?.toISOString(),
        logs: c.logs.map((l) => ({ stream: l.stream, data: bytesToBase64(l.data), time: l.time })),
      })),
    };
  }

  /**
   * Takes back the records a snapshot kept, in the guest restored (or forked)
   * from it: its containers are listed again, and each that was running is
   * followed through the agent's request that started it, so its output, exit
   * and `exec` work as before. A running container whose process the agent
   * cannot hand over is marked exited (-1). Legal on a new engine, before any create.
   */
  restoreRecords(records: EngineRecords): void {
    if (this.containers.size) throw new HyperlabError("CONTAINER_INVALID_STATE", "an engine takes back a snapshot's records only before it has containers of its own");
    this.nextAddress = records.nextAddress;
    this.networkTable = new NetworkTable(records.networks);
    this.prepared = Promise.resolve(); // the guest was prepared before its snapshot
    for (const r of records.containers) {
      const c = containerOfRecord(r);
      this.containers.set(c.id, c);
      // Whether its bundle has the started marker's hook is not recorded: a start writes it again.
      if (c.status === "created") this.markerless.add(c.id);
      // Ports belong to the host that opened them, not to the snapshot: a running one asks this host again
      // (a fork of a VM whose container holds a fixed port finds it taken, and runs without it).
      c.published = undefined;
      if (c.status !== "running") continue;
      if (c.ports?.length && this.opts.ports) {
        this.publishPorts(c).then(
          (published) => (c.status === "running" ? (c.published = published) : this.opts.ports?.unpublish(c.id)),
          () => {},
        );
      }
      if (this.agent.adopt && c.shimRequestId !== undefined && c.shimPid !== undefined) {
        this.follow(c, this.checked(this.agent.adopt(c.shimRequestId, { pid: c.shimPid, what: `${c.runtime} run ${c.id}` }), c.shimPid));
      } else {
        c.status = "exited";
        c.exitCode = -1;
        c.finishedAt = new Date();
      }
    }
  }

  /**
   * Takes into the engine of a fresh guest the records of containers whose
   * guest was lost (its VM ended without a snapshot: the daemon killed, a
   * power cut), so they are listed, never silently gone: each is exited,
   * those that were running or created with exit code 255 (as Docker reports
   * containers a crash took), and `lost` says why. Their files went with the
   * guest, so none can start again. Their logs, networks and volumes stay.
   * Legal on a new engine, before any create.
   */
  adoptLost(records: EngineRecords, reason: string, at: Date = new Date()): void {
    if (this.containers.size) throw new HyperlabError("CONTAINER_INVALID_STATE", "an engine takes back lost records only before it has containers of its own");
    this.nextAddress = records.nextAddress;
    this.networkTable = new NetworkTable(records.networks);
    for (const r of records.containers) {
      const wasUp = r.status !== "exited";
      const c = containerOfRecord(r);
      this.containers.set(r.id, {
        ...c,
        finishedAt: wasUp ? new Date(Math.max(+at, c.startedAt ? +c.startedAt : 0)) : c.finishedAt,
        status: "exited",
        exitCode: wasUp ? 255 : r.exitCode,
        paused: false,
        initPid: undefined,
        shimPid: undefined,
        shimRequestId: undefined,
        published: undefined,
        lost: reason,
      });
    }
  }

  /**
   * Resolves once the runtime's poststart hook has marked the container
   * started, or it has already exited (a quick command), as `docker start` does.
   */
  private async waitStarted(c: Container, exited: Promise<number>): Promise<void> {
    let done = false;
    const finish = () => void (done = true);
    exited.then(finish, finish);
    const marker = `${STATE_DIR}/${c.id}/started`;
    // A runtime that hangs leaves the guest's CPU idle; one that is merely slow (a guest busy with other
    // containers' starts on a loaded host: the soak saw 30 s go by) keeps it busy. So the wait gives up
    // after 30 s only once the guest has been idle for 30 s of it, and after 5 minutes in any case.
    const t0 = performance.now();
    const idleAtStart = this.guestIdleSeconds();
    let deadline = t0 + START_IDLE_S * 1000;
    for (let delay = 2; !done; delay = Math.min(delay * 2, 50)) {
      if (await this.agent.stat(marker).then(() => true, () => false)) return;
      if (performance.now() > deadline) {
        const [before, now] = await Promise.all([idleAtStart, this.guestIdleSeconds()]);
        const idle = before === undefined || now === undefined ? Infinity : now - before;
        const waited = (performance.now() - t0) / 1000;
        if (idle >= START_IDLE_S || waited * 1000 >= START_MAX_MS) {
          throw new HyperlabError(
            "TIMEOUT",
            `container ${c.name} did not start within ${Math.round(waited)} s, ${Number.isFinite(idle) ? `${Math.round(idle)} s of which the guest's CPU was idle` : "and the guest's idle time could not be read"} (waited for the runtime's poststart hook)`,
          );
        }
        deadline = performance.now() + 1000;
      }
      await Promise.race([exited.catch(() => 0), new Promise((r) => setTimeout(r, delay))]);
    }
  }

  /** The guest's idle CPU time in seconds (/proc/uptime's second figure), or undefined when it cannot be read. */
  private guestIdleSeconds(): Promise<number | undefined> {
    return this.agent.readFile("/proc/uptime").then(
      (b) => {
        const idle = Number(new TextDecoder().decode(b).split(" ")[1]);
        return Number.isFinite(idle) ? idle : undefined;
      },
      () => undefined,
    );
  }

  /** Creates and starts a container. */
  async run(opts: CreateOptions, start: StartOptions = {}): Promise<{ container: Container; attachment: Attachment }> {
    const container = await this.create(opts, { attached: start.attached ?? false });
    try {
      return { container, attachment: await this.start(container.id, start) };
    } catch (err) {
      await this.remove(container.id, { force: true }).catch(() => {});
      throw err;
    }
  }

  /** The networks: `bridge` and `none`, then the user networks, oldest first. */
  networks(): Network[] {
    return this.networkTable.list();
  }

  /** A network by full id, name or unique id prefix; NETWORK_NOT_FOUND otherwise. */
  network(ref: string): Network {
    return this.networkTable.get(ref);
  }

  /** The containers on `net`, any state, newest first. */
  networkContainers(net: Network): Container[] {
    return this.ps({ all: true }).filter((c) => (c.networkId ? c.networkId === net.id : c.network === net.name));
  }

  /**
   * Creates a user network (Docker's `network create`): its subnet and
   * gateway are given or the first free /24 of 10.89.0.0/16. Its bridge is
   * made in the guest by the first container's hook; the guest is not asked
   * here. NETWORK_EXISTS when the name is taken. Legal any time.
   */
  async createNetwork(opts: NetworkOptions): Promise<Network> {
    return this.networkTable.create(opts);
  }

  /**
   * Removes a user network and its bridge in the guest. NETWORK_IN_USE while a
   * container on it runs (Docker's "active endpoints") and for the predefined
   * networks; containers created on it that have not run cannot start after.
   */
  async removeNetwork(ref: string): Promise<Network> {
    const net = this.networkTable.get(ref);
    if (net.builtin) throw new HyperlabError("NETWORK_IN_USE", `${net.name} is a pre-defined network and cannot be removed`, { network: net.name });
    const running = this.networkContainers(net).filter(isAttached);
    if (running.length) {
      throw new HyperlabError("NETWORK_IN_USE", `error while removing network: network ${net.name} id ${net.id} has active endpoints (containers ${running.map((c) => c.name).join(", ")}); stop them first`, {
        network: net.name,
        containers: running.map((c) => c.name),
      });
    }
    this.networkTable.delete(net);
    // The bridge exists once a container has been on the network; its veths went with their containers.
    const bridge = bridgeName(net);
    const made = await this.agent.stat(`/sys/class/net/${bridge}`).then(() => true, () => false);
    if (made) await this.program("ip", ["link", "delete", bridge], `delete bridge ${bridge} of network ${net.name}`);
    return net;
  }

  /**
   * The address (and aliases) a new container gets on `net`, checked before
   * the guest is touched, and reserved until `release` (the container holds it
   * once it is recorded) so concurrent creates never share one.
   */
  private endpoint(net: Network, opts: CreateOptions): { address?: string; aliases?: string[]; release(): void } {
    const aliases = opts.aliases?.length ? [...opts.aliases] : undefined;
    if (net.builtin) {
      if (aliases) throw new HyperlabError("INVALID_ARGUMENT", "network-scoped alias is supported only for containers in user defined networks");
      if (opts.ipAddress) throw new HyperlabError("INVALID_ARGUMENT", "user specified IP address is supported on user defined networks only");
      // The default bridge numbers its containers from 10.88.0.2 on (a /16).
      const address = net.builtin === "bridge" ? intToIp(ipToInt(`${BRIDGE_PREFIX}.0`)! + this.nextAddress++) : undefined;
      return { address, release: () => {} };
    }
    for (const a of aliases ?? []) {
      if (!NAME_RE.test(a)) throw new HyperlabError("INVALID_ARGUMENT", `invalid network alias '${a}': use letters, digits, '_', '.' and '-'`);
    }
    if (opts.ipAddress && !net.subnetGiven) {
      throw new HyperlabError("INVALID_ARGUMENT", `user specified IP address is supported only when connecting to networks with user configured subnets: create network ${net.name} with --subnet`);
    }
    const used = [...this.containers.values()].filter((c) => c.networkId === net.id && c.status !== "exited" && c.ipAddress).map((c) => c.ipAddress!);
    const reserved = [...this.reservedAddresses].filter((r) => r.startsWith(`${net.id} `)).map((r) => r.slice(net.id.length + 1));
    const address = allocateAddress(net, [...used, ...reserved], opts.ipAddress);
    const key = `${net.id} ${address}`;
    this.reservedAddresses.add(key);
    return { address, aliases, release: () => void this.reservedAddresses.delete(key) };
  }

  /** The /etc/hosts of user-network container `c`, naming `members` (see network.ts). */
  private hostsOf(c: Container, members: Container[]): string {
    const entry = (m: Container): HostsEntry => ({ address: m.ipAddress!, names: [m.name, ...(m.aliases ?? []), m.id.slice(0, 12), m.hostname] });
    return hostsFile({ address: c.ipAddress!, hostname: c.hostname }, c.network, members.map(entry));
  }

  /**
   * Rewrites the /etc/hosts of every running container on network `networkId`
   * (and of `starting`, about to run), each naming all of them. The agent
   * writes a file in place (O_TRUNC), so the containers' bind mounts see it.
   */
  private async writeHosts(networkId: string, starting?: Container): Promise<void> {
    const members = [...this.containers.values()].filter((m) => m.networkId === networkId && m.ipAddress && (isAttached(m) || m === starting));
    await Promise.all(members.map((m) => this.agent.writeFile(`${STATE_DIR}/${m.id}/hosts`, this.hostsOf(m, members))));
  }

  /**
   * Copies an image's layers into the guest ahead of a run, as `docker pull`
   * does: from the host's store, which pulls the image from its registry
   * first when it has one and lacks the image (a page's store, ImageStore.ensure).
   */
  async pull(reference: string): Promise<ImageInfo> {
    await this.store.ensure(reference);
    const image = await this.store.get(reference);
    await this.prepare();
    await this.pullLayers(image);
    return image;
  }

  /**
   * An adopted runtime process whose end the restored guest may never report:
   * one that exited just before the snapshot was taken (its exit went to the
   * earlier host). If its PID is gone and no exit came within a second, it
   * counts as exited with 255 (status unknown).
   */
  private checked(proc: GuestProcess, pid: number): GuestProcess {
    const lost = new Promise<{ exitCode: number; signal: number }>((resolve) => {
      void this.agent.stat(`/proc/${pid}`).then(
        () => {},
        (err) => isAbsent(err) && setTimeout(() => resolve({ exitCode: 255, signal: 0 }), 1000),
      );
    });
    return { ...proc, pid: proc.pid, exited: Promise.race([proc.exited, lost]) };
  }

  /** Waits until a container has stopped; resolves with its exit code. */
  async wait(ref: string): Promise<number> {
    const c = this.get(ref);
    if (c.status === "exited") return c.exitCode ?? 0;
    const exit = this.exits.get(c.id);
    if (!exit) throw new HyperlabError("CONTAINER_INVALID_STATE", `container ${c.name} has not been started`);
    return exit;
  }

  /**
   * Resolves with the exit code as Docker's wait does: `not-running` at once
   * for a container that is not running, else at its exit; `next-exit` at
   * its next exit (a created one's first); `removed` once it is removed
   * (with the exit code it had). Registered before this call returns, so a
   * start that follows cannot be missed.
   */
  waitFor(ref: string, condition: WaitCondition = "not-running"): Promise<number> {
    const c = this.get(ref);
    if (condition === "not-running" && c.status !== "running") return Promise.resolve(c.exitCode ?? 0);
    const action = condition === "removed" ? "destroy" : "die";
    return new Promise((resolve) => {
      const off = this.onEvent((e) => {
        if (e.id !== c.id || e.action !== action) return;
        off();
        resolve(c.exitCode ?? Number(e.attributes.exitCode ?? 0));
      });
    });
  }

  /**
   * Follows a container's output from now on (`logs`: everything it printed
   * so far first), and writes to its stdin: before it starts, what is
   * written waits for the start; `announce`: a client attaches (an `attach`
   * event). Legal in any state: an exited container's output is that of its
   * next run (it can be started again).
   */
  attach(ref: string, opts: { logs?: boolean; announce?: boolean } = {}): { onOutput(l: (stream: 1 | 2, data: Uint8Array) => void): void; write(d: Uint8Array): void; closeStdin(): void; detach(): void } {
    const c = this.get(ref);
    // A client attaching (not a log follower) is an event, as dockerd reports it.
    if (opts.announce) this.emit(c, "attach");
    const own = new Set<(stream: 1 | 2, data: Uint8Array) => void>();
    let set = this.attached.get(c.id);
    if (!set) this.attached.set(c.id, (set = new Set()));
    const all = set;
    const stdin = (chunk: Uint8Array | "eof") => {
      const shim = this.shims.get(c.id);
      if (shim) chunk === "eof" ? shim.closeStdin() : shim.write(chunk);
      else if (c.status !== "running") this.earlyStdin.set(c.id, [...(this.earlyStdin.get(c.id) ?? []), chunk]);
    };
    return {
      onOutput: (l) => {
        if (opts.logs) for (const e of c.logs) l(e.stream, e.data);
        own.add(l);
        all.add(l);
      },
      write: (d) => stdin(d),
      closeStdin: () => stdin("eof"),
      detach: () => {
        for (const l of own) all.delete(l);
      },
    };
  }

  /** Subscribes to container events (create, start, die, oom, kill, stop, destroy, …); returns the unsubscribe. */
  onEvent(listener: (e: ContainerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Tells the event listeners that `action` happened to `c`. */
  protected emit(c: Container, action: string, attributes: Record<string, string> = {}): void {
    const image = c.imageName ?? c.image.reference;
    const e: ContainerEvent = { type: "container", action, id: c.id, name: c.name, image, time: Date.now(), attributes: { name: c.name, image, ...c.labels, ...attributes } };
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /**
   * Runs a command in a running container (`docker exec`): as the container's
   * user in its working directory unless `user`/`workingDir` say otherwise
   * (a user is resolved in the container's own passwd and group). A command
   * the runtime cannot start exits 126 with the reason in Docker's words
   * (`exited`'s startError; on stderr too unless `quietStartError`).
   * CONTAINER_INVALID_STATE unless it is running and not paused.
   */
  async exec(ref: string, argv: string[], opts: ContainerExecOptions = {}): Promise<ExecProcess> {
    const c = this.get(ref);
    if (c.status !== "running") {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot exec in container ${c.name}: it is ${c.status}, not running`);
    }
    if (c.paused) throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.name} is paused, unpause the container before exec`);
    if (argv.length === 0) throw new HyperlabError("INVALID_ARGUMENT", "exec needs a command");
    const dir = `${STATE_DIR}/${c.id}`;
    const user = opts.user ? await this.resolveUserOf(c, opts.user) : c.processUser;
    const cwd = opts.workingDir || c.workingDir;
    const pidFile = `${dir}/exec-${randomHex(8)}.pid`;
    const args = [c.runtime, "exec", "--cwd", cwd, "--pid-file", pidFile];
    if (user) args.push("--user", `${user.uid}:${user.gid}`);
    if (opts.tty) args.push("--tty");
    // The runtimes' exec keeps the container's capabilities and seccomp filter, and not its no-new-privileges.
    if (c.confinement?.noNewPrivileges) args.push("--no-new-privs");
    // The runtime's --env replaces the whole environment: give the container's
    // own, then TERM=xterm for a terminal (as docker exec -t), then the caller's.
    if (opts.env?.length || opts.tty) {
      for (const e of mergeEnv(c.env, opts.tty ? ["TERM=xterm"] : [], opts.env ?? [])) args.push("--env", e);
    }
    args.push(c.id, ...argv);
    const proc = this.agent.spawn(args, { pty: opts.tty, stdin: opts.interactive ? true : undefined, timeoutMs: Infinity });
    // The runtime's complaint about a command it could not start comes first and
    // alone, then it exits 255: held back until the exit tells which it was.
    const listeners: Array<(stream: 1 | 2, data: Uint8Array) => void> = [];
    let held: Array<[1 | 2, Uint8Array]> | undefined;
    let deciding = true;
    proc.onOutput((stream, data) => {
      if (deciding) {
        deciding = false;
        if (RUNTIME_COMPLAINT.test(plainComplaint(new TextDecoder().decode(data.subarray(0, 300))))) held = [];
      }
      if (held) held.push([stream, data]);
      else for (const l of listeners) l(stream, data);
    });
    const exited = proc.exited.then((e) => {
      const complaint = held && plainComplaint(new TextDecoder().decode(concatBytes(held.map(([, d]) => d))));
      const why = complaint !== undefined && e.exitCode === 255 ? execFailure(c.runtime, complaint, argv[0]!, cwd) : undefined;
      if (why) {
        const startError = `OCI runtime exec failed: exec failed: unable to start container process: ${why}: unknown`;
        if (!opts.quietStartError) for (const l of listeners) l(2, new TextEncoder().encode(startError + "\n"));
        return { exitCode: 126, signal: 0, startError };
      }
      for (const [stream, data] of held ?? []) for (const l of listeners) l(stream, data);
      held = undefined;
      return e;
    });
    exited.catch(() => {});
    // The runtime's pid file goes with the process: a page of the guest's RAM (/run is a tmpfs) per exec otherwise
    // (the soak's 2 000 execs took 11 MiB of a VM's memory).
    void proc.exited
      .catch(() => {})
      .then(() => this.agent.remove(pidFile))
      .catch(() => {});
    const processPid = () =>
      this.agent.readFile(pidFile).then(
        (b) => Number(new TextDecoder().decode(b).trim()) || undefined,
        () => undefined,
      );
    return {
      ...proc,
      exited,
      onOutput: (l) => void listeners.push(l),
      processPid,
      // The runtime gives the process a terminal of its own: the size goes to that one too.
      resize: async (rows, cols) => {
        await proc.resize(rows, cols);
        const pid = await processPid();
        if (pid) await this.setTerminalSize(pid, rows, cols);
      },
    };
  }

  /**
   * Sets the size of the terminal process `pid` (in a container) reads, which
   * the runtime made for it: resizing the runtime's own terminal does not
   * reach it (crun passes a size on only at the start). Its foreground
   * processes get SIGWINCH from the kernel.
   */
  private async setTerminalSize(pid: number, rows: number, cols: number): Promise<void> {
    const r = await this.agent.exec(["/bin/sh", "-c", 'for f in 0 1 2; do stty -F "/proc/$1/fd/$f" rows "$2" cols "$3" 2>/dev/null && exit 0; done; exit 1', "-", String(pid), String(rows), String(cols)]);
    if (r.exitCode !== 0) throw new HyperlabError("RUNTIME_ERROR", `could not resize the terminal of process ${pid}: it has none open (or it has exited)`);
  }

  /** `spec` ("user[:group]") resolved in `c`'s own /etc/passwd and /etc/group. */
  private async resolveUserOf(c: Container, spec: string): Promise<ProcessUser> {
    const read = (f: string) => this.agent.readFile(`${STATE_DIR}/${c.id}/rootfs/etc/${f}`).then((b) => new TextDecoder().decode(b), () => undefined);
    const [passwd, group] = await Promise.all([read("passwd"), read("group")]);
    return resolveUser(spec, { passwd, group });
  }

  /** Sends a signal to the container's main process (`docker kill`, default SIGKILL). */
  async kill(ref: string, signal = "KILL"): Promise<void> {
    const c = this.get(ref);
    if (c.status !== "running") {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot kill container ${c.name}: it is ${c.status}, not running`);
    }
    const sig = signal.replace(/^SIG/i, "").toUpperCase();
    if (!/^(\d+|[A-Z0-9]+)$/.test(sig)) throw new HyperlabError("INVALID_ARGUMENT", `invalid signal '${signal}'`);
    await this.program(c.runtime, ["kill", c.id, sig], `kill container ${c.name}`);
    this.emit(c, "kill", { signal: sig });
    // A paused container is thawed so that the signal is handled, as dockerd does.
    if (c.paused) await this.unpause(c.id).catch(() => {}); // it may have exited already (SIGKILL goes through a freezer)
  }

  /** Stops a container: SIGTERM, then SIGKILL after `timeoutS` seconds (`docker stop`). */
  async stop(ref: string, opts: { timeoutS?: number } = {}): Promise<void> {
    const c = this.get(ref);
    if (c.status !== "running") return;
    const exit = this.exits.get(c.id)!;
    await this.kill(c.id, c.stopSignal).catch(() => {});
    const timeoutMs = (opts.timeoutS ?? 10) * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const stopped = await Promise.race([exit.then(() => true), grace]);
    clearTimeout(timer); // a container that stopped in time leaves no timer holding the process open
    if (!stopped && c.status === "running") {
      await this.kill(c.id, "KILL").catch(() => {});
      await exit;
    }
    this.emit(c, "stop");
  }

  /** Removes a container; a running one only with `force` (which kills it first). */
  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const c = this.get(ref);
    // docker rm -v: its anonymous volumes go with it.
    if (opts.volumes) this.removeVolumesOf.add(c.id);
    if (c.status === "running") {
      if (!opts.force) {
        throw new HyperlabError(
          "CONTAINER_INVALID_STATE",
          `cannot remove container ${c.name}: it is running. Stop it first, or force removal with -f`,
        );
      }
      await this.kill(c.id, "KILL").catch(() => {});
      await this.exits.get(c.id);
    }
    await this.cleanup(c);
    this.forget(c);
  }

  /** What the container printed, by stream, in order, with when. */
  logs(ref: string): LogEntry[] {
    return this.get(ref).logs;
  }

  /**
   * Bytes the container has written to its root filesystem (Docker's
   * SizeRw): the sizes of what is not a folder in its overlay's upper
   * layer, read in the guest. Legal in any state (0 once nothing is left).
   */
  async sizeRw(ref: string): Promise<number> {
    const c = this.get(ref);
    const r = await this.agent.exec(["find", `${STATE_DIR}/${c.id}/upper`, "!", "-type", "d", "-exec", "stat", "-c", "%s", "{}", "+"]);
    return r.stdout.split("\n").reduce((n, line) => n + (Number(line) || 0), 0);
  }

  /** Current resource usage of a running container. */
  async stats(ref: string): Promise<ContainerStats> {
    const c = this.get(ref);
    if (c.status !== "running") {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `no stats for container ${c.name}: it is ${c.status}, not running`);
    }
    const cg = `${CGROUP_ROOT}/${c.id}`;
    const [current, peak, pids, cpu] = await Promise.all(
      ["memory.current", "memory.peak", "pids.current", "payload/cpu.stat"].map((f) =>
        this.agent.readFile(`${cg}/${f}`).then((b) => new TextDecoder().decode(b).trim()),
      ),
    ).catch((err: unknown) => {
      throw new HyperlabError("RUNTIME_ERROR", `could not read the cgroup of ${c.name}: ${(err as Error).message}`);
    });
    const stat = Object.fromEntries(cpu!.split("\n").map((l) => l.split(" ") as [string, string]));
    // The rest is for Docker's figures; each may be missing (a kernel without memory.stat's field, a container without a network).
    const read = (path: string) => this.agent.readFile(path).then((b) => new TextDecoder().decode(b), () => "");
    const veth = `/sys/class/net/hl${c.id.slice(0, 8)}/statistics`;
    const [memoryStat, uptime, online, meminfo, ...net] = await Promise.all([
      read(`${cg}/payload/memory.stat`),
      read("/proc/uptime"),
      read("/sys/devices/system/cpu/online"),
      read("/proc/meminfo"),
      ...(c.ipAddress ? ["tx_bytes", "tx_packets", "rx_bytes", "rx_packets"].map((f) => read(`${veth}/${f}`)) : []),
    ]);
    // The guest's CPU time: its uptime on each CPU (dockerd sums /proc/stat's ticks, which the guest's
    // tick sampling undercounts against the cgroup's exact usage; the uptime is a clock).
    const onlineCpus = online!.trim().split(",").reduce((n, r) => {
      const [a, b] = r.split("-").map(Number);
      return n + (b === undefined ? 1 : b - a! + 1);
    }, 0) || 1;
    const systemCpuNs = Math.round(Number(uptime!.split(" ")[0] ?? 0) * 1e9) * onlineCpus;
    // The host end of the veth: what it sends, the container receives.
    const [rxBytes, rxPackets, txBytes, txPackets] = net.map((v) => Number(v.trim()) || 0);
    return {
      memoryBytes: Number(current),
      memoryPeakBytes: Number(peak),
      memoryLimitBytes: c.limits.memoryBytes,
      cpuUsageUs: Number(stat.usage_usec ?? 0),
      cpuThrottledUs: Number(stat.throttled_usec ?? 0),
      pids: Number(pids),
      pidsLimit: c.limits.pidsLimit,
      cpuUserUs: Number(stat.user_usec ?? 0),
      cpuSystemUs: Number(stat.system_usec ?? 0),
      memoryStat: Object.fromEntries(
        memoryStat!
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split(" "))
          .map(([k, v]) => [k!, Number(v)]),
      ),
      systemCpuNs,
      onlineCpus,
      guestMemoryBytes: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo!)?.[1] ?? 0) * 1024 || undefined,
      network: net.length ? { rxBytes: rxBytes!, rxPackets: rxPackets!, txBytes: txBytes!, txPackets: txPackets! } : undefined,
    };
  }

  /** Freezes a running container's processes with the cgroup freezer (`docker pause`); emits pause. */
  async pause(ref: string): Promise<void> {
    const c = this.get(ref);
    if (c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is not running`);
    if (c.paused) throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is already paused`);
    await this.freeze(c, true);
    c.paused = true;
    this.emit(c, "pause");
  }

  /** Thaws a paused container (`docker unpause`); emits unpause. */
  async unpause(ref: string): Promise<void> {
    const c = this.get(ref);
    if (!c.paused || c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is not paused`);
    await this.freeze(c, false);
    c.paused = false;
    this.emit(c, "unpause");
  }

  /** Writes the container cgroup's cgroup.freeze and waits until the kernel reports it done (freezing is not instant). */
  private async freeze(c: Container, frozen: boolean): Promise<void> {
    const cg = `${CGROUP_ROOT}/${c.id}`;
    await this.agent.writeFile(`${cg}/cgroup.freeze`, frozen ? "1" : "0");
    const deadline = performance.now() + 10_000;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const events = new TextDecoder().decode(await this.agent.readFile(`${cg}/cgroup.events`));
      if (new RegExp(`^frozen ${frozen ? 1 : 0}$`, "m").test(events)) return;
      if (performance.now() > deadline) {
        throw new HyperlabError("TIMEOUT", `container ${c.name} was not ${frozen ? "frozen" : "thawed"} within 10 s (cgroup.events: ${events.trim().replace(/\n/g, ", ")})`);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /**
   * Gives a container another name (`docker rename`), in Docker's words when
   * it cannot: a name that is invalid or unchanged (INVALID_ARGUMENT), or taken
   * (CONTAINER_EXISTS). Emits rename with the old name. Legal in any state.
   */
  async rename(ref: string, name: string): Promise<void> {
    const c = this.get(ref);
    const wanted = name.replace(/^\//, "");
    if (!NAME_RE.test(wanted)) throw new HyperlabError("INVALID_ARGUMENT", `Invalid container name (/${wanted}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (wanted === c.name) throw new HyperlabError("INVALID_ARGUMENT", "Renaming a container with the same name as its current name");
    const taken = [...this.containers.values()].find((o) => o.name === wanted);
    if (taken) {
      throw new HyperlabError(
        "CONTAINER_EXISTS",
        `Conflict. The container name "/${wanted}" is already in use by container "${taken.id}". You have to remove (or rename) that container to be able to reuse that name.`,
        { id: taken.id, name: wanted },
      );
    }
    const oldName = c.name;
    c.name = wanted;
    this.emit(c, "rename", { oldName: `/${oldName}` });
    // On a user network its peers reach it by name: they learn the new one.
    if (isUserNetwork(c) && c.networkId && c.status === "running") await this.writeHosts(c.networkId);
  }

  /**
   * Sets the size of a running container's terminal (`docker resize`); a
   * container without one is left as it is (dockerd answers OK too).
   */
  async resize(ref: string, rows: number, cols: number): Promise<void> {
    const c = this.get(ref);
    if (c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is not running`);
    if (!c.tty) return;
    if (!(rows > 0 && cols > 0 && rows < 65536 && cols < 65536)) throw new HyperlabError("INVALID_ARGUMENT", `invalid terminal size ${rows}x${cols}: give rows and columns from 1 to 65535`);
    c.tty = { rows, cols };
    await this.shims.get(c.id)?.resize(rows, cols);
    const pid = await this.initPid(c.id);
    if (pid) await this.setTerminalSize(pid, rows, cols);
  }

  /**
   * Stops a running container (as `stop`, `timeoutS`) and runs its bundle
   * again (`docker restart`): the same id, name, files and log. An
   * auto-removed container is not removed by the stop. Emits restart after start.
   */
  async restart(ref: string, opts: { timeoutS?: number } = {}): Promise<void> {
    const c = this.get(ref);
    this.restarting.add(c.id);
    try {
      if (c.status === "running") await this.stop(c.id, opts);
      await this.start(c.id);
    } finally {
      this.restarting.delete(c.id);
    }
    this.emit(c, "restart");
  }

  /** Makes an exited container's bundle ready to run again: the runtime's old state, the start marker and pid file go. */
  private async prepareRerun(c: Container): Promise<void> {
    const dir = `${STATE_DIR}/${c.id}`;
    // `run` deletes the container when it exits; only a kill can leave the runtime's state behind.
    if (await this.agent.stat(`/run/${c.runtime}/${c.id}`).then(() => true, () => false)) {
      await this.program(c.runtime, ["delete", "--force", c.id], `delete the runtime's state of ${c.name}`);
    }
    const gone = (err: unknown) => (isAbsent(err) ? undefined : Promise.reject(err));
    const [, , events] = await Promise.all([
      this.agent.remove(`${dir}/started`).catch(gone),
      this.agent.remove(`${dir}/pid`).catch(gone),
      this.agent.readFile(`${CGROUP_ROOT}/${c.id}/memory.events`).then((b) => new TextDecoder().decode(b), () => ""),
    ]);
    // memory.events counts over every run: this run's OOM kills are those past the count now.
    this.oomKillsBefore.set(c.id, oomKills(events));
    // On a user network an exited container's address may have gone to another since.
    if (isUserNetwork(c) && c.networkId && c.ipAddress) {
      const holder = [...this.containers.values()].find((o) => o !== c && o.networkId === c.networkId && o.status !== "exited" && o.ipAddress === c.ipAddress);
      const net = this.networkTable.withId(c.networkId);
      if (holder && net) {
        const endpoint = this.endpoint(net, { image: c.image.reference, aliases: c.aliases });
        c.ipAddress = endpoint.address;
        endpoint.release();
        await this.agent.writeFile(`${dir}/config.json`, JSON.stringify(this.bundle(c, !this.markerless.has(c.id)), null, 1));
      }
    }
    c.exitCode = undefined;
    c.startError = undefined;
    c.oomKilled = false;
    c.initPid = undefined;
    c.paused = false;
  }

  /**
   * The PID of a running container's first process as the VM sees it
   * (`docker inspect`'s State.Pid): the runtime's pid file, else its `state`;
   * undefined when it does not run.
   */
  async initPid(ref: string): Promise<number | undefined> {
    const c = this.get(ref);
    if (c.status !== "running") return undefined;
    if (c.initPid === undefined) {
      const fromFile = await this.agent.readFile(`${STATE_DIR}/${c.id}/pid`).then((b) => Number(new TextDecoder().decode(b).trim()), () => 0);
      // A container started before runs wrote a pid file (a restored snapshot's) has the runtime's own record.
      const pid = fromFile || (await this.program(c.runtime, ["state", c.id], `read the state of ${c.name}`).then((out) => Number((JSON.parse(out) as { pid?: number }).pid ?? 0), () => 0));
      if (pid > 0 && c.status === "running") c.initPid = pid;
    }
    return c.initPid;
  }

  /**
   * The processes of a running container (`docker top`), from its cgroup:
   * Docker's default columns for no `psArgs` (or -ef), else busybox ps's
   * columns for those arguments. INVALID_ARGUMENT with ps's words when ps
   * refuses them.
   */
  async top(ref: string, psArgs = ""): Promise<ProcessTable> {
    const c = this.get(ref);
    if (c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is not running`);
    const cg = `${CGROUP_ROOT}/${c.id}`;
    if (isDefaultPsArgs(psArgs)) return parseDefaultTop((await this.agent.exec(["/bin/sh", "-c", DEFAULT_TOP_SCRIPT, "-", cg])).stdout);
    const r = await this.agent.exec(["/bin/sh", "-c", PS_TOP_SCRIPT, "-", cg, ...psArgs.trim().split(/\s+/)]);
    if (r.exitCode !== 0) {
      const why = r.stderr.trim().split("\n").find((l) => /\S/.test(l))?.replace(/^ps: /, "") ?? `exit status ${r.exitCode}`;
      throw new HyperlabError("INVALID_ARGUMENT", `ps: ${why} (the guest's ps is busybox's: use -o with its columns)`);
    }
    return parsePsTop(r.stdout);
  }

  /** The stat of `path` in a container's files, running or not (`HEAD /archive`); FILE_NOT_FOUND when there is none. */
  statPath(ref: string, path: string): Promise<PathStat> {
    const c = this.get(ref);
    return statPath(this.agent, `${STATE_DIR}/${c.id}/rootfs`, path, ref);
  }

  /** A tar of `path` in a container's files, running or not (`docker cp` out), streaming; see archive.ts. */
  readArchive(ref: string, path: string): Promise<ArchiveRead> {
    const c = this.get(ref);
    return readArchive(this.agent, `${STATE_DIR}/${c.id}/rootfs`, path, ref);
  }

  /**
   * Extracts a tar into the folder `path` of a container's files (`docker cp`
   * in): files belong to root, or with `copyOwner` to the container's user.
   */
  writeArchive(ref: string, path: string, tar: AsyncIterable<Uint8Array>, opts: { copyOwner?: boolean } = {}): Promise<void> {
    const c = this.get(ref);
    const owner = opts.copyOwner ? `${c.processUser?.uid ?? 0}:${c.processUser?.gid ?? 0}` : undefined;
    return writeArchive(this.agent, `${STATE_DIR}/${c.id}/rootfs`, path, tar, ref, owner);
  }

  /** Docker-style inspection data. */
  inspect(ref: string): Record<string, unknown> {
    const c = this.get(ref);
    return {
      Id: c.id,
      Name: `/${c.name}`,
      Created: c.createdAt.toISOString(),
      Path: c.command[0],
      Args: c.command.slice(1),
      State: {
        Status: c.status,
        Running: c.status === "running",
        OOMKilled: c.oomKilled,
        ExitCode: c.exitCode ?? 0,
        StartedAt: c.startedAt?.toISOString() ?? "",
        FinishedAt: c.finishedAt?.toISOString() ?? "",
      },
      Image: c.image.id,
      Config: { Hostname: c.hostname, Env: c.env, Cmd: c.command, Image: c.image.reference, Tty: !!c.tty, OpenStdin: c.interactive },
      HostConfig: {
        Runtime: c.runtime,
        AutoRemove: c.autoRemove,
        Memory: c.limits.memoryBytes ?? 0,
        NanoCpus: c.limits.cpuQuotaUs ? Math.round((c.limits.cpuQuotaUs / (c.limits.cpuPeriodUs ?? 100_000)) * 1e9) : 0,
        PidsLimit: c.limits.pidsLimit ?? 0,
        NetworkMode: c.network,
      },
      NetworkSettings: c.ipAddress
        ? { Network: c.network, IPAddress: c.ipAddress, IPPrefixLen: c.ipPrefixLen ?? 16, Gateway: c.gateway ?? BRIDGE_GATEWAY, Aliases: c.aliases ?? [] }
        : { Network: c.network, IPAddress: "" },
    };
  }

  private async onExit(c: Container, exitCode: number): Promise<number> {
    const finishedAt = new Date();
    this.unpublishPorts(c);
    // What the exit was is read first: the container turns exited only with its exit code, so a wait or an
    // inspect never sees it exited with the code of no exit (0) while the guest is being asked.
    const events = await this.agent.readFile(`${CGROUP_ROOT}/${c.id}/memory.events`).then(
      (b) => new TextDecoder().decode(b),
      () => "",
    );
    const failed = exitCode === 1 ? (startFailure(c) ?? (await this.runtimeFailure(c))) : undefined;
    c.status = "exited";
    c.paused = false;
    c.finishedAt = finishedAt;
    c.oomKilled = oomKills(events) > (this.oomKillsBefore.get(c.id) ?? 0);
    c.exitCode = c.oomKilled ? 137 : exitCode;
    if (failed) {
      c.exitCode = failed.exitCode;
      c.startError = failed.message;
      // The runtime's complaint is the start's error, not the container's output.
      const complaint = c.logs.find((l) => l.stream === 2);
      c.logs = c.logs.filter((l) => l !== complaint);
      const held = this.held.get(c.id);
      if (held) this.held.set(c.id, held.filter((l) => l !== complaint));
    }
    this.release(c);
    this.shims.delete(c.id);
    this.attached.delete(c.id);
    // Its peers forget its names (not awaited: the exit is reported at once).
    if (isUserNetwork(c) && c.networkId) void this.writeHosts(c.networkId).catch(() => {});
    if (c.oomKilled) this.emit(c, "oom");
    this.emit(c, "die", { exitCode: String(c.exitCode) });
    // A restart stops it to run it again: not the exit that removes it.
    if (c.autoRemove && !this.restarting.has(c.id)) {
      await this.cleanup(c).catch(() => {});
      this.forget(c);
    }
    return c.exitCode;
  }

  /**
   * The agent that ran `c`'s runtime went away (killed, e.g. by the guest's
   * OOM killer) and init started it again: its process can no longer be
   * followed, so it is stopped for real (its runtime's state deleted) and
   * reported exited (255, as dockerd reports a container it lost) with why,
   * never left listed as running.
   */
  private async onShimLost(c: Container, shim: GuestProcess, err: unknown): Promise<void> {
    // Only a guest whose agent came back: a VM that stopped or went takes its containers' records along its own way.
    if (!isHyperlabError(err, "AGENT_GONE") || err.detail?.restarted !== true) return;
    if (this.shims.get(c.id) !== shim || c.status !== "running") return;
    await this.program(c.runtime, ["delete", "--force", c.id], `delete the runtime's state of ${c.name}`).catch(() => {});
    await this.onExit(c, 255);
    c.startError = `the guest agent that followed this container went away (${err instanceof Error ? err.message : String(err)}): the container was stopped`;
  }

  /**
   * A runtime that failed before it made the container (it wrote no pid
   * file: the guest's /run full, a bundle it refused): its complaint, as
   * dockerd reports an OCI runtime create failure (exit code 128), and what
   * to do when /run is full. Only asked of a run that exited 1 with output on stderr.
   */
  private async runtimeFailure(c: Container): Promise<{ exitCode: number; message: string } | undefined> {
    const first = c.logs.find((l) => l.stream === 2);
    if (!first) return undefined;
    if (await this.agent.stat(`${STATE_DIR}/${c.id}/pid`).then(() => true, () => false)) return undefined;
    const why = new TextDecoder().decode(first.data).trim().split("\n")[0];
    const df = await this.agent.exec(["df", "-k", STATE_DIR]).catch(() => undefined);
    const availableKiB = Number(df?.stdout.trim().split("\n").at(-1)?.split(/\s+/)[3] ?? NaN);
    const full = /No space left on device/.test(why ?? "") || availableKiB < 1024;
    return { exitCode: 128, message: `OCI runtime create failed: ${c.runtime}: ${why}: unknown${full ? `; ${RUN_FULL}` : ""}` };
  }

  /** Whether a container other than `except` mounts through 9p share `share`. */
  private shareInUse(share: string, except: Container): boolean {
    return [...this.containers.values()].some((o) => o !== except && o.mounts?.some((m) => m.share === share));
  }

  /** Passes held output on to the `attach` listeners, and what comes next straight away. */
  private release(c: Container): void {
    const held = this.held.get(c.id);
    if (!held) return;
    this.held.delete(c.id);
    for (const e of held) for (const l of this.attached.get(c.id) ?? []) l(e.stream, e.data);
  }

  /** Drops a removed container's record. */
  private forget(c: Container): void {
    this.unpublishPorts(c);
    if (c.mounts?.length) {
      const removeAnonymous = c.autoRemove || this.removeVolumesOf.has(c.id);
      void this.mountHost.release(c.mounts, (share) => this.shareInUse(share, c), removeAnonymous);
    }
    this.removeVolumesOf.delete(c.id);
    this.containers.delete(c.id);
    this.exits.delete(c.id);
    this.oomKillsBefore.delete(c.id);
    this.logBytes.delete(c.id);
    this.earlyStdin.delete(c.id);
    this.emit(c, "destroy", { exitCode: String(c.exitCode ?? 0) });
  }

  /**
   * Removes everything a container left in the guest: runtime state, mounts,
   * cgroups, veth. Each step tolerates what is already gone; the first real
   * failure is reported after every step has been tried.
   */
  private async cleanup(c: Container): Promise<void> {
    this.markerless.delete(c.id);
    const dir = `${STATE_DIR}/${c.id}`;
    const exists = (path: string) => this.agent.stat(path).then(() => true, (err) => (isAbsent(err) ? false : Promise.reject(err)));
    const failures: unknown[] = [];
    const step = (p: Promise<unknown>) => p.catch((err) => void (isAbsent(err) || failures.push(err)));
    // `run` deletes the container when it exits; only a kill can leave runtime state behind.
    if (await exists(`/run/${c.runtime}/${c.id}`)) await step(this.program(c.runtime, ["delete", "--force", c.id], "delete the runtime's state"));
    // In arrival order (see create): unmount, then remove the tree and the cgroups, child first.
    const veth = `hl${c.id.slice(0, 8)}`;
    const [, , , , vethLeft] = await Promise.all([
      step(this.agent.umount(`${dir}/rootfs`).catch((err) => (errnoOf(err) === "EINVAL" ? undefined : Promise.reject(err)))), // EINVAL: not mounted
      step(this.agent.remove(dir, { recursive: true })),
      step(this.removeCgroup(`${CGROUP_ROOT}/${c.id}/payload`)),
      step(this.removeCgroup(`${CGROUP_ROOT}/${c.id}`)),
      c.ipAddress ? exists(`/sys/class/net/${veth}`) : false,
    ]);
    // The host end of a veth goes with the container's network namespace; this catches a half-wired one.
    if (vethLeft) await step(this.program("ip", ["link", "delete", veth], `delete ${veth}`));
    if (failures.length) {
      throw new HyperlabError("RUNTIME_ERROR", `could not remove everything of container ${c.name}: ${(failures[0] as Error).message}`);
    }
  }

  /**
   * Removes a cgroup folder. The kernel answers EBUSY for a moment after its
   * last process exited (its teardown is not done yet, more so in a guest
   * short of memory): tried again for up to about 1.3 s, as runc and crun do.
   */
  private async removeCgroup(path: string): Promise<void> {
    for (let delay = 20; ; delay *= 2) {
      try {
        return await this.agent.remove(path);
      } catch (err) {
        if (errnoOf(err) !== "EBUSY" || delay > 640) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Installs a host tool into the guest once (TOOLS_DIR/NAME): NOT_SUPPORTED when this host offers none. */
  private ensureTool(name: string): Promise<void> {
    let done = this.tools.get(name);
    if (!done) {
      done = (async () => {
        if (await this.agent.stat(`${TOOLS_DIR}/${name}`).then(() => true, () => false)) return;
        const load = this.opts.tools;
        if (!load) throw new HyperlabError("NOT_SUPPORTED", `${name} is not available here: this host offers no guest tools (--init needs docker-init)`);
        await installGuestTool(this.agent, name, load);
      })();
      this.tools.set(name, done);
      done.catch(() => this.tools.delete(name));
    }
    return done;
  }

  /** Once per guest: the folders and the cgroup parent for containers. */
  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await Promise.all([CGROUP_ROOT, STATE_DIR, LAYER_DIR].map((d) => this.agent.mkdir(d)));
      await this.agent.writeFile(`${CGROUP_ROOT}/cgroup.subtree_control`, CONTROLLERS);
    })();
    this.prepared.catch(() => (this.prepared = undefined));
    return this.prepared;
  }

  /** Copies the image's layers the guest does not have yet and unpacks them (like a registry pull, from the host's store). */
  private async pullLayers(image: ImageInfo): Promise<void> {
    for (const layer of image.layers) {
      let pull = this.pulls.get(layer.digest);
      if (!pull) {
        pull = this.pullLayer(image, layer.digest);
        this.pulls.set(layer.digest, pull);
        pull.catch(() => this.pulls.delete(layer.digest));
      }
      await pull;
    }
  }

  private async pullLayer(image: ImageInfo, digest: string): Promise<void> {
    const hex = digest.replace("sha256:", "");
    const done = await this.agent.stat(`${LAYER_DIR}/${hex}.complete`).then(
      () => true,
      () => false,
    );
    if (done) return;
    const tar = `${LAYER_DIR}/${hex}.tar`;
    // A built image's layers are gzip: inflated here, where it is quick, not in the guest. Every
    // layer, however it came (pulled, loaded, built), is checked here before the guest's tar
    // unpacks it as root: its entries stay inside it (layer-tar.ts).
    const label = `layer ${digest.slice(0, 19)} of ${image.reference}`;
    const bytes = await inflateLayer(await this.store.blob(digest), label);
    const whiteouts = whiteoutArgs(await checkLayerTar(bytes, label));
    // Opaque folders need xattrs, which tmpfs has and the guest's / (ramfs) has not (guest-layers.ts).
    const opaque = whiteouts.some((w) => w.startsWith("o:"));
    const dir = opaque ? `${XATTR_LAYER_DIR}/${hex}` : `${LAYER_DIR}/${hex}`;
    await this.agent.writeFile(tar, bytes);
    await this.sh(
      `rm -rf ${LAYER_DIR}/${hex} ${dir} && mkdir -p ${dir} && tar -xf ${tar} -C ${dir} && rm ${tar}${opaque ? ` && ln -s ${dir} ${LAYER_DIR}/${hex}` : ""}`,
      `unpack layer ${hex.slice(0, 12)} of ${image.reference}`,
    );
    if (whiteouts.length) {
      await this.program("/bin/sh", ["-c", WHITEOUT_SCRIPT, "-", dir, `${XATTR_LAYER_DIR}/.scratch-${hex}`, ...whiteouts], `turn the whiteouts of layer ${hex.slice(0, 12)} of ${image.reference} into overlay whiteouts`);
    }
    await this.agent.writeFile(`${LAYER_DIR}/${hex}.complete`, "");
  }

  /** The agent of this engine's guest: the builder (containers/build/) runs its own steps there with it. */
  get guest(): EngineAgent {
    return this.agent;
  }

  /** Where a container's files are in the guest: its folder, its overlay's upper folder and its root. */
  containerDirs(ref: string): { dir: string; upper: string; rootfs: string } {
    const dir = `${STATE_DIR}/${this.get(ref).id}`;
    return { dir, upper: `${dir}/upper`, rootfs: `${dir}/rootfs` };
  }

  /**
   * Makes the guest folder `dir` (on tmpfs, e.g. a stopped build
   * container's upper folder, moved, not copied) the unpacked layer
   * `digest`, so that containers over it need no copy of it. When the guest
   * has that layer already, `dir` is removed instead.
   */
  async adoptLayer(digest: string, dir: string): Promise<void> {
    const hex = digest.replace("sha256:", "");
    await this.prepare();
    await this.sh(
      `if [ -e ${LAYER_DIR}/${hex}.complete ]; then rm -rf ${dir}; else mkdir -p ${XATTR_LAYER_DIR} && rm -rf ${LAYER_DIR}/${hex} ${XATTR_LAYER_DIR}/${hex} && mv ${dir} ${XATTR_LAYER_DIR}/${hex} && ln -s ${XATTR_LAYER_DIR}/${hex} ${LAYER_DIR}/${hex} && : > ${LAYER_DIR}/${hex}.complete; fi`,
      `keep layer ${hex.slice(0, 12)} in the guest`,
    );
    this.pulls.set(digest, Promise.resolve());
  }

  private generateName(): string {
    for (;;) {
      const pick = (a: readonly string[]) => a[Math.floor(Math.random() * a.length)]!;
      const name = `${pick(NAME_PARTS[0])}_${pick(NAME_PARTS[1])}`;
      if (![...this.containers.values()].some((c) => c.name === name)) return name;
      if (this.containers.size > 50) return `${name}_${randomHex(2)}`;
    }
  }

  /** Runs a program in the guest (outside any container); RUNTIME_ERROR with its stderr if it fails. */
  private async program(program: string, args: string[], what: string): Promise<string> {
    const r = await this.agent.exec([program, ...args]);
    if (r.exitCode !== 0) {
      throw new HyperlabError("RUNTIME_ERROR", `could not ${what}: ${(r.stderr || r.stdout).trim() || `exit status ${r.exitCode}`}`);
    }
    return r.stdout;
  }

  /** Runs a shell command in the guest (outside any container); RUNTIME_ERROR with its stderr if it fails. */
  private sh(command: string, what: string): Promise<string> {
    return this.program("/bin/sh", ["-c", command], what);
  }
}

/** The first words of the runtimes' complaints about an exec they could not start (crun 1.8, runc 1.1). */
const RUNTIME_COMPLAINT = /^(executable file `[^`]*` not found in \$PATH|open executable: |chdir `[^`]*`: |time="[^"]*" level=error msg="exec failed: )/;

/** A runtime's complaint without what crun adds on a terminal: colours and "<time>: " before each message. */
function plainComplaint(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, "").replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z: /g, "");
}

/** Why an exec did not start, in runc's (and so Docker's) words, from the runtime's complaint; undefined if it is not one. */
function execFailure(runtime: Runtime, complaint: string, command: string, cwd: string): string | undefined {
  if (runtime === "runc") {
    const why = /msg="exec failed: unable to start container process: ((?:[^"\\]|\\.)*)"/.exec(complaint)?.[1];
    return why?.replace(/\\(.)/g, "$1");
  }
  if (/^executable file `[^`]*` not found in \$PATH/.test(complaint)) return `exec: ${JSON.stringify(command)}: executable file not found in $PATH`;
  if (/^open executable: /.test(complaint)) return `exec: ${JSON.stringify(command)}: permission denied`;
  const chdir = /^chdir `[^`]*`: (.*)/.exec(complaint);
  if (chdir) return `chdir to cwd (${JSON.stringify(cwd)}) set in config.json failed: ${chdir[1]!.trim().toLowerCase()}`;
  return undefined;
}

/**
 * An attached container's exit code, or the error of a start that failed (the
 * runtime could not make it, e.g. the guest's /run full; its command could not
 * run), as an unattached start throws it: with what to do, not only the
 * runtime's complaint.
 */
export function exitOrStartError(a: Attachment): Promise<number> {
  return a.exited.then((exitCode) => {
    const failed = a.startError();
    if (failed) throw failed;
    return exitCode;
  });
}

/** The error of `c`'s failed start, once it has exited: the runtime's own failure (exit code 128, as dockerd records it) or a command that could not run (126, 127). */
function startErrorOf(c: Container): HyperlabError | undefined {
  if (!c.startError || c.status !== "exited") return undefined;
  return new HyperlabError(c.exitCode === 128 ? "RUNTIME_ERROR" : "CONTAINER_START_FAILED", c.startError, { exitCode: c.exitCode });
}

/**
 * A container whose process never started: the runtime said so on stderr and
 * exited 1. Docker reports these as a failed start with exit code 127 (no
 * such executable) or 126 (not executable), in words its CLI recognises.
 */
function startFailure(c: Container): { exitCode: number; message: string } | undefined {
  // Only the runtime's own words, at the very start of stderr: a container that prints "no such file" is not a failed start.
  const first = c.logs.find((l) => l.stream === 2);
  const stderr = first ? new TextDecoder().decode(first.data) : "";
  const prefix = `OCI runtime create failed: ${c.runtime}: unable to start container process: exec: ${JSON.stringify(c.command[0] ?? "")}`;
  const notFound = { exitCode: 127, message: `${prefix}: executable file not found in $PATH: unknown` };
  const denied = { exitCode: 126, message: `${prefix}: permission denied: unknown` };
  if (c.runtime === "crun") {
    // crun 1.8: "executable file `x` not found in $PATH: …", "open executable: Permission denied" (or EPERM for a directory).
    if (/^executable file `[^`]*` not found in \$PATH/.test(stderr)) return notFound;
    if (/^open executable: /.test(stderr)) return denied;
    return undefined;
  }
  // runc 1.1: `… msg="runc run failed: unable to start container process: exec: \"x\": <why>"`.
  const why = /runc run failed: unable to start container process: exec: \\?"[^"\\]*\\?": ([^"\n]*)/.exec(stderr)?.[1];
  if (!why) return undefined;
  if (/permission denied|is a directory/.test(why)) return denied;
  if (/executable file not found|no such file or directory/.test(why)) return notFound;
  return undefined;
}

/** What to do when the guest's /run (a tmpfs in its memory, holding containers' bundles and writable layers) is full. */
const RUN_FULL = "the VM's /run, where containers' files live in its memory, is full: remove containers you no longer need (docker rm, docker container prune) or files they wrote";

/** True when `c` is on a user network (the predefined networks' names are reserved). */
function isUserNetwork(c: Container): boolean {
  return c.network !== "bridge" && c.network !== "none";
}

/** memory.events' count of OOM kills. */
function oomKills(events: string): number {
  return Number(/^oom_kill (\d+)/m.exec(events)?.[1] ?? 0);
}

/** True for the agent's "no such file" (a step with nothing left to undo). */
function isAbsent(err: unknown): boolean {
  return errnoOf(err) === "ENOENT";
}

/** The errno name of a failed agent request, if that is what `err` is. */
function errnoOf(err: unknown): unknown {
  return err instanceof HyperlabError && err.code === "AGENT_ERROR" ? err.detail?.errno : undefined;
}

/** Image env, then user env (later keys replace earlier ones). */
function mergeEnv(...lists: string[][]): string[] {
  const map = new Map<string, string>();
  for (const e of lists.flat()) map.set(e.slice(0, e.indexOf("=")), e);
  return [...map.values()];
}
