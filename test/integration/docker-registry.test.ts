// docker push, pull and login (the real docker CLI) and hyperlab push, pull,
// login and logout against hyperlab's daemon and a real registry (Debian's
// docker-registry, distribution 2.8, on the loopback; one with htpasswd
// basic auth): an image built in the guest goes up, is removed here, comes
// back with the same digest and runs; the registry's refusals reach the
// user in words that say what to do, and leave the store as it was.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hyperlab } from "./daemon-process.ts";
import { type DockerLab, dockerLab } from "./docker-cli.ts";
import { type TestRegistry, freePort, registryInstalled, startRegistry } from "./registry.ts";

if (!registryInstalled) throw new Error("these tests need Debian's docker-registry (/usr/bin/docker-registry): apt-get install docker-registry (.ci/run does)");

const app = fileURLToPath(new URL("../../examples/lua54-app", import.meta.url));

describe("docker and hyperlab push/pull/login with a registry", () => {
  let lab: DockerLab;
  let open: TestRegistry;
  let locked: TestRegistry;
  const docker = (...args: string[]) => lab.docker(args);
  const cli = (args: string[], env: Record<string, string> = {}) => hyperlab(lab.socket, args, { DOCKER_CONFIG: join(lab.dir, "hyperlab-docker-config"), ...env });

  beforeAll(async () => {
    [lab, open, locked] = await Promise.all([dockerLab(), startRegistry(), startRegistry({ users: { alice: "wonderland" } })]);
  }, 120_000);

  afterAll(async () => {
    await lab?.close();
    await open?.stop();
    await locked?.stop();
  });

  it("pushes a built image, pulls it back after removing it, and runs it with the same digest", async () => {
    const name = `${open.domain}/lua54-app:1`;
    const built = await docker("build", "-q", "-t", name, app);
    expect(built.code, built.stderr).toBe(0);
    const id = built.stdout.trim();
    const pushed = await docker("push", name);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toContain(`The push refers to repository [${open.domain}/lua54-app]\n`);
    expect(pushed.stdout).toMatch(/^[0-9a-f]{12}: Preparing$/m);
    expect(pushed.stdout).toMatch(/^[0-9a-f]{12}: Pushed$/m);
    const digest = /^1: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(pushed.stdout)?.[1];
    expect(digest).toBeDefined();
    // Again: the registry has every layer.
    const again = await docker("push", name);
    expect(again.stdout).toMatch(/^[0-9a-f]{12}: Layer already exists$/m);
    expect(again.stdout).not.toMatch(/: Pushed$/m);

    expect((await docker("rmi", name)).code).toBe(0);
    // The build cache holds the built layers too: without it, they must come from the registry.
    expect((await docker("builder", "prune", "-f")).code).toBe(0);
    expect((await docker("image", "inspect", name)).code).toBe(1);
    const pulled = await docker("pull", name);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout).toContain("1: Pulling from lua54-app\n");
    expect(pulled.stdout).toMatch(/^[0-9a-f]{12}: Already exists$/m);
    expect(pulled.stdout).toMatch(/^[0-9a-f]{12}: Pull complete$/m);
    expect(pulled.stdout).toContain(`Digest: ${digest}\n`);
    expect(pulled.stdout).toContain(`Status: Downloaded newer image for ${name}\n`);
    const inspect = JSON.parse((await docker("image", "inspect", name)).stdout) as Array<{ Id: string; RepoDigests: string[] }>;
    expect(inspect[0]!.Id).toBe(id);
    expect(inspect[0]!.RepoDigests).toEqual([`${open.domain}/lua54-app@${digest}`]);
    const ran = await docker("run", "--rm", name, "2");
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain("hello from lua54-app on Lua 5.4 (7 // 2 = 3, a integer; ✓, round 1)");
    expect(ran.stdout).toContain("round 2");
  }, 300_000);

  it("logs in with the registry's basic auth and sends the credentials with push and pull", async () => {
    const name = `${locked.domain}/tools:1`;
    expect((await docker("tag", "busybox", name)).code).toBe(0);
    const refused = await docker("push", name);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("no basic auth credentials");
    const bad = await lab.docker(["login", "-u", "alice", "--password-stdin", locked.domain], { input: "nope\n" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`Error response from daemon: login attempt to ${locked.url}/v2/ failed with status: 401 Unauthorized`);
    const good = await lab.docker(["login", "-u", "alice", "--password-stdin", locked.domain], { input: "wonderland\n" });
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain("Login Succeeded");
    const pushed = await docker("push", name);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toMatch(/^1: digest: sha256:[0-9a-f]{64} size: \d+$/m);
    expect((await docker("rmi", name)).code).toBe(0);
    const pulled = await docker("pull", name);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect((await docker("logout", locked.domain)).code).toBe(0);
    expect((await docker("rmi", name)).code).toBe(0);
    const after = await docker("pull", name);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain(`Error response from daemon: Get "${locked.url}/v2/tools/manifests/1": no basic auth credentials`);
    expect((await docker("image", "inspect", name)).code).toBe(1);
  }, 120_000);

  it("says why a pull failed: manifest unknown, an unreachable registry", async () => {
    const before = (await docker("images", "-q", "--no-trunc")).stdout;
    const unknown = await docker("pull", `${open.domain}/lua54-app:9`);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`Error response from daemon: manifest for ${open.domain}/lua54-app:9 not found: manifest unknown: manifest unknown`);
    const port = await freePort();
    const gone = await docker("pull", `127.0.0.1:${port}/app:1`);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`Error response from daemon: cannot reach the registry 127.0.0.1:${port}: GET http://127.0.0.1:${port}/v2/app/manifests/1: ECONNREFUSED`);
    expect((await docker("images", "-q", "--no-trunc")).stdout).toBe(before);
  }, 60_000);

  it("hyperlab push, pull, login and logout: the same through the daemon, credentials in DOCKER_CONFIG", async () => {
    const name = `${locked.domain}/lua:5.4`;
    expect((await docker("tag", "lua:5.4", name)).code).toBe(0);
    const refused = await cli(["push", name]);
    expect(refused.code).toBe(125);
    expect(refused.stderr).toContain("no basic auth credentials");
    expect(refused.stderr).toContain(`hyperlab login ${locked.domain}`);
    const bad = await cli(["login", "-u", "alice", "-p", "nope", locked.domain]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain(`login attempt to ${locked.url}/v2/ failed with status: 401 Unauthorized [REGISTRY_UNAUTHORIZED]`);
    const login = await cli(["login", "-u", "alice", "-p", "wonderland", locked.domain]);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toBe("Login Succeeded\n");
    const pushed = await cli(["push", name]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toContain(`The push refers to repository [${locked.domain}/lua]\n`);
    const digest = /^5\.4: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(pushed.stdout)?.[1];
    expect(digest).toBe(JSON.parse((await docker("image", "inspect", "lua:5.4")).stdout)[0].RepoDigests[0].split("@")[1]);
    expect((await docker("rmi", name)).code).toBe(0);
    const pulled = await cli(["pull", name]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout).toContain(`Digest: ${digest}\n`);
    expect(pulled.stdout.endsWith(`Status: Downloaded newer image for ${name}\n${name}\n`)).toBe(true);
    const ran = await docker("run", "--rm", name, "lua", "-v");
    expect(ran.stdout).toContain("Lua 5.4");
    const logout = await cli(["logout", locked.domain]);
    expect(logout.stdout).toBe(`Removing login credentials for ${locked.domain}\n`);
    const denied = await cli(["pull", name]);
    expect(denied.code).toBe(125);
    expect(denied.stderr).toContain("no basic auth credentials");
    expect((await cli(["push", "--bogus", name])).stderr).toContain("unknown flag: --bogus");
    expect((await cli(["pull", name, "extra"])).code).toBe(125);
  }, 120_000);
});
