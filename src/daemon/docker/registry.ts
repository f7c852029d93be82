// Registry endpoints of the Docker Engine API: `POST /images/{name}/push`
// (docker push), `POST /auth` (docker login), and the registry half of
// `POST /images/create` (docker pull of a name that names a registry), with
// the progress streams dockerd sends (one JSON object a line: "Pulling fs
// layer", "Downloading" with its bar, "Pull complete"; "Preparing",
// "Pushing", "Pushed", "Layer already exists", then "TAG: digest: … size:
// N" and an aux line). Credentials come with each request, as the docker CLI
// sends them (X-Registry-Auth, base64url JSON); the daemon keeps none.
import type { PullStep } from "../../containers/image-store.ts";
import type { RegistryAuth } from "../../containers/registry.ts";
import { type PushStep, loginToRegistry, pullFromRegistry, pushToRegistry } from "../../containers/registry-transfer.ts";
import { HyperlabError } from "../../errors.ts";
import { checkTypes } from "./body-types.ts";
import { type DockerRoute, type RouteCall, dockerHeaders, jsonBody, sendJson } from "./api.ts";

const encoder = new TextEncoder();

/** Bytes as Docker's progress bars print them (go-units' HumanSize with 4 digits: "2.212MB"). */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/** dockerd's progress bar (jsonmessage's JSONProgress.String, 50 wide): "[====>     ]  1.2MB/2.2MB". */
export function progressBar(current: number, total: number): string {
  const width = 50;
  if (total <= 0 || current > total) return `[${"=".repeat(width)}>] ${humanSize(current).padStart(8)}`;
  const bars = Math.floor((current / total) * width);
  return `[${"=".repeat(bars)}>${" ".repeat(width - bars)}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/**
 * The credentials of an X-Registry-Auth header (base64url JSON: username,
 * password or auth, identitytoken, registrytoken); none for an empty one
 * ("e30=" is {}). INVALID_ARGUMENT when it is not that.
 */
export function registryAuthOf(header: string | undefined): RegistryAuth | undefined {
  if (!header) return undefined;
  let v: { username?: string; password?: string; auth?: string; identitytoken?: string; registrytoken?: string };
  try {
    const b64 = header.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    v = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)))) as typeof v;
  } catch {
    throw new HyperlabError("INVALID_ARGUMENT", "invalid X-Registry-Auth header: it must be base64url-encoded JSON ({\"username\": …, \"password\": …})");
  }
  const fields = ["username", "password", "auth", "identitytoken", "registrytoken"] as const;
  const wrong = typeof v !== "object" || v === null || Array.isArray(v) ? "" : fields.find((f) => v[f] !== undefined && v[f] !== null && typeof v[f] !== "string");
  if (wrong !== undefined) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `invalid X-Registry-Auth header: ${wrong ? `its ${wrong} is not a string` : "it is not a JSON object"}; it must be base64url-encoded JSON ({"username": …, "password": …})`,
    );
  }
  let { username, password } = v;
  if (!username && v.auth) {
    let text: string;
    try {
      text = new TextDecoder().decode(Uint8Array.from(atob(v.auth), (c) => c.charCodeAt(0)));
    } catch {
      throw new HyperlabError("INVALID_ARGUMENT", "invalid X-Registry-Auth header: its auth is not base64 of user:password");
    }
    const colon = text.indexOf(":");
    if (colon > 0) [username, password] = [text.slice(0, colon), text.slice(colon + 1)];
  }
  const auth: RegistryAuth = { ...(username ? { username, password } : {}), ...(v.identitytoken ? { identitytoken: v.identitytoken } : {}), ...(v.registrytoken ? { registrytoken: v.registrytoken } : {}) };
  return Object.keys(auth).length ? auth : undefined;
}

/** A pull step as the JSON object dockerd streams for it. */
export function pullMessage(step: PullStep): Record<string, unknown> {
  switch (step.kind) {
    case "start":
      return { status: `Pulling from ${step.name}`, id: step.tag };
    case "layer":
      return { status: step.status, progressDetail: {}, id: step.id };
    case "download":
      return { status: "Downloading", progressDetail: { current: step.current, total: step.total }, progress: progressBar(step.current, step.total), id: step.id };
    case "digest":
      return { status: `Digest: ${step.digest}` };
    case "done":
      return { status: `Status: ${step.updated ? "Downloaded newer image" : "Image is up to date"} for ${step.name}` };
  }
}

/** A push step as the JSON object(s) dockerd streams for it. */
export function pushMessages(step: PushStep): Array<Record<string, unknown>> {
  switch (step.kind) {
    case "start":
      return [{ status: `The push refers to repository [${step.repository}]` }];
    case "layer":
      return [{ status: step.status, progressDetail: {}, id: step.id }];
    case "upload":
      return [{ status: "Pushing", progressDetail: { current: step.current, total: step.total }, progress: progressBar(step.current, step.total), id: step.id }];
    case "pushed":
      return [{ status: `${step.tag}: digest: ${step.digest} size: ${step.size}` }, { progressDetail: {}, aux: { Tag: step.tag, Digest: step.digest, Size: step.size } }];
  }
}

/** A stream of JSON lines whose head goes out with the first line (an error before it is an error answer). */
function jsonLines(call: RouteCall): { line: (v: unknown) => void; started: () => boolean } {
  let started = false;
  return {
    line: (v) => {
      if (!started) call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/json" });
      started = true;
      call.res.write(encoder.encode(JSON.stringify(v) + "\n"));
    },
    started: () => started,
  };
}

/** An error in a stream already under way, as dockerd writes it. */
function errorLine(err: unknown): Record<string, unknown> {
  const message = err instanceof Error ? err.message : String(err);
  return { errorDetail: { message }, error: message };
}

/**
 * Pulls `names` from their registry for `POST /images/create`, streaming
 * dockerd's progress; an error before the first line (manifest unknown,
 * unreachable, unauthorized) is an error answer, as with dockerd.
 */
export async function pullFromRegistryRoute(call: RouteCall, name: string): Promise<void> {
  const out = jsonLines(call);
  const auth = registryAuthOf(call.req.headers["x-registry-auth"]);
  try {
    await pullFromRegistry(call.api.context.containers.store, name, (step) => out.line(pullMessage(step)), { auth, fetch: call.api.context.registryFetch });
  } catch (err) {
    if (!out.started()) throw err;
    out.line(errorLine(err));
  }
  call.res.end();
}

/** `POST /images/{name}/push?tag=` (docker push): the stream dockerd sends; errors in it as errorDetail lines. */
async function push(call: RouteCall): Promise<void> {
  const auth = registryAuthOf(call.req.headers["x-registry-auth"]);
  const out = jsonLines(call);
  try {
    await pushToRegistry(call.api.context.containers.store, call.params[0]!, (step) => pushMessages(step).forEach(out.line), { auth, tag: call.query.get("tag") || undefined, fetch: call.api.context.registryFetch });
  } catch (err) {
    if (!out.started()) throw err;
    out.line(errorLine(err));
  }
  call.res.end();
}

/** `POST /auth` (docker login): checks the credentials against the registry; the daemon keeps none. */
async function auth(call: RouteCall): Promise<void> {
  const body = await jsonBody<{ username?: string; password?: string; serveraddress?: string; identitytoken?: string }>(call.req);
  checkTypes(body, [["username", "string"], ["password", "string"], ["serveraddress", "string"], ["identitytoken", "string"]], "");
  if (!body.serveraddress) throw new HyperlabError("INVALID_ARGUMENT", "serveraddress is required: name the registry to log in to");
  await loginToRegistry(body.serveraddress, { username: body.username, password: body.password, identitytoken: body.identitytoken || undefined }, { fetch: call.api.context.registryFetch });
  sendJson(call.res, 200, { IdentityToken: "", Status: "Login Succeeded" });
}

/** The registry routes ({name} may hold slashes and a port: localhost:5000/app). */
export const registryRoutes: DockerRoute[] = [
  ["POST", /^\/images\/(.+)\/push$/, push],
  ["POST", /^\/auth$/, auth],
];
