// The Docker Engine API as hostile input (fast-check): every route of
// routes.ts driven through DockerApi.handle with paths, query strings and
// bodies of any shape (random JSON, mutated valid create bodies, raw bytes,
// JSON text with duplicated keys and cut in half), and the create body's
// parser on its own. Behind the API: the real container engine and the real
// image store (built-in images, an in-memory writable layout) over a guest
// agent that is gone, so a request that gets past its parsing ends in the
// engine's coded AGENT_GONE. What is checked: every error a route raises is a
// HyperlabError with a code (never a TypeError, a URIError, a RangeError),
// every request is answered and settles, and what createOptions accepts is
// well typed for the engine.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ContainerRecord, ContainerEngine, type CreateOptions, type EngineAgent, type EngineRecords } from "../../../../src/containers/engine.ts";
import { nodeImageStore } from "../../../../src/containers/node-store.ts";
import type { VmContainers } from "../../../../src/containers/vm-containers.ts";
import { HyperlabError } from "../../../../src/errors.ts";
import type { Hypervisor } from "../../../../src/hypervisor/hypervisor.ts";
import type { Vm } from "../../../../src/hypervisor/vm.ts";
import { DockerApi, type DockerRoute, MAX_JSON_BODY } from "../../../../src/daemon/docker/api.ts";
import { type DockerCreateBody, createOptions } from "../../../../src/daemon/docker/create-options.ts";
import type { DockerRequest, DockerResponse, HijackedStream } from "../../../../src/daemon/docker/http.ts";
import { dockerRoutes } from "../../../../src/daemon/docker/routes.ts";
import { anyJson, coded, hugeNumbers, mutatedBytes, mutatedJson, mutatedText, params } from "../../properties.ts";

const encoder = new TextEncoder();

/** The body `docker create -e A=1 -p 8080:80 -v /data --memory 64m --cpus 0.5 -l k=v --mount type=volume,src=v1,dst=/v busybox sh -c 'echo hi'` sends (docker CLI 28). */
const validCreate: DockerCreateBody = {
  Hostname: "",
  Domainname: "",
  User: "",
  AttachStdin: false,
  AttachStdout: true,
  AttachStderr: true,
  ExposedPorts: { "80/tcp": {} },
  Tty: false,
  OpenStdin: false,
  StdinOnce: false,
  Env: ["A=1"],
  Cmd: ["sh", "-c", "echo hi"],
  Image: "busybox",
  Volumes: { "/data": {} },
  WorkingDir: "",
  Entrypoint: null,
  OnBuild: null,
  Labels: { k: "v" },
  HostConfig: {
    Binds: ["named:/named:ro"],
    ContainerIDFile: "",
    LogConfig: { Type: "", Config: {} },
    NetworkMode: "bridge",
    PortBindings: { "80/tcp": [{ HostIp: "", HostPort: "8080" }] },
    RestartPolicy: { Name: "no", MaximumRetryCount: 0 },
    AutoRemove: false,
    VolumeDriver: "",
    VolumesFrom: null,
    ConsoleSize: [24, 80],
    CapAdd: null,
    CapDrop: null,
    CgroupnsMode: "",
    Dns: [],
    DnsOptions: [],
    DnsSearch: [],
    ExtraHosts: null,
    GroupAdd: null,
    IpcMode: "",
    Cgroup: "",
    Links: null,
    OomScoreAdj: 0,
    PidMode: "",
    Privileged: false,
    PublishAllPorts: false,
    ReadonlyRootfs: false,
    SecurityOpt: null,
    UTSMode: "",
    UsernsMode: "",
    ShmSize: 0,
    Isolation: "",
    CpuShares: 0,
    Memory: 67108864,
    NanoCpus: 500000000,
    CgroupParent: "",
    BlkioWeight: 0,
    CpuPeriod: 0,
    CpuQuota: 0,
    Devices: [],
    MemorySwappiness: null,
    OomKillDisable: null,
    PidsLimit: null,
    Ulimits: [],
    Mounts: [{ Type: "volume", Source: "v1", Target: "/v" }],
  },
  NetworkingConfig: { EndpointsConfig: { bridge: { Aliases: null, IPAMConfig: null } } },
};

/** Other valid bodies: exec create, network create, volume create, container update, image tag's none. */
const validBodies: Array<Record<string, unknown>> = [
  validCreate,
  { AttachStdin: false, AttachStdout: true, AttachStderr: true, Tty: false, Env: ["A=1"], Cmd: ["ls", "-l"], WorkingDir: "/", User: "0:0", Privileged: false, DetachKeys: "" },
  { Name: "net1", Driver: "bridge", Internal: false, Attachable: false, IPAM: { Driver: "default", Config: [{ Subnet: "10.9.0.0/16", Gateway: "10.9.0.1" }] }, Options: {}, Labels: { a: "b" } },
  { Name: "vol1", Driver: "local", DriverOpts: {}, Labels: { a: "b" } },
  { Container: "abc", EndpointConfig: { Aliases: ["x"] } },
  { username: "u", password: "p", serveraddress: "localhost:5000" },
  { Detach: false, Tty: false, ConsoleSize: [24, 80] },
];

/** What a JSON parser trips on that JSON.stringify never writes: duplicated keys, cut text, stray bytes, deep nesting. */
const jsonPieces = ['"Image":', '"Cmd":', "{", "}", "[", "]", ",", ":", '"', "\\u0000", "null", "1e999", "-0", '"HostConfig":{}', '"__proto__":{"x":1}', "[".repeat(50)];

const validText = JSON.stringify(validCreate, null, 1);

const queryKeys = [
  "all", "condition", "copyUIDGID", "dockerfile", "filters", "follow", "force", "forcerm", "fromImage", "fromSrc", "limit", "logs", "name", "names",
  "networkmode", "nocache", "one-shot", "path", "platform", "ps_args", "q", "quiet", "repo", "rm", "scope", "shared-size", "signal", "since", "stderr",
  "stdin", "stdout", "stream", "t", "tag", "tail", "target", "timeout", "timestamps", "type", "until", "v", "version", "buildargs", "labels", "h", "w",
];

const queryValue = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("", "1", "0", "true", "false", "-1", "all", "1e400", "NaN", "Infinity", "0x10", "10s", "1h30m", "-5m", "linux/386", "linux/arm64", "busybox", "busybox:latest", "../x", "/", "%", "%E0%A4%A"),
  hugeNumbers.map(String),
  anyJson.map((v) => JSON.stringify(v) ?? ""),
  fc.constantFrom('{"label":["a=b"]}', '{"status":{"running":true}}', '{"dangling":["true"]}', '{"x":1}', '{"until":["1h"]}', '{"A":"1"}', "[]", "null", "{"),
);

/** A query string of known and unknown keys, values of any kind, sometimes repeated or broken. */
const query = fc.oneof(
  fc.array(fc.tuple(fc.oneof(fc.constantFrom(...queryKeys), fc.string({ maxLength: 6 })), queryValue), { maxLength: 5 }).map((pairs) => new URLSearchParams(pairs).toString()),
  fc.string({ maxLength: 30 }),
  fc.constantFrom("a=%", "%%%", "filters=%7B", "name=%00", "t=%FF"),
);

/** A path segment: names, ids, percent-escapes (broken ones too), dots, huge. */
const segment = fc.oneof(
  fc.string({ minLength: 1, maxLength: 12 }).map(encodeURIComponent),
  fc.constantFrom("busybox", "busybox:latest", "sha256:abc", "..", ".", "%2e%2e", "%", "%E0%A4%A", "%FF", "%00", "a%2Fb", "x".repeat(300), "default", "bridge", "none", "host"),
);

/** A path that matches a route (its groups filled in), or any path at all, with or without a version prefix. */
const path = fc.oneof(
  fc.tuple(fc.constantFrom(...dockerRoutes), fc.array(segment, { minLength: 3, maxLength: 3 })).map(([[, re], segs]) => {
    let i = 0;
    return re.source.replace(/^\^/, "").replace(/\$$/, "").replace(/\\\//g, "/").replace(/\(\[\^\/\]\+\)|\(\.\+\)|\(\.\*\)/g, () => segs[i++ % segs.length]!);
  }),
  fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`),
);

const method = (route?: DockerRoute) => (route ? fc.constant(route[0]) : fc.constantFrom("GET", "POST", "DELETE", "PUT", "HEAD", "PATCH"));

const body: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(...validBodies).chain((b) => mutatedJson(b)).map((v) => encoder.encode(JSON.stringify(v) ?? "")),
  mutatedText(validText, jsonPieces).map((t) => encoder.encode(t)),
  anyJson.map((v) => encoder.encode(JSON.stringify(v) ?? "")),
  mutatedBytes(encoder.encode(validText)),
  fc.uint8Array({ maxLength: 64 }),
  fc.constant(new Uint8Array(0)),
);

/** A request the test plays: method, url, body (given whole or streamed in pieces). */
interface Played {
  method: string;
  url: string;
  body: Uint8Array;
  headers: Record<string, string>;
}

const request: fc.Arbitrary<Played> = fc
  .record({
    version: fc.constantFrom("", "/v1.41", "/v1.50", "/v1.24", "/v1.12", "/v9.99", "/v1.x"),
    path,
    query,
    body,
    contentType: fc.constantFrom("application/json", "application/x-tar", "text/plain", ""),
    registryAuth: fc.oneof(fc.constant(undefined), fc.base64String({ maxLength: 40 }), fc.constantFrom("e30=", "bnVsbA==", "W10=", "!!!")),
  })
  .chain((r) => {
    const route = dockerRoutes.find(([, re]) => re.test(r.path));
    return method(route).map((m) => {
      const headers: Record<string, string> = { "content-type": r.contentType };
      if (r.registryAuth !== undefined) headers["x-registry-auth"] = r.registryAuth;
      return { method: m, url: `${r.version}${r.path}${r.query ? `?${r.query}` : ""}`, body: r.body, headers };
    });
  });

/** An agent whose guest is gone: every call fails as the real client's do after the VM stopped. */
function goneAgent(): EngineAgent {
  const gone = () => new HyperlabError("AGENT_GONE", "the guest agent is gone: the VM stopped (a test's agent)");
  return new Proxy({} as EngineAgent, {
    get: (_, key) =>
      key === "then"
        ? undefined
        : key === "spawn"
          ? () => {
              throw gone();
            }
          : async () => {
              throw gone();
            },
  });
}

/** The Docker API over a real engine and image store whose guest is gone; route errors are collected as they are thrown. */
function dockerApi(records?: EngineRecords) {
  const store = nodeImageStore();
  const engine = new ContainerEngine(goneAgent(), store, { vm: "default" });
  if (records) engine.restoreRecords(records);
  // The VM's own answers (files for /info) fail as its agent's do.
  const vm = new Proxy({ name: "default", state: "running" } as Vm, {
    get: (target, key) =>
      key in target || key === "then"
        ? (target as unknown as Record<PropertyKey, unknown>)[key]
        : async () => {
            throw new HyperlabError("AGENT_GONE", "the guest agent is gone (a test's VM)");
          },
  });
  const containers = {
    store,
    engine: () => engine,
    vm: () => vm,
    containersOf: (_: Vm, opts?: { all?: boolean }) => engine.ps(opts),
    all: (opts?: { all?: boolean }) => engine.ps(opts).map((container) => ({ vm, container })),
    images: () => store.list(),
    volumeUsers: () => [],
    volumes: () => {
      throw new HyperlabError("AGENT_GONE", "the guest agent is gone (a test's agent)");
    },
    onEvent: () => () => {},
  } as unknown as VmContainers;
  const thrown: unknown[] = [];
  const routes: DockerRoute[] = dockerRoutes.map(([m, re, handler]) => [
    m,
    re,
    async (call) => {
      try {
        await handler(call);
      } catch (err) {
        thrown.push(err);
        throw err;
      }
    },
  ]);
  const registryFetch = (async () => {
    throw new TypeError("fetch failed");
  }) as typeof fetch;
  const api = new DockerApi({ containers, hypervisor: {} as Hypervisor, vm: "default", registryFetch }, routes);
  return { api, thrown };
}

/** Plays one request against `api`; resolves with the status once the answer ended (the client "hangs up" after 200 ms). */
async function play(api: DockerApi, r: Played): Promise<{ status: number | undefined; text: string }> {
  let status: number | undefined;
  const chunks: string[] = [];
  const closers: Array<() => void> = [];
  let ended = false;
  const decoder = new TextDecoder();
  const req: DockerRequest = {
    method: r.method,
    url: r.url,
    headers: { ...r.headers, "content-length": String(r.body.length) },
    body: async () => {
      if (r.body.length > MAX_JSON_BODY) throw new HyperlabError("INVALID_ARGUMENT", `request body is larger than ${MAX_JSON_BODY} bytes`);
      return r.body;
    },
    stream: async function* () {
      for (let at = 0; at < r.body.length; at += 7) yield r.body.subarray(at, at + 7);
    },
  };
  const hijacked: HijackedStream = {
    write: (c) => void chunks.push(decoder.decode(c)),
    end: () => void (ended = true),
    onData: () => {},
    onEnd: (l) => void setTimeout(l, 0),
    onClose: (l) => void closers.push(l),
  };
  const res: DockerResponse = {
    head: (s) => {
      expect(status, "head() is legal once").toBeUndefined();
      status = s;
    },
    get headSent() {
      return status !== undefined;
    },
    write: (c) => void chunks.push(typeof c === "string" ? c : decoder.decode(c)),
    end: (c) => {
      if (c !== undefined) chunks.push(typeof c === "string" ? c : decoder.decode(c));
      ended = true;
    },
    onClose: (l) => void closers.push(l),
    hijack: () => {
      status = 101;
      return hijacked;
    },
  };
  const hangUp = setTimeout(() => {
    for (const l of closers.splice(0)) l();
  }, 200);
  try {
    await api.handle(req, res);
  } finally {
    clearTimeout(hangUp);
  }
  expect(status, `${r.method} ${r.url} was answered`).toBeDefined();
  expect(ended || status === 101, `${r.method} ${r.url}'s answer ended`).toBe(true);
  return { status, text: chunks.join("") };
}

/** Plays `r` and fails unless every error a route threw was coded. */
async function playCoded(api: ReturnType<typeof dockerApi>, r: Played) {
  api.thrown.length = 0;
  const out = await coded(() => play(api.api, r));
  for (const err of api.thrown) {
    if (!(err instanceof HyperlabError)) throw new Error(`${r.method} ${r.url} threw a non-coded error: ${(err as Error)?.stack ?? String(err)}`);
  }
  if (out.ok && out.value.status! >= 500) {
    // A 500 here is the gone agent's or the unreachable registry's coded failure, never a crash (sendError answers those 500 with the crash's message).
    expect(out.value.text, `${r.method} ${r.url}`).toMatch(/the guest agent is gone|cannot reach the registry/);
  }
  return out;
}

/** What the engine may be given: each field of CreateOptions of its declared type. */
function expectWellTyped(o: CreateOptions): void {
  const strings = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((s) => typeof s === "string"));
  const str = (v: unknown) => v === undefined || typeof v === "string";
  const num = (v: unknown) => v === undefined || (typeof v === "number" && Number.isFinite(v));
  expect(typeof o.image).toBe("string");
  for (const k of ["command", "entrypoint", "env", "aliases"] as const) expect(strings(o[k]), `${k}: ${JSON.stringify(o[k])}`).toBe(true);
  for (const k of ["name", "hostname", "workingDir", "user", "stopSignal", "network", "ipAddress", "runtime"] as const) expect(str(o[k]), `${k}: ${JSON.stringify(o[k])}`).toBe(true);
  expect(o.labels === undefined || (typeof o.labels === "object" && !Array.isArray(o.labels) && Object.values(o.labels).every((v) => typeof v === "string")), `labels: ${JSON.stringify(o.labels)}`).toBe(true);
  for (const [k, v] of Object.entries(o.limits ?? {})) expect(num(v), `limits.${k}: ${v}`).toBe(true);
  if (o.tty) expect(num(o.tty.rows) && num(o.tty.cols), `tty: ${JSON.stringify(o.tty)}`).toBe(true);
}

describe("the Docker API's bodies and query strings as hostile input", () => {
  it("answers the valid bodies the way the engine allows (the properties below start from these)", async () => {
    const api = dockerApi();
    const out = await playCoded(api, { method: "POST", url: "/v1.50/containers/create?name=web", body: encoder.encode(JSON.stringify({ ...validCreate, HostConfig: { ...validCreate.HostConfig, PortBindings: {} }, ExposedPorts: {} })), headers: {} });
    // Past the parsing: the engine found the image and asked the (gone) guest for its first step.
    expect(out.ok && out.value.status).toBe(500);
    expect(out.ok && out.value.text).toMatch(/the guest agent is gone/);
    expect(createOptions(validCreate, { name: "web" }).options).toMatchObject({ image: "busybox", command: ["sh", "-c", "echo hi"], env: ["A=1"], limits: { memoryBytes: 67108864 } });
  });

  it("createOptions returns well-typed options or refuses with a coded error, for mutated create bodies", async () => {
    await fc.assert(
      fc.asyncProperty(mutatedJson(validCreate as Record<string, unknown>), fc.option(fc.string({ maxLength: 10 })), async (b, name) => {
        const out = await coded(() => createOptions(b as DockerCreateBody, { name, platform: null }));
        if (out.ok) expectWellTyped(out.value.options);
      }),
      params(),
    );
  });

  it("every route answers any path, query and body with a coded error or a success, and settles", async () => {
    const api = dockerApi();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        await playCoded(api, r);
      }),
      params(),
    );
  });

  it("container create answers mutated bodies (wrong types, duplicated keys, cut text) with a coded error or a create", async () => {
    const api = dockerApi();
    const createBody = fc.oneof(
      mutatedJson(validCreate as Record<string, unknown>).map((v) => encoder.encode(JSON.stringify(v) ?? "")),
      mutatedText(validText, jsonPieces).map((t) => encoder.encode(t)),
    );
    await fc.assert(
      fc.asyncProperty(createBody, query, async (b, q) => {
        await playCoded(api, { method: "POST", url: `/v1.50/containers/create?${q}`, body: b, headers: { "content-type": "application/json" } });
      }),
      params(),
    );
  });

  it("the other JSON bodies (exec, networks, volumes, auth, connect) answer mutated bodies with a coded error or a success", async () => {
    const api = dockerApi();
    const targets: Array<[string, Record<string, unknown>]> = [
      ["/v1.50/containers/nosuch/exec", validBodies[1]!],
      ["/v1.50/networks/create", validBodies[2]!],
      ["/v1.50/volumes/create", validBodies[3]!],
      ["/v1.50/networks/bridge/connect", validBodies[4]!],
      ["/v1.50/networks/bridge/disconnect", validBodies[4]!],
      ["/v1.50/auth", validBodies[5]!],
      ["/v1.50/exec/nosuch/start", validBodies[6]!],
    ];
    const played = fc.integer({ min: 0, max: targets.length - 1 }).chain((i) =>
      fc.oneof(mutatedJson(targets[i]![1]).map((v) => JSON.stringify(v) ?? ""), mutatedText(JSON.stringify(targets[i]![1]), jsonPieces)).map((text) => ({ url: targets[i]![0], text })),
    );
    await fc.assert(
      fc.asyncProperty(played, async ({ url, text }) => {
        await playCoded(api, { method: "POST", url, body: encoder.encode(text), headers: { "content-type": "application/json" } });
      }),
      params(),
    );
  });
});

/** The records of a VM whose guest had two containers (exited and running: the running one is taken back as exited, its agent gone). */
async function twoContainers(): Promise<EngineRecords> {
  const image = await nodeImageStore().get("busybox");
  const record = (id: string, name: string, status: "exited" | "running"): ContainerRecord => ({
    id: id.repeat(64 / id.length),
    name,
    image,
    command: ["sh", "-c", "echo hi"],
    entrypoint: [],
    cmd: ["sh", "-c", "echo hi"],
    workingDir: "/",
    labels: { k: "v" },
    stopSignal: "SIGTERM",
    meta: { docker: { config: validCreate, hostConfig: validCreate.HostConfig, networkMode: "bridge" } },
    env: ["A=1"],
    hostname: name,
    limits: {},
    network: "bridge",
    runtime: "crun",
    autoRemove: false,
    interactive: false,
    createdAt: "2026-01-01T00:00:00.000Z",
    startedAt: "2026-01-01T00:00:01.000Z",
    finishedAt: status === "exited" ? "2026-01-01T00:00:02.000Z" : undefined,
    status,
    exitCode: status === "exited" ? 0 : undefined,
    oomKilled: false,
    logs: [{ stream: 1, data: btoa("hi\n"), time: Date.UTC(2026, 0, 1, 0, 0, 1) }],
  });
  return { nextAddress: 4, containers: [record("a1", "web", "exited"), record("b2", "db", "running")] };
}

describe("the Docker API's routes on existing containers as hostile input", () => {
  it("every container route answers any query and body on existing containers with a coded error or a success, and settles", async () => {
    const api = dockerApi(await twoContainers());
    const containerRoutes = dockerRoutes.filter(([, re]) => re.source.startsWith("^\\/containers\\/([^/]+)") || re.source.startsWith("^\\/containers\\/(["));
    expect(containerRoutes.length).toBeGreaterThan(10);
    const played = fc
      .record({ route: fc.constantFrom(...containerRoutes), ref: fc.constantFrom("web", "db", "a1a1", "b2", "a", "nosuch"), q: query, b: body })
      .map(({ route: [m, re], ref, q, b }) => ({
        method: m,
        url: `/v1.50${re.source.replace(/^\^/, "").replace(/\$$/, "").replace(/\\\//g, "/").replace(/\(\[\^\/\]\+\)|\(\.\+\)/g, ref)}${q ? `?${q}` : ""}`,
        body: b,
        headers: { "content-type": "application/json" },
      }));
    await fc.assert(
      fc.asyncProperty(played, async (r) => {
        await playCoded(api, r);
      }),
      params(),
    );
  });
});

describe("found by the properties above", () => {
  const post = (url: string, body: unknown, headers: Record<string, string> = {}) => ({ method: "POST", url, body: encoder.encode(typeof body === "string" ? body : JSON.stringify(body)), headers });
  const answer = async (r: Played) => {
    const api = dockerApi();
    const out = await playCoded(api, r);
    if (!out.ok) throw out.error;
    return { status: out.value.status, message: (JSON.parse(out.value.text) as { message: string }).message };
  };

  it("refuses a create body's fields of another type in dockerd's words (was: TypeErrors in the engine, or wrong types passed on)", async () => {
    expect(await answer(post("/v1.50/containers/create", { Image: "busybox", Env: 0 }))).toEqual({ status: 400, message: "json: cannot unmarshal number 0 into Go struct field Config.Env of type []string" });
    expect(await answer(post("/v1.50/containers/create", { Image: "busybox", Hostname: -5e-324 }))).toMatchObject({ status: 400, message: expect.stringMatching(/into Go struct field Config\.Hostname of type string$/) });
    expect(await answer(post("/v1.50/containers/create", { Image: "busybox", HostConfig: { Mounts: [{ Type: "volume", Target: 5 }] } }))).toMatchObject({ status: 400, message: "json: cannot unmarshal number 5 into Go struct field HostConfig.Mounts.Target of type string" });
    expect(await answer(post("/v1.50/containers/create", { Image: "busybox", HostConfig: { RestartPolicy: { Name: { toString: null } } } }))).toMatchObject({ status: 400, message: "json: cannot unmarshal object into Go struct field HostConfig.RestartPolicy.Name of type string" });
    expect(await answer(post("/v1.50/containers/create", { Image: "busybox", HostConfig: { PortBindings: { "80/tcp": [null] } } }))).toMatchObject({ status: 400, message: expect.stringMatching(/\[\]nat\.PortBinding \(HostConfig\.PortBindings '80\/tcp'\)/) });
  });

  it("refuses other bodies' fields of another type (was: 'pool.Subnet?.includes is not a function', 'Cannot convert object to primitive value')", async () => {
    expect(await answer(post("/v1.50/networks/create", { Name: "n", IPAM: { Config: [{ Subnet: 0 }] } }))).toEqual({ status: 400, message: "json: cannot unmarshal number 0 into Go struct field IPAM.Config.Subnet of type string" });
    expect(await answer(post("/v1.50/networks/bridge/connect", { Container: [{ toString: null }] }))).toEqual({ status: 400, message: "json: cannot unmarshal array into Go struct field Container of type string" });
  });

  it("takes a null body as {} and refuses a body that is not an object (was: 'Cannot read properties of null (reading serveraddress)')", async () => {
    expect(await answer(post("/v1.50/auth", "null"))).toEqual({ status: 400, message: "serveraddress is required: name the registry to log in to" });
    expect(await answer(post("/v1.50/volumes/create", "[1]"))).toEqual({ status: 400, message: "json: cannot unmarshal array into Go value of type object: the request body must be a JSON object" });
  });

  it("refuses an X-Registry-Auth header that is not a JSON object of strings (was: 'Cannot destructure property username of v as it is null')", async () => {
    expect(await answer({ ...post("/v1.50/images/busybox/push", ""), headers: { "x-registry-auth": "bnVsbA==" } })).toMatchObject({ status: 400, message: expect.stringMatching(/^invalid X-Registry-Auth header: it is not a JSON object/) });
    const badAuth = Buffer.from(JSON.stringify({ auth: "!!" })).toString("base64");
    expect(await answer({ ...post("/v1.50/images/busybox/push", ""), headers: { "x-registry-auth": badAuth } })).toMatchObject({ status: 400, message: "invalid X-Registry-Auth header: its auth is not base64 of user:password" });
  });

  it("answers a broken percent-escape in a path with 400 (was: 500 'URI malformed')", async () => {
    expect(await answer({ method: "GET", url: "/v1.50/containers/%E0%A4%A/json", body: new Uint8Array(0), headers: {} })).toEqual({ status: 400, message: "invalid URL escape in /v1.50/containers/%E0%A4%A/json: a name's '%' must be written %25" });
  });
});
