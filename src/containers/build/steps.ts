// What each Dockerfile instruction does to an image config, as dockerd's
// classic builder does it (ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME,
// STOPSIGNAL, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD, CMD, ENTRYPOINT,
// ARG), the history line each step leaves (`/bin/sh -c #(nop) …`), and the
// cache key of a step: the parent image's ID and what the step does, with
// its variables expanded (and, for COPY and ADD, the digests of its
// sources). Pure: no I/O.
import { HyperlabError } from "../../errors.ts";
import { type ImageConfigFile, type ImageRunConfig, sha256Hex } from "../image-store.ts";
import type { Command, Step } from "./dockerfile.ts";
import { joinPath } from "./layer.ts";
import { type Vars, processWord, processWords } from "./words.ts";

/** The PATH a stage FROM scratch starts with (dockerd's default). */
export const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The shell of the shell form when no SHELL was given. */
export const DEFAULT_SHELL = ["/bin/sh", "-c"];
/** Bumped when what a cache key covers changes, so old entries stop matching. */
const CACHE_VERSION = 1;

/** What a stage carries from step to step besides its config. */
export interface StageVars {
  /** the ARGs this stage declared, with their values (undefined: declared without one) */
  args: Map<string, string | undefined>;
  /** a CMD was given in this stage (an ENTRYPOINT then keeps it) */
  cmdSet: boolean;
}

/** The variables a step's words see: ENV over the stage's ARGs (ENV wins, as in Docker). */
export function stepVars(config: ImageConfigFile, stage: StageVars): Vars {
  const env = new Map<string, string>();
  for (const [k, v] of stage.args) if (v !== undefined) env.set(k, v);
  for (const e of config.config?.Env ?? []) {
    const eq = e.indexOf("=");
    if (eq > 0) env.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return (name) => env.get(name);
}

/** A command as the config holds it: the shell form through `shell`, the exec form as written. */
export function commandArgv(command: Command, shell: readonly string[]): string[] {
  return command.form === "exec" ? command.argv : [...shell, command.text];
}

/** Go's %q of a string list, as dockerd writes CMD and ENTRYPOINT into history ("[\"a\" \"b\"]"). */
function quotedList(argv: readonly string[]): string {
  return `[${argv.map((a) => JSON.stringify(a)).join(" ")}]`;
}

/** Sets `KEY=VALUE` in an env list (replacing the same key, else appending). */
export function setEnv(env: readonly string[], key: string, value: string): string[] {
  const out = env.filter((e) => e.slice(0, e.indexOf("=")) !== key);
  const at = env.findIndex((e) => e.slice(0, e.indexOf("=")) === key);
  const entry = `${key}=${value}`;
  if (at < 0) return [...out, entry];
  out.splice(at, 0, entry);
  return out;
}

/** EXPOSE's words as Docker's port keys ("80" → "80/tcp", "8000-8001/udp" → two). */
export function exposedPorts(words: readonly string[]): string[] {
  const out: string[] = [];
  for (const w of words) {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
    if (!m) throw new HyperlabError("INVALID_ARGUMENT", `invalid containerPort: ${w}`);
    const from = Number(m[1]);
    const to = m[2] ? Number(m[2]) : from;
    if (to < from || to > 65535) throw new HyperlabError("INVALID_ARGUMENT", `invalid range specified for container port: ${w}`);
    for (let p = from; p <= to; p++) out.push(`${p}/${(m[3] ?? "tcp").toLowerCase()}`);
  }
  return out;
}

/** The result of a step that changes only the config: the new run config (and author) and its history line. */
export interface MetadataResult {
  config: ImageRunConfig;
  author?: string;
  /** history's created_by */
  createdBy: string;
  /** what the cache key covers besides the parent */
  key: unknown;
}

/**
 * What a step that changes only the config does to `config` (ENV, LABEL,
 * WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, SHELL, HEALTHCHECK,
 * MAINTAINER, ONBUILD, CMD, ENTRYPOINT, ARG), with `vars` for its words.
 * `stage` is updated (ARG declarations, whether CMD was set). `buildArgs`
 * are the --build-arg values, `globalArgs` the values of the ARGs before
 * the first FROM. INVALID_ARGUMENT for a bad value (a port, a signal).
 */
export function applyMetadata(
  image: ImageConfigFile,
  step: Step,
  stage: StageVars,
  opts: { escape: string; buildArgs: ReadonlyMap<string, string>; globalArgs: ReadonlyMap<string, string | undefined> },
): MetadataResult {
  const c: ImageRunConfig = structuredClone(image.config ?? {});
  const vars = stepVars(image, stage);
  const word = (w: string) => processWord(w, vars, opts.escape);
  const shell = c.Shell ?? DEFAULT_SHELL;
  const nop = (text: string) => `${shell.join(" ")} #(nop) ${text}`;
  switch (step.kind) {
    case "ENV": {
      const pairs = step.pairs.map((p) => [word(p.key), word(p.value ?? "")] as const);
      let env = c.Env ?? [];
      // Every pair's words see the variables as they were before this line (as in Docker).
      for (const [k, v] of pairs) env = setEnv(env, k, v);
      c.Env = env;
      const text = `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(" ")}`;
      return { config: c, createdBy: nop(` ${text}`), key: text };
    }
    case "LABEL": {
      const pairs = step.pairs.map((p) => [word(p.key), word(p.value ?? "")] as const);
      c.Labels = { ...c.Labels };
      for (const [k, v] of pairs) c.Labels[k] = v;
      const text = `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(" ")}`;
      return { config: c, createdBy: nop(` ${text}`), key: text };
    }
    case "ARG": {
      const declared: string[] = [];
      for (const p of step.pairs) {
        const name = p.key;
        // A value from --build-arg wins, then the stage's default, then a global ARG's value of the same name.
        const value = opts.buildArgs.has(name) ? opts.buildArgs.get(name) : p.value !== undefined ? word(p.value) : opts.globalArgs.get(name);
        stage.args.set(name, value);
        declared.push(p.value !== undefined ? `${name}=${word(p.value)}` : name);
      }
      const text = `ARG ${declared.join(" ")}`;
      return { config: c, createdBy: nop(` ${text}`), key: text };
    }
    case "WORKDIR": {
      const dir = word(step.value);
      c.WorkingDir = dir.startsWith("/") ? joinPath("/", dir) : joinPath(c.WorkingDir || "/", dir);
      return { config: c, createdBy: nop(`WORKDIR ${c.WorkingDir}`), key: `WORKDIR ${c.WorkingDir}` };
    }
    case "USER": {
      c.User = word(step.value);
      return { config: c, createdBy: nop(` USER ${c.User}`), key: `USER ${c.User}` };
    }
    case "EXPOSE": {
      const ports = exposedPorts(processWords(step.words, vars, opts.escape));
      c.ExposedPorts = { ...c.ExposedPorts };
      for (const p of ports) c.ExposedPorts[p] = {};
      return { config: c, createdBy: nop(` EXPOSE ${ports.join(" ")}`), key: `EXPOSE ${ports.join(" ")}` };
    }
    case "VOLUME": {
      const paths = Array.isArray(step.paths) ? step.paths.map(word) : processWords(step.paths.words, vars, opts.escape);
      if (paths.some((p) => !p.trim())) throw new HyperlabError("INVALID_ARGUMENT", "VOLUME specified can not be an empty string");
      c.Volumes = { ...c.Volumes };
      for (const p of paths) c.Volumes[p] = {};
      return { config: c, createdBy: nop(` VOLUME ${quotedList(paths)}`), key: `VOLUME ${JSON.stringify(paths)}` };
    }
    case "STOPSIGNAL": {
      const signal = word(step.value);
      if (!/^(SIG)?[A-Z0-9]+(\+\d+)?$/i.test(signal)) throw new HyperlabError("INVALID_ARGUMENT", `Invalid signal: ${signal}`);
      c.StopSignal = signal;
      return { config: c, createdBy: nop(` STOPSIGNAL ${signal}`), key: `STOPSIGNAL ${signal}` };
    }
    case "SHELL": {
      c.Shell = [...step.argv];
      return { config: c, createdBy: nop(` SHELL ${quotedList(step.argv)}`), key: `SHELL ${JSON.stringify(step.argv)}` };
    }
    case "HEALTHCHECK": {
      c.Healthcheck = step.health === "NONE" ? { Test: ["NONE"] } : { ...step.health };
      const text = step.health === "NONE" ? "HEALTHCHECK NONE" : `HEALTHCHECK &{${quotedList(step.health.Test)}}`;
      return { config: c, createdBy: nop(` ${text}`), key: `HEALTHCHECK ${JSON.stringify(c.Healthcheck)}` };
    }
    case "MAINTAINER": {
      const author = word(step.value);
      return { config: c, author, createdBy: nop(` MAINTAINER ${author}`), key: `MAINTAINER ${author}` };
    }
    case "ONBUILD": {
      const trigger = step.trigger.replace(/^\S+/, (k) => k.toUpperCase());
      c.OnBuild = [...(c.OnBuild ?? []), trigger];
      return { config: c, createdBy: nop(` ONBUILD ${trigger}`), key: `ONBUILD ${trigger}` };
    }
    case "CMD": {
      c.Cmd = commandArgv(step.command, shell);
      stage.cmdSet = true;
      return { config: c, createdBy: nop(` CMD ${quotedList(c.Cmd)}`), key: `CMD ${JSON.stringify(c.Cmd)}` };
    }
    case "ENTRYPOINT": {
      c.Entrypoint = step.command.form === "shell" && !step.command.text ? undefined : commandArgv(step.command, shell);
      // dockerd: an ENTRYPOINT drops the base image's CMD unless this stage set one.
      if (!stage.cmdSet) delete c.Cmd;
      return { config: c, createdBy: nop(` ENTRYPOINT ${quotedList(c.Entrypoint ?? [])}`), key: `ENTRYPOINT ${JSON.stringify(c.Entrypoint ?? null)}` };
    }
  }
  throw new HyperlabError("INVALID_ARGUMENT", `${step.kind} is not a step that changes only the config`);
}

/**
 * The environment a RUN step's command gets: the config's Env, then the
 * stage's ARGs that have values and that no ENV of the same name overrides
 * (they are not kept in the image). Returns the ARGs used too (for the
 * history line and the cache key: `|N K=V …`).
 */
export function runEnv(config: ImageConfigFile, stage: StageVars): { env: string[]; args: string[] } {
  const env = config.config?.Env ?? [];
  const names = new Set(env.map((e) => e.slice(0, e.indexOf("="))));
  const args = [...stage.args].filter(([k, v]) => v !== undefined && !names.has(k)).map(([k, v]) => `${k}=${v}`);
  args.sort();
  return { env: [...env, ...args], args };
}

/** A RUN step's history line, as dockerd writes it ("|1 V=1 /bin/sh -c echo $V" when build args were in play). */
export function runCreatedBy(argv: readonly string[], args: readonly string[]): string {
  return `${args.length ? `|${args.length} ${args.join(" ")} ` : ""}${argv.join(" ")}`;
}

/** The cache key of a step over the image `parent` (its ID, or "scratch"): a sha256 of what the step does. */
export function cacheKey(parent: string, step: unknown): Promise<string> {
  return sha256Hex(new TextEncoder().encode(JSON.stringify({ v: CACHE_VERSION, parent, step })));
}
