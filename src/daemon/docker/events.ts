// `GET /events?since&until&filters` (`docker events`): the kept events from
// `since`, then new ones as they happen until `until` or until the client
// goes away, one JSON object a line, filtered as dockerd filters them.
import { HyperlabError } from "../../errors.ts";
import { normalizeName } from "../../containers/image-reference.ts";
import { type DockerRoute, type RouteCall, dockerHeaders } from "./api.ts";
import { type DockerEvent, eventLine } from "./event-log.ts";
import { parseFilters } from "./filters.ts";
import { timestampMs } from "./images.ts";

const FILTERS = ["type", "event", "container", "image", "label", "network", "volume", "daemon", "plugin", "node", "service", "secret", "config", "scope"] as const;

/** Nanoseconds of a since/until value (unix seconds with a fraction, a date, or a duration before now). */
function nanos(value: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(value);
  if (m) return BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
  return BigInt(Math.round(timestampMs(value) * 1000)) * 1000n;
}

/** `name` without its tag ("busybox:latest" → busybox), as dockerd's image filter compares. */
function stripTag(name: string): string {
  const colon = name.lastIndexOf(":");
  return colon > name.lastIndexOf("/") && !name.startsWith("sha256:") ? name.slice(0, colon) : name;
}

function loose(name: string): string {
  try {
    return normalizeName(name);
  } catch {
    return name;
  }
}

/** dockerd's event filter (daemon/events/filter.go): each given key must match; values of one key are alternatives. */
export function eventFilter(filters: Map<string, string[]>): (e: DockerEvent) => boolean {
  const exact = (key: string, ...values: string[]) => {
    const want = filters.get(key);
    return !want?.length || want.some((w) => values.includes(w));
  };
  const fuzzy = (key: string, ...values: string[]) => {
    const want = filters.get(key);
    return !want?.length || want.some((w) => values.some((v) => v.startsWith(w)));
  };
  return (e) => {
    const attrs = e.Actor.Attributes;
    const actions = filters.get("event");
    const actionOk = !actions?.length || actions.some((a) => (["health_status", "exec_create", "exec_start"].includes(a) ? e.Action.startsWith(a) : e.Action === a));
    const imageName = (e.Type === "image" ? attrs.name : attrs.image) ?? "";
    const images = filters.get("image");
    const imageOk =
      !images?.length ||
      images.some((w) => [e.Actor.ID, imageName, stripTag(e.Actor.ID), stripTag(imageName)].includes(w) || (imageName !== "" && loose(w) === loose(imageName)));
    const typed = (type: string) => (e.Type === type ? fuzzy(type, e.Actor.ID, attrs.name ?? "") : !filters.get(type)?.length);
    return (
      actionOk &&
      exact("type", e.Type) &&
      exact("scope", e.scope) &&
      typed("container") &&
      typed("network") &&
      typed("volume") &&
      typed("daemon") &&
      typed("plugin") &&
      imageOk &&
      (filters.get("label") ?? []).every((f) => {
        const eq = f.indexOf("=");
        return eq < 0 ? f in attrs : attrs[f.slice(0, eq)] === f.slice(eq + 1);
      })
    );
  };
}

/** `GET /events`. */
async function events(call: RouteCall): Promise<void> {
  const q = call.query;
  const filters = parseFilters(q.get("filters"), FILTERS);
  const since = q.get("since") ? nanos(q.get("since")!) : undefined;
  const until = q.get("until") ? nanos(q.get("until")!) : undefined;
  if (since !== undefined && until !== undefined && until < since) throw new HyperlabError("INVALID_ARGUMENT", "`since` time cannot be after `until` time");
  const match = eventFilter(filters);
  const log = call.api.events;
  const now = BigInt(Date.now()) * 1_000_000n;
  call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
  const send = (e: DockerEvent) => {
    if (match(e)) call.res.write(eventLine(e));
  };
  // Followed before the past is written, so nothing that happens in between is lost.
  const pending: DockerEvent[] = [];
  let live = false;
  const off = log.follow((e) => (live ? send(e) : pending.push(e)));
  try {
    const past = since !== undefined ? log.past(since, until) : [];
    for (const e of past) send(e);
    const last = past.at(-1)?.timeNano ?? -1n;
    for (const e of pending) if (e.timeNano > last && (until === undefined || e.timeNano <= until)) send(e);
    live = true;
    if (until !== undefined && until <= now) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      call.res.onClose(resolve);
      if (until !== undefined) timer = setTimeout(resolve, Number((until - now) / 1_000_000n));
    });
    clearTimeout(timer);
  } finally {
    off();
    call.res.end();
  }
}

/** The events route. */
export const eventRoutes: DockerRoute[] = [["GET", /^\/events$/, events]];
