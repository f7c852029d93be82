// Container endpoints of the Docker Engine API: create, start, attach, wait,
// logs, list, inspect, kill, stop, remove. Each reads Docker's request,
// calls the container engine of Docker's VM, and answers in Docker's JSON and
// stream shapes (multiplexed frames without a terminal, raw bytes with one).
import type { Container, ContainerEngine, WaitCondition } from "../../containers/engine.ts";
import { BRIDGE_GATEWAY } from "../../containers/network.ts";
import { MASKED_PATHS, READONLY_PATHS } from "../../containers/confinement.ts";
import { dockerPortMap } from "../../containers/ports.ts";
import { HyperlabError } from "../../errors.ts";
import { type DockerRoute, type RouteCall, compareVersions, dockerHeaders, flag, jsonBody, sendEmpty, sendJson } from "./api.ts";
import { type DockerCreateBody, type DockerMeta, createOptions } from "./create-options.ts";
import { runningExecIds } from "./exec-instances.ts";
import { parseFilters } from "./filters.ts";
import { frame } from "./stdcopy.ts";

const encoder = new TextEncoder();

/** Docker's full image reference (busybox → busybox:latest). */
function fullReference(ref: string): string {
  return ref.slice(ref.lastIndexOf("/") + 1).includes(":") || ref.includes("@") ? ref : `${ref}:latest`;
}

/** The container `ref` names, with dockerd's words when there is none. */
export function containerOf(engine: ContainerEngine, ref: string): Container {
  try {
    return engine.get(ref);
  } catch (err) {
    if (err instanceof HyperlabError && err.code === "CONTAINER_NOT_FOUND") throw new HyperlabError("CONTAINER_NOT_FOUND", `No such container: ${ref}`);
    throw err;
  }
}

/** What the Docker adapter kept with a container (absent for containers created through /v1 or the page). */
export function metaOf(c: Container): DockerMeta | undefined {
  return c.meta.docker as DockerMeta | undefined;
}

/** Docker's state name: created, running, paused, exited. */
function stateOf(c: Container): string {
  return c.paused && c.status === "running" ? "paused" : c.status;
}

/** "Up 3 seconds", "Exited (0) 2 minutes ago", "Created", as `docker ps` shows it. */
function statusText(c: Container, now = Date.now()): string {
  const since = (d: Date | undefined) => {
    const s = Math.max(0, Math.round((now - (d?.getTime() ?? now)) / 1000));
    if (s < 1) return "Less than a second";
    if (s < 60) return `${s} seconds`;
    if (s < 120) return "About a minute";
    if (s < 3600) return `${Math.floor(s / 60)} minutes`;
    if (s < 7200) return "About an hour";
    if (s < 86400) return `${Math.floor(s / 3600)} hours`;
    return `${Math.floor(s / 86400)} days`;
  };
  if (c.status === "running") return `Up ${since(c.startedAt)}${c.paused ? " (Paused)" : ""}`;
  if (c.status === "exited") return `Exited (${c.exitCode ?? 0}) ${since(c.finishedAt)} ago`;
  return "Created";
}

/** A container's address on its network while it holds one (created or running; an exited one's may be handed out again). */
function endpointOf(c: Container): { ip: string; prefix: number; gateway: string } | undefined {
  return c.ipAddress && c.status !== "exited" ? { ip: c.ipAddress, prefix: c.ipPrefixLen ?? 16, gateway: c.gateway ?? BRIDGE_GATEWAY } : undefined;
}

/** The networks section of a container, as list and inspect show it: its one network, by the network's name. */
function networks(c: Container): Record<string, unknown> {
  const e = endpointOf(c);
  const user = c.network !== "bridge" && c.network !== "none";
  const asked = metaOf(c)?.config.NetworkingConfig?.EndpointsConfig?.[metaOf(c)?.networkMode ?? ""] as { IPAMConfig?: unknown } | undefined;
  return {
    [c.network]: {
      IPAMConfig: asked?.IPAMConfig ?? null,
      Links: null,
      Aliases: c.aliases ?? null,
      NetworkID: c.networkId ?? "",
      EndpointID: e ? c.id.slice(0, 32) : "",
      Gateway: e?.gateway ?? "",
      IPAddress: e?.ip ?? "",
      IPPrefixLen: e?.prefix ?? 0,
      IPv6Gateway: "",
      GlobalIPv6Address: "",
      GlobalIPv6PrefixLen: 0,
      MacAddress: "",
      DriverOpts: null,
      // The names others on a user network reach it by (API 1.44+).
      DNSNames: user ? [c.name, ...(c.aliases ?? []), c.id.slice(0, 12), ...(c.hostname !== c.id.slice(0, 12) ? [c.hostname] : [])] : null,
    },
  };
}

/** An argument as dockerd shows it in a command line: quoted when a shell would split it. */
function shellWord(a: string): string {
  return a === "" || /[\s'"\\$`;&|<>()*?!#~]/.test(a) ? `'${a.replace(/'/g, "'\\''")}'` : a;
}

/** A running container's ports as the list shows them: published ones, then those only exposed ([] once it stops, as dockerd). */
function portList(c: Container): Array<Record<string, unknown>> {
  if (c.status !== "running") return [];
  const published = c.published ?? [];
  const bound = new Set(published.map((p) => p.containerPort));
  return [
    ...published.map((p) => ({ IP: p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol })),
    ...(c.exposedPorts ?? []).filter((p) => !bound.has(p)).map((p) => ({ PrivatePort: p, Type: "tcp" })),
  ];
}

/** One entry of `GET /containers/json`. */
export function summary(c: Container): Record<string, unknown> {
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.imageName ?? c.image.reference,
    ImageID: c.image.id,
    Command: c.command.map(shellWord).join(" "),
    Created: Math.floor(c.createdAt.getTime() / 1000),
    Ports: portList(c),
    Labels: c.labels,
    State: stateOf(c),
    Status: statusText(c),
    HostConfig: { NetworkMode: metaOf(c)?.networkMode ?? c.network },
    NetworkSettings: { Networks: networks(c) },
    Mounts: mountList(c),
  };
}

/** A container's mounts as Docker's inspect and list show them. */
export function mountList(c: Container): Array<Record<string, unknown>> {
  return (c.mounts ?? []).map((m) =>
    m.type === "bind"
      ? { Type: "bind", Source: m.source, Destination: m.destination, Mode: m.mode, RW: !m.readOnly, Propagation: "rprivate" }
      : { Type: "volume", Name: m.source, Source: m.hostPath ?? "", Destination: m.destination, Driver: "local", Mode: m.mode, RW: !m.readOnly, Propagation: "" },
  );
}

/** RFC 3339 with nanoseconds, as Docker writes times ("0001-01-01T00:00:00Z" for never). */
export function dockerTime(d: Date | number | undefined): string {
  if (d === undefined) return "0001-01-01T00:00:00Z";
  return new Date(d).toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
}

/** A container's --security-opt values in Docker's form, from what the engine keeps (null: none). */
function securityOptOf(c: Container): string[] | null {
  const opts: string[] = [];
  if (c.confinement?.noNewPrivileges) opts.push("no-new-privileges");
  const seccomp = c.confinement?.seccomp;
  if (seccomp) opts.push(`seccomp=${seccomp === "unconfined" ? seccomp : JSON.stringify(seccomp)}`);
  return opts.length ? opts : null;
}

/** `GET /containers/{id}/json`. */
export function inspectJson(c: Container, vm: string): Record<string, unknown> {
  const meta = metaOf(c);
  const config = meta?.config ?? {};
  const host = meta?.hostConfig ?? {};
  return {
    Id: c.id,
    Created: dockerTime(c.createdAt),
    Path: c.command[0],
    Args: c.command.slice(1),
    State: {
      Status: stateOf(c),
      Running: c.status === "running",
      Paused: c.status === "running" && !!c.paused,
      Restarting: false,
      OOMKilled: c.oomKilled,
      Dead: false,
      // The container's first process as the VM sees it (the inspect route reads it: engine.initPid).
      Pid: c.status === "running" ? (c.initPid ?? 0) : 0,
      ExitCode: c.exitCode ?? 0,
      Error: c.startError ?? c.lost ?? "",
      StartedAt: dockerTime(c.startedAt),
      FinishedAt: dockerTime(c.finishedAt),
    },
    Image: c.image.id,
    ResolvConfPath: "",
    HostnamePath: "",
    HostsPath: "",
    LogPath: "",
    Name: `/${c.name}`,
    RestartCount: 0,
    Driver: "overlay2",
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: null,
    HostConfig: {
      ...host,
      NetworkMode: meta?.networkMode ?? c.network,
      Runtime: c.runtime,
      AutoRemove: c.autoRemove,
      Memory: c.limits.memoryBytes ?? 0,
      NanoCpus: c.limits.cpuQuotaUs && !host.CpuQuota ? Math.round((c.limits.cpuQuotaUs / (c.limits.cpuPeriodUs ?? 100_000)) * 1e9) : 0,
      CpuQuota: host.CpuQuota ?? 0,
      CpuPeriod: host.CpuPeriod ?? 0,
      CpuShares: host.CpuShares ?? 0,
      PidsLimit: c.limits.pidsLimit ?? null,
      // As given (a /v1 container: as the engine keeps them), and the paths dockerd fills in.
      CapAdd: host.CapAdd ?? c.confinement?.capAdd ?? null,
      CapDrop: host.CapDrop ?? c.confinement?.capDrop ?? null,
      SecurityOpt: host.SecurityOpt ?? securityOptOf(c),
      ReadonlyRootfs: c.confinement?.readOnly === true,
      Privileged: false,
      MaskedPaths: MASKED_PATHS,
      ReadonlyPaths: READONLY_PATHS,
    },
    GraphDriver: { Data: null, Name: "overlay2" },
    Mounts: mountList(c),
    Config: {
      Hostname: c.hostname,
      Domainname: "",
      User: c.user ?? "",
      AttachStdin: config.AttachStdin ?? false,
      AttachStdout: config.AttachStdout ?? false,
      AttachStderr: config.AttachStderr ?? false,
      Tty: !!c.tty,
      OpenStdin: c.interactive,
      StdinOnce: config.StdinOnce ?? false,
      Env: c.env,
      Cmd: c.cmd,
      Image: config.Image ?? c.image.reference,
      ...(c.exposedPorts?.length ? { ExposedPorts: Object.fromEntries(c.exposedPorts.map((p) => [`${p}/tcp`, {}])) } : {}),
      Volumes: config.Volumes ?? null,
      WorkingDir: c.workingDir === "/" && !config.WorkingDir ? "" : c.workingDir,
      Entrypoint: c.entrypoint.length ? c.entrypoint : null,
      OnBuild: null,
      Labels: c.labels,
      StopSignal: c.stopSignal,
    },
    NetworkSettings: {
      Bridge: "",
      SandboxID: "",
      HairpinMode: false,
      // While it runs: each exposed or published port with the host's ends (docker port reads this).
      Ports: c.status === "running" ? dockerPortMap(c.published ?? [], c.exposedPorts ?? []) : {},
      SandboxKey: "",
      // The top-level fields describe the default bridge only, as in dockerd.
      Gateway: c.network === "bridge" ? (endpointOf(c)?.gateway ?? "") : "",
      IPAddress: c.network === "bridge" ? (endpointOf(c)?.ip ?? "") : "",
      IPPrefixLen: c.network === "bridge" ? (endpointOf(c)?.prefix ?? 0) : 0,
      MacAddress: "",
      Networks: networks(c),
    },
    // Where the container lives in hyperlab: its VM.
    HyperlabVm: vm,
  };
}


const FILTERS: Record<string, (c: Container, value: string) => boolean> = {
  id: (c, v) => c.id.startsWith(v),
  name: (c, v) => new RegExp(v.replace(/^\//, "")).test(c.name),
  label: (c, v) => {
    const [k, val] = v.split("=", 2) as [string, string | undefined];
    return k in c.labels && (val === undefined || c.labels[k] === val);
  },
  status: (c, v) => stateOf(c) === v,
  ancestor: (c, v) => c.image.reference === fullReference(v) || c.image.id.replace("sha256:", "").startsWith(v.replace("sha256:", "")),
  exited: (c, v) => c.status === "exited" && String(c.exitCode ?? 0) === v,
};

/** `GET /containers/json`: all, limit, filters (id, name, label, status, ancestor, exited). */
async function list(call: RouteCall): Promise<void> {
  const { containers, vm } = call.api.context;
  const filters = parseFilters(call.query.get("filters"));
  for (const k of filters.keys()) if (!(k in FILTERS)) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter '${k}'`);
  const limit = Number(call.query.get("limit") ?? -1);
  const all = flag(call.query, "all") || limit > 0 || filters.has("status") || filters.has("exited");
  let found = containers.containersOf(containers.vm(vm), { all });
  // Within one filter the values are alternatives; different filters must all hold.
  for (const [k, values] of filters) found = found.filter((c) => values.some((v) => FILTERS[k]!(c, v)));
  if (limit > 0) found = found.slice(0, limit);
  sendJson(call.res, 200, found.map(summary));
}

/** `POST /containers/create?name=&platform=`. */
async function create(call: RouteCall): Promise<void> {
  const body = await jsonBody<DockerCreateBody>(call.req);
  const { options, meta } = createOptions(body, { name: call.query.get("name"), platform: call.query.get("platform") });
  // The guest's own docker names its own paths (see DockerContext.guestPaths).
  if (call.api.context.guestPaths) options.mounts = options.mounts?.map((m) => (m.type === "bind" ? { ...m, inGuest: true } : m));
  const engine = call.api.engine();
  let c: Container;
  try {
    c = await engine.create({ ...options, meta: { docker: meta } });
  } catch (err) {
    if (err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND") throw new HyperlabError("IMAGE_NOT_FOUND", `No such image: ${fullReference(options.image)}`);
    // Not 404: the docker CLI takes any 404 from create for a missing image and pulls before it shows the error.
    if (err instanceof HyperlabError && err.code === "NETWORK_NOT_FOUND") throw new HyperlabError("INVALID_ARGUMENT", err.message);
    if (err instanceof HyperlabError && err.message.startsWith("invalid container name")) {
      throw new HyperlabError("INVALID_ARGUMENT", `Invalid container name (${options.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    if (err instanceof HyperlabError && err.code === "CONTAINER_EXISTS") {
      throw new HyperlabError(
        "CONTAINER_EXISTS",
        `Conflict. The container name "/${options.name}" is already in use by container "${String(err.detail?.id ?? "")}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    }
    throw err;
  }
  sendJson(call.res, 201, { Id: c.id, Warnings: [] });
}

/** `POST /containers/{id}/start`: 204 once its process runs; 304 when it already runs. */
async function start(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  if (c.status === "running") return sendEmpty(call.res, 304);
  // An exited container runs its bundle again (same id, name, files and log), as dockerd starts it again.
  await engine.start(c.id, { attached: false });
  sendEmpty(call.res, 204);
}

/** The content type of a container's output stream for this API version. */
function streamType(c: Container, version: string): string {
  return !c.tty && compareVersions(version, "1.42") >= 0 ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream";
}

/** Writes container output to a client: one frame per chunk without a terminal, raw with one. */
function outputWriter(c: Container, write: (b: Uint8Array) => void, streams: { stdout: boolean; stderr: boolean }) {
  return (stream: 1 | 2, data: Uint8Array) => {
    if ((stream === 1 && !streams.stdout) || (stream === 2 && !streams.stderr)) return;
    write(c.tty ? data : frame(stream, data));
  };
}

/**
 * `POST /containers/{id}/attach?stream&stdin&stdout&stderr&logs`: the
 * connection is hijacked (101 with `Upgrade: tcp`); output flows until the
 * container exits, stdin until the client closes its side.
 */
async function attach(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  const q = call.query;
  const streams = { stdout: flag(q, "stdout"), stderr: flag(q, "stderr") };
  // With stream=1 an exited container's next run is followed (`docker start -a` attaches, then starts it again).
  const nextRun = c.status === "exited" && flag(q, "stream");
  if (c.status === "exited" && !nextRun && !flag(q, "logs")) throw new HyperlabError("CONTAINER_INVALID_STATE", "You cannot attach to a stopped container, start it first");
  const io = call.res.hijack({ ...dockerHeaders(), "Content-Type": streamType(c, call.version) });
  if (c.status === "exited" && !nextRun) {
    for (const e of c.logs) outputWriter(c, (b) => io.write(b), streams)(e.stream, e.data);
    io.end();
    return;
  }
  const handle = engine.attach(c.id, { logs: flag(q, "logs"), announce: true });
  const done = new Promise<void>((resolve) => {
    const off = engine.onEvent((e) => {
      if (e.id === c.id && (e.action === "die" || e.action === "destroy")) finish();
    });
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      off();
      handle.detach();
      io.end();
      resolve();
    };
    io.onClose(finish);
    // With logs=1 what it printed so far comes first; without stream=1 that is all.
    handle.onOutput(outputWriter(c, (b) => io.write(b), streams));
    if (!flag(q, "stream")) return finish();
    if (flag(q, "stdin")) {
      io.onData((d) => handle.write(d));
      io.onEnd(() => handle.closeStdin());
    }
  });
  await done;
}

/** `POST /containers/{id}/wait?condition=not-running|next-exit|removed`: the head at once, `{StatusCode, Error}` at the condition. */
async function wait(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  const condition = (call.query.get("condition") || "not-running") as WaitCondition;
  if (!["not-running", "next-exit", "removed"].includes(condition)) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid condition: "${condition}" (use not-running, next-exit or removed)`);
  }
  const code = engine.waitFor(c.id, condition);
  call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
  const status = await code;
  call.res.end(JSON.stringify({ StatusCode: status, Error: null }) + "\n");
}

/** A container's output as log lines, each with the time its chunk came. */
function logLines(c: Container): Array<{ stream: 1 | 2; line: Uint8Array; time: number }> {
  const out: Array<{ stream: 1 | 2; line: Uint8Array; time: number }> = [];
  const open: Partial<Record<1 | 2, { parts: Uint8Array[]; time: number }>> = {};
  for (const e of c.logs) {
    let from = 0;
    for (let i = 0; i < e.data.length; i++) {
      if (e.data[i] !== 10) continue;
      const pending = open[e.stream];
      const piece = e.data.subarray(from, i + 1);
      out.push({ stream: e.stream, line: pending ? concat([...pending.parts, piece]) : piece, time: pending?.time ?? e.time });
      open[e.stream] = undefined;
      from = i + 1;
    }
    if (from < e.data.length) {
      const p = open[e.stream] ?? { parts: [], time: e.time };
      p.parts.push(e.data.subarray(from));
      open[e.stream] = p;
    }
  }
  for (const s of [1, 2] as const) {
    const p = open[s];
    if (p) out.push({ stream: s, line: concat(p.parts), time: p.time });
  }
  return out.sort((a, b) => a.time - b.time);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** Docker's `since`/`until`: unix seconds, with a fraction. */
function unixMs(v: string | null): number | undefined {
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new HyperlabError("INVALID_ARGUMENT", `invalid time '${v}': give unix seconds`);
  return n * 1000;
}

/** `GET /containers/{id}/logs?stdout&stderr&follow&tail&since&until&timestamps`. */
async function logs(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  const q = call.query;
  const streams = { stdout: flag(q, "stdout"), stderr: flag(q, "stderr") };
  if (!streams.stdout && !streams.stderr) throw new HyperlabError("INVALID_ARGUMENT", "Bad parameters: you must choose at least one stream");
  const since = unixMs(q.get("since"));
  const until = unixMs(q.get("until"));
  const tail = q.get("tail");
  const timestamps = flag(q, "timestamps");
  const write = outputWriter(c, (b) => call.res.write(b), streams);
  const emit = (stream: 1 | 2, line: Uint8Array, time: number) => write(stream, timestamps ? concat([encoder.encode(`${dockerTime(time)} `), line]) : line);
  let lines = logLines(c).filter((l) => (since === undefined || l.time >= since) && (until === undefined || l.time <= until));
  if (tail && tail !== "all") {
    const n = Number(tail);
    if (!Number.isInteger(n) || n < 0) throw new HyperlabError("INVALID_ARGUMENT", `invalid tail '${tail}': give a number of lines or all`);
    lines = n === 0 ? [] : lines.slice(-n);
  }
  call.res.head(200, { ...dockerHeaders(), "Content-Type": streamType(c, call.version) });
  for (const l of lines) emit(l.stream, l.line, l.time);
  if (!flag(q, "follow") || c.status !== "running") return call.res.end();
  await new Promise<void>((resolve) => {
    const handle = engine.attach(c.id);
    const finish = () => {
      off();
      handle.detach();
      call.res.end();
      resolve();
    };
    const off = engine.onEvent((e) => e.id === c.id && (e.action === "die" || e.action === "destroy") && finish());
    call.res.onClose(finish);
    handle.onOutput((stream, data) => emit(stream, data, Date.now()));
  });
}

/** `DELETE /containers/{id}?force&v` (v: its anonymous volumes go too). */
async function remove(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  if (c.status === "running" && !flag(call.query, "force")) {
    throw new HyperlabError("CONTAINER_INVALID_STATE", `You cannot remove a running container ${c.id}. Stop the container before attempting removal or force remove`);
  }
  await engine.remove(c.id, { force: true, volumes: flag(call.query, "v") });
  sendEmpty(call.res, 204);
}

/** `POST /containers/{id}/kill?signal=`. */
async function kill(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  if (c.status !== "running") throw new HyperlabError("CONTAINER_INVALID_STATE", `Cannot kill container: ${call.params[0]}: Container ${c.id} is not running`);
  await engine.kill(c.id, call.query.get("signal") || "KILL");
  sendEmpty(call.res, 204);
}

/** `POST /containers/{id}/stop?t=`: 304 when it is not running. */
async function stop(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  if (c.status !== "running") return sendEmpty(call.res, 304);
  const t = call.query.get("t") ?? call.query.get("timeout");
  await engine.stop(c.id, { timeoutS: t === null || t === "" ? 10 : Number(t) });
  sendEmpty(call.res, 204);
}

/** `GET /containers/{id}/json`. */
async function inspect(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  await engine.initPid(c.id).catch(() => undefined);
  sendJson(call.res, 200, { ...inspectJson(c, call.api.context.vm), ExecIDs: runningExecIds(engine, c.id) });
}

const ID = "([^/]+)";

/** The container routes. */
export const containerRoutes: DockerRoute[] = [
  ["GET", /^\/containers\/json$/, list],
  ["POST", /^\/containers\/create$/, create],
  ["GET", new RegExp(`^/containers/${ID}/json$`), inspect],
  ["POST", new RegExp(`^/containers/${ID}/start$`), start],
  ["POST", new RegExp(`^/containers/${ID}/attach$`), attach],
  ["POST", new RegExp(`^/containers/${ID}/wait$`), wait],
  ["GET", new RegExp(`^/containers/${ID}/logs$`), logs],
  ["POST", new RegExp(`^/containers/${ID}/kill$`), kill],
  ["POST", new RegExp(`^/containers/${ID}/stop$`), stop],
  ["DELETE", new RegExp(`^/containers/${ID}$`), remove],
];
