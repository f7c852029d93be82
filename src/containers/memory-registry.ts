// A registry that lives in memory and answers through a fetch function rather
// than a port: the OCI distribution API's push and pull side (GET /v2/;
// manifests by tag or digest; blobs; monolithic and chunked uploads;
// cross-repository mounts; tags/list), with the registry's JSON errors. A lab
// that teaches `docker push` and `docker pull` gets one of its own, empty at
// the start, in Node and in the page alike, without a server to start or a
// port to share with parallel runs: the engine's registry client is given
// `registry.fetch`, which answers requests for the registry's address and
// passes every other request on. Everything is checked by its digest on the
// way in.
import { concatBytes } from "../bytes.ts";
import { sha256Digest } from "./registry.ts";

/** The most one registry holds (blobs and manifests together), so a runaway push fails rather than filling the host's memory. */
export const MEMORY_REGISTRY_MAX_BYTES = 1024 * 1024 * 1024;

interface StoredManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

interface Repository {
  /** the digests of the blobs linked into this repository */
  blobs: Set<string>;
  /** manifests by tag and by digest */
  manifests: Map<string, StoredManifest>;
  tags: Set<string>;
}

/** An answer in the distribution API's error format: {"errors":[{code,message,detail}]}. */
function registryError(status: number, code: string, message: string, detail?: unknown): Response {
  return new Response(JSON.stringify({ errors: [{ code, message, detail: detail ?? null }] }), {
    status,
    headers: { "Content-Type": "application/json", "Docker-Distribution-API-Version": "registry/2.0" },
  });
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** A repository name as the distribution spec allows it: lowercase path components. */
const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** The registry's own headers on every successful answer. */
function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { "Docker-Distribution-API-Version": "registry/2.0", ...extra };
}

/** One registry in memory, at `address` (host:port, as image names carry it). */
export class MemoryRegistry {
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly repositories = new Map<string, Repository>();
  private readonly uploads = new Map<string, { repo: string; chunks: Uint8Array[]; size: number }>();
  private bytes = 0;
  private nextUpload = 1;
  /** requests for `address` go to this registry, all others to `next` (default: the global fetch) */
  readonly fetch: typeof fetch;

  constructor(
    readonly address: string,
    next: typeof fetch = (input, init) => globalThis.fetch(input, init),
  ) {
    this.fetch = async (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      if (url.host !== address) return next(input, init);
      return this.handle(new Request(input, init));
    };
  }

  /** The repositories and their tags, sorted (what a lab's check or a test reads). */
  catalog(): { repository: string; tags: string[] }[] {
    return [...this.repositories.entries()]
      .filter(([, r]) => r.tags.size > 0)
      .map(([repository, r]) => ({ repository, tags: [...r.tags].sort() }))
      .sort((a, b) => a.repository.localeCompare(b.repository));
  }

  /** Answers one request of the distribution API. */
  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    const method = req.method.toUpperCase();
    try {
      if (path === "/v2/" || path === "/v2") {
        if (method !== "GET" && method !== "HEAD") return registryError(405, "UNSUPPORTED", `${method} is not supported on /v2/`);
        return new Response(method === "HEAD" ? null : "{}", { status: 200, headers: headers({ "Content-Type": "application/json" }) });
      }
      let m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(path);
      if (m) return await this.upload(req, method, m[1]!, m[2]!, url);
      m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/.exec(path);
      if (!m) return registryError(404, "NOT_FOUND", `no such endpoint: ${method} ${path}`);
      const [, name, kind, reference] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) return registryError(400, "NAME_INVALID", `invalid repository name '${name}'`);
      if (kind === "tags") {
        if (reference !== "list" || method !== "GET") return registryError(404, "NOT_FOUND", `no such endpoint: ${method} ${path}`);
        const repo = this.repositories.get(name);
        if (!repo) return registryError(404, "NAME_UNKNOWN", "repository name not known to registry", { name });
        return Response.json({ name, tags: [...repo.tags].sort() }, { headers: headers() });
      }
      if (kind === "manifests") return await this.manifest(req, method, name, reference);
      return this.blob(method, name, reference);
    } catch (err) {
      return registryError(500, "UNKNOWN", `the registry failed: ${(err as Error)?.message ?? err}`);
    }
  }

  private repository(name: string): Repository {
    let repo = this.repositories.get(name);
    if (!repo) {
      repo = { blobs: new Set(), manifests: new Map(), tags: new Set() };
      this.repositories.set(name, repo);
    }
    return repo;
  }

  private blob(method: string, name: string, digest: string): Response {
    if (!DIGEST.test(digest)) return registryError(400, "DIGEST_INVALID", `invalid digest '${digest}': expected sha256:<64 hex digits>`);
    const data = this.repositories.get(name)?.blobs.has(digest) ? this.blobs.get(digest) : undefined;
    if (method === "DELETE") {
      if (!data) return registryError(404, "BLOB_UNKNOWN", "blob unknown to registry", { digest });
      this.repositories.get(name)!.blobs.delete(digest);
      return new Response(null, { status: 202, headers: headers() });
    }
    if (method !== "GET" && method !== "HEAD") return registryError(405, "UNSUPPORTED", `${method} is not supported on blobs`);
    if (!data) return registryError(404, "BLOB_UNKNOWN", "blob unknown to registry", { digest });
    const h = headers({ "Content-Type": "application/octet-stream", "Content-Length": String(data.length), "Docker-Content-Digest": digest });
    return new Response(method === "HEAD" ? null : (data as Uint8Array<ArrayBuffer>), { status: 200, headers: h });
  }

  private async manifest(req: Request, method: string, name: string, reference: string): Promise<Response> {
    const repo = this.repositories.get(name);
    if (method === "PUT") {
      const bytes = new Uint8Array(await req.arrayBuffer());
      const digest = await sha256Digest(bytes);
      if (reference.startsWith("sha256:") && reference !== digest) {
        return registryError(400, "DIGEST_INVALID", `the manifest's digest is ${digest}, not ${reference}`);
      }
      let json: { mediaType?: string; config?: { digest?: string }; layers?: { digest?: string }[]; manifests?: { digest?: string }[] };
      try {
        json = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        return registryError(400, "MANIFEST_INVALID", "manifest invalid: not JSON");
      }
      const target = this.repository(name);
      const blobs = [json.config, ...(json.layers ?? [])].filter((d) => d !== undefined).map((d) => d.digest ?? "");
      const missing = blobs.find((d) => !target.blobs.has(d));
      if (missing !== undefined) return registryError(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", { digest: missing });
      const missingManifest = (json.manifests ?? []).map((d) => d.digest ?? "").find((d) => !target.manifests.has(d));
      if (missingManifest !== undefined) return registryError(400, "MANIFEST_UNKNOWN", "manifest unknown", { digest: missingManifest });
      const stored = { bytes, digest, mediaType: req.headers.get("content-type") ?? json.mediaType ?? "application/vnd.oci.image.manifest.v1+json" };
      this.account(bytes.length);
      target.manifests.set(digest, stored);
      if (!reference.startsWith("sha256:")) {
        target.manifests.set(reference, stored);
        target.tags.add(reference);
      }
      return new Response(null, { status: 201, headers: headers({ Location: `/v2/${name}/manifests/${digest}`, "Docker-Content-Digest": digest }) });
    }
    const stored = repo?.manifests.get(reference);
    if (method === "DELETE") {
      if (!stored || !reference.startsWith("sha256:")) return registryError(404, "MANIFEST_UNKNOWN", "manifest unknown", { name, reference });
      for (const [key, m] of repo!.manifests) {
        if (m.digest !== reference) continue;
        repo!.manifests.delete(key);
        repo!.tags.delete(key);
      }
      return new Response(null, { status: 202, headers: headers() });
    }
    if (method !== "GET" && method !== "HEAD") return registryError(405, "UNSUPPORTED", `${method} is not supported on manifests`);
    if (!stored) return registryError(404, repo ? "MANIFEST_UNKNOWN" : "NAME_UNKNOWN", repo ? "manifest unknown" : "repository name not known to registry", { name, reference });
    const h = headers({ "Content-Type": stored.mediaType, "Content-Length": String(stored.bytes.length), "Docker-Content-Digest": stored.digest });
    return new Response(method === "HEAD" ? null : (stored.bytes as Uint8Array<ArrayBuffer>), { status: 200, headers: h });
  }

  private async upload(req: Request, method: string, name: string, id: string, url: URL): Promise<Response> {
    if (!NAME.test(name)) return registryError(400, "NAME_INVALID", `invalid repository name '${name}'`);
    if (id === "") {
      if (method !== "POST") return registryError(405, "UNSUPPORTED", `${method} is not supported on blobs/uploads/`);
      const mount = url.searchParams.get("mount");
      const from = url.searchParams.get("from");
      if (mount && from && this.repositories.get(from)?.blobs.has(mount)) {
        this.repository(name).blobs.add(mount);
        return new Response(null, { status: 201, headers: headers({ Location: `/v2/${name}/blobs/${mount}`, "Docker-Content-Digest": mount }) });
      }
      const body = new Uint8Array(await req.arrayBuffer());
      const digest = url.searchParams.get("digest");
      if (digest) return this.finish(name, digest, [body]);
      const uuid = `u${this.nextUpload++}`;
      this.uploads.set(uuid, { repo: name, chunks: body.length ? [body] : [], size: body.length });
      return this.accepted(name, uuid, body.length);
    }
    const upload = this.uploads.get(id);
    if (!upload || upload.repo !== name) return registryError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", { uuid: id });
    if (method === "DELETE") {
      this.uploads.delete(id);
      return new Response(null, { status: 204, headers: headers() });
    }
    if (method === "GET") return this.accepted(name, id, upload.size, 204);
    if (method !== "PATCH" && method !== "PUT") return registryError(405, "UNSUPPORTED", `${method} is not supported on an upload`);
    const body = new Uint8Array(await req.arrayBuffer());
    if (body.length) {
      if (upload.size + body.length > MEMORY_REGISTRY_MAX_BYTES - this.bytes) {
        this.uploads.delete(id);
        return registryError(413, "SIZE_INVALID", `the registry holds at most ${MEMORY_REGISTRY_MAX_BYTES} bytes; this upload does not fit`);
      }
      upload.chunks.push(body);
      upload.size += body.length;
    }
    if (method === "PATCH") return this.accepted(name, id, upload.size);
    this.uploads.delete(id);
    const digest = url.searchParams.get("digest");
    if (!digest) return registryError(400, "DIGEST_INVALID", "the upload's PUT names no digest (?digest=sha256:…)");
    return this.finish(name, digest, upload.chunks);
  }

  private accepted(name: string, uuid: string, size: number, status = 202): Response {
    return new Response(null, {
      status,
      headers: headers({ Location: `/v2/${name}/blobs/uploads/${uuid}`, Range: `0-${Math.max(0, size - 1)}`, "Docker-Upload-UUID": uuid, "Content-Length": "0" }),
    });
  }

  private async finish(name: string, digest: string, chunks: Uint8Array[]): Promise<Response> {
    if (!DIGEST.test(digest)) return registryError(400, "DIGEST_INVALID", `invalid digest '${digest}': expected sha256:<64 hex digits>`);
    const data = concatBytes(chunks);
    const actual = await sha256Digest(data);
    if (actual !== digest) return registryError(400, "DIGEST_INVALID", `provided digest did not match uploaded content: ${digest} named, ${actual} received`);
    if (!this.blobs.has(digest)) {
      this.account(data.length);
      this.blobs.set(digest, data);
    }
    this.repository(name).blobs.add(digest);
    return new Response(null, { status: 201, headers: headers({ Location: `/v2/${name}/blobs/${digest}`, "Docker-Content-Digest": digest }) });
  }

  private account(n: number): void {
    if (this.bytes + n > MEMORY_REGISTRY_MAX_BYTES) throw new Error(`the registry ${this.address} holds at most ${MEMORY_REGISTRY_MAX_BYTES} bytes`);
    this.bytes += n;
  }
}
