// The registry client and hyperlab's pull and push against a real registry
// (Debian's docker-registry, distribution 2.8, on the loopback): a push of a
// built-in image, a pull of it into a store that has none of its blobs,
// chunked uploads, HEAD before upload, indexes and Docker schema 2
// manifests, basic auth, and the failures (unreachable, 401, manifest
// unknown, a blob with a wrong digest) that must leave the store as it was.
import { execFileSync } from "node:child_process";
import { createPrivateKey, randomUUID, sign, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type Server, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImageStore, PullStep } from "../../src/containers/image-store.ts";
import { nodeImageStore } from "../../src/containers/node-store.ts";
import { readCredentials, removeCredentials, saveCredentials } from "../../src/containers/node-credentials.ts";
import { RegistryClient, parseChallenges, sha256Digest } from "../../src/containers/registry.ts";
import { type PushStep, loginToRegistry, pullFromRegistry, pushToRegistry } from "../../src/containers/registry-transfer.ts";
import { HyperlabError } from "../../src/errors.ts";
import { type TestRegistry, freePort, listing, registryBlobFile, registryInstalled, startRegistry } from "./registry.ts";

if (!registryInstalled) throw new Error("these tests need Debian's docker-registry (/usr/bin/docker-registry): apt-get install docker-registry (.ci/run does)");

let dir: string;
let open: TestRegistry;
let locked: TestRegistry;
/** the built-in images under a data root of the test's */
let source: ImageStore;

/** A store whose built-in layout is empty: every blob a pull needs must come from the registry. */
async function emptyStore(name: string): Promise<{ store: ImageStore; root: string }> {
  const layout = join(dir, `${name}-layout`);
  await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
  await writeFile(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
  const root = join(dir, `${name}-data`);
  return { store: nodeImageStore(layout, { dataRoot: root }), root };
}

const pullSteps = () => {
  const steps: PullStep[] = [];
  return { steps, progress: (s: PullStep) => void steps.push(s) };
};

/** The error a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<HyperlabError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HyperlabError) return err;
    throw err;
  }
  throw new Error("expected a failure");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hyperlab-registry-test-"));
  open = await startRegistry();
  locked = await startRegistry({ users: { alice: "wonderland" } });
  source = nodeImageStore(undefined, { dataRoot: join(dir, "source") });
}, 30_000);

afterAll(async () => {
  await open?.stop();
  await locked?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the registry client against distribution 2.8", () => {
  it("parses WWW-Authenticate challenges as registries send them", () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push" } },
    ]);
    expect(parseChallenges('Basic realm="hyperlab-test"')).toEqual([{ scheme: "basic", params: { realm: "hyperlab-test" } }]);
  });

  it("pushes a built-in image, skips what the registry has, and pulls it back with the same digest into a store that had none of it", async () => {
    const name = `${open.domain}/lua:5.4`;
    await source.tag("lua:5.4", name);
    const original = await source.get("lua:5.4");
    const steps: PushStep[] = [];
    const pushed = await pushToRegistry(source, name, (s) => steps.push(s));
    expect(pushed).toEqual([{ tag: "5.4", digest: original.digest, size: expect.any(Number) }]);
    expect(steps[0]).toEqual({ kind: "start", repository: `${open.domain}/lua` });
    const pushedLayers = steps.filter((s) => s.kind === "layer" && s.status === "Pushed");
    expect(pushedLayers).toHaveLength(original.layers.length);
    // Again: every layer is there already (HEAD), nothing is uploaded.
    const again: PushStep[] = [];
    await pushToRegistry(source, name, (s) => again.push(s));
    expect(again.filter((s) => s.kind === "layer" && s.status === "Layer already exists")).toHaveLength(original.layers.length);
    expect(again.some((s) => s.kind === "upload")).toBe(false);

    const { store, root } = await emptyStore("pull-back");
    const { steps: got, progress } = pullSteps();
    const image = await pullFromRegistry(store, name, progress);
    expect(image.digest).toBe(original.digest);
    expect(image.id).toBe(original.id);
    expect((await store.get(name)).digest).toBe(original.digest);
    const statuses = got.map((s) => (s.kind === "layer" ? s.status : s.kind));
    expect(statuses[0]).toBe("start");
    expect(statuses.filter((s) => s === "Pulling fs layer")).toHaveLength(original.layers.length);
    expect(statuses.filter((s) => s === "Download complete")).toHaveLength(original.layers.length);
    expect(statuses.filter((s) => s === "Pull complete")).toHaveLength(original.layers.length);
    expect(got.at(-2)).toEqual({ kind: "digest", digest: original.digest });
    expect(got.at(-1)).toEqual({ kind: "done", name: name, updated: true });
    // Its layers are the same bytes, read back through the store's digest check.
    for (const l of original.layers) expect(await sha256Digest(await store.blob(l.digest))).toBe(l.digest);
    expect((await listing(join(root, "images"))).filter((f) => f.startsWith("blobs/"))).toHaveLength(original.layers.length + 2);
    // Up to date the second time.
    const second = pullSteps();
    await pullFromRegistry(store, name, second.progress);
    expect(second.steps.at(-1)).toEqual({ kind: "done", name, updated: false });
    expect(second.steps.some((s) => s.kind === "download")).toBe(false);
  });

  it("uploads in PATCH chunks when asked, and the blob arrives whole", async () => {
    const client = new RegistryClient(open.domain, { chunkSize: 100_000 });
    const data = new Uint8Array(350_001).map((_, i) => (i * 7) % 251);
    const digest = await sha256Digest(data);
    expect(await client.hasBlob("chunks/test", digest)).toBe(false);
    const seen: number[] = [];
    await client.putBlob("chunks/test", digest, data, { chunked: true, onProgress: (n) => seen.push(n) });
    expect(seen).toEqual([100_000, 200_000, 300_000, 350_001]);
    expect(await client.hasBlob("chunks/test", digest)).toBe(true);
    expect(await client.blob("chunks/test", digest, data.length)).toEqual(data);
  });

  it("resolves an image index to its linux/386 image, and names the platforms of one without it", async () => {
    const image = await source.get("busybox:latest");
    const manifest = await source.blob(image.digest);
    const client = new RegistryClient(open.domain);
    await source.tag("busybox", `${open.domain}/multi:base`);
    await pushToRegistry(source, `${open.domain}/multi:base`, () => {});
    const entry = (arch: string) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: image.digest, size: manifest.length, platform: { os: "linux", architecture: arch } });
    const index = (archs: string[]) => new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: archs.map(entry) }));
    await client.putManifest("multi", "both", index(["amd64", "386"]), "application/vnd.oci.image.index.v1+json");
    await client.putManifest("multi", "amd64only", index(["amd64", "arm64"]), "application/vnd.oci.image.index.v1+json");
    const { store } = await emptyStore("index");
    const pulled = await pullFromRegistry(store, `${open.domain}/multi:both`, () => {});
    expect(pulled.digest).toBe(image.digest);
    const before = await listing(join(dir, "index-data"));
    const err = await failure(pullFromRegistry(store, `${open.domain}/multi:amd64only`, () => {}));
    expect(err.code).toBe("NOT_SUPPORTED");
    expect(err.message).toContain(`no matching manifest for linux/386 in the manifest list entries of ${open.domain}/multi:amd64only: it has linux/amd64, linux/arm64`);
    expect(await listing(join(dir, "index-data"))).toEqual(before);
  });

  it("pulls a Docker schema 2 manifest", async () => {
    const image = await source.get("busybox:latest");
    const m = JSON.parse(new TextDecoder().decode(await source.blob(image.digest))) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
    const docker = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.docker.distribution.manifest.v2+json",
        config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: m.config.digest, size: m.config.size },
        layers: m.layers.map((l) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: l.digest, size: l.size })),
      }),
    );
    const client = new RegistryClient(open.domain);
    const digest = await client.putManifest("multi", "docker", docker, "application/vnd.docker.distribution.manifest.v2+json");
    expect(digest).toBe(await sha256Digest(docker));
    const { store } = await emptyStore("schema2");
    const pulled = await pullFromRegistry(store, `${open.domain}/multi:docker`, () => {});
    expect(pulled.digest).toBe(digest);
    expect(pulled.id).toBe(image.id);
  });

  it("answers a registry's basic auth with the credentials, and refuses clearly without them, storing nothing", async () => {
    const name = `${locked.domain}/app:1`;
    await source.tag("busybox", name);
    const noAuth = await failure(pushToRegistry(source, name, () => {}));
    expect(noAuth.code).toBe("REGISTRY_UNAUTHORIZED");
    expect(noAuth.message).toContain("no basic auth credentials");
    const wrong = await failure(loginToRegistry(locked.domain, { username: "alice", password: "nope" }));
    expect(wrong.code).toBe("REGISTRY_UNAUTHORIZED");
    expect(wrong.message).toBe(`login attempt to ${locked.url}/v2/ failed with status: 401 Unauthorized`);
    await loginToRegistry(locked.domain, { username: "alice", password: "wonderland" });
    await pushToRegistry(source, name, () => {}, { auth: { username: "alice", password: "wonderland" } });

    const { store, root } = await emptyStore("auth");
    const before = await listing(root);
    const refused = await failure(pullFromRegistry(store, name, () => {}));
    expect(refused.code).toBe("REGISTRY_UNAUTHORIZED");
    expect(refused.message).toContain(`Get "${locked.url}/v2/app/manifests/1": no basic auth credentials`);
    const bad = await failure(pullFromRegistry(store, name, () => {}, { auth: { username: "alice", password: "nope" } }));
    expect(bad.code).toBe("REGISTRY_UNAUTHORIZED");
    expect(await listing(root)).toEqual(before);
    const image = await pullFromRegistry(store, name, () => {}, { auth: { username: "alice", password: "wonderland" } });
    expect(image.digest).toBe((await source.get("busybox")).digest);
  });

  it("says a manifest is unknown (404) and a registry unreachable, storing nothing", async () => {
    const { store, root } = await emptyStore("errors");
    const before = await listing(root);
    const unknown = await failure(pullFromRegistry(store, `${open.domain}/lua:9.9`, () => {}));
    expect(unknown.code).toBe("IMAGE_NOT_FOUND");
    expect(unknown.message).toBe(`manifest for ${open.domain}/lua:9.9 not found: manifest unknown: manifest unknown`);
    const port = await freePort();
    const gone = await failure(pullFromRegistry(store, `127.0.0.1:${port}/lua:5.4`, () => {}));
    expect(gone.code).toBe("REGISTRY_UNREACHABLE");
    expect(gone.message).toContain(`cannot reach the registry 127.0.0.1:${port}: GET http://127.0.0.1:${port}/v2/lua/manifests/5.4: ECONNREFUSED`);
    expect(await listing(root)).toEqual(before);
  });

  it("refuses a blob whose bytes do not match its digest and leaves the store as it was", async () => {
    const name = `${open.domain}/corrupt:1`;
    await source.tag("lua:5.1", name);
    await pushToRegistry(source, name, () => {});
    const image = await source.get(name);
    // Damage the top layer in the registry's own storage: it serves the bytes as they are.
    const victim = image.layers.at(-1)!.digest;
    const file = registryBlobFile(open, victim);
    const bytes = new Uint8Array(await readFile(file));
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    await writeFile(file, bytes);
    const { store, root } = await emptyStore("corrupt");
    await pullFromRegistry(store, `${open.domain}/multi:base`, () => {});
    const before = await listing(root);
    const beforeIndex = await readFile(join(root, "images", "index.json"), "utf8");
    const err = await failure(pullFromRegistry(store, name, () => {}));
    expect(err.code).toBe("IMAGE_CORRUPT");
    expect(err.message).toContain(`filesystem layer verification failed for digest ${victim}`);
    expect(err.message).toContain("nothing was stored");
    expect(await listing(root)).toEqual(before);
    expect(await readFile(join(root, "images", "index.json"), "utf8")).toBe(beforeIndex);
    await expect(store.get(name)).rejects.toThrow(/no such image/);
  });

  it("keeps credentials as docker does in $DOCKER_CONFIG/config.json", async () => {
    const cfg = join(dir, "docker-config");
    await mkdir(cfg, { recursive: true });
    await writeFile(join(cfg, "config.json"), JSON.stringify({ auths: { "other.example": { auth: "eDp5" } }, detachKeys: "ctrl-x" }));
    await saveCredentials(`http://${locked.domain}/v2/`, { username: "alice", password: "wonder:land" }, cfg);
    const saved = JSON.parse(await readFile(join(cfg, "config.json"), "utf8")) as { auths: Record<string, { auth: string }>; detachKeys: string };
    expect(saved.detachKeys).toBe("ctrl-x");
    expect(saved.auths[locked.domain]).toEqual({ auth: Buffer.from("alice:wonder:land").toString("base64") });
    expect(saved.auths["other.example"]).toEqual({ auth: "eDp5" });
    expect(await readCredentials(locked.domain, cfg)).toEqual({ username: "alice", password: "wonder:land" });
    expect(await removeCredentials(locked.domain, cfg)).toBe(true);
    expect(await readCredentials(locked.domain, cfg)).toBeUndefined();
    expect(await removeCredentials(locked.domain, cfg)).toBe(false);
  });
});

/**
 * A token service as Docker Hub's auth server works (distribution's token
 * auth): GET /token?service&scope with Basic credentials answers a JWT
 * (ES256, the signing certificate in x5c) granting the scope's actions, which
 * the registry checks against its root certificate. Made with openssl (the
 * key and a self-signed certificate) and node:crypto (the signature).
 */
async function tokenService(folder: string, users: Record<string, string>): Promise<{ realm: string; auth: string; issued: string[]; close: () => Promise<void> }> {
  const key = join(folder, "token.key");
  const cert = join(folder, "token.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=hyperlab-test-token", "-keyout", key, "-out", cert], { stdio: "ignore" });
  const privateKey = createPrivateKey(await readFile(key));
  const der = new X509Certificate(await readFile(cert)).raw.toString("base64");
  const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");
  const issued: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const [user, pass] = basic ? Buffer.from(basic, "base64").toString().split(":") : [];
    if (!user || users[user] !== pass) {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ details: "incorrect username or password" }));
      return;
    }
    const access = url.searchParams.getAll("scope").map((scope) => {
      const [type, name, actions] = scope.split(":");
      return { type, name, actions: actions!.split(",") };
    });
    issued.push(...url.searchParams.getAll("scope"));
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: "JWT", alg: "ES256", x5c: [der] }));
    const claims = b64url(JSON.stringify({ iss: "hyperlab-test-issuer", sub: user, aud: url.searchParams.get("service"), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access }));
    const signature = sign("sha256", Buffer.from(`${header}.${claims}`), { key: privateKey, dsaEncoding: "ieee-p1363" });
    const token = `${header}.${claims}.${b64url(signature)}`;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const realm = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`;
  const auth = `  token:\n    realm: ${realm}\n    service: hyperlab-test-registry\n    issuer: hyperlab-test-issuer\n    rootcertbundle: ${cert}`;
  return { realm, auth, issued, close: () => new Promise((r) => server.close(() => r())) };
}

describe("the registry client with a Bearer token service", () => {
  it("gets a token for each scope from the realm the registry names, with the credentials, and pushes and pulls with it", async () => {
    const folder = join(dir, "token");
    await mkdir(folder, { recursive: true });
    const tokens = await tokenService(folder, { bob: "builder" });
    const registry = await startRegistry({ auth: tokens.auth });
    try {
      const name = `${registry.domain}/team/app:2`;
      await source.tag("busybox", name);
      const anonymous = await failure(pushToRegistry(source, name, () => {}));
      expect(anonymous.code).toBe("REGISTRY_UNAUTHORIZED");
      expect(anonymous.message).toContain(`the token server http://127.0.0.1:`);
      expect(anonymous.message).toContain("(log in first)");
      const wrong = await failure(loginToRegistry(registry.domain, { username: "bob", password: "nope" }));
      expect(wrong.code).toBe("REGISTRY_UNAUTHORIZED");
      await loginToRegistry(registry.domain, { username: "bob", password: "builder" });
      const auth = { username: "bob", password: "builder" };
      const [pushed] = await pushToRegistry(source, name, () => {}, { auth });
      expect(pushed!.digest).toBe((await source.get("busybox")).digest);
      expect(tokens.issued).toContain("repository:team/app:pull,push");
      const { store } = await emptyStore("token");
      const image = await pullFromRegistry(store, name, () => {}, { auth });
      expect(image.digest).toBe(pushed!.digest);
      expect(tokens.issued).toContain("repository:team/app:pull");
    } finally {
      await registry.stop();
      await tokens.close();
    }
  });
});
