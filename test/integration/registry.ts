// A real registry for the tests: Debian's docker-registry (distribution
// 2.8) on a free loopback port, with a temporary config and storage, and
// optionally htpasswd basic auth (a bcrypt hash made by bcryptjs, since the
// registry takes bcrypt only and apache2-utils is not needed for one line).
// Nothing here reaches beyond the loopback.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";

/** Where Debian's package puts the registry. */
export const REGISTRY_BIN = process.env.HYPERLAB_REGISTRY_BIN ?? "/usr/bin/docker-registry";

/** Whether the registry binary is installed (.ci/run installs it). */
export const registryInstalled = existsSync(REGISTRY_BIN);

/** A running registry: its address as image names carry it, its storage folder, and how to stop it. */
export interface TestRegistry {
  /** 127.0.0.1:PORT */
  domain: string;
  /** http://127.0.0.1:PORT */
  url: string;
  /** the storage folder (docker/registry/v2/…) */
  storage: string;
  /** the process's log so far */
  log(): string;
  stop(): Promise<void>;
}

/** A TCP port nothing listens on now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Extra config lines for the registry's `auth:` section (e.g. a token realm), or htpasswd users. */
export interface RegistryConfig {
  users?: Record<string, string>;
  /** a raw `auth:` section (YAML, indented by two) */
  auth?: string;
}

/** Starts a registry on a free loopback port; resolves once GET /v2/ answers (10 s at most). */
export async function startRegistry(cfg: RegistryConfig = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "hyperlab-registry-"));
  const port = await freePort();
  const storage = join(dir, "storage");
  let auth = "";
  if (cfg.users) {
    const lines = Object.entries(cfg.users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`);
    await writeFile(join(dir, "htpasswd"), lines.join("\n") + "\n");
    auth = `auth:\n  htpasswd:\n    realm: hyperlab-test\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (cfg.auth) auth = `auth:\n${cfg.auth}\n`;
  await writeFile(
    join(dir, "config.yml"),
    `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: hyperlab-test-secret
${auth}`,
  );
  let log = "";
  const child: ChildProcess = spawn(REGISTRY_BIN, ["serve", join(dir, "config.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the registry ${REGISTRY_BIN} exited (${child.exitCode}) before it answered: ${log}`);
    }
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the registry on ${url} did not answer GET /v2/ within 10 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { domain: `127.0.0.1:${port}`, url, storage, log: () => log, stop };
}

/** The file a registry keeps blob `digest` in (distribution's filesystem layout). */
export function registryBlobFile(reg: TestRegistry, digest: string): string {
  const hex = digest.replace("sha256:", "");
  return join(reg.storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}

/** Every file under `dir` with its size (to show a store did not change). */
export async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name === "index.lock") continue;
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), path);
      else out.push(path);
    }
  };
  await walk(dir, "");
  return out.sort();
}
