// Registry credentials kept the way the docker CLI keeps them: in
// $DOCKER_CONFIG/config.json (default ~/.docker/config.json), under "auths",
// each registry's address with {"auth": base64("user:password")} (or an
// "identitytoken"). Other keys of the file are kept as they are; the file is
// written atomically with mode 0600, as docker writes it. Credential helpers
// ("credsStore", "credHelpers") are not run: hyperlab reads and writes the
// file only.
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { HyperlabError } from "../errors.ts";
import { DEFAULT_DOMAIN } from "./image-reference.ts";
import type { RegistryAuth } from "./registry.ts";
import { registryDomain } from "./registry-transfer.ts";

/** The key docker gives Docker Hub in "auths". */
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

interface DockerConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string }>;
  [key: string]: unknown;
}

/** The folder of docker's config.json: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || join(homedir(), ".docker");
}

/** The key "auths" files a registry under: its address, Docker Hub's URL for docker.io. */
export function authsKey(server: string): string {
  const domain = registryDomain(server);
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_KEY : domain;
}

async function readConfig(dir: string): Promise<DockerConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
  if (!text.trim()) return {};
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `${path} is not valid JSON (${(err as Error).message}): fix it or move it away`);
  }
}

async function writeConfig(dir: string, config: DockerConfig): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "config.json");
  const tmp = join(dir, `.config.json.${process.pid}.tmp`);
  const f = await open(tmp, "w", 0o600);
  try {
    await f.writeFile(JSON.stringify(config, null, "\t") + "\n");
    await f.sync();
  } finally {
    await f.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The credentials config.json keeps for the registry `server` (its address in any form docker writes it), if any. */
export async function readCredentials(server: string, dir = dockerConfigDir()): Promise<RegistryAuth | undefined> {
  const auths = (await readConfig(dir)).auths ?? {};
  const domain = registryDomain(server);
  const key = Object.keys(auths).find((k) => registryDomain(k) === domain);
  const entry = key ? auths[key] : undefined;
  if (!entry) return undefined;
  if (entry.identitytoken) return { username: entry.username, identitytoken: entry.identitytoken };
  if (entry.auth) {
    const text = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = text.indexOf(":");
    if (colon < 0) throw new HyperlabError("INVALID_ARGUMENT", `the credentials of ${key} in ${join(dir, "config.json")} are damaged (their auth is not base64 of user:password): log in again`);
    return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  if (entry.username) return { username: entry.username, password: entry.password };
  return undefined;
}

/** Keeps the credentials for `server` in config.json (`docker login`). */
export async function saveCredentials(server: string, auth: { username: string; password: string }, dir = dockerConfigDir()): Promise<string> {
  const config = await readConfig(dir);
  const auths = config.auths ?? {};
  const domain = registryDomain(server);
  for (const k of Object.keys(auths)) if (registryDomain(k) === domain) delete auths[k];
  auths[authsKey(server)] = { auth: Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64") };
  config.auths = auths;
  await writeConfig(dir, config);
  return join(dir, "config.json");
}

/** Forgets the credentials for `server` (`docker logout`); false when there were none. */
export async function removeCredentials(server: string, dir = dockerConfigDir()): Promise<boolean> {
  const config = await readConfig(dir);
  const auths = config.auths ?? {};
  const domain = registryDomain(server);
  const keys = Object.keys(auths).filter((k) => registryDomain(k) === domain);
  if (!keys.length) return false;
  for (const k of keys) delete auths[k];
  await writeConfig(dir, config);
  return true;
}
