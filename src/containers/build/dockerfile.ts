// A Dockerfile as the builder runs it: dockerfile-ast (the parser editors
// use) splits the file into instructions (continuation lines, comments,
// the `escape` and `syntax` directives, heredocs, flags, line numbers);
// this file checks each instruction as dockerd's parser does and turns it
// into a typed step. Variables are not expanded here: that needs the
// build's ARG and ENV values (builder.ts with words.ts). Errors name the
// file, the line and the instruction. Pure: no I/O.
import { DockerfileParser, type Instruction as AstInstruction, ModifiableInstruction, PropertyInstruction } from "dockerfile-ast";
import { HyperlabError } from "../../errors.ts";

/** A command in shell form (run by the SHELL) or exec form (argv as written). */
export type Command = { form: "shell"; text: string } | { form: "exec"; argv: string[] };

/** Where an instruction is: its first line (1-based) and its text as the progress shows it. */
interface At {
  line: number;
  /** keyword as written and arguments, continuation lines joined (Docker's "Step n/m : …") */
  text: string;
}

/** A `KEY=VALUE` pair of ENV, LABEL or ARG, as written (quotes and variables still in it). */
export interface RawPair {
  key: string;
  /** undefined: `ARG NAME` without a default */
  value?: string;
}

/** The HEALTHCHECK of an image config (Docker's field names; durations in ns). */
export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** One instruction of a stage (after its FROM). */
export type Step = At &
  (
    | { kind: "RUN"; command: Command }
    | { kind: "CMD" | "ENTRYPOINT"; command: Command }
    | { kind: "COPY" | "ADD"; sources: string[]; dest: string; from?: string; chown?: string; chmod?: string }
    | { kind: "ENV" | "LABEL"; pairs: RawPair[] }
    | { kind: "ARG"; pairs: RawPair[] }
    | { kind: "WORKDIR" | "USER" | "STOPSIGNAL"; value: string }
    | { kind: "EXPOSE"; words: string }
    | { kind: "VOLUME"; paths: string[] | { words: string } }
    | { kind: "SHELL"; argv: string[] }
    | { kind: "HEALTHCHECK"; health: HealthConfig | "NONE" }
    | { kind: "MAINTAINER"; value: string }
    | { kind: "ONBUILD"; trigger: string }
  );

/** A FROM: the base (as written: variables are expanded with the global ARGs), its stage name, its platform. */
export interface From extends At {
  kind: "FROM";
  image: string;
  name?: string;
  platform?: string;
}

/** An ARG before the first FROM (its value is for FROM lines only, and for ARGs of a stage that re-declare it). */
export interface GlobalArg extends At {
  kind: "ARG";
  pairs: RawPair[];
}

/** One stage: its FROM and the steps after it. */
export interface Stage {
  index: number;
  /** its `AS` name, lower-cased as Docker compares them */
  name?: string;
  from: From;
  steps: Step[];
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  /** its name, for messages (e.g. "Dockerfile", "build/app.Dockerfile") */
  file: string;
  /** the escape character (`\` or a backtick, from the `escape` directive) */
  escape: string;
  /** the `syntax` directive, if any */
  syntax?: string;
  globalArgs: GlobalArg[];
  stages: Stage[];
}

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
/** Flags each instruction takes (all in --name=value form). */
const FLAGS: Partial<Record<string, readonly string[]>> = {
  FROM: ["platform"],
  COPY: ["from", "chown", "chmod"],
  ADD: ["chown", "chmod"],
  HEALTHCHECK: ["interval", "timeout", "start-period", "start-interval", "retries"],
};
/** Flags only BuildKit has: named in the refusal. */
const BUILDKIT_FLAGS: Partial<Record<string, readonly string[]>> = {
  RUN: ["mount", "network", "security"],
  COPY: ["link", "parents", "exclude"],
  ADD: ["link", "keep-git-dir", "checksum", "exclude"],
};
const KEYWORDS = new Set(["FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "LABEL", "WORKDIR", "USER", "EXPOSE", "VOLUME", "STOPSIGNAL", "SHELL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"]);

/** A parse error in dockerd's words, naming the file, the line and the instruction. */
export function parseError(file: string, line: number, message: string): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", `dockerfile parse error line ${line} of ${file}: ${message}`, { file, line });
}

/**
 * Parses a Dockerfile's text. INVALID_ARGUMENT (see parseError) for what
 * dockerd's parser refuses: an unknown instruction, a missing or extra
 * argument, an unknown flag, an instruction before the first FROM, a file
 * without instructions.
 */
export function parseDockerfile(source: string, file = "Dockerfile"): Dockerfile {
  const text = source.replace(/\r\n?/g, "\n").replace(/^\uFEFF/, "");
  const ast = DockerfileParser.parse(text);
  const escape = ast.getEscapeCharacter();
  const directives = ast.getDirectives();
  for (const d of directives) {
    const name = d.getName().toLowerCase();
    if (name === "escape" && escape !== "\\" && escape !== "`") {
      throw parseError(file, d.getRange().start.line + 1, `invalid escape token '${d.getValue()}' does not match ` + "[\\\\`]");
    }
  }
  const syntax = directives.find((d) => d.getName().toLowerCase() === "syntax")?.getValue() ?? undefined;
  // The classic builder has no frontends: Docker's own Dockerfile syntax is what it reads; another frontend would mean another language.
  if (syntax && !/^(docker\.io\/)?docker\/dockerfile(-upstream)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/.test(syntax)) {
    throw new HyperlabError("NOT_SUPPORTED", `${file}: the syntax directive names the frontend '${syntax}': hyperlab builds with Docker's classic builder, which reads Docker's Dockerfile syntax only (remove the directive or use docker/dockerfile)`);
  }
  const lines = text.split("\n");
  const out: Dockerfile = { file, escape, syntax: syntax ?? undefined, globalArgs: [], stages: [] };
  for (const ins of ast.getInstructions()) {
    const line = ins.getRange().start.line + 1;
    const keyword = ins.getKeyword();
    const where = (message: string) => parseError(file, line, message);
    if (!KEYWORDS.has(keyword)) throw where(`unknown instruction: ${ins.getInstruction()}`);
    const logical = logicalLine(lines, ins, escape);
    const at: At = { line, text: logical };
    if (keyword === "FROM") {
      const from = parseFrom(ins, at, where);
      const name = from.name;
      if (name && out.stages.some((s) => s.name === name)) throw where(`duplicate name ${name}`);
      out.stages.push({ index: out.stages.length, name, from, steps: [] });
      continue;
    }
    const step = parseStep(ins, keyword, at, logical, where);
    const stage = out.stages.at(-1);
    if (!stage) {
      if (step.kind !== "ARG") throw where(`no build stage in current context: ${keyword} comes before the first FROM (only ARG may)`);
      out.globalArgs.push(step);
      continue;
    }
    stage.steps.push(step);
  }
  if (!out.stages.length) {
    if (out.globalArgs.length) throw parseError(file, out.globalArgs.at(-1)!.line, "no build stage in current context: the Dockerfile has no FROM");
    throw new HyperlabError("INVALID_ARGUMENT", `the Dockerfile (${file}) cannot be empty: it has no instructions`, { file });
  }
  return out;
}

/**
 * An instruction's text with continuation lines joined as dockerd joins
 * them: the escape character before a line end and the line end go; empty
 * lines and comment lines inside the instruction are dropped.
 */
function logicalLine(lines: string[], ins: AstInstruction, escape: string): string {
  const r = ins.getRange();
  const continued = new RegExp(`${escape === "\\" ? "\\\\" : "`"}[ \\t]*$`);
  let out = "";
  for (let n = r.start.line; n <= r.end.line && n < lines.length; n++) {
    let l = lines[n]!;
    if (n === r.start.line) l = l.slice(r.start.character);
    else if (/^\s*(#.*)?$/.test(l)) continue;
    if (n < r.end.line && continued.test(l)) {
      out += l.replace(continued, "");
      continue;
    }
    out += l;
    // A heredoc's body lines stay lines.
    if (n < r.end.line) out += "\n";
  }
  return out.trim();
}

/** The text after the keyword and the flags. */
function argsText(logical: string): string {
  let rest = logical.replace(/^\S+\s*/, "");
  for (;;) {
    const m = /^--[A-Za-z][\w-]*(=\S*)?\s*/.exec(rest);
    if (!m) return rest;
    rest = rest.slice(m[0].length);
  }
}

/** The flags of an instruction, checked against those it takes: name → value. */
function flagsOf(ins: AstInstruction, keyword: string, where: (m: string) => HyperlabError): Map<string, string> {
  const out = new Map<string, string>();
  if (!(ins instanceof ModifiableInstruction)) return out;
  for (const f of ins.getFlags()) {
    const name = f.getName();
    if (BUILDKIT_FLAGS[keyword]?.includes(name)) throw where(`${keyword} --${name} needs BuildKit, which hyperlab's classic builder is not: remove the flag`);
    if (!FLAGS[keyword]?.includes(name)) throw where(`${keyword}: unknown flag: --${name}`);
    const value = f.getValue();
    if (value === null) throw where(`${keyword}: missing a value on flag: --${name} (write --${name}=VALUE)`);
    if (out.has(name)) throw where(`${keyword}: --${name} is given twice`);
    out.set(name, value);
  }
  return out;
}

function parseFrom(ins: AstInstruction, at: At, where: (m: string) => HyperlabError): From {
  const flags = flagsOf(ins, "FROM", where);
  const args = ins.getArguments().map((a) => a.getValue());
  if (args.length !== 1 && !(args.length === 3 && args[1]!.toLowerCase() === "as")) throw where("FROM requires either one or three arguments (FROM image [AS name])");
  const name = args[2]?.toLowerCase();
  if (name !== undefined && !STAGE_NAME.test(name)) throw where(`invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`);
  return { kind: "FROM", ...at, image: args[0]!, name, platform: flags.get("platform") };
}

/** A shell-form or exec-form command: exec form when the arguments are a JSON array of strings (as dockerd decides). */
function commandOf(text: string): Command {
  if (text.startsWith("[")) {
    try {
      const v = JSON.parse(text) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return { form: "exec", argv: v as string[] };
    } catch {
      // Not JSON: shell form, as dockerd treats it.
    }
  }
  return { form: "shell", text };
}

function pairsOf(ins: AstInstruction, keyword: string, where: (m: string) => HyperlabError): RawPair[] {
  const props = (ins as PropertyInstruction).getProperties();
  if (!props.length) throw where(`${keyword} requires at least one argument`);
  return props.map((p) => {
    const key = p.getName();
    if (!key) throw where(`${keyword} names can not be blank`);
    const raw = p.getUnescapedValue();
    if (keyword !== "ARG" && raw === null) {
      throw where(keyword === "ENV" ? `ENV must have two arguments (ENV ${key}=VALUE)` : `LABEL ${key} has no value (LABEL ${key}=VALUE)`);
    }
    return { key, value: raw ?? undefined };
  });
}

function durationNs(flag: string, value: string, where: (m: string) => HyperlabError): number {
  const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(value);
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (!m) throw where(`HEALTHCHECK --${flag}: invalid duration '${value}' (e.g. 30s, 1m30s)`);
  return Math.round(Number(m[1]) * unit[m[2]!]!);
}

function parseStep(ins: AstInstruction, keyword: string, at: At, logical: string, where: (m: string) => HyperlabError): Step {
  const flags = flagsOf(ins, keyword, where);
  const rest = argsText(logical);
  if (keyword !== "ONBUILD" && BUILDKIT_FLAGS[keyword] === undefined && FLAGS[keyword] === undefined && /^--[A-Za-z]/.test(logical.replace(/^\S+\s*/, ""))) {
    throw where(`${keyword}: unknown flag: ${/^--[\w-]+/.exec(logical.replace(/^\S+\s*/, ""))![0]}`);
  }
  switch (keyword) {
    case "RUN": {
      if (!rest) throw where("RUN requires at least one argument");
      const heredoc = /^<<(-?)(["']?)([A-Za-z_][\w]*)\2[ \t]*\n([\s\S]*)\n\3$/.exec(rest);
      if (heredoc) {
        // A heredoc alone is the script the shell runs (BuildKit's RUN <<EOF); tabs go with <<-.
        const body = heredoc[1] ? heredoc[4]!.replace(/^\t+/gm, "") : heredoc[4]!;
        return { kind: "RUN", ...at, command: { form: "shell", text: body } };
      }
      if (/<<-?["']?[A-Za-z_]/.test(rest) && rest.includes("\n")) {
        throw where("RUN with a heredoc after a command is not supported by hyperlab's builder: write the script as its own heredoc (RUN <<EOF … EOF) or on the RUN line");
      }
      return { kind: "RUN", ...at, command: commandOf(rest) };
    }
    case "CMD":
    case "ENTRYPOINT":
      return { kind: keyword, ...at, command: commandOf(rest) };
    case "COPY":
    case "ADD": {
      if (rest.includes("\n")) throw where(`${keyword} with a heredoc is not supported by hyperlab's builder: put the file in the build context`);
      const json = commandOf(rest);
      const args = json.form === "exec" ? json.argv : rest.split(/[ \t]+/).filter(Boolean);
      if (args.length < 2) throw where(`${keyword} requires at least two arguments, but only one was provided. Destination could not be determined.`);
      const chmod = flags.get("chmod");
      if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) throw where(`${keyword} --chmod: invalid mode '${chmod}': give it in octal (e.g. 755)`);
      return { kind: keyword, ...at, sources: args.slice(0, -1), dest: args.at(-1)!, from: flags.get("from"), chown: flags.get("chown"), chmod };
    }
    case "ENV":
    case "LABEL":
      return { kind: keyword, ...at, pairs: pairsOf(ins, keyword, where) };
    case "ARG":
      return { kind: "ARG", ...at, pairs: pairsOf(ins, keyword, where) };
    case "WORKDIR":
    case "USER":
    case "STOPSIGNAL":
    case "MAINTAINER": {
      if (!rest) throw where(`${keyword} requires exactly one argument`);
      if (keyword === "STOPSIGNAL" && /\s/.test(rest)) throw where("STOPSIGNAL requires exactly one argument");
      return { kind: keyword, ...at, value: rest };
    }
    case "EXPOSE":
      if (!rest) throw where("EXPOSE requires at least one argument");
      return { kind: "EXPOSE", ...at, words: rest };
    case "VOLUME": {
      if (!rest) throw where("VOLUME requires at least one argument");
      const c = commandOf(rest);
      if (c.form === "exec" && c.argv.some((p) => !p.trim())) throw where("VOLUME specified can not be an empty string");
      return { kind: "VOLUME", ...at, paths: c.form === "exec" ? c.argv : { words: rest } };
    }
    case "SHELL": {
      const c = commandOf(rest);
      if (c.form !== "exec") throw where(`SHELL requires the arguments to be in JSON form (e.g. SHELL ["/bin/sh", "-c"])`);
      if (!c.argv.length) throw where("SHELL requires at least one argument");
      return { kind: "SHELL", ...at, argv: c.argv };
    }
    case "HEALTHCHECK": {
      const [word, ...more] = rest.split(/\s+/);
      const type = word?.toUpperCase();
      if (type === "NONE") {
        if (more.length || flags.size) throw where("HEALTHCHECK NONE takes no arguments");
        return { kind: "HEALTHCHECK", ...at, health: "NONE" };
      }
      if (type !== "CMD") throw where(`HEALTHCHECK: unknown type '${word ?? ""}': use HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE`);
      const c = commandOf(rest.slice(word!.length).trim());
      if (c.form === "shell" && !c.text) throw where("HEALTHCHECK CMD requires a command");
      const health: HealthConfig = { Test: c.form === "exec" ? ["CMD", ...c.argv] : ["CMD-SHELL", c.text] };
      const d = (name: string) => (flags.has(name) ? durationNs(name, flags.get(name)!, where) : undefined);
      if (flags.has("interval")) health.Interval = d("interval");
      if (flags.has("timeout")) health.Timeout = d("timeout");
      if (flags.has("start-period")) health.StartPeriod = d("start-period");
      if (flags.has("start-interval")) health.StartInterval = d("start-interval");
      if (flags.has("retries")) {
        const n = Number(flags.get("retries"));
        if (!Number.isInteger(n) || n < 0) throw where(`HEALTHCHECK --retries must be a whole number, not '${flags.get("retries")}'`);
        health.Retries = n;
      }
      return { kind: "HEALTHCHECK", ...at, health };
    }
    case "ONBUILD": {
      const trigger = rest;
      const inner = /^(\S+)/.exec(trigger)?.[1]?.toUpperCase();
      if (!inner) throw where("ONBUILD requires at least one argument");
      if (inner === "ONBUILD") throw where("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (inner === "FROM" || inner === "MAINTAINER") throw where(`${inner} isn't allowed as an ONBUILD trigger`);
      if (!KEYWORDS.has(inner)) throw where(`unknown instruction: ${inner}`);
      return { kind: "ONBUILD", ...at, trigger };
    }
  }
  throw where(`unknown instruction: ${keyword}`);
}

/**
 * The steps of the ONBUILD triggers of a base image, parsed as if written
 * after its FROM (at the FROM's line, for messages).
 */
export function parseTriggers(triggers: readonly string[], file: string, line: number, escape: string): Step[] {
  if (!triggers.length) return [];
  const text = [`# escape=${escape}`, "FROM scratch", ...triggers].join("\n");
  let parsed: Dockerfile;
  try {
    parsed = parseDockerfile(text, `${file} (ONBUILD triggers of the image on line ${line})`);
  } catch (err) {
    throw err instanceof HyperlabError ? new HyperlabError(err.code, err.message.replace(/line \d+ of /, ""), err.detail) : err;
  }
  return parsed.stages[0]!.steps.map((s) => ({ ...s, line }));
}
