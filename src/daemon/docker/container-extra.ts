// Container endpoints of the Docker Engine API beyond create/start/stop:
// top, stats (one-shot and streaming, cgroup v2 figures in Docker's JSON),
// pause/unpause (the cgroup freezer), rename, resize, restart and prune.
// Each is a thin adapter over one engine call.
import type { Container, ContainerEngine, ContainerStats } from "../../containers/engine.ts";
import { HyperlabError } from "../../errors.ts";
import { type DockerRoute, type RouteCall, dockerHeaders, flag, sendEmpty, sendJson } from "./api.ts";
import { containerOf, dockerTime } from "./containers.ts";
import { parseFilters } from "./filters.ts";

const ID = "([^/]+)";

/** `GET /containers/{id}/top?ps_args=`. */
async function top(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  sendJson(call.res, 200, await engine.top(c.id, call.query.get("ps_args") ?? ""));
}

/** One sample of a container's usage, with when it was read. */
interface Sample {
  stats?: ContainerStats;
  /** ms since 1970; undefined: never (Docker's zero time) */
  read?: number;
}

/** Docker's cpu_stats (and precpu_stats) from a sample: nanoseconds, as dockerd reports cgroup v2's microseconds. */
function cpuStats(s: ContainerStats | undefined): Record<string, unknown> {
  return {
    cpu_usage: {
      total_usage: (s?.cpuUsageUs ?? 0) * 1000,
      usage_in_kernelmode: (s?.cpuSystemUs ?? 0) * 1000,
      usage_in_usermode: (s?.cpuUserUs ?? 0) * 1000,
    },
    ...(s ? { system_cpu_usage: s.systemCpuNs ?? 0, online_cpus: s.onlineCpus ?? 1 } : {}),
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: (s?.cpuThrottledUs ?? 0) * 1000 },
  };
}

/** Docker's stats JSON (API 1.41+ shape for cgroup v2) for a sample and the one before it. */
export function dockerStats(c: Container, now: Sample, before: Sample): Record<string, unknown> {
  const s = now.stats;
  return {
    read: dockerTime(now.read),
    preread: dockerTime(before.read),
    pids_stats: s ? { current: s.pids, ...(s.pidsLimit ? { limit: s.pidsLimit } : {}) } : {},
    blkio_stats: {
      io_service_bytes_recursive: null,
      io_serviced_recursive: null,
      io_queue_recursive: null,
      io_service_time_recursive: null,
      io_wait_time_recursive: null,
      io_merged_recursive: null,
      io_time_recursive: null,
      sectors_recursive: null,
    },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats(s),
    precpu_stats: cpuStats(before.stats),
    // Without a limit of its own a container may use the guest's memory: that is its limit, as the host's is with dockerd.
    memory_stats: s ? { usage: s.memoryBytes, stats: s.memoryStat ?? {}, limit: s.memoryLimitBytes ?? s.guestMemoryBytes ?? 0 } : {},
    name: `/${c.name}`,
    id: c.id,
    ...(s?.network
      ? {
          networks: {
            eth0: {
              rx_bytes: s.network.rxBytes,
              rx_packets: s.network.rxPackets,
              rx_errors: 0,
              rx_dropped: 0,
              tx_bytes: s.network.txBytes,
              tx_packets: s.network.txPackets,
              tx_errors: 0,
              tx_dropped: 0,
            },
          },
        }
      : {}),
  };
}

/** How often streaming stats sample, as dockerd's collector. */
const STATS_INTERVAL_MS = 1000;

/** A sample of a running container (none once it has stopped). */
async function sample(engine: ContainerEngine, c: Container): Promise<Sample> {
  if (c.status !== "running") return {};
  const stats = await engine.stats(c.id).catch((err: unknown) => {
    if (c.status !== "running") return undefined; // it stopped while being read
    throw err;
  });
  return stats ? { stats, read: Date.now() } : {};
}

/**
 * `GET /containers/{id}/stats?stream=&one-shot=`: a JSON object a second
 * while it runs (stream, the default), or one: with `one-shot` at once
 * (no precpu_stats), else after a second, so its CPU share can be computed
 * (what `docker stats --no-stream` asks). A container that does not run
 * gets one zeroed object, as dockerd answers.
 */
async function stats(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  const stream = call.query.get("stream") === null || flag(call.query, "stream");
  const oneShot = flag(call.query, "one-shot");
  if (oneShot && stream) throw new HyperlabError("INVALID_ARGUMENT", "cannot have stream=true and one-shot=true");
  let before: Sample = {};
  let now = await sample(engine, c);
  if (!stream) {
    if (!oneShot && now.stats) {
      await new Promise((r) => setTimeout(r, STATS_INTERVAL_MS));
      [before, now] = [now, await sample(engine, c)];
    }
    return sendJson(call.res, 200, dockerStats(c, now, before));
  }
  call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
  let closed = false;
  call.res.onClose(() => (closed = true));
  for (;;) {
    call.res.write(JSON.stringify(dockerStats(c, now, before)) + "\n");
    if (!now.stats) break;
    await new Promise((r) => setTimeout(r, STATS_INTERVAL_MS));
    if (closed) break;
    [before, now] = [now, await sample(engine, c).catch(() => ({}))];
    if (!now.stats) break; // it stopped: the stream ends, as dockerd's
  }
  call.res.end();
}

/** `POST /containers/{id}/pause`: freezes its processes. */
async function pause(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  await engine.pause(containerOf(engine, call.params[0]!).id);
  sendEmpty(call.res, 204);
}

/** `POST /containers/{id}/unpause`. */
async function unpause(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  await engine.unpause(containerOf(engine, call.params[0]!).id);
  sendEmpty(call.res, 204);
}

/** `POST /containers/{id}/rename?name=`: 409 when the name is taken, in dockerd's words. */
async function rename(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  const name = call.query.get("name") ?? "";
  if (!name) throw new HyperlabError("INVALID_ARGUMENT", "Neither old nor new names may be empty");
  try {
    await engine.rename(c.id, name);
  } catch (err) {
    if (err instanceof HyperlabError && (err.code === "CONTAINER_EXISTS" || err.message.startsWith("Invalid container name"))) {
      throw new HyperlabError(err.code, `Error when allocating new name: ${err.message}`, err.detail);
    }
    throw err;
  }
  sendEmpty(call.res, 204);
}

/** A terminal dimension from the query (`h`, `w`). */
function dimension(call: RouteCall, name: "h" | "w"): number {
  const v = call.query.get(name) ?? "";
  if (!/^\d+$/.test(v)) throw new HyperlabError("INVALID_ARGUMENT", `invalid ${name} '${v}': give the terminal's ${name === "h" ? "height (rows)" : "width (columns)"} as a number`);
  return Number(v);
}

/** `POST /containers/{id}/resize?h=&w=`: the size of its terminal. */
async function resize(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  const rows = dimension(call, "h");
  const cols = dimension(call, "w");
  await engine.resize(c.id, rows, cols);
  sendEmpty(call.res, 200);
}

/** `POST /containers/{id}/restart?t=`: stop (its stop signal, then SIGKILL after t seconds), then start again. */
async function restart(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const c = containerOf(engine, call.params[0]!);
  if (call.query.get("signal")) throw new HyperlabError("NOT_SUPPORTED", "restart's signal is not supported by hyperlab: the container's stop signal is sent (set it with --stop-signal at create); drop --signal");
  const t = call.query.get("t") ?? call.query.get("timeout");
  const timeoutS = t === null || t === "" ? 10 : Number(t);
  if (!Number.isFinite(timeoutS)) throw new HyperlabError("INVALID_ARGUMENT", `invalid timeout '${t}': give seconds`);
  await engine.restart(c.id, { timeoutS: timeoutS < 0 ? 10 : timeoutS });
  sendEmpty(call.res, 204);
}

/** Go's duration units, in ms. */
const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Docker's `until`: a Go duration before now ("24h", "1h30m"), unix seconds
 * (with a fraction), or an RFC 3339 date or time. ms since 1970.
 */
export function dockerTimestamp(value: string, now = Date.now()): number {
  const v = value.trim();
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    let ms = 0;
    for (const [, n, unit] of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * DURATION_UNITS[unit!]!;
    return now - ms;
  }
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = /^\d{4}-\d\d-\d\d/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new HyperlabError("INVALID_ARGUMENT", `failed to parse value as time or duration: "${value}"`);
  return t;
}

/** Whether `c`'s labels satisfy each of `label` filter's values (`key` or `key=value`). */
function labelsMatch(c: Container, values: string[], negate: boolean): boolean {
  return values.every((v) => {
    const [k, val] = v.split("=", 2) as [string, string | undefined];
    const has = k in c.labels && (val === undefined || c.labels[k] === val);
    return negate ? !has : has;
  });
}

/** `POST /containers/prune?filters=`: removes the containers that do not run (filters until, label, label!). */
async function prune(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const filters = parseFilters(call.query.get("filters"));
  for (const k of filters.keys()) if (!["until", "label", "label!"].includes(k)) throw new HyperlabError("INVALID_ARGUMENT", `Invalid filter '${k}'`);
  const until = filters.get("until")?.map((v) => dockerTimestamp(v));
  const candidates = engine
    .ps({ all: true })
    .filter((c) => c.status !== "running")
    .filter((c) => !until || until.every((t) => c.createdAt.getTime() < t))
    .filter((c) => labelsMatch(c, filters.get("label") ?? [], false) && labelsMatch(c, filters.get("label!") ?? [], true));
  const deleted: string[] = [];
  let reclaimed = 0;
  for (const c of candidates) {
    const size = await engine.sizeRw(c.id).catch(() => 0);
    try {
      await engine.remove(c.id);
    } catch (err) {
      // Started or removed meanwhile: not this prune's.
      if (err instanceof HyperlabError && (err.code === "CONTAINER_INVALID_STATE" || err.code === "CONTAINER_NOT_FOUND")) continue;
      throw err;
    }
    deleted.push(c.id);
    reclaimed += size;
  }
  sendJson(call.res, 200, { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
}

/** The routes of this file. */
export const containerExtraRoutes: DockerRoute[] = [
  ["GET", new RegExp(`^/containers/${ID}/top$`), top],
  ["GET", new RegExp(`^/containers/${ID}/stats$`), stats],
  ["POST", new RegExp(`^/containers/${ID}/pause$`), pause],
  ["POST", new RegExp(`^/containers/${ID}/unpause$`), unpause],
  ["POST", new RegExp(`^/containers/${ID}/rename$`), rename],
  ["POST", new RegExp(`^/containers/${ID}/resize$`), resize],
  ["POST", new RegExp(`^/containers/${ID}/restart$`), restart],
  ["POST", /^\/containers\/prune$/, prune],
];
