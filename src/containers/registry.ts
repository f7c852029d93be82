// A client of the OCI distribution API (a registry's /v2/…), written on
// fetch alone so the page can use it as the daemon does: manifests by tag or
// digest (OCI image manifests and indexes, Docker schema 2 manifests and
// manifest lists), blobs read and checked against their digest, blobs
// checked with HEAD and uploaded whole (POST, PUT) or in chunks (POST,
// PATCH…, PUT), manifests put under a tag. A 401 is answered once with the
// scheme the registry's WWW-Authenticate asks for: Basic with the
// credentials, or Bearer with a token from the realm it names (fetched with
// the credentials, if any). Registries on the loopback (localhost:5000,
// 127.0.0.1:5000, [::1]:5000) are spoken to in plain http, as docker treats
// them as insecure by default; every other one in https.
import { bytesToBase64 } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import { DEFAULT_DOMAIN } from "./image-reference.ts";

/** Credentials for one registry, as docker's X-Registry-Auth and config.json carry them. */
export interface RegistryAuth {
  username?: string;
  password?: string;
  /** a refresh token from an earlier login (Bearer registries) */
  identitytoken?: string;
  /** a bearer token to send as it is */
  registrytoken?: string;
}

/** How a client talks to its registry. */
export interface RegistryOptions {
  auth?: RegistryAuth;
  /** the fetch to use (default: the global one) */
  fetch?: typeof fetch;
  /** how long one request may wait for its answer's head (default 30 s) */
  timeoutMs?: number;
  /** blobs larger than this go up in PATCH chunks of this size (default 8 MiB) */
  chunkSize?: number;
  /**
   * Where the registry's /v2/ is, when not at the address names carry (a
   * static registry in a site: https://example.org/hyperlab/ serves
   * https://example.org/hyperlab/v2/…)
   */
  baseUrl?: string;
}

/** The media types of manifests a pull accepts, most wanted first. */
export const MANIFEST_TYPES = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
} as const;

const SCHEMA1_TYPES = ["application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws"];

/** A manifest as the registry sent it: its bytes (what its digest is of), media type and digest. */
export interface FetchedManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

/** Docker Hub's API host (names of docker.io live there). */
const DOCKER_HUB_HOST = "registry-1.docker.io";

/** Whether a registry address is on this machine's loopback (docker speaks plain http to these). */
export function isLoopbackRegistry(domain: string): boolean {
  const host = domain.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The base URL of a registry's API: http for the loopback, https otherwise; docker.io is Docker Hub's API host. */
export function registryBaseUrl(domain: string): string {
  if (domain === DEFAULT_DOMAIN) return `https://${DOCKER_HUB_HOST}`;
  return `${isLoopbackRegistry(domain) ? "http" : "https"}://${domain}`;
}

/** One challenge of a WWW-Authenticate header: its scheme (lower case) and parameters. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * The challenges of a WWW-Authenticate header (RFC 7235: `Scheme k=v,
 * k2="v 2", Scheme2 …`); quoted values may hold commas and escaped quotes.
 */
export function parseChallenges(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  const re = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*,?/gy;
  let current: AuthChallenge | undefined;
  for (let m = re.exec(header); m && m[0]; m = re.exec(header)) {
    const [, token, quoted, bare] = m;
    if (quoted === undefined && bare === undefined) {
      current = { scheme: token!.toLowerCase(), params: {} };
      out.push(current);
    } else if (current) {
      current.params[token!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : bare!;
    }
  }
  return out;
}

function base64(text: string): string {
  return bytesToBase64(new TextEncoder().encode(text));
}

/** The sha256 of `data` as `sha256:<hex>`. */
export async function sha256Digest(data: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return `sha256:${Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The `errors` a registry answers with (distribution's JSON), as "code: message" text. */
function registryErrors(text: string): { codes: string[]; text: string } {
  try {
    const v = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const errors = v.errors ?? [];
    return { codes: errors.map((e) => e.code ?? ""), text: errors.map((e) => e.message ?? e.code ?? "").join("; ") };
  } catch {
    return { codes: [], text: text.trim().slice(0, 200) };
  }
}

/** What a failed fetch (no answer) was: the innermost cause's words (ECONNREFUSED, ENOTFOUND, …). */
function networkCause(err: unknown): string {
  let e = err as { cause?: unknown; message?: string; code?: string } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.code ? `${e.code}${e.message && !e.message.includes(e.code) ? ` (${e.message})` : e.message ? `: ${e.message.replace(new RegExp(`^.*${e.code}\\s*`), "")}` : ""}` : (e?.message ?? String(err));
}

/**
 * A registry's API for one registry (its address as image names carry it:
 * localhost:5000, docker.io). Tokens are kept per scope for the client's
 * life. Every request has a timeout that names what it waited for.
 */
export class RegistryClient {
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly chunkSize: number;
  /** the Authorization to send, per scope ("" for the registry itself) */
  private readonly authorization = new Map<string, string>();
  /** a Basic registry takes the same header for every scope */
  private basic: string | undefined;

  constructor(
    /** the registry's address as names carry it (localhost:5000) */
    readonly domain: string,
    private readonly opts: RegistryOptions = {},
  ) {
    this.baseUrl = opts.baseUrl?.replace(/\/+$/, "") ?? registryBaseUrl(domain);
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.chunkSize = opts.chunkSize ?? 8 * 1024 * 1024;
  }

  /**
   * Checks the credentials against the registry (`docker login`): GET /v2/,
   * answering a challenge with them. REGISTRY_UNAUTHORIZED in dockerd's words
   * when the registry refuses them.
   */
  async login(): Promise<void> {
    const url = `${this.baseUrl}/v2/`;
    const res = await this.request("GET", url, { scope: "" });
    await res.body?.cancel();
    if (res.status === 401) {
      throw new HyperlabError("REGISTRY_UNAUTHORIZED", `login attempt to ${url} failed with status: 401 Unauthorized`, { registry: this.domain });
    }
    if (!res.ok) throw new HyperlabError("REGISTRY_ERROR", `login attempt to ${url} failed with status: ${res.status} ${res.statusText}`, { registry: this.domain });
  }

  /**
   * The manifest `reference` (a tag or a digest) of repository `repo`, as
   * the registry sends it (any of MANIFEST_TYPES), checked against its
   * digest. IMAGE_NOT_FOUND ("manifest unknown") when there is none.
   */
  async manifest(repo: string, reference: string, what: string): Promise<FetchedManifest> {
    const url = `${this.baseUrl}/v2/${repo}/manifests/${reference}`;
    const accept = [...Object.values(MANIFEST_TYPES), ...SCHEMA1_TYPES].join(", ");
    const res = await this.request("GET", url, { scope: `repository:${repo}:pull`, headers: { Accept: accept } });
    if (!res.ok) await this.fail(res, "GET", url, what);
    const bytes = new Uint8Array(await this.readBody(res, `the manifest of ${what}`));
    // A static host names no manifest type (application/octet-stream): the manifest's own mediaType says it.
    const sent = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
    const mediaType = [...Object.values(MANIFEST_TYPES), ...SCHEMA1_TYPES].includes(sent) ? sent : mediaTypeOf(bytes);
    if (SCHEMA1_TYPES.includes(mediaType)) {
      throw new HyperlabError("NOT_SUPPORTED", `${what} has a Docker schema 1 manifest (${mediaType}), which hyperlab does not pull: push the image again with a current docker or hyperlab`);
    }
    const digest = await sha256Digest(bytes);
    const claimed = reference.startsWith("sha256:") ? reference : res.headers.get("docker-content-digest");
    if (claimed && claimed !== digest) {
      throw new HyperlabError("IMAGE_CORRUPT", `manifest verification failed for ${what}: the registry sent bytes whose digest is ${digest}, not ${claimed}; nothing was stored`);
    }
    return { bytes, mediaType, digest };
  }

  /** Whether the repository has blob `digest` (HEAD). */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const url = `${this.baseUrl}/v2/${repo}/blobs/${digest}`;
    const res = await this.request("HEAD", url, { scope: `repository:${repo}:pull,push` });
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (!res.ok) await this.fail(res, "HEAD", url, `blob ${digest}`);
    return true;
  }

  /**
   * Blob `digest` of `repo`, read whole and checked: IMAGE_CORRUPT when its
   * bytes do not match the digest ("filesystem layer verification failed").
   * `onProgress` hears the bytes read so far.
   */
  async blob(repo: string, digest: string, size: number | undefined, onProgress?: (current: number) => void): Promise<Uint8Array> {
    const url = `${this.baseUrl}/v2/${repo}/blobs/${digest}`;
    const res = await this.request("GET", url, { scope: `repository:${repo}:pull` });
    if (!res.ok) await this.fail(res, "GET", url, `blob ${digest}`);
    const data = await this.readBody(res, `blob ${digest}`, size, onProgress);
    const actual = await sha256Digest(data);
    if (actual !== digest) {
      throw new HyperlabError("IMAGE_CORRUPT", `filesystem layer verification failed for digest ${digest}: the registry ${this.domain} sent ${data.length} bytes whose digest is ${actual}; nothing was stored`, {
        digest,
        actual,
      });
    }
    return data;
  }

  /**
   * Uploads blob `digest` to `repo`: in one PUT when it is no larger than
   * the chunk size (or `chunked` is false), else in PATCH chunks (each with
   * its Content-Range) closed by a PUT with the digest. `onProgress` hears
   * the bytes sent.
   */
  async putBlob(repo: string, digest: string, data: Uint8Array, opts: { chunked?: boolean; onProgress?: (current: number) => void } = {}): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    const start = `${this.baseUrl}/v2/${repo}/blobs/uploads/`;
    let res = await this.request("POST", start, { scope, headers: { "Content-Length": "0" } });
    if (res.status !== 202) await this.fail(res, "POST", start, `an upload of blob ${digest}`);
    await res.body?.cancel();
    let location = this.location(res, start);
    const chunked = opts.chunked ?? data.length > this.chunkSize;
    if (chunked) {
      for (let at = 0; at < data.length; at += this.chunkSize) {
        const chunk = data.subarray(at, Math.min(at + this.chunkSize, data.length));
        res = await this.request("PATCH", location, {
          scope,
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${at}-${at + chunk.length - 1}`, "Content-Length": String(chunk.length) },
          body: chunk,
        });
        if (res.status !== 202) await this.fail(res, "PATCH", location, `a chunk of blob ${digest}`);
        await res.body?.cancel();
        location = this.location(res, location);
        opts.onProgress?.(at + chunk.length);
      }
    }
    const put = `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
    const body = chunked ? new Uint8Array(0) : data;
    res = await this.request("PUT", put, { scope, headers: { "Content-Type": "application/octet-stream", "Content-Length": String(body.length) }, body });
    if (res.status !== 201) await this.fail(res, "PUT", put, `blob ${digest}`);
    await res.body?.cancel();
    if (!chunked) opts.onProgress?.(data.length);
  }

  /** Puts a manifest under `tag` (or its digest); returns the digest the registry gives it. */
  async putManifest(repo: string, tag: string, bytes: Uint8Array, mediaType: string): Promise<string> {
    const url = `${this.baseUrl}/v2/${repo}/manifests/${tag}`;
    const res = await this.request("PUT", url, { scope: `repository:${repo}:pull,push`, headers: { "Content-Type": mediaType }, body: bytes });
    if (res.status !== 201) await this.fail(res, "PUT", url, `the manifest ${repo}:${tag}`);
    await res.body?.cancel();
    return res.headers.get("docker-content-digest") ?? (await sha256Digest(bytes));
  }

  /** Where an upload goes on (the Location of the last answer, relative to `base`). */
  private location(res: Response, base: string): string {
    const loc = res.headers.get("location");
    if (!loc) throw new HyperlabError("REGISTRY_ERROR", `the registry ${this.domain} started an upload without a Location to send it to (${base})`);
    return new URL(loc, base).toString();
  }

  /**
   * One request with the scope's Authorization; a 401 is answered once by
   * the challenge's scheme (Basic: the credentials; Bearer: a token from
   * its realm), then the request is sent again.
   */
  private async request(
    method: string,
    url: string,
    o: { scope: string; headers?: Record<string, string>; body?: Uint8Array },
  ): Promise<Response> {
    const send = async () => {
      const auth = this.authorization.get(o.scope) ?? this.basic;
      return this.send(method, url, { ...o.headers, ...(auth ? { Authorization: auth } : {}) }, o.body);
    };
    const res = await send();
    if (res.status !== 401) return res;
    const challenges = parseChallenges(res.headers.get("www-authenticate") ?? "");
    const challenge = challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
    if (!challenge) return res;
    const hadAuth = this.authorization.has(o.scope) || this.basic !== undefined;
    const { username, password, identitytoken, registrytoken } = this.opts.auth ?? {};
    if (challenge.scheme === "basic") {
      if (hadAuth) return res;
      if (!username) {
        await res.body?.cancel();
        throw new HyperlabError("REGISTRY_UNAUTHORIZED", `${method === "HEAD" ? "Head" : method === "GET" ? "Get" : method} "${url}": no basic auth credentials (log in first: 'hyperlab login ${this.domain}' or 'docker login ${this.domain}')`, {
          registry: this.domain,
        });
      }
      this.basic = `Basic ${base64(`${username}:${password ?? ""}`)}`;
    } else {
      if (this.authorization.has(o.scope)) return res;
      const token = registrytoken ?? (await this.token(challenge.params, o.scope, { username, password, identitytoken }));
      this.authorization.set(o.scope, `Bearer ${token}`);
    }
    await res.body?.cancel();
    return send();
  }

  /** A bearer token from the challenge's realm for `scope` (with the credentials, when there are any). */
  private async token(params: Record<string, string>, scope: string, creds: RegistryAuth): Promise<string> {
    const realm = params.realm;
    if (!realm) throw new HyperlabError("REGISTRY_ERROR", `the registry ${this.domain} asked for a bearer token without saying where to get one (no realm in its WWW-Authenticate)`);
    const url = new URL(realm);
    if (params.service) url.searchParams.set("service", params.service);
    const wanted = scope || params.scope;
    if (wanted) url.searchParams.set("scope", wanted);
    const headers: Record<string, string> = {};
    if (creds.username) {
      headers.Authorization = `Basic ${base64(`${creds.username}:${creds.password ?? ""}`)}`;
      url.searchParams.set("account", creds.username);
    }
    let res: Response;
    if (creds.identitytoken) {
      // A refresh token from an earlier login goes to the realm by OAuth2's POST.
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.identitytoken, service: params.service ?? "", client_id: "hyperlab", ...(wanted ? { scope: wanted } : {}) });
      res = await this.send("POST", realm, { "Content-Type": "application/x-www-form-urlencoded" }, new TextEncoder().encode(form.toString()));
    } else res = await this.send("GET", url.toString(), headers);
    const text = await res.text();
    if (res.status === 401 || res.status === 403) {
      throw new HyperlabError("REGISTRY_UNAUTHORIZED", `the token server ${url.origin} refused ${creds.username ? `the credentials of ${creds.username}` : "an anonymous token"} for ${wanted || this.domain}: ${res.status} ${res.statusText}${creds.username ? "" : " (log in first)"}`, {
        registry: this.domain,
      });
    }
    if (!res.ok) throw new HyperlabError("REGISTRY_ERROR", `the token server ${url.origin} answered ${res.status} ${res.statusText}: ${registryErrors(text).text}`);
    let v: { token?: string; access_token?: string };
    try {
      v = JSON.parse(text) as typeof v;
    } catch {
      throw new HyperlabError("REGISTRY_ERROR", `the token server ${url.origin} answered something that is not JSON: ${text.slice(0, 100)}`);
    }
    const token = v.token ?? v.access_token;
    if (!token) throw new HyperlabError("REGISTRY_ERROR", `the token server ${url.origin} answered without a token`);
    return token;
  }

  /**
   * fetch with a timeout on the answer's head (longer by a second per 64 KiB
   * of body sent); no answer: REGISTRY_UNREACHABLE.
   */
  private async send(method: string, url: string, headers: Record<string, string>, body?: Uint8Array): Promise<Response> {
    const abort = new AbortController();
    const ms = this.timeoutMs + Math.ceil((body?.length ?? 0) / 65536) * 1000;
    const timer = setTimeout(() => abort.abort(), ms);
    try {
      return await this.fetchFn(url, { method, headers, body: body as Uint8Array<ArrayBuffer> | undefined, signal: abort.signal, redirect: "follow" });
    } catch (err) {
      if (abort.signal.aborted) throw new HyperlabError("TIMEOUT", `the registry ${this.domain} did not answer ${method} ${url} within ${ms / 1000} s`, { registry: this.domain });
      throw new HyperlabError("REGISTRY_UNREACHABLE", `cannot reach the registry ${this.domain}: ${method} ${url}: ${networkCause(err)}. Is a registry running there, and is the address right?`, {
        registry: this.domain,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** A body read whole (with progress), as bytes; a body cut short is a clear error. */
  private async readBody(res: Response, what: string, size?: number, onProgress?: (current: number) => void): Promise<Uint8Array> {
    if (!res.body) return new Uint8Array(0);
    const chunks: Uint8Array[] = [];
    let n = 0;
    const reader = res.body.getReader();
    try {
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no bytes for ${this.timeoutMs / 1000} s`)), this.timeoutMs);
        });
        const { done, value } = await Promise.race([reader.read(), idle]).finally(() => clearTimeout(timer));
        if (done) break;
        chunks.push(value);
        n += value.length;
        onProgress?.(n);
      }
    } catch (err) {
      void reader.cancel().catch(() => {});
      throw new HyperlabError("REGISTRY_ERROR", `reading ${what} from the registry ${this.domain} failed after ${n}${size ? ` of ${size}` : ""} bytes: ${networkCause(err)}; nothing was stored: pull again`);
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  /** Throws the error an unsuccessful answer means, in dockerd's words where it has them. */
  private async fail(res: Response, method: string, url: string, what: string): Promise<never> {
    const { codes, text } = registryErrors(await res.text().catch(() => ""));
    const detail = { registry: this.domain, status: res.status, codes };
    if (res.status === 404 || codes.includes("MANIFEST_UNKNOWN") || codes.includes("NAME_UNKNOWN") || codes.includes("BLOB_UNKNOWN")) {
      throw new HyperlabError("IMAGE_NOT_FOUND", `${what} not found: ${text || "not found"}`, detail);
    }
    if (res.status === 401 || res.status === 403) {
      throw new HyperlabError("REGISTRY_UNAUTHORIZED", `${what}: the registry ${this.domain} answered ${res.status} ${res.statusText}${text ? ` (${text})` : ""}: log in with 'hyperlab login ${this.domain}' (or 'docker login'), with an account that may do this`, detail);
    }
    throw new HyperlabError("REGISTRY_ERROR", `${method} ${url} (${what}): the registry ${this.domain} answered ${res.status} ${res.statusText}${text ? `: ${text}` : ""}`, detail);
  }
}

/** The media type a manifest names in itself (for registries that send none). */
function mediaTypeOf(bytes: Uint8Array): string {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: string; manifests?: unknown; config?: unknown };
    return v.mediaType ?? (v.manifests ? MANIFEST_TYPES.ociIndex : MANIFEST_TYPES.ociManifest);
  } catch {
    return "";
  }
}
