// Host side of the in-guest agent: requests over the control channel, with
// replies matched by id, streamed process output, and a clear error for an
// agent that died (AGENT_GONE) or does not answer (AGENT_TIMEOUT).
import { concatBytes } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import { type GuestStream, StreamEnd, streamError } from "./agent-stream.ts";
import { type FieldValue, type Frame, FrameReader, MessageType, PROTOCOL_VERSION, STREAM_WINDOW, Tag, encodeFrame, field } from "./protocol.ts";

export type { GuestStream } from "./agent-stream.ts";

/** A byte channel to the agent: the machine's control port, or anything shaped like it. */
export interface AgentChannel {
  onControl(listener: (bytes: Uint8Array) => void): () => void;
  writeControl(bytes: Uint8Array): void;
  onStopped(listener: (reason: HyperlabError) => void): () => void;
}

/** How to run a process in the guest. */
export interface ExecOptions {
  /** `KEY=VALUE` entries or an object; default: the agent's environment */
  env?: readonly string[] | Readonly<Record<string, string>>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** data to write to stdin, then close it; `true` keeps stdin open for `write()` */
  stdin?: string | Uint8Array | true;
  /** run on a pseudo-terminal of this size (stdout and stderr are then one stream) */
  pty?: { rows: number; cols: number };
  /** how long the process may run before it is killed and the call fails (default 60 s; Infinity: no limit) */
  timeoutMs?: number;
}

/** How a guest process ended, with what it printed. */
export interface ExecResult {
  exitCode: number;
  /** the signal that killed it, or 0 */
  signal: number;
  stdout: string;
  stderr: string;
}

/** File metadata from the guest. */
export interface GuestStat {
  mode: number;
  size: number;
  mtime: number;
  uid: number;
  gid: number;
  isDirectory: boolean;
}

/** A running guest process: stream its output, feed its stdin, signal it. */
export interface GuestProcess {
  /** the agent request that started it (its frames carry this id); a restored guest's host adopts it by this id */
  readonly requestId?: number;
  readonly pid: Promise<number>;
  /** resolves when the process has exited and all its output has arrived */
  readonly exited: Promise<{ exitCode: number; signal: number }>;
  onOutput(listener: (stream: 1 | 2, data: Uint8Array) => void): void;
  write(data: string | Uint8Array): void;
  closeStdin(): void;
  kill(signal?: number): Promise<void>;
  resize(rows: number, cols: number): Promise<void>;
}

/** Where `connect` opens a stream in the guest: a TCP address and port, or a Unix socket path. */
export type StreamTarget = { host: string; port: number } | { path: string };

/** How a stream's received bytes count as consumed (see StreamEndOptions.grant). */
export interface StreamOptions {
  /** "manual": only through the end's consumed() (a relay to another thread); default "auto" */
  grant?: "auto" | "manual";
}

/** A Unix socket the agent listens on in the guest (`AgentClient.listen`). */
export interface GuestListener {
  /** the LISTEN request's id */
  readonly id: number;
  readonly path: string;
  /** Stops listening and removes the socket file; connections already accepted go on. Legal once. */
  close(): Promise<void>;
  /** Settles when the listener is gone: undefined after close(), else why (the agent went away). */
  readonly closed: Promise<HyperlabError | undefined>;
}

/** How `listen` sets up its socket. */
export interface ListenOptions extends StreamOptions {
  /** the socket file's mode (default 0o600: root alone may connect) */
  mode?: number;
}

interface ListenerEntry {
  onConnection: (stream: GuestStream) => void;
  grant: "auto" | "manual";
  fail: (err: HyperlabError | undefined) => void;
}

interface Pending {
  what: string;
  onFrame(frame: Frame): boolean; // true when the request is settled
  fail(err: Error): void;
  timer?: ReturnType<typeof setTimeout>;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** Frames of not-yet-adopted processes a restored guest's client keeps (see adopt). */
const MAX_ORPHAN_FRAMES = 1024;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const READ_CHUNK = 1_000_000;
/** WRITE_FILE chunks a writeFile keeps in flight at once. */
const WRITES_IN_FLIGHT = 4;
/** STDIN bytes per frame: well under the protocol's 1 MiB payload limit. */
const STDIN_CHUNK = 512 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
const SIGKILL = 9;
const encoder = new TextEncoder();

function agentError(frame: Frame, what: string): HyperlabError {
  const code = field.str(frame, Tag.CODE) ?? "EUNKNOWN";
  const message = field.str(frame, Tag.MESSAGE) ?? "";
  return new HyperlabError("AGENT_ERROR", `${what} failed in the guest: ${message || code} (${code})`, {
    errno: code,
  });
}

/**
 * A connection to the agent of one guest. Create with `AgentClient.connect`,
 * which waits for the agent's hello, or, for a guest restored from a
 * snapshot (whose agent said hello long ago), with `AgentClient.attach`. Methods are legal until the machine stops;
 * after that every call fails with AGENT_GONE.
 */
export class AgentClient {
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private gone: HyperlabError | undefined;
  private helloWaiters: Array<(frame: Frame) => void> = [];
  /** frames of processes nobody follows yet, by request id (only in a client attached to a restored guest) */
  private orphans: Map<number, Frame[]> | undefined;
  private orphanCount = 0;
  private hellos = 0;
  private readonly unsubscribe: Array<() => void>;
  /** open streams (CONNECT, accepted connections), by id */
  private readonly streams = new Map<number, StreamEnd>();
  /** listening sockets, by the LISTEN's id */
  private readonly listeners = new Map<number, ListenerEntry>();
  /** what the agent said of itself in its last hello */
  agent = { version: 0, name: "", pid: 0 };

  private constructor(private readonly channel: AgentChannel) {
    this.unsubscribe = [
      channel.onControl((bytes) => this.onBytes(bytes)),
      channel.onStopped((reason) =>
        this.failAll(new HyperlabError("AGENT_GONE", `the guest agent is gone: ${reason.message}`, { reason: reason.code })),
      ),
    ];
  }

  /** Connects to the agent on `channel`, waiting up to `timeoutMs` for its hello. */
  static async connect(channel: AgentChannel, opts: { timeoutMs?: number } = {}): Promise<AgentClient> {
    const client = new AgentClient(channel);
    await client.waitForHello(opts.timeoutMs ?? REQUEST_TIMEOUT_MS);
    return client;
  }

  /**
   * Connects to an agent that said hello before this host was listening, as
   * in a guest restored from a snapshot: confirms it with a PING within
   * `timeoutMs`. `agent` is what the agent said of itself when the snapshot
   * was taken (kept in the snapshot's header); a later hello replaces it.
   */
  static async attach(
    channel: AgentChannel,
    opts: { timeoutMs?: number; agent?: { version: number; name: string; pid?: number; nextRequestId?: number } | null } = {},
  ): Promise<AgentClient> {
    if (opts.agent && opts.agent.version !== PROTOCOL_VERSION) {
      throw new HyperlabError(
        "AGENT_ERROR",
        `the restored guest's agent speaks protocol version ${opts.agent.version}; this hyperlab speaks ${PROTOCOL_VERSION}. Take the snapshot again.`,
      );
    }
    const client = new AgentClient(channel);
    client.orphans = new Map();
    if (opts.agent && client.hellos === 0) client.agent = { pid: opts.agent.pid ?? 0, version: opts.agent.version, name: opts.agent.name };
    // Ids the earlier host used may still be served by the agent (its processes run on): start above them.
    if (opts.agent?.nextRequestId) client.nextId = Math.max(client.nextId, opts.agent.nextRequestId);
    // The agent answering here said its hello before the snapshot: a hello
    // from now on is a new agent (the old one died), as after connect().
    if (client.hellos === 0) client.hellos = 1;
    const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
    try {
      await client.ping({ timeoutMs });
    } catch (err) {
      client.close();
      if (err instanceof HyperlabError && err.code === "AGENT_TIMEOUT") {
        throw new HyperlabError(
          "AGENT_TIMEOUT",
          `the guest agent did not answer a ping within ${timeoutMs} ms after the guest was restored; the snapshot may have been taken before its agent was ready`,
          { waitedFor: "the agent's answer to a ping" },
        );
      }
      throw err;
    }
    return client;
  }

  /**
   * Sets the guest's clock to `time` (default: now), to the millisecond. A
   * restored guest's clock resumes from the moment its snapshot was taken.
   */
  async setClock(time: Date = new Date()): Promise<void> {
    const ns = BigInt(time.getTime()) * 1_000_000n;
    await this.request("set the guest's clock", MessageType.SET_TIME, [[Tag.TIME_NS, { u64: ns }]], undefined, (f) => f.type === MessageType.OK);
  }

  /** Stops listening to the channel; calls in flight fail with AGENT_GONE. */
  close(): void {
    for (const u of this.unsubscribe) u();
    this.failAll(new HyperlabError("AGENT_GONE", "the agent connection was closed by the host"));
  }

  /** Round trip with no work in the guest. */
  async ping(opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.request("ping", MessageType.PING, [], opts.timeoutMs, (f) => f.type === MessageType.OK);
  }

  /** Runs argv[0] with arguments and collects its output (UTF-8). Fails only if it cannot start or times out. */
  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const proc = this.spawn(argv, opts);
    const out: Uint8Array[][] = [[], []];
    proc.onOutput((stream, data) => out[stream - 1]!.push(data));
    const { exitCode, signal } = await proc.exited;
    const text = (chunks: Uint8Array[]) => new TextDecoder().decode(concatBytes(chunks));
    return { exitCode, signal, stdout: text(out[0]!), stderr: text(out[1]!) };
  }

  /** Starts a process in the guest and returns a handle to it. */
  spawn(argv: readonly string[], opts: ExecOptions = {}): GuestProcess {
    if (argv.length === 0) throw new HyperlabError("INVALID_ARGUMENT", "exec needs a program to run (argv is empty)");
    const what = `exec ${argv.join(" ")}`;
    const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
    const env = Array.isArray(opts.env) ? opts.env : opts.env && Object.entries(opts.env).map(([k, v]) => `${k}=${v}`);
    for (const e of env ?? []) fields.push([Tag.ENV, e]);
    if (opts.cwd) fields.push([Tag.CWD, opts.cwd]);
    if (opts.uid !== undefined) fields.push([Tag.UID, opts.uid]);
    if (opts.gid !== undefined) fields.push([Tag.GID, opts.gid]);
    if (opts.stdin !== undefined) fields.push([Tag.STDIN, 1]);
    if (opts.pty) fields.push([Tag.ROWS, opts.pty.rows], [Tag.COLS, opts.pty.cols]);

    const id = this.nextId++;
    const proc = this.processEntry(id, what, { timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS });
    this.track(id, proc.entry, REQUEST_TIMEOUT_MS, `the agent to start ${what}`);
    void this.send(MessageType.EXEC, id, fields);

    if (typeof opts.stdin === "string" || opts.stdin instanceof Uint8Array) {
      this.sendStdin(id, typeof opts.stdin === "string" ? encoder.encode(opts.stdin) : opts.stdin, true);
    }
    return proc.handle;
  }

  /**
   * Takes over a process an earlier host started in this guest (a restored or
   * forked guest's agent still serves the processes of the snapshot): its
   * output and exit, which carry `requestId`, come to the handle from now on.
   * Legal once per process, on a client attached to a restored guest.
   */
  adopt(requestId: number, opts: { pid: number; what: string }): GuestProcess {
    if (this.pending.has(requestId)) throw new HyperlabError("INVALID_ARGUMENT", `request ${requestId} is already followed by this host`);
    if (requestId >= this.nextId) this.nextId = requestId + 1;
    const proc = this.processEntry(requestId, opts.what, { timeoutMs: Infinity, pid: opts.pid });
    if (this.gone) {
      proc.entry.fail(this.gone);
      return proc.handle;
    }
    this.pending.set(requestId, proc.entry);
    this.started.add(requestId);
    // What arrived before this call, in order; an exit among it settles the handle at once.
    const kept = this.orphans?.get(requestId) ?? [];
    this.orphans?.delete(requestId);
    this.orphanCount -= kept.length;
    for (const frame of kept) this.onFrame(frame);
    return proc.handle;
  }

  /** The next request id; a snapshot keeps it so a restored host never reuses an id the guest's agent still serves. */
  get nextRequestId(): number {
    return this.nextId;
  }

  /**
   * The bookkeeping of one process's frames: STARTED (unless `pid` says it
   * runs already), OUTPUT, EXITED, and a start error; and the handle callers get.
   */
  private processEntry(id: number, what: string, opts: { timeoutMs: number; pid?: number }): { entry: Pending; handle: GuestProcess } {
    const listeners: Array<(stream: 1 | 2, data: Uint8Array) => void> = [];
    let resolvePid!: (pid: number) => void;
    let rejectPid!: (err: Error) => void;
    let resolveExit!: (r: { exitCode: number; signal: number }) => void;
    let rejectExit!: (err: Error) => void;
    const pid = new Promise<number>((res, rej) => ((resolvePid = res), (rejectPid = rej)));
    const exited = new Promise<{ exitCode: number; signal: number }>((res, rej) => ((resolveExit = res), (rejectExit = rej)));
    pid.catch(() => {});
    let started = opts.pid !== undefined;
    if (opts.pid !== undefined) resolvePid(opts.pid);
    const timeoutMs = opts.timeoutMs;

    const entry: Pending = {
      what,
      onFrame: (f) => {
        switch (f.type) {
          case MessageType.STARTED:
            started = true;
            clearTimeout(entry.timer);
            entry.timer = undefined;
            // setTimeout takes at most 2^31-1 ms; longer means no limit.
            if (timeoutMs <= MAX_TIMER_MS) entry.timer = setTimeout(() => {
              void this.send(MessageType.SIGNAL, id, [[Tag.SIGNAL, SIGKILL]]);
              this.settle(id, new HyperlabError("TIMEOUT", `${what} did not finish within ${timeoutMs} ms; it was killed`, { waitedFor: what }));
            }, timeoutMs);
            resolvePid(field.u32(f, Tag.PID) ?? 0);
            return false;
          case MessageType.OUTPUT: {
            const data = field.bytes(f, Tag.DATA) ?? new Uint8Array(0);
            const stream = field.u32(f, Tag.STREAM) === 2 ? 2 : 1;
            for (const l of listeners) l(stream, data);
            return false;
          }
          case MessageType.EXITED:
            // An agent reports STARTED first; one that did not must not leave a caller of `pid` waiting forever.
            if (!started) rejectPid(new HyperlabError("AGENT_ERROR", `the guest agent reported the exit of ${what} before its start, so its pid is unknown`));
            resolveExit({ exitCode: field.i32(f, Tag.CODE) ?? -1, signal: field.u32(f, Tag.SIGNAL) ?? 0 });
            return true;
          case MessageType.ERROR: {
            const err = agentError(f, what);
            if (!started) {
              rejectPid(err);
              rejectExit(err);
              return true;
            }
            return false; // an error about a signal or resize for a running process; those calls report it
          }
          default:
            return false;
        }
      },
      fail: (err) => {
        rejectPid(err);
        rejectExit(err);
      },
    };

    const handle: GuestProcess = {
      requestId: id,
      pid,
      exited,
      onOutput: (l) => void listeners.push(l),
      write: (data) => this.sendStdin(id, typeof data === "string" ? encoder.encode(data) : data, false),
      closeStdin: () => this.sendStdin(id, new Uint8Array(0), true),
      kill: async (signal = 15) => {
        await this.request(`signal ${signal} to ${what}`, MessageType.SIGNAL, [[Tag.SIGNAL, signal]], undefined, isOk, id);
      },
      resize: async (rows, cols) => {
        await this.request(`resize ${what}`, MessageType.RESIZE, [[Tag.ROWS, rows], [Tag.COLS, cols]], undefined, isOk, id);
      },
    };
    return { entry, handle };
  }

  /** Writes a file in the guest (parents created), replacing it unless `append`. */
  async writeFile(path: string, data: string | Uint8Array, opts: { mode?: number; append?: boolean } = {}): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    const chunk = READ_CHUNK;
    // The agent carries out file requests in the order they arrive, so a few
    // chunks are kept in flight: the channel never idles waiting for an OK.
    const inFlight: Array<Promise<Frame>> = [];
    for (let at = 0; at === 0 || at < bytes.length; at += chunk) {
      const fields: Array<[number, FieldValue]> = [
        [Tag.PATH, path],
        [Tag.DATA, bytes.subarray(at, at + chunk)],
      ];
      if (opts.mode !== undefined) fields.push([Tag.MODE, opts.mode]);
      if (opts.append || at > 0) fields.push([Tag.APPEND, 1]);
      if (inFlight.length >= WRITES_IN_FLIGHT) await inFlight.shift();
      const done = this.request(`write ${path}`, MessageType.WRITE_FILE, fields, undefined, (f) => f.type === MessageType.OK);
      done.catch(() => {});
      inFlight.push(done);
    }
    await Promise.all(inFlight);
  }

  /** Reads a whole file from the guest. */
  async readFile(path: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (;;) {
      const reply = await this.request(
        `read ${path}`,
        MessageType.READ_FILE,
        [
          [Tag.PATH, path],
          [Tag.OFFSET, { u64: offset }],
          [Tag.LENGTH, READ_CHUNK],
        ],
        undefined,
        (f) => f.type === MessageType.DATA,
      );
      const data = field.bytes(reply, Tag.DATA) ?? new Uint8Array(0);
      parts.push(data.slice());
      offset += data.length;
      const size = field.u64(reply, Tag.SIZE) ?? offset;
      if (data.length === 0 || offset >= size) return concatBytes(parts);
    }
  }

  /** File metadata, or AGENT_ERROR with errno ENOENT when the path does not exist. */
  async stat(path: string): Promise<GuestStat> {
    const f = await this.request(`stat ${path}`, MessageType.STAT, [[Tag.PATH, path]], undefined, (r) => r.type === MessageType.STAT_RESULT);
    const mode = field.u32(f, Tag.MODE) ?? 0;
    return {
      mode,
      size: field.u64(f, Tag.SIZE) ?? 0,
      mtime: field.u64(f, Tag.MTIME) ?? 0,
      uid: field.u32(f, Tag.UID) ?? 0,
      gid: field.u32(f, Tag.GID) ?? 0,
      isDirectory: (mode & 0o170000) === 0o040000,
    };
  }

  /** `mkdir -p`: creates the directory and its parents; one that exists is fine. */
  async mkdir(path: string, opts: { mode?: number } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.mode !== undefined) fields.push([Tag.MODE, opts.mode]);
    await this.request(`mkdir ${path}`, MessageType.MKDIR, fields, undefined, (f) => f.type === MessageType.OK);
  }

  /**
   * Removes a file, an empty directory (a cgroup, say), or with `recursive` a
   * whole tree without crossing into other mounts. AGENT_ERROR ENOENT if absent.
   */
  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.recursive) fields.push([Tag.RECURSIVE, 1]);
    await this.request(`remove ${path}`, MessageType.REMOVE, fields, undefined, (f) => f.type === MessageType.OK);
  }

  /** mount(2) in the guest: `flags` are Linux's MS_* bits, `options` the filesystem's data string. */
  async mount(m: { target: string; fstype?: string; source?: string; flags?: number; options?: string }): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, m.target]];
    if (m.source !== undefined) fields.push([Tag.SOURCE, m.source]);
    if (m.fstype !== undefined) fields.push([Tag.FSTYPE, m.fstype]);
    if (m.flags !== undefined) fields.push([Tag.FLAGS, m.flags]);
    if (m.options !== undefined) fields.push([Tag.OPTIONS, m.options]);
    await this.request(`mount ${m.target}`, MessageType.MOUNT, fields, undefined, (f) => f.type === MessageType.OK);
  }

  /** umount2(2) in the guest; `detach` is MNT_DETACH (lazy unmount). */
  async umount(target: string, opts: { detach?: boolean } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, target]];
    if (opts.detach) fields.push([Tag.FLAGS, 2]);
    await this.request(`umount ${target}`, MessageType.UMOUNT, fields, undefined, (f) => f.type === MessageType.OK);
  }

  /**
   * Opens a stream to a socket in the guest: TCP to `host:port` (an IPv4
   * address) or a Unix socket `path`. Resolves once connected; AGENT_ERROR
   * with the errno (ECONNREFUSED, EHOSTUNREACH, ENOENT…) when it cannot be.
   * Legal while the agent is connected.
   */
  async connect(target: StreamTarget, opts: StreamOptions = {}): Promise<GuestStream> {
    const what = "path" in target ? `connect to ${target.path}` : `connect to ${target.host}:${target.port}`;
    const fields: Array<[number, FieldValue]> =
      "path" in target ? [[Tag.PATH, target.path]] : [[Tag.ADDRESS, target.host], [Tag.PORT, target.port]];
    fields.push([Tag.WINDOW, STREAM_WINDOW]);
    const id = this.nextId++;
    let stream: StreamEnd | undefined;
    try {
      await this.request(what, MessageType.CONNECT, fields, undefined, (f) => {
        if (f.type !== MessageType.CONNECTED) return false;
        // Made here, before any later frame of the same read: the stream's first bytes may follow at once.
        stream = this.openStream(id, field.u32(f, Tag.WINDOW) ?? 0, opts.grant ?? "auto");
        return true;
      }, undefined, id);
    } catch (err) {
      // A connect that timed out may still complete in the guest: the agent drops it.
      if (err instanceof HyperlabError && err.code === "AGENT_TIMEOUT") void this.send(MessageType.STREAM_CLOSE, id, []);
      throw err;
    }
    return stream!;
  }

  /**
   * Listens on a Unix socket `path` in the guest (parent directories made,
   * mode 0600 unless `mode` says otherwise; a stale socket file is replaced,
   * a live one is EADDRINUSE). Each connection to it comes to `onConnection`
   * as a stream. Legal while the agent is connected.
   */
  async listen(path: string, onConnection: (stream: GuestStream) => void, opts: ListenOptions = {}): Promise<GuestListener> {
    const id = this.nextId++;
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path], [Tag.WINDOW, STREAM_WINDOW]];
    if (opts.mode !== undefined) fields.push([Tag.MODE, opts.mode]);
    let settle!: (err: HyperlabError | undefined) => void;
    const closed = new Promise<HyperlabError | undefined>((r) => (settle = r));
    await this.request(`listen on ${path}`, MessageType.LISTEN, fields, undefined, (f) => {
      if (f.type !== MessageType.OK) return false;
      this.listeners.set(id, { onConnection, grant: opts.grant ?? "auto", fail: settle });
      return true;
    }, undefined, id);
    let closing: Promise<void> | undefined;
    return {
      id,
      path,
      closed,
      close: () =>
        (closing ??= (async () => {
          if (!this.listeners.delete(id)) return;
          settle(undefined);
          await this.request(`stop listening on ${path}`, MessageType.UNLISTEN, [[Tag.LISTENER, id]], undefined, isOk);
        })()),
    };
  }

  /** A stream end whose frames go to the agent under `id`. */
  private openStream(id: number, credit: number, grant: "auto" | "manual", peer?: GuestStream["peer"]): StreamEnd {
    const stream = new StreamEnd(
      id,
      {
        data: (chunk) => void this.send(MessageType.STREAM_DATA, id, [[Tag.DATA, chunk]]),
        eof: () => void this.send(MessageType.STREAM_EOF, id, []),
        close: () => {
          this.streams.delete(id);
          void this.send(MessageType.STREAM_CLOSE, id, []);
        },
        grant: (bytes) => void this.send(MessageType.STREAM_WINDOW, id, [[Tag.LENGTH, bytes]]),
      },
      { credit, grant, peer },
    );
    this.streams.set(id, stream);
    void stream.closed.then(() => this.streams.get(id) === stream && this.streams.delete(id));
    return stream;
  }

  /** A frame of the stream machinery (STREAM_*, ACCEPTED): to its stream, or a STREAM_CLOSE for one nobody here follows. */
  private onStreamFrame(frame: Frame): void {
    if (frame.type === MessageType.ACCEPTED) {
      const listener = this.listeners.get(field.u32(frame, Tag.LISTENER) ?? 0);
      // A connection to a listener of an earlier host (kept in a snapshot), or one just closed: the agent drops it.
      if (!listener) return void this.send(MessageType.STREAM_CLOSE, frame.id, []);
      const peer = { pid: field.u32(frame, Tag.PID) ?? 0, uid: field.u32(frame, Tag.UID) ?? 0, gid: field.u32(frame, Tag.GID) ?? 0 };
      const stream = this.openStream(frame.id, field.u32(frame, Tag.WINDOW) ?? 0, listener.grant, peer);
      listener.onConnection(stream);
      return;
    }
    const stream = this.streams.get(frame.id);
    if (!stream) {
      if (frame.type !== MessageType.STREAM_CLOSE) void this.send(MessageType.STREAM_CLOSE, frame.id, []);
      return;
    }
    switch (frame.type) {
      case MessageType.STREAM_DATA:
        return stream.receiveData(field.bytes(frame, Tag.DATA)?.slice() ?? new Uint8Array(0));
      case MessageType.STREAM_WINDOW:
        return stream.receiveCredit(field.u32(frame, Tag.LENGTH) ?? 0);
      case MessageType.STREAM_EOF:
        return stream.receiveEof();
      case MessageType.STREAM_CLOSE: {
        this.streams.delete(frame.id);
        const code = field.str(frame, Tag.CODE);
        return stream.receiveClose(code ? streamError(`stream ${frame.id}`, code, field.str(frame, Tag.MESSAGE) ?? "") : undefined);
      }
    }
  }

  private sendStdin(id: number, data: Uint8Array, eof: boolean): void {
    // Any amount of data: one frame per STDIN_CHUNK bytes, EOF on the last.
    for (let at = 0; at === 0 || at < data.length; at += STDIN_CHUNK) {
      const last = at + STDIN_CHUNK >= data.length;
      const fields: Array<[number, FieldValue]> = [[Tag.DATA, data.subarray(at, at + STDIN_CHUNK)]];
      if (eof && last) fields.push([Tag.EOF, 1]);
      void this.send(MessageType.STDIN, id, fields);
    }
  }

  /** One request, one reply (or ERROR), with a timeout naming what it waited for. */
  private request(
    what: string,
    type: number,
    fields: Array<[number, FieldValue]>,
    timeoutMs: number | undefined,
    isReply: (f: Frame) => boolean,
    forId?: number,
    ownId?: number,
  ): Promise<Frame> {
    return new Promise((resolve, reject) => {
      // Requests about a running process (signal, resize) travel with the
      // process's id, as the protocol says; internally each gets its own id,
      // and replies are routed to it in order (see onFrame).
      const id = ownId ?? this.nextId++;
      const entry: Pending = {
        what,
        onFrame: (f) => {
          if (f.type === MessageType.ERROR) {
            reject(agentError(f, what));
            return true;
          }
          if (!isReply(f)) return false;
          resolve(f);
          return true;
        },
        fail: reject,
      };
      this.track(id, entry, timeoutMs ?? REQUEST_TIMEOUT_MS, `the agent to answer: ${what}`);
      if (forId !== undefined) this.replyRoutes.set(forId, [...(this.replyRoutes.get(forId) ?? []), id]);
      void this.send(type, forId ?? id, fields);
    });
  }

  private track(id: number, entry: Pending, timeoutMs: number, waitedFor: string): void {
    if (this.gone) {
      entry.fail(this.gone);
      return;
    }
    entry.timer = setTimeout(() => {
      this.settle(
        id,
        new HyperlabError("AGENT_TIMEOUT", `no answer from the guest agent within ${timeoutMs} ms while waiting for ${waitedFor}`, {
          waitedFor,
        }),
      );
    }, timeoutMs);
    this.pending.set(id, entry);
  }

  private settle(id: number, err: Error): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(id);
    this.started.delete(id);
    entry.fail(err);
  }

  private async send(type: number, id: number, fields: Array<[number, FieldValue]>): Promise<void> {
    if (this.gone) return;
    try {
      this.channel.writeControl(encodeFrame(type, id, fields));
    } catch (err) {
      this.failAll(new HyperlabError("AGENT_GONE", `cannot reach the guest agent: ${(err as Error).message}`));
    }
  }

  /** Signal and resize requests sent with a process's id, oldest first: that id's OK and ERROR replies go to them. */
  private readonly replyRoutes = new Map<number, number[]>();
  /** Exec ids whose process has started (an ERROR for one of these is about a signal or resize). */
  private readonly started = new Set<number>();

  private onBytes(bytes: Uint8Array): void {
    for (const frame of this.reader.push(bytes)) this.onFrame(frame);
  }

  private onFrame(frame: Frame): void {
    if (frame.type === MessageType.HELLO) {
      this.onHello(frame);
      return;
    }
    if (STREAM_FRAMES.has(frame.type)) {
      this.onStreamFrame(frame);
      return;
    }
    let id = frame.id;
    if (frame.type === MessageType.STARTED) this.started.add(id);
    const routes = this.replyRoutes.get(id);
    // An ERROR about a process is a reply to a signal or resize while it runs (or once it has
    // exited and its own request is settled: ESRCH); before it started, it is the start's failure.
    const isControlReply = frame.type === MessageType.OK || (frame.type === MessageType.ERROR && (this.started.has(id) || !this.pending.has(id)));
    if (routes?.length && isControlReply) {
      id = routes.shift()!;
      if (routes.length === 0) this.replyRoutes.delete(frame.id);
    }
    const entry = this.pending.get(id);
    if (!entry) {
      this.keepOrphan(frame);
      return;
    }
    if (entry.onFrame(frame)) {
      clearTimeout(entry.timer);
      this.pending.delete(id);
      this.started.delete(id);
    }
  }

  /**
   * In a restored guest, output and exits of processes an earlier host
   * started arrive before anyone adopts them: kept (a bounded number) so that
   * adopt() replays them instead of missing an exit.
   */
  private keepOrphan(frame: Frame): void {
    if (!this.orphans || (frame.type !== MessageType.OUTPUT && frame.type !== MessageType.EXITED)) return;
    if (this.orphanCount >= MAX_ORPHAN_FRAMES) return;
    const kept = this.orphans.get(frame.id) ?? [];
    kept.push(frame);
    this.orphans.set(frame.id, kept);
    this.orphanCount++;
  }

  private onHello(frame: Frame): void {
    const version = field.u32(frame, Tag.VERSION) ?? 0;
    this.agent = { version, name: field.str(frame, Tag.AGENT) ?? "", pid: field.u32(frame, Tag.PID) ?? 0 };
    this.hellos++;
    if (this.hellos > 1) {
      // A new agent: whatever the old one was doing is lost.
      this.failPending(new HyperlabError("AGENT_GONE", "the guest agent restarted (it died or was killed); requests in flight were lost", { restarted: true }));
    }
    const waiters = this.helloWaiters;
    this.helloWaiters = [];
    for (const w of waiters) w(frame);
  }

  private waitForHello(timeoutMs: number): Promise<void> {
    if (this.hellos > 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new HyperlabError("AGENT_TIMEOUT", `the guest agent did not say hello within ${timeoutMs} ms`, { waitedFor: "the agent's hello" }));
      }, timeoutMs);
      this.helloWaiters.push((frame) => {
        clearTimeout(timer);
        const version = field.u32(frame, Tag.VERSION);
        if (version !== PROTOCOL_VERSION) {
          reject(
            new HyperlabError(
              "AGENT_ERROR",
              `the guest agent speaks protocol version ${version}; this hyperlab speaks ${PROTOCOL_VERSION}. Rebuild the guest image with 'npm run images'.`,
            ),
          );
        } else resolve();
      });
    });
  }

  private failPending(err: HyperlabError): void {
    // Streams and listeners live in the agent: a new agent (or none) has none of them.
    const streams = [...this.streams.values()];
    const listeners = [...this.listeners.values()];
    this.streams.clear();
    this.listeners.clear();
    for (const s of streams) s.receiveClose(err);
    for (const l of listeners) l.fail(err);
    const entries = [...this.pending.values()];
    this.pending.clear();
    this.replyRoutes.clear();
    this.started.clear();
    for (const e of entries) {
      clearTimeout(e.timer);
      e.fail(err);
    }
  }

  private failAll(err: HyperlabError): void {
    if (this.gone) return;
    this.gone = err;
    this.failPending(err);
  }
}

/** Frames that belong to a stream, not to a request. */
const STREAM_FRAMES = new Set<number>([MessageType.STREAM_DATA, MessageType.STREAM_WINDOW, MessageType.STREAM_EOF, MessageType.STREAM_CLOSE, MessageType.ACCEPTED]);

function isOk(f: Frame): boolean {
  return f.type === MessageType.OK;
}
