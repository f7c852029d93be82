// Image endpoints of the Docker Engine API: list, inspect, history, tag,
// remove, save (`docker save`), load (`docker load`), pull from the local
// store (`POST /images/create`) and prune. Each is a thin adapter over the
// image store the engines share (containers/image-store.ts): names, removal
// rules and conflicts live there; here are Docker's JSON shapes and streams.
import { type SaveItem, readImageArchive, writeImageArchive } from "../../containers/image-archive.ts";
import { DEFAULT_DOMAIN, familiarName, normalizeName, parseReference } from "../../containers/image-reference.ts";
import { type DeleteRecord, type Image, type ImageStore, type ImageUser, sha256Hex, shortId, splitName } from "../../containers/image-store.ts";
import { HyperlabError } from "../../errors.ts";
import { type DockerRoute, type RouteCall, compareVersions, dockerHeaders, flag, sendJson } from "./api.ts";
import { parseFilters } from "./filters.ts";
import { humanSize, pullFromRegistryRoute, pullMessage } from "./registry.ts";

const encoder = new TextEncoder();

/** The image store behind the Docker API. */
export function storeOf(call: RouteCall): ImageStore {
  return call.api.context.containers.store;
}

/** Which containers (of every VM) use each image ID. */
export function imageUsers(call: RouteCall): (id: string) => ImageUser[] {
  const all = call.api.context.containers.all({ all: true });
  return (id) => all.filter(({ container }) => container.image.id === id).map(({ container }) => ({ id: container.id, running: container.status === "running" }));
}


/** Whether `labels` hold every `key` or `key=value` of a label filter. */
export function matchLabels(labels: Record<string, string>, filters: string[] | undefined): boolean {
  return (filters ?? []).every((f) => {
    const eq = f.indexOf("=");
    return eq < 0 ? f in labels : labels[f.slice(0, eq)] === f.slice(eq + 1);
  });
}

/** A shell-style pattern (Go's path.Match: `*` and `?` stop at `/`) as a regular expression. */
function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) throw new HyperlabError("INVALID_ARGUMENT", `invalid reference filter '${pattern}': syntax error in pattern`);
      re += `[${pattern.slice(i + 1, end).replace(/^\^/, "^").replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += ch.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Docker's `reference` filter: the pattern against one name (the repository alone, or name:tag). */
function matchesReference(name: string, pattern: string): boolean {
  const re = globRegExp(pattern);
  return re.test(splitName(name).repository) || re.test(name) || re.test(normalizeLoose(name));
}

function normalizeLoose(name: string): string {
  const ref = parseReference(name);
  return `${ref.domain}/${ref.path}:${ref.tag ?? "latest"}`;
}

/** unix seconds of an ISO time (0 when unknown). */
function unixSeconds(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}

/** `name@manifest digest` for each repository of an image's names. */
function repoDigests(image: Image): string[] {
  return [...new Set(image.repoTags.map((t) => splitName(t).repository))].map((r) => `${r}@${image.digest}`);
}

/** One entry of `GET /images/json` (and of /system/df's images). */
export function imageSummary(image: Image, version: string, extra: { containers: number; sharedSize?: number }): Record<string, unknown> {
  const none = compareVersions(version, "1.43") < 0 && !image.repoTags.length;
  return {
    Containers: extra.containers,
    Created: unixSeconds(image.created),
    Id: image.id,
    Labels: image.config.config?.Labels ?? null,
    ParentId: "",
    RepoDigests: none ? ["<none>@<none>"] : repoDigests(image),
    RepoTags: none ? ["<none>:<none>"] : image.repoTags,
    SharedSize: extra.sharedSize ?? -1,
    Size: image.size,
    ...(compareVersions(version, "1.44") < 0 ? { VirtualSize: image.size } : {}),
  };
}

/** The image `name` means, with dockerd's words when there is none. */
async function imageOf(call: RouteCall, name: string): Promise<{ image: Image; name?: string }> {
  try {
    return await storeOf(call).resolve(name);
  } catch (err) {
    if (err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND") throw new HyperlabError("IMAGE_NOT_FOUND", `No such image: ${displayName(name)}`);
    throw err;
  }
}

/** A name as dockerd's "No such image" shows it (busybox → busybox:latest). */
function displayName(name: string): string {
  try {
    return /^(sha256:)?[0-9a-f]+$/.test(name) ? name : normalizeName(name);
  } catch {
    return name;
  }
}

/** Only linux/386 (the `platform` parameter of pull, save, load, inspect). */
function checkPlatform(platform: string | null): void {
  if (!platform) return;
  let p: { os?: string; architecture?: string } = {};
  try {
    p = platform.startsWith("{") ? (JSON.parse(platform) as typeof p) : { os: platform.split("/")[0], architecture: platform.split("/")[1] };
  } catch {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid platform: ${platform}`);
  }
  const arch = p.architecture === "i386" ? "386" : p.architecture;
  if (p.os !== "linux" || (arch !== undefined && arch !== "386")) {
    throw new HyperlabError("NOT_SUPPORTED", `platform ${platform} is not supported: hyperlab runs linux/386 images only (its guest is a 32-bit x86 PC)`);
  }
}

/** `GET /images/json?all&filters&shared-size`: one entry per image, newest first. */
async function list(call: RouteCall): Promise<void> {
  const filters = parseFilters(call.query.get("filters"), ["reference", "dangling", "label", "before", "since", "until"]);
  const store = storeOf(call);
  let images = await store.images();
  const users = imageUsers(call);
  const dangling = filters.get("dangling");
  if (dangling?.length) {
    const want = dangling.map((v) => v.toLowerCase());
    if (want.some((v) => !["true", "false", "1", "0"].includes(v))) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter 'dangling=${dangling[0]}'`);
    const yes = want.includes("true") || want.includes("1");
    images = images.filter((i) => (i.repoTags.length === 0) === yes);
  }
  const refs = filters.get("reference");
  // As dockerd: an image is listed with the names that match, and not at all when none does.
  if (refs?.length) images = images.map((i) => ({ ...i, repoTags: i.repoTags.filter((t) => refs.some((r) => matchesReference(t, r))) })).filter((i) => i.repoTags.length);
  images = images.filter((i) => matchLabels(i.config.config?.Labels ?? {}, filters.get("label")));
  for (const [key, keep] of [
    ["before", (a: number, b: number) => a < b],
    ["since", (a: number, b: number) => a > b],
  ] as const) {
    for (const ref of filters.get(key) ?? []) {
      const pivot = Date.parse((await imageOf(call, ref)).image.created ?? "0");
      images = images.filter((i) => keep(Date.parse(i.created ?? "0"), pivot));
    }
  }
  for (const until of filters.get("until") ?? []) {
    const limit = timestampMs(until);
    images = images.filter((i) => Date.parse(i.created ?? "0") < limit);
  }
  const shared = flag(call.query, "shared-size") ? sharedSizes(await store.images()) : undefined;
  sendJson(
    call.res,
    200,
    images.map((i) => imageSummary(i, call.version, { containers: users(i.id).length, sharedSize: shared?.get(i.id) })),
  );
}

/** Each image's bytes in layers other images have too (Docker's SharedSize). */
export function sharedSizes(images: Image[]): Map<string, number> {
  const count = new Map<string, number>();
  for (const i of images) for (const d of new Set(i.layers.map((l) => l.digest))) count.set(d, (count.get(d) ?? 0) + 1);
  return new Map(images.map((i) => [i.id, i.layers.filter((l) => (count.get(l.digest) ?? 0) > 1).reduce((n, l) => n + l.size, 0)]));
}

/** A time filter or parameter: unix seconds (with a fraction), an RFC 3339 date, or a duration before now (10m, 1h30m). */
export function timestampMs(value: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const duration = /^((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+$/.test(value);
  if (duration) {
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    let ms = 0;
    for (const [, n, , u] of value.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * unit[u!]!;
    return now - ms;
  }
  const t = Date.parse(value);
  if (!Number.isFinite(t)) throw new HyperlabError("INVALID_ARGUMENT", `invalid time '${value}': give unix seconds, an RFC 3339 date or a duration such as 10m`);
  return t;
}

/** RFC 3339 with nanoseconds, as Docker writes times ("0001-01-01T00:00:00Z" for never). */
function rfc3339(ms: number | undefined): string {
  return ms === undefined ? "0001-01-01T00:00:00Z" : new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
}

/** The container settings of an image as inspect shows them (every field dockerd includes up to API 1.49). */
function configJson(image: Image): Record<string, unknown> {
  const c = image.config.config ?? {};
  return {
    Hostname: "",
    Domainname: "",
    User: c.User ?? "",
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    Image: "",
    Volumes: c.Volumes ?? null,
    WorkingDir: c.WorkingDir ?? "",
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild ?? null,
    Labels: c.Labels ?? null,
    ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    // Set by a build's HEALTHCHECK and SHELL; dockerd shows them only when set.
    ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    ...(c.Shell ? { Shell: c.Shell } : {}),
  };
}

/** `GET /images/{name}/json`. */
async function inspect(call: RouteCall): Promise<void> {
  checkPlatform(call.query.get("platform"));
  const { image } = await imageOf(call, call.params[0]!);
  const old = (v: string) => compareVersions(call.version, v) < 0;
  sendJson(call.res, 200, {
    Id: image.id,
    RepoTags: image.repoTags,
    RepoDigests: repoDigests(image),
    Parent: "",
    Comment: "",
    Created: image.created ?? (old("1.44") ? "0001-01-01T00:00:00Z" : ""),
    ...(old("1.45") ? { Container: "", ContainerConfig: { ...configJson(image), Cmd: null, Env: null, Labels: null } } : {}),
    DockerVersion: "",
    Author: image.config.author ?? "",
    Config: configJson(image),
    Architecture: image.config.architecture ?? "386",
    ...(image.config.variant ? { Variant: image.config.variant } : {}),
    Os: image.config.os ?? "linux",
    Size: image.size,
    ...(old("1.44") ? { VirtualSize: image.size } : {}),
    GraphDriver: { Data: null, Name: "overlay2" },
    RootFS: { Type: "layers", Layers: image.config.rootfs?.diff_ids ?? image.layers.map((l) => l.digest) },
    Metadata: { LastTagTime: image.lastTagTime ? rfc3339(image.lastTagTime) : "0001-01-01T00:00:00Z" },
  });
}

/** `GET /images/{name}/history`: its steps, newest first; the top one carries the image's ID and names. */
async function history(call: RouteCall): Promise<void> {
  checkPlatform(call.query.get("platform"));
  const { image } = await imageOf(call, call.params[0]!);
  const steps = image.config.history?.length ? image.config.history : image.layers.map(() => ({}) as { created?: string; created_by?: string; comment?: string; empty_layer?: boolean });
  let layer = 0;
  const out = steps.map((h) => {
    const size = h.empty_layer ? 0 : (image.layers[layer++]?.size ?? 0);
    return { Comment: h.comment ?? "", Created: unixSeconds(h.created ?? image.created), CreatedBy: h.created_by ?? "", Id: "<missing>", Size: size, Tags: null as string[] | null };
  });
  out.reverse();
  if (out[0]) {
    out[0].Id = image.id;
    out[0].Tags = image.repoTags.length ? image.repoTags : null;
  }
  sendJson(call.res, 200, out);
}

/** `POST /images/{name}/tag?repo&tag`: 201. */
async function tag(call: RouteCall): Promise<void> {
  const repo = call.query.get("repo") ?? "";
  const t = call.query.get("tag") ?? "";
  if (!repo) throw new HyperlabError("INVALID_ARGUMENT", "repository name must have at least one component");
  if (/^[0-9a-f]{64}$/.test(repo)) throw new HyperlabError("INVALID_ARGUMENT", `invalid repository name (${repo}), cannot specify 64-byte hexadecimal strings`);
  const target = t ? `${repo}:${t}` : repo;
  const ref = parseReference(target);
  if (ref.digest) throw new HyperlabError("INVALID_ARGUMENT", "refusing to create a tag with a digest reference");
  await imageOf(call, call.params[0]!);
  await storeOf(call).tag(call.params[0]!, target);
  call.res.head(201, dockerHeaders());
  call.res.end();
}

/** `DELETE /images/{name}?force&noprune`: what was untagged and deleted. */
async function remove(call: RouteCall): Promise<void> {
  const name = call.params[0]!;
  const records = await storeOf(call).remove(name, { force: flag(call.query, "force"), users: imageUsers(call) });
  sendJson(call.res, 200, records);
}

/** The images `docker save NAME…` means: a name with its tag; a repository alone: all its tags; an ID: no names. */
async function saveItems(call: RouteCall, names: string[]): Promise<SaveItem[]> {
  const items = new Map<string, SaveItem>();
  const add = (image: Image, name?: string) => {
    const item = items.get(image.id) ?? { image, names: [] };
    if (name && !item.names.includes(name)) item.names.push(name);
    items.set(image.id, item);
  };
  const all = await storeOf(call).images();
  for (const n of names) {
    let repoOnly: string | undefined;
    try {
      const ref = parseReference(n);
      if (!ref.tag && !ref.digest) repoOnly = familiarName(ref);
    } catch {
      // An ID (prefix) or a bad name: imageOf says which.
    }
    const tagged = repoOnly ? all.flatMap((i) => i.repoTags.filter((t) => splitName(t).repository === repoOnly).map((t) => [i, t] as const)) : [];
    if (tagged.length) {
      for (const [i, t] of tagged) add(i, t);
      continue;
    }
    const found = await imageOf(call, n);
    add(found.image, found.name);
  }
  return [...items.values()];
}

/** Sends a save's archive. */
async function sendArchive(call: RouteCall, names: string[]): Promise<void> {
  checkPlatform(call.query.get("platform"));
  if (!names.length) throw new HyperlabError("INVALID_ARGUMENT", "no images to save: give one or more names");
  const items = await saveItems(call, names);
  const reader = writeImageArchive(storeOf(call), items).getReader();
  // The first bytes (or an error) before the head: a missing blob is still an error answer.
  const first = await reader.read();
  call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/x-tar" });
  let gone = false;
  call.res.onClose(() => {
    gone = true;
    void reader.cancel().catch(() => {});
  });
  try {
    for (let r = first; !r.done && !gone; r = await reader.read()) call.res.write(r.value);
  } finally {
    call.res.end();
  }
}

/** `GET /images/{name}/get`. */
async function saveOne(call: RouteCall): Promise<void> {
  await sendArchive(call, [call.params[0]!]);
}

/** `GET /images/get?names=…`. */
async function saveMany(call: RouteCall): Promise<void> {
  await sendArchive(call, call.query.getAll("names").flatMap((n) => n.split(",")).filter(Boolean));
}

/** Writes one JSON line of a progress stream. */
function line(call: RouteCall, value: unknown): void {
  call.res.write(encoder.encode(JSON.stringify(value) + "\n"));
}

/**
 * `POST /images/load?quiet`: the archive in the body (Docker's or an OCI
 * layout); answers a JSON stream ("Loaded image: …"), errors in it as
 * errorDetail lines, as dockerd does.
 */
async function load(call: RouteCall): Promise<void> {
  checkPlatform(call.query.get("platform"));
  const quiet = flag(call.query, "quiet");
  call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
  try {
    const store = storeOf(call);
    const images = await readImageArchive(call.req.stream());
    const present = new Set((await store.images()).flatMap((i) => i.layers.map((l) => l.digest)));
    const added = await store.add(images);
    if (!quiet) {
      for (const img of images) {
        for (const l of img.layers) {
          const digest = `sha256:${await sha256Hex(l)}`;
          if (present.has(digest)) continue;
          present.add(digest);
          const bar = `[${"=".repeat(49)}>]  ${humanSize(l.length)}/${humanSize(l.length)}`;
          line(call, { status: "Loading layer", progressDetail: { current: l.length, total: l.length }, progress: bar, id: shortId(digest) });
        }
      }
    }
    for (const a of added) {
      for (const m of a.moved) line(call, { stream: `The image ${m.name} already exists, renaming the old one with ID ${m.from} to empty string\n` });
      for (const t of a.repoTags) line(call, { stream: `Loaded image: ${t}\n` });
      if (!a.repoTags.length) line(call, { stream: `Loaded image ID: ${a.id}\n` });
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    line(call, { errorDetail: { message }, error: message });
  }
  call.res.end();
}

/**
 * `POST /images/create?fromImage&tag&platform` (`docker pull`): a name with
 * a registry's address (localhost:5000/app) from that registry
 * (registry.ts); a Docker Hub name from the local store (hyperlab reaches no
 * registry on the internet), with the progress stream dockerd sends. Not
 * found: 404 in dockerd's words, before any output.
 */
async function create(call: RouteCall): Promise<void> {
  const q = call.query;
  if (q.get("fromSrc") !== null) throw new HyperlabError("NOT_SUPPORTED", "importing a root filesystem (docker import, fromSrc) is not supported by hyperlab yet: use docker load with an image archive");
  const from = q.get("fromImage");
  if (!from) throw new HyperlabError("INVALID_ARGUMENT", "fromImage is required: name the image to pull");
  checkPlatform(q.get("platform"));
  const t = q.get("tag") ?? "";
  const ref = parseReference(from);
  if (ref.domain !== DEFAULT_DOMAIN) {
    // A name with a registry's address: pulled from that registry.
    const tagged = t ? (/^sha256:[0-9a-f]{64}$/.test(t) ? `${familiarName(ref)}@${t}` : `${familiarName(ref)}:${t}`) : ref.tag || ref.digest ? from : `${familiarName(ref)}:latest`;
    return pullFromRegistryRoute(call, tagged);
  }
  const names: string[] = [];
  if (t) names.push(/^sha256:[0-9a-f]{64}$/.test(t) ? `${familiarName(ref)}@${t}` : `${familiarName(ref)}:${t}`);
  else if (ref.tag || ref.digest) names.push(from);
  else {
    // --all-tags: every tag the local store has for the repository.
    const repo = familiarName(ref);
    const store = storeOf(call);
    const have = [...new Set([...(await store.builtInNames()), ...(await store.list()).map((i) => i.reference)])].filter((n) => splitName(n).repository === repo);
    names.push(...(have.length ? have : [`${repo}:latest`]));
  }
  let started = false;
  const start = () => {
    if (!started) call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
    started = true;
  };
  try {
    for (const name of names) {
      await storeOf(call).pull(name, (step) => {
        start();
        line(call, pullMessage(step));
      });
    }
  } catch (err) {
    if (!started) throw err;
    const message = err instanceof Error ? err.message : String(err);
    line(call, { errorDetail: { message }, error: message });
  }
  call.res.end();
}

/** `POST /images/prune?filters`: dangling images (all unused ones with dangling=false), minus label/until filters. */
async function prune(call: RouteCall): Promise<void> {
  const filters = parseFilters(call.query.get("filters"), ["dangling", "label", "label!", "until"]);
  const dangling = (filters.get("dangling") ?? ["true"]).map((v) => v.toLowerCase());
  const all = dangling.includes("false") || dangling.includes("0");
  const untils = (filters.get("until") ?? []).map((u) => timestampMs(u));
  const keep = (image: Image) => {
    const labels = image.config.config?.Labels ?? {};
    if (!matchLabels(labels, filters.get("label"))) return true;
    if ((filters.get("label!") ?? []).some((f) => matchLabels(labels, [f]))) return true;
    return untils.some((u) => Date.parse(image.created ?? "0") >= u);
  };
  const { records, reclaimed } = await storeOf(call).prune({ all, keep, users: imageUsers(call) });
  call.api.events.record({ Type: "image", Action: "prune", Actor: { ID: "", Attributes: { reclaimed: String(reclaimed) } } });
  sendJson(call.res, 200, { ImagesDeleted: records.length ? (records as DeleteRecord[]) : null, SpaceReclaimed: reclaimed });
}

/** The image routes ({name} may hold slashes: registry/repo:tag). */
export const imageRoutes: DockerRoute[] = [
  ["GET", /^\/images\/json$/, list],
  ["POST", /^\/images\/create$/, create],
  ["POST", /^\/images\/load$/, load],
  ["POST", /^\/images\/prune$/, prune],
  ["GET", /^\/images\/get$/, saveMany],
  ["GET", /^\/images\/(.+)\/json$/, inspect],
  ["GET", /^\/images\/(.+)\/history$/, history],
  ["POST", /^\/images\/(.+)\/tag$/, tag],
  ["GET", /^\/images\/(.+)\/get$/, saveOne],
  ["DELETE", /^\/images\/(.+)$/, remove],
];
