// `pull` and `push` between the image store and a registry (OCI
// distribution), with the steps Docker's progress stream reports. A pull
// reads the manifest (an index or manifest list resolved to linux/386), the
// config (refused early when it is for another platform), then the layers
// the store lacks, each checked against its digest, and stores the image in
// one step at the end (ImageStore.addPulled): a pull that fails or is
// interrupted leaves the store as it was. A push sends the layers the
// registry lacks (HEAD first), the config, then the manifest under its tag,
// byte for byte as the store keeps it, so the image has the same digest
// there. Names of docker.io stay with the local store: hyperlab reaches no
// registry on the internet unless a name says which one.
import { HyperlabError } from "../errors.ts";
import { DEFAULT_DOMAIN, type ImageReference, familiarName, normalizeName, parseReference } from "./image-reference.ts";
import { type Image, type ImageConfigFile, type ImageStore, type PullStep, checkPlatform, shortId } from "./image-store.ts";
import { MANIFEST_TYPES, type RegistryAuth, RegistryClient, type RegistryOptions } from "./registry.ts";

/** One step of a push, as Docker's progress stream reports it (`id`: a layer's short digest). */
export type PushStep =
  | { kind: "start"; repository: string }
  | { kind: "layer"; id: string; status: "Preparing" | "Waiting" | "Layer already exists" | "Pushed" }
  | { kind: "upload"; id: string; current: number; total: number }
  | { kind: "pushed"; tag: string; digest: string; size: number };

/** What a pull or push needs besides the names: credentials (per registry) and how to talk to it. */
export interface TransferOptions extends Omit<RegistryOptions, "auth"> {
  /** credentials for the registry (from X-Registry-Auth, or config.json's auths) */
  auth?: RegistryAuth;
  /** send every blob in PATCH chunks (chunkSize) rather than one PUT where it fits */
  chunked?: boolean;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface ManifestJson {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

const decoder = new TextDecoder();

/** Whether a pull of `reference` goes to a registry (its name names one other than docker.io). */
export function isRegistryReference(reference: string): boolean {
  return parseReference(reference).domain !== DEFAULT_DOMAIN;
}

/** A name as dockerd's messages show it: the registry's address with the path and tag. */
function shown(ref: ImageReference): string {
  return `${familiarName(ref)}${ref.digest ? `@${ref.digest}` : `:${ref.tag ?? "latest"}`}`;
}

/** The platforms an index lists, as `os/arch[/variant]`. */
function platforms(list: Descriptor[]): string[] {
  return list.map((m) => [m.platform?.os ?? "unknown", m.platform?.architecture ?? "unknown", m.platform?.variant].filter(Boolean).join("/"));
}

/**
 * Pulls `reference` from the registry its name names into `store`,
 * reporting Docker's steps to `progress`. IMAGE_NOT_FOUND ("manifest
 * unknown"), REGISTRY_UNREACHABLE, REGISTRY_UNAUTHORIZED, NOT_SUPPORTED (no
 * linux/386 image) or IMAGE_CORRUPT (a blob that does not match its
 * digest) leave the store unchanged.
 */
export async function pullFromRegistry(store: ImageStore, reference: string, progress: (step: PullStep) => void, opts: TransferOptions = {}): Promise<Image> {
  const ref = parseReference(reference);
  if (ref.domain === DEFAULT_DOMAIN && !opts.baseUrl) {
    throw new HyperlabError("INVALID_ARGUMENT", `${reference} names Docker Hub, from which hyperlab pulls nothing (its docker.io images come from the local store): name a registry, e.g. localhost:5000/${familiarName(ref)}`);
  }
  const name = ref.digest ? undefined : normalizeName(reference);
  const client = new RegistryClient(ref.domain, opts);
  const what = shown(ref);
  let fetched;
  try {
    fetched = await client.manifest(ref.path, ref.digest ?? ref.tag ?? "latest", `manifest for ${what}`);
  } catch (err) {
    if (err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND") {
      throw new HyperlabError("IMAGE_NOT_FOUND", `manifest for ${what} not found: manifest unknown: ${err.message.replace(/^manifest for \S+ not found: /, "")}`, err.detail);
    }
    throw err;
  }
  progress({ kind: "start", name: ref.path, tag: ref.digest ?? ref.tag ?? "latest" });
  let json = JSON.parse(decoder.decode(fetched.bytes)) as ManifestJson;
  if (json.manifests) {
    // An index (or manifest list): the linux/386 image in it.
    const list = json.manifests;
    const pick = list.find((m) => m.platform?.os === "linux" && (m.platform.architecture === "386" || m.platform.architecture === "i386"));
    if (!pick) {
      throw new HyperlabError("NOT_SUPPORTED", `no matching manifest for linux/386 in the manifest list entries of ${what}: it has ${platforms(list).join(", ") || "none"}. hyperlab runs linux/386 images only (its guest is a 32-bit x86 PC)`, {
        platforms: platforms(list),
      });
    }
    fetched = await client.manifest(ref.path, pick.digest, `manifest for ${familiarName(ref)}@${pick.digest}`);
    json = JSON.parse(decoder.decode(fetched.bytes)) as ManifestJson;
  }
  if (!json.config || !Array.isArray(json.layers)) throw new HyperlabError("REGISTRY_ERROR", `the manifest ${fetched.digest} of ${what} is not an image manifest (it has no config or layers)`);
  const layers = json.layers;
  const current = name ? await store.get(name).catch(() => undefined) : undefined;
  const upToDate = current?.digest === fetched.digest;
  const config = await client.blob(ref.path, json.config.digest, json.config.size);
  checkPlatform(JSON.parse(decoder.decode(config)) as ImageConfigFile, what);
  const blobs = new Map<string, Uint8Array>();
  const fetchedIds: string[] = [];
  if (!upToDate) {
    const missing: Descriptor[] = [];
    for (const l of layers) {
      if (await store.hasBlob(l.digest)) progress({ kind: "layer", id: shortId(l.digest), status: "Already exists" });
      else {
        progress({ kind: "layer", id: shortId(l.digest), status: "Pulling fs layer" });
        missing.push(l);
      }
    }
    for (const l of missing.slice(1)) progress({ kind: "layer", id: shortId(l.digest), status: "Waiting" });
    for (const l of missing) {
      const id = shortId(l.digest);
      let last = -Infinity;
      const data = await client.blob(ref.path, l.digest, l.size, (current) => {
        // As dockerd: a progress line every so often, not per packet.
        if (current - last >= 512 * 1024 || current === l.size) {
          last = current;
          progress({ kind: "download", id, current, total: l.size });
        }
      });
      progress({ kind: "layer", id, status: "Verifying Checksum" });
      progress({ kind: "layer", id, status: "Download complete" });
      blobs.set(l.digest, data);
      fetchedIds.push(id);
    }
  }
  const { image, updated } = await store.addPulled({ manifest: fetched.bytes, config, blobs, name });
  for (const id of fetchedIds) progress({ kind: "layer", id, status: "Pull complete" });
  progress({ kind: "digest", digest: fetched.digest });
  progress({ kind: "done", name: name ?? `${familiarName(ref)}@${ref.digest}`, updated: updated && !upToDate });
  return image;
}

/**
 * Pushes the image `reference` names (every tag of its repository when it
 * names none, as dockerd's push without a tag) to the registry its name
 * names, reporting Docker's steps. The store is only read.
 */
export async function pushToRegistry(store: ImageStore, reference: string, progress: (step: PushStep) => void, opts: TransferOptions & { tag?: string } = {}): Promise<Array<{ tag: string; digest: string; size: number }>> {
  const ref = parseReference(reference);
  if (ref.digest) throw new HyperlabError("INVALID_ARGUMENT", `cannot push a digest reference (${reference}): push a name with a tag`);
  const repo = familiarName(ref);
  if (ref.domain === DEFAULT_DOMAIN) {
    throw new HyperlabError("NOT_SUPPORTED", `hyperlab does not push to Docker Hub (${repo} names docker.io): tag the image for a registry by its address, e.g. 'docker tag ${repo} localhost:5000/${repo}', and push that`);
  }
  const tags = opts.tag ? [opts.tag] : ref.tag ? [ref.tag] : (await store.list()).filter((i) => i.repository === repo).map((i) => i.tag);
  progress({ kind: "start", repository: repo });
  if (!tags.length) throw new HyperlabError("IMAGE_NOT_FOUND", `An image does not exist locally with the tag: ${repo}`);
  const client = new RegistryClient(ref.domain, opts);
  const out: Array<{ tag: string; digest: string; size: number }> = [];
  for (const tag of tags) {
    let image: Image;
    try {
      image = (await store.resolve(`${repo}:${tag}`)).image;
    } catch (err) {
      if (err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND") throw new HyperlabError("IMAGE_NOT_FOUND", `An image does not exist locally with the tag: ${repo}${opts.tag || ref.tag ? `:${tag}` : ""}`);
      throw err;
    }
    const manifestBytes = await store.blob(image.digest);
    const manifest = JSON.parse(decoder.decode(manifestBytes)) as ManifestJson;
    const layers = manifest.layers ?? [];
    // As dockerd lists them: the top layer first.
    const order = [...layers].reverse();
    for (const l of order) progress({ kind: "layer", id: shortId(l.digest), status: "Preparing" });
    for (const l of order) {
      const id = shortId(l.digest);
      if (await client.hasBlob(ref.path, l.digest)) {
        progress({ kind: "layer", id, status: "Layer already exists" });
        continue;
      }
      const data = await store.blob(l.digest);
      progress({ kind: "upload", id, current: 0, total: data.length });
      await client.putBlob(ref.path, l.digest, data, { chunked: opts.chunked, onProgress: (current) => progress({ kind: "upload", id, current, total: data.length }) });
      progress({ kind: "layer", id, status: "Pushed" });
    }
    const config = manifest.config!;
    if (!(await client.hasBlob(ref.path, config.digest))) await client.putBlob(ref.path, config.digest, await store.blob(config.digest), { chunked: opts.chunked });
    const mediaType = manifest.mediaType ?? (config.mediaType === "application/vnd.docker.container.image.v1+json" ? MANIFEST_TYPES.dockerManifest : MANIFEST_TYPES.ociManifest);
    const digest = await client.putManifest(ref.path, tag, manifestBytes, mediaType);
    if (digest !== image.digest) throw new HyperlabError("REGISTRY_ERROR", `the registry ${ref.domain} stored the manifest of ${repo}:${tag} as ${digest}, not ${image.digest}`);
    progress({ kind: "pushed", tag, digest, size: manifestBytes.length });
    out.push({ tag, digest, size: manifestBytes.length });
  }
  return out;
}

/** Checks credentials against a registry (`docker login`): resolves when they are good. */
export async function loginToRegistry(server: string, auth: RegistryAuth, opts: Omit<RegistryOptions, "auth"> = {}): Promise<void> {
  const domain = registryDomain(server);
  if (domain === DEFAULT_DOMAIN) {
    throw new HyperlabError("NOT_SUPPORTED", "hyperlab does not log in to Docker Hub: it pushes to and pulls from registries named by their address (e.g. 'hyperlab login localhost:5000')");
  }
  await new RegistryClient(domain, { ...opts, auth }).login();
}

/** A registry's address as names carry it, from what a user or client gives (http://localhost:5000/v2/ → localhost:5000). */
export function registryDomain(server: string): string {
  const s = server.trim().replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  if (!s || s === "index.docker.io" || s === "registry-1.docker.io" || s === DEFAULT_DOMAIN) return DEFAULT_DOMAIN;
  return s;
}
