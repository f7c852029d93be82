// Exec endpoints of the Docker Engine API: create an exec instance in a
// running container, start it (a hijacked connection: Docker's multiplexed
// frames without a terminal, raw bytes with one; stdin while the client
// writes; or detached), inspect it for its exit code and PID, resize its
// terminal. The process itself is the engine's exec (`crun exec`).
import type { ContainerEngine, ExecProcess } from "../../containers/engine.ts";
import { HyperlabError } from "../../errors.ts";
import { type GoType, checkTypes } from "./body-types.ts";
import { type DockerRoute, type RouteCall, compareVersions, dockerHeaders, jsonBody, sendEmpty, sendJson } from "./api.ts";
import { containerOf } from "./containers.ts";
import { type ExecConfig, type ExecInstance, execInstances } from "./exec-instances.ts";
import { frame } from "./stdcopy.ts";

/** The body of `POST /containers/{id}/exec` (what hyperlab reads of it). */
interface ExecCreateBody {
  Cmd?: string[] | string | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Tty?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ConsoleSize?: [number, number] | null;
  Privileged?: boolean;
  DetachKeys?: string;
}

/** The body of `POST /exec/{id}/start`. */
interface ExecStartBody {
  Detach?: boolean;
  Tty?: boolean;
  ConsoleSize?: [number, number] | null;
}

const encoder = new TextEncoder();
/** A terminal's size when the client names none. */
const DEFAULT_SIZE: [number, number] = [24, 80];

function randomId(): string {
  const b = new Uint8Array(32);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A [rows, cols] pair from a request, checked. */
function consoleSize(v: unknown, field: string): [number, number] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((n) => Number.isInteger(n) && n >= 0 && n < 65536)) {
    throw new HyperlabError("INVALID_ARGUMENT", `${field} must be [height, width] in characters`);
  }
  return v[0] && v[1] ? [v[0], v[1]] : undefined;
}

/** The Go types of the exec create body's fields hyperlab reads. */
const EXEC_TYPES: ReadonlyArray<readonly [string, GoType]> = [
  ["AttachStdin", "bool"], ["AttachStdout", "bool"], ["AttachStderr", "bool"], ["Tty", "bool"], ["Privileged", "bool"], ["Env", "[]string"],
  ["Cmd", "strslice"], ["WorkingDir", "string"], ["User", "string"], ["DetachKeys", "string"], ["ConsoleSize", "[]int64"],
];

/** `POST /containers/{id}/exec`: 201 with the new instance's id; 409 unless the container runs and is not paused. */
async function create(call: RouteCall): Promise<void> {
  const body = await jsonBody<ExecCreateBody>(call.req);
  checkTypes(body as Record<string, unknown>, EXEC_TYPES, "");
  const engine = call.api.engine();
  const ref = call.params[0]!;
  const c = containerOf(engine, ref);
  const cmd = typeof body.Cmd === "string" ? [body.Cmd] : (body.Cmd ?? []);
  if (!Array.isArray(cmd) || cmd.length === 0) throw new HyperlabError("INVALID_ARGUMENT", "No exec command specified");
  if (!cmd.every((a) => typeof a === "string")) throw new HyperlabError("INVALID_ARGUMENT", "Cmd must be a list of strings");
  if (body.Privileged) throw new HyperlabError("NOT_SUPPORTED", "Privileged is not supported by hyperlab: execs run with the container's confinement; drop --privileged");
  if (body.DetachKeys) throw new HyperlabError("NOT_SUPPORTED", "DetachKeys is not supported by hyperlab: end the session by ending its command; drop --detach-keys (and detachKeys in the docker config)");
  for (const e of body.Env ?? []) {
    if (typeof e !== "string" || !/^[^=]+=/.test(e)) throw new HyperlabError("INVALID_ARGUMENT", `invalid environment entry '${String(e)}': use KEY=VALUE`);
  }
  if (c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is not running`);
  if (c.paused) throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${ref} is paused, unpause the container before exec`);
  const config: ExecConfig = {
    cmd,
    env: body.Env?.length ? body.Env : undefined,
    workingDir: body.WorkingDir || undefined,
    user: body.User || undefined,
    tty: !!body.Tty,
    attachStdin: !!body.AttachStdin,
    attachStdout: !!body.AttachStdout,
    attachStderr: !!body.AttachStderr,
    consoleSize: consoleSize(body.ConsoleSize, "ConsoleSize"),
  };
  const id = randomId();
  execInstances(engine).set(id, { id, containerId: c.id, config, started: false, running: false, exitCode: null, pid: 0 });
  sendJson(call.res, 201, { Id: id });
}

/** The instance `id` names, with dockerd's words when there is none. */
function instanceOf(engine: ContainerEngine, id: string): ExecInstance {
  const x = execInstances(engine).get(id);
  if (!x) throw new HyperlabError("EXEC_NOT_FOUND", `No such exec instance: ${id}`);
  return x;
}

/** Records the end of an instance's process. */
function ended(x: ExecInstance, exitCode: number): void {
  x.exitCode = exitCode;
  x.running = false;
  x.endedAt ??= Date.now();
}

/** Starts the instance's process in the engine; records its exit (128+n for a signal) and PID. */
async function run(engine: ContainerEngine, x: ExecInstance, size: [number, number] | undefined): Promise<ExecProcess> {
  const [rows, cols] = size ?? x.config.consoleSize ?? DEFAULT_SIZE;
  const p = await engine.exec(x.containerId, x.config.cmd, {
    env: x.config.env,
    workingDir: x.config.workingDir,
    user: x.config.user,
    tty: x.config.tty ? { rows, cols } : undefined,
    interactive: x.config.attachStdin,
    quietStartError: true,
  });
  x.process = p;
  x.running = true;
  void p.exited.then(
    (e) => ended(x, e.signal ? 128 + e.signal : e.exitCode),
    () => ended(x, 126),
  );
  return p;
}

/** Resolves once the process runs (its PID is known), or rejects with why it could not start. */
async function started(p: ExecProcess, x: ExecInstance): Promise<void> {
  let exited = false;
  const exit = p.exited.then((e) => ((exited = true), e));
  exit.catch(() => (exited = true));
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const pid = await p.processPid();
    if (pid) {
      x.pid = pid;
      return;
    }
    if (exited) {
      const e = await exit;
      if (e.startError) throw new HyperlabError("INVALID_ARGUMENT", e.startError);
      return; // it ran and ended before its pid file was read
    }
    await Promise.race([exit.catch(() => {}), new Promise((r) => setTimeout(r, delay))]);
  }
}

/**
 * `POST /exec/{id}/start`: with Detach, 200 once the process runs (400 with
 * the runtime's reason when it cannot start); else the connection is
 * hijacked and carries its output (and stdin) until it exits. A process that
 * cannot start prints the reason on stdout and exits 126, as with dockerd.
 */
async function start(call: RouteCall): Promise<void> {
  const body = await jsonBody<ExecStartBody>(call.req);
  checkTypes(body as Record<string, unknown>, [["Detach", "bool"], ["Tty", "bool"], ["ConsoleSize", "[]int64"]], "");
  const engine = call.api.engine();
  const x = instanceOf(engine, call.params[0]!);
  if (x.running) throw new HyperlabError("CONTAINER_INVALID_STATE", `Error: Exec command ${x.id} is already running`);
  if (x.started) throw new HyperlabError("CONTAINER_INVALID_STATE", `Error: Exec command ${x.id} has already run`);
  const size = consoleSize(body.ConsoleSize, "ConsoleSize");
  const c = containerOf(engine, x.containerId);
  if (c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.id} is not running`);
  if (c.paused) throw new HyperlabError("CONTAINER_INVALID_STATE", `Container ${c.name} is paused, unpause the container before exec`);
  x.started = true;
  if (body.Detach) {
    const p = await run(engine, x, size).catch((err: unknown) => {
      ended(x, 126);
      throw err;
    });
    await started(p, x);
    return sendEmpty(call.res, 200);
  }
  // Framing follows the start's Tty, as dockerd's: raw bytes with a terminal, frames without.
  const tty = !!body.Tty;
  const multiplexed = !tty && compareVersions(call.version, "1.42") >= 0;
  const io = call.res.hijack({ ...dockerHeaders(), "Content-Type": multiplexed ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream" });
  const out = (stream: 1 | 2, data: Uint8Array) => {
    if (stream === 1 ? !x.config.attachStdout : !x.config.attachStderr) return;
    io.write(tty ? data : frame(stream, data));
  };
  // What went wrong before or at the start goes to stdout, as dockerd writes it.
  const failed = (message: string) => {
    const line = encoder.encode(message + "\r\n");
    io.write(tty ? line : frame(1, line));
  };
  let p: ExecProcess;
  try {
    p = await run(engine, x, size);
  } catch (err) {
    ended(x, 126);
    failed((err as Error).message);
    io.end();
    return;
  }
  p.onOutput(out);
  if (x.config.attachStdin) {
    io.onData((d) => p.write(d));
    io.onEnd(() => p.closeStdin());
  }
  const e = await p.exited.catch((err: Error) => ({ exitCode: 126, signal: 0, startError: err.message }));
  ended(x, e.signal ? 128 + e.signal : e.exitCode);
  if (e.startError) failed(e.startError);
  io.end();
}

/** `GET /exec/{id}/json`. */
async function inspect(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const x = instanceOf(engine, call.params[0]!);
  if (x.running && !x.pid) x.pid = (await x.process?.processPid()) ?? 0;
  const [entrypoint, ...args] = x.config.cmd;
  sendJson(call.res, 200, {
    ID: x.id,
    Running: x.running,
    ExitCode: x.exitCode,
    ProcessConfig: { tty: x.config.tty, entrypoint, arguments: args, privileged: false, ...(x.config.user ? { user: x.config.user } : {}) },
    OpenStdin: x.config.attachStdin,
    OpenStderr: x.config.attachStderr,
    OpenStdout: x.config.attachStdout,
    CanRemove: false,
    ContainerID: x.containerId,
    DetachKeys: "",
    Pid: x.pid,
  });
}

/** A terminal dimension from the query (`h`, `w`). */
function dimension(call: RouteCall, name: "h" | "w"): number {
  const v = call.query.get(name) ?? "";
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new HyperlabError("INVALID_ARGUMENT", `invalid ${name} '${v}': give the terminal's ${name === "h" ? "height (rows)" : "width (columns)"} as a number`);
  return n;
}

/** `POST /exec/{id}/resize?h=&w=`: the exec's terminal (nothing to do without one). */
async function resize(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const x = instanceOf(engine, call.params[0]!);
  const rows = dimension(call, "h");
  const cols = dimension(call, "w");
  if (!x.running || !x.process) throw new HyperlabError("EXEC_NOT_FOUND", `exec ${x.id} is not running: only a running exec's terminal can be resized`);
  if (x.config.tty && rows > 0 && cols > 0) await x.process.resize(rows, cols);
  sendEmpty(call.res, 200);
}

const ID = "([^/]+)";

/** The exec routes. */
export const execRoutes: DockerRoute[] = [
  ["POST", new RegExp(`^/containers/${ID}/exec$`), create],
  ["POST", new RegExp(`^/exec/${ID}/start$`), start],
  ["GET", new RegExp(`^/exec/${ID}/json$`), inspect],
  ["POST", new RegExp(`^/exec/${ID}/resize$`), resize],
];
