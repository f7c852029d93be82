// The container engine: Docker's verbs on top of a real OCI runtime (crun by
// default, runc on request) inside the guest. The host decides (ids, names,
// addresses, the OCI config); the guest does (overlayfs, cgroups, the runtime).
import { concatBytes } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import type { AgentClient, GuestProcess } from "../guest/agent.ts";
import type { ImageInfo, ImageStore } from "./image-store.ts";
import { type Limits } from "./limits.ts";
import { BRIDGE_GATEWAY, BRIDGE_PREFIX, NETWORK_HOOK_PATH, networkHookArgs } from "./network.ts";
import { bundleConfig } from "./oci-spec.ts";
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
  name?: string;
  env?: string[];
  hostname?: string;
  limits?: Limits;
  network?: "bridge" | "none";
  runtime?: Runtime;
  /** remove the container when it exits */
  autoRemove?: boolean;
  /** keep stdin open (docker -i) */
  interactive?: boolean;
  /** allocate a terminal (docker -t) */
  tty?: { rows: number; cols: number };
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

/** One container's record. */
export interface Container {
  id: string;
  name: string;
  image: ImageInfo;
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
  env: string[];
  hostname: string;
  limits: Limits;
  network: "bridge" | "none";
  ipAddress?: string;
  runtime: Runtime;
  autoRemove: boolean;
  interactive: boolean;
  tty?: { rows: number; cols: number };
  createdAt: Date;
  status: ContainerStatus;
  startedAt?: Date;
  finishedAt?: Date;
  exitCode?: number;
  oomKilled: boolean;
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
}

/** A container's record as it is kept in a VM's snapshot (JSON: dates as ISO strings, logs base64). */
export interface ContainerRecord extends Omit<Container, "createdAt" | "startedAt" | "finishedAt" | "logs"> {
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  logs: Array<{ stream: 1 | 2; data: string; time?: number }>;
}

/** What an engine knows that its guest's memory does not: its containers' records, kept in the VM's snapshots. */
export interface EngineRecords {
  containers: ContainerRecord[];
  nextAddress: number;
}

const STATE_DIR = "/run/hyperlab/containers";
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
  /** containers whose bundle has no started-marker hook yet (see create) */
  private readonly markerless = new Set<string>();
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

  constructor(
    private readonly agent: EngineAgent,
    private readonly store: ImageStore,
    /** `vm`: the VM this engine's guest is, named in its messages */
    private readonly opts: { vm?: string } = {},
  ) {}

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
    const image = await this.store.get(opts.image);
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

    await this.prepare();
    await this.pullLayers(image);

    const id = randomHex(32);
    const name = opts.name ?? this.generateName();
    const network = opts.network ?? "bridge";
    const c: Container = {
      id,
      name,
      image,
      command,
      entrypoint,
      cmd,
      workingDir: opts.workingDir || image.config.WorkingDir || "/",
      user: opts.user,
      labels: { ...opts.labels },
      stopSignal,
      meta: { ...opts.meta },
      env: mergeEnv(image.config.Env ?? [], opts.env ?? [], opts.tty ? ["TERM=xterm"] : []),
      hostname: opts.hostname ?? id.slice(0, 12),
      limits: opts.limits ?? {},
      network,
      ipAddress: network === "bridge" ? `${BRIDGE_PREFIX}.${this.nextAddress++}` : undefined,
      runtime,
      autoRemove: opts.autoRemove ?? false,
      interactive: opts.interactive ?? false,
      tty: opts.tty,
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
      ]);
      if (c.user !== undefined) {
        const read = (f: string) => this.agent.readFile(`${dir}/rootfs/etc/${f}`).then((b) => new TextDecoder().decode(b), () => undefined);
        const [passwd, group] = await Promise.all([read("passwd"), read("group")]);
        c.processUser = resolveUser(c.user, { passwd, group });
        await this.agent.writeFile(`${dir}/config.json`, JSON.stringify(this.bundle(c, withMarker), null, 1));
      }
    } catch (err) {
      await this.cleanup(c).catch(() => {});
      throw err;
    }
    this.containers.set(id, c);
    this.emit(c, "create");
    return c;
  }

  /** Starts a created container; returns its streams. */
  async start(ref: string, opts: StartOptions = {}): Promise<Attachment> {
    const c = this.get(ref);
    if (c.status !== "created") {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot start container ${c.name}: it is ${c.status} (a container starts once; run a new one)`);
    }
    const dir = `${STATE_DIR}/${c.id}`;
    if (!opts.attached && this.markerless.has(c.id)) {
      await this.agent.writeFile(`${dir}/config.json`, JSON.stringify(this.bundle(c, true), null, 1));
      this.markerless.delete(c.id);
    }
    if (!opts.attached) this.held.set(c.id, []);
    const shim = this.agent.spawn([c.runtime, "run", "--bundle", dir, c.id], {
      stdin: c.interactive ? true : undefined,
      pty: c.tty,
      timeoutMs: Infinity,
    });
    const attachment = this.follow(c, shim);
    c.shimPid = await shim.pid;
    c.shimRequestId = shim.requestId;
    c.status = "running";
    c.startedAt = new Date();
    this.emit(c, "start");
    for (const chunk of this.earlyStdin.get(c.id) ?? []) chunk === "eof" ? shim.closeStdin() : shim.write(chunk);
    this.earlyStdin.delete(c.id);
    if (!opts.attached) {
      await this.waitStarted(c, attachment.exited).finally(() => this.release(c));
      // Its process could not even start (exit code 126 or 127): a failed start, as Docker reports it.
      if (c.startError && (c.status as ContainerStatus) === "exited") throw new HyperlabError("CONTAINER_START_FAILED", c.startError, { exitCode: c.exitCode });
    }
    return attachment;
  }

  /** The container's OCI runtime config; `startedMarker`: with the poststart hook that marks it started (see waitStarted). */
  private bundle(c: Container, startedMarker: boolean): object {
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
      networkHook: c.ipAddress ? { path: NETWORK_HOOK_PATH, args: networkHookArgs(c.ipAddress, 16, `hl${c.id.slice(0, 8)}`) } : undefined,
      startedMarker: startedMarker ? `${STATE_DIR}/${c.id}/started` : undefined,
      annotations: { "io.hyperlab.name": c.name, "io.hyperlab.image": c.image.reference },
    });
  }

  /** Keeps a running container's output in its log and its exit in its record; the streams callers attach to. */
  private follow(c: Container, shim: GuestProcess): Attachment {
    const listeners: Array<(stream: 1 | 2, data: Uint8Array) => void> = [];
    shim.onOutput((stream, data) => {
      const entry = { stream, data, time: Date.now() };
      c.logs.push(entry);
      for (const l of listeners) l(stream, data);
      const held = this.held.get(c.id);
      if (held) held.push(entry);
      else for (const l of this.attached.get(c.id) ?? []) l(stream, data);
    });
    this.shims.set(c.id, shim);
    const exited = shim.exited.then(async ({ exitCode, signal }) => this.onExit(c, signal ? 128 + signal : exitCode));
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
    };
  }

  /** The containers' records, for the VM's snapshot (see `restoreRecords`). */
  records(): EngineRecords {
    const b64 = (d: Uint8Array) => btoa(Array.from(d, (x) => String.fromCharCode(x)).join(""));
    return {
      nextAddress: this.nextAddress,
      containers: [...this.containers.values()].map((c) => ({
        ...c,
        createdAt: c.createdAt.toISOString(),
        startedAt: c.startedAt?.toISOString(),
        finishedAt: c.finishedAt?.toISOString(),
        logs: c.logs.map((l) => ({ stream: l.stream, data: b64(l.data), time: l.time })),
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
    const bytes = (b: string) => Uint8Array.from(atob(b), (ch) => ch.charCodeAt(0));
    this.nextAddress = records.nextAddress;
    this.prepared = Promise.resolve(); // the guest was prepared before its snapshot
    for (const r of records.containers) {
      const c: Container = {
        ...r,
        createdAt: new Date(r.createdAt),
        startedAt: r.startedAt ? new Date(r.startedAt) : undefined,
        finishedAt: r.finishedAt ? new Date(r.finishedAt) : undefined,
        logs: r.logs.map((l) => ({ stream: l.stream, data: bytes(l.data), time: l.time ?? Date.parse(r.createdAt) })),
      };
      this.containers.set(c.id, c);
      // Whether its bundle has the started marker's hook is not recorded: a start writes it again.
      if (c.status === "created") this.markerless.add(c.id);
      if (c.status !== "running") continue;
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
   * Resolves once the runtime's poststart hook has marked the container
   * started, or it has already exited (a quick command), as `docker start` does.
   */
  private async waitStarted(c: Container, exited: Promise<number>): Promise<void> {
    let done = false;
    const finish = () => void (done = true);
    exited.then(finish, finish);
    const marker = `${STATE_DIR}/${c.id}/started`;
    const deadline = performance.now() + 30_000;
    for (let delay = 2; !done; delay = Math.min(delay * 2, 50)) {
      if (await this.agent.stat(marker).then(() => true, () => false)) return;
      if (performance.now() > deadline) {
        throw new HyperlabError("TIMEOUT", `container ${c.name} did not start within 30 s (waited for the runtime's poststart hook)`);
      }
      await Promise.race([exited.catch(() => 0), new Promise((r) => setTimeout(r, delay))]);
    }
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

  /** Copies an image's layers into the guest ahead of a run, as `docker pull` does (from the host's store, never a registry). */
  async pull(reference: string): Promise<ImageInfo> {
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
   * written waits for the start. Legal while created or running.
   */
  attach(ref: string, opts: { logs?: boolean } = {}): { onOutput(l: (stream: 1 | 2, data: Uint8Array) => void): void; write(d: Uint8Array): void; closeStdin(): void; detach(): void } {
    const c = this.get(ref);
    if (c.status === "exited") throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot attach to container ${c.name}: it has exited`);
    const own = new Set<(stream: 1 | 2, data: Uint8Array) => void>();
    let set = this.attached.get(c.id);
    if (!set) this.attached.set(c.id, (set = new Set()));
    const all = set;
    const stdin = (chunk: Uint8Array | "eof") => {
      const shim = this.shims.get(c.id);
      if (shim) chunk === "eof" ? shim.closeStdin() : shim.write(chunk);
      else if (c.status === "created") this.earlyStdin.set(c.id, [...(this.earlyStdin.get(c.id) ?? []), chunk]);
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
    const e: ContainerEvent = { type: "container", action, id: c.id, name: c.name, image: c.image.reference, time: Date.now(), attributes: { name: c.name, image: c.image.reference, ...c.labels, ...attributes } };
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Runs a command in a running container (`docker exec`). */
  async exec(ref: string, argv: string[], opts: { env?: string[]; tty?: { rows: number; cols: number }; interactive?: boolean } = {}): Promise<GuestProcess> {
    const c = this.get(ref);
    if (c.status !== "running") {
      throw new HyperlabError("CONTAINER_INVALID_STATE", `cannot exec in container ${c.name}: it is ${c.status}, not running`);
    }
    if (argv.length === 0) throw new HyperlabError("INVALID_ARGUMENT", "exec needs a command");
    const args = [c.runtime, "exec"];
    if (opts.tty) args.push("--tty");
    // The runtime's --env replaces the whole environment: give the container's
    // own, then TERM=xterm for a terminal (as docker exec -t), then the caller's.
    if (opts.env?.length || opts.tty) {
      for (const e of mergeEnv(c.env, opts.tty ? ["TERM=xterm"] : [], opts.env ?? [])) args.push("--env", e);
    }
    args.push(c.id, ...argv);
    return this.agent.spawn(args, { pty: opts.tty, stdin: opts.interactive ? true : undefined, timeoutMs: Infinity });
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
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<void> {
    const c = this.get(ref);
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
    return {
      memoryBytes: Number(current),
      memoryPeakBytes: Number(peak),
      memoryLimitBytes: c.limits.memoryBytes,
      cpuUsageUs: Number(stat.usage_usec ?? 0),
      cpuThrottledUs: Number(stat.throttled_usec ?? 0),
      pids: Number(pids),
      pidsLimit: c.limits.pidsLimit,
    };
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
      NetworkSettings: c.ipAddress ? { IPAddress: c.ipAddress, IPPrefixLen: 16, Gateway: BRIDGE_GATEWAY } : { IPAddress: "" },
    };
  }

  private async onExit(c: Container, exitCode: number): Promise<number> {
    c.status = "exited";
    c.finishedAt = new Date();
    const events = await this.agent.readFile(`${CGROUP_ROOT}/${c.id}/memory.events`).then(
      (b) => new TextDecoder().decode(b),
      () => "",
    );
    c.oomKilled = /^oom_kill [1-9]/m.test(events);
    c.exitCode = c.oomKilled ? 137 : exitCode;
    const failed = exitCode === 1 ? startFailure(c) : undefined;
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
    if (c.oomKilled) this.emit(c, "oom");
    this.emit(c, "die", { exitCode: String(c.exitCode) });
    if (c.autoRemove) {
      await this.cleanup(c).catch(() => {});
      this.forget(c);
    }
    return c.exitCode;
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
    this.containers.delete(c.id);
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
      step(this.agent.remove(`${CGROUP_ROOT}/${c.id}/payload`)),
      step(this.agent.remove(`${CGROUP_ROOT}/${c.id}`)),
      c.network === "bridge" ? exists(`/sys/class/net/${veth}`) : false,
    ]);
    // The host end of a veth goes with the container's network namespace; this catches a half-wired one.
    if (vethLeft) await step(this.program("ip", ["link", "delete", veth], `delete ${veth}`));
    if (failures.length) {
      throw new HyperlabError("RUNTIME_ERROR", `could not remove everything of container ${c.name}: ${(failures[0] as Error).message}`);
    }
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
    await this.agent.writeFile(tar, await this.store.blob(digest));
    await this.sh(
      `rm -rf ${LAYER_DIR}/${hex} && mkdir -p ${LAYER_DIR}/${hex} && tar -xf ${tar} -C ${LAYER_DIR}/${hex} && rm ${tar} && : > ${LAYER_DIR}/${hex}.complete`,
      `unpack layer ${hex.slice(0, 12)} of ${image.reference}`,
    );
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
