// Reads a lab file (docs/labs.md): YAML front matter, then Markdown whose
// level-2 headings start steps and whose fenced blocks with a role in their
// info string (`sh setup`, `sh check TITLE`, `check`, `hint`, `sh solution`)
// are the lab's parts. markdown-it parses the Markdown because its block
// tokens carry their source lines (marked's do not), which every message
// about a bad file needs; `yaml` parses the YAML because it keeps each node's
// offset, so a bad key is named with its own line.
import MarkdownIt, { type Token } from "markdown-it";
import frontMatter from "markdown-it-front-matter";
import { LineCounter, type Node as YamlNode, type Pair, type Scalar, type YAMLMap, isMap, isScalar, parseDocument } from "yaml";
import { HyperlabError } from "../errors.ts";
import {
  type Check,
  type CheckSpec,
  DEFAULT_CHECK_TIMEOUT_MS,
  LAB_PROFILES,
  type Lab,
  type LabMachine,
  type LabProfile,
  type LabScript,
  type LabStep,
  type TextMatch,
} from "./lab.ts";

/** One thing wrong in a lab file. */
export interface LabProblem {
  file: string;
  /** 1-based */
  line: number;
  message: string;
}

const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const MIN_MEMORY_MIB = 96;
const CONTAINER_STATES = ["created", "running", "exited", "absent"] as const;

/** Keys a YAML check may have, by kind (besides the kind's own key, `title` and `timeout`). */
const CHECK_KEYS: Record<CheckSpec["kind"], readonly string[]> = {
  sh: [],
  file: ["exists", "equals", "contains", "matches", "at-least", "at-most"],
  cgroup: ["value", "equals", "contains", "matches", "at-least", "at-most"],
  process: ["running", "in-cgroup"],
  container: ["state", "exit-code", "image", "logs"],
};
const KINDS = Object.keys(CHECK_KEYS) as Array<CheckSpec["kind"]>;

/** Markdown with raw HTML off: a lab's text can never put markup or script into the page. */
function markdown(): InstanceType<typeof MarkdownIt> {
  return new MarkdownIt({ html: false, linkify: false, typographer: false });
}

/** A lab's Markdown (its intro, a step's text, a hint) as HTML, raw HTML in it escaped and only http(s), mailto and relative links kept. */
export function renderLabMarkdown(text: string): string {
  return markdown().render(text);
}

/** Collects problems; each names its line. */
class Problems {
  readonly list: LabProblem[] = [];
  constructor(readonly file: string) {}
  add(line: number, message: string): void {
    this.list.push({ file: this.file, line, message });
  }
}

/** A YAML document's mapping, with each key's line in the lab file. */
interface YamlMap {
  /** key → [value node, line of the key] */
  entries: Map<string, { node: YamlNode | null; line: number; value: unknown }>;
  line: number;
  /** the file's line of an offset in the YAML text */
  lineOf: (offset: number | undefined) => number;
}

/** The entries of a YAML mapping node, with their lines. */
function entriesOf(node: YAMLMap, lineOf: (offset: number | undefined) => number): YamlMap["entries"] {
  const entries: YamlMap["entries"] = new Map();
  for (const pair of node.items as Pair<Scalar, YamlNode | null>[]) {
    const value = pair.value ?? null;
    entries.set(String(pair.key?.value ?? ""), { node: value, line: lineOf(pair.key?.range?.[0]), value: value && "toJSON" in value ? (value as { toJSON(): unknown }).toJSON() : null });
  }
  return entries;
}

/** Parses `text` as a YAML mapping whose first line is line `firstLine` of the file; problems go to `problems`. */
function yamlMap(text: string, firstLine: number, what: string, problems: Problems): YamlMap | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => firstLine + (offset === undefined ? 0 : lc.linePos(offset).line - 1);
  if (doc.errors.length) {
    for (const e of doc.errors) problems.add(lineOf(e.pos[0]), `${what} is not valid YAML: ${e.message.split("\n")[0]}`);
    return undefined;
  }
  if (!isMap(doc.contents)) {
    problems.add(firstLine, `${what} must be YAML keys and values (key: value), not ${doc.contents === null ? "empty" : "a " + (isScalar(doc.contents) ? "single value" : "list")}`);
    return undefined;
  }
  return { entries: entriesOf(doc.contents, lineOf), line: firstLine, lineOf };
}

/** Checks `map`'s keys against `allowed`; an unknown one is a problem naming what is allowed. */
function onlyKeys(map: YamlMap, allowed: readonly string[], what: string, problems: Problems): void {
  for (const [key, { line }] of map.entries) {
    if (!allowed.includes(key)) problems.add(line, `${what} has no key '${key}' (known: ${allowed.join(", ")})`);
  }
}

/** The value of `key` if it is a string (problem otherwise). */
function str(map: YamlMap, key: string, what: string, problems: Problems): string | undefined {
  const e = map.entries.get(key);
  if (!e) return undefined;
  if (typeof e.value === "number" || typeof e.value === "boolean") return String(e.value);
  if (typeof e.value !== "string" || e.value === "") {
    problems.add(e.line, `${what}: '${key}' must be a text, not ${JSON.stringify(e.value)}`);
    return undefined;
  }
  return e.value;
}

function num(map: YamlMap, key: string, what: string, problems: Problems, opts: { positive?: boolean; integer?: boolean } = {}): number | undefined {
  const e = map.entries.get(key);
  if (!e) return undefined;
  const n = typeof e.value === "string" && e.value.trim() !== "" ? Number(e.value) : e.value;
  if (typeof n !== "number" || !Number.isFinite(n) || (opts.positive && n <= 0) || (opts.integer && !Number.isInteger(n))) {
    problems.add(e.line, `${what}: '${key}' must be a${opts.positive ? " positive" : ""}${opts.integer ? " whole" : ""} number, not ${JSON.stringify(e.value)}`);
    return undefined;
  }
  return n;
}

function bool(map: YamlMap, key: string, what: string, problems: Problems): boolean | undefined {
  const e = map.entries.get(key);
  if (!e) return undefined;
  if (typeof e.value !== "boolean") {
    problems.add(e.line, `${what}: '${key}' must be true or false, not ${JSON.stringify(e.value)}`);
    return undefined;
  }
  return e.value;
}

/** The text matchers of a file or cgroup check. */
function textMatch(map: YamlMap, what: string, problems: Problems): TextMatch {
  const match: TextMatch = {
    equals: str(map, "equals", what, problems),
    contains: str(map, "contains", what, problems),
    matches: str(map, "matches", what, problems),
    atLeast: num(map, "at-least", what, problems),
    atMost: num(map, "at-most", what, problems),
  };
  if (match.matches !== undefined) {
    try {
      new RegExp(match.matches, "m");
    } catch (err) {
      problems.add(map.entries.get("matches")!.line, `${what}: 'matches' is not a regular expression: ${(err as Error).message}`);
    }
  }
  return Object.fromEntries(Object.entries(match).filter(([, v]) => v !== undefined)) as TextMatch;
}

/** A matcher in words, for a check's default title. */
function describe(m: TextMatch): string | undefined {
  const parts = [
    m.equals !== undefined && `is ${m.equals}`,
    m.contains !== undefined && `contains ${m.contains}`,
    m.matches !== undefined && `matches /${m.matches}/`,
    m.atLeast !== undefined && `≥ ${m.atLeast}`,
    m.atMost !== undefined && `≤ ${m.atMost}`,
  ].filter(Boolean);
  return parts.length ? parts.join(" and ") : undefined;
}

/** A check written as YAML in a ```check block. */
function yamlCheck(map: YamlMap, defaultTimeoutMs: number, at: { file: string; line: number }, problems: Problems): Check | undefined {
  const kinds = KINDS.filter((k) => map.entries.has(k));
  if (kinds.length !== 1) {
    problems.add(at.line, kinds.length === 0 ? `a check needs one of the keys ${KINDS.join(", ")} (what it looks at)` : `a check looks at one thing, not ${kinds.join(" and ")}: split it into two checks`);
    return undefined;
  }
  const kind = kinds[0]!;
  const what = `${kind} check`;
  onlyKeys(map, [kind, "title", "timeout", ...CHECK_KEYS[kind]], what, problems);
  const target = str(map, kind, what, problems);
  const title = str(map, "title", what, problems);
  const timeoutS = num(map, "timeout", what, problems, { positive: true });
  if (target === undefined) return undefined;
  let spec: CheckSpec;
  let fallbackTitle: string;
  switch (kind) {
    case "sh":
      spec = { kind, script: target };
      fallbackTitle = "the snippet exits 0";
      break;
    case "file": {
      const exists = bool(map, "exists", what, problems) ?? true;
      spec = { kind, path: target, exists, match: textMatch(map, what, problems) };
      fallbackTitle = !exists ? `${target} is gone` : `${target} ${describe(spec.match) ?? "is there"}`;
      break;
    }
    case "cgroup": {
      const value = str(map, "value", what, problems);
      const match = textMatch(map, what, problems);
      if (value === undefined) {
        problems.add(at.line, `${what} needs 'value': the cgroup file to read (e.g. memory.max)`);
        return undefined;
      }
      if (value.includes("/")) problems.add(map.entries.get("value")!.line, `${what}: 'value' is a file of the group (e.g. memory.max), not a path`);
      spec = { kind, group: target.replace(/^\/sys\/fs\/cgroup\/?/, "").replace(/^\/+|\/+$/g, ""), value, match };
      fallbackTitle = `${value} of cgroup ${target} ${describe(spec.match) ?? "is there"}`;
      break;
    }
    case "process":
      try {
        new RegExp(target);
      } catch (err) {
        problems.add(map.entries.get("process")!.line, `${what}: 'process' is a regular expression for the command line: ${(err as Error).message}`);
      }
      spec = { kind, pattern: target, running: bool(map, "running", what, problems) ?? true, inCgroup: str(map, "in-cgroup", what, problems) };
      fallbackTitle = `a process /${target}/ runs`;
      break;
    case "container": {
      const state = str(map, "state", what, problems);
      if (state !== undefined && !(CONTAINER_STATES as readonly string[]).includes(state)) {
        problems.add(map.entries.get("state")!.line, `${what}: 'state' must be one of ${CONTAINER_STATES.join(", ")}, not '${state}'`);
      }
      spec = { kind, name: target, state: state as (typeof CONTAINER_STATES)[number] | undefined, exitCode: num(map, "exit-code", what, problems, { integer: true }), image: str(map, "image", what, problems), logs: str(map, "logs", what, problems) };
      fallbackTitle = `container ${target} is ${state ?? "there"}`;
      break;
    }
  }
  return { ...spec, title: title ?? fallbackTitle, timeoutMs: timeoutS === undefined ? defaultTimeoutMs : timeoutS * 1000, at };
}

/** The front matter's fields. */
function readFrontMatter(map: YamlMap, problems: Problems): { id?: string; title?: string; machine: LabMachine; timeoutMs: number } {
  onlyKeys(map, ["id", "title", "machine", "timeout"], "the front matter", problems);
  const id = str(map, "id", "the front matter", problems);
  if (id === undefined) problems.add(map.line, "the front matter needs 'id': a stable name for the lab (lowercase letters, digits, . _ -), which learner snapshots are matched by");
  else if (!ID.test(id)) problems.add(map.entries.get("id")!.line, `'id' must be lowercase letters, digits, '.', '_' or '-' (at most 63), not '${id}'`);
  const title = str(map, "title", "the front matter", problems);
  if (title === undefined) problems.add(map.line, "the front matter needs 'title'");
  const timeoutS = num(map, "timeout", "the front matter", problems, { positive: true });
  const machine: LabMachine = { image: "default", memoryMiB: 128, profile: "plain" };
  const m = map.entries.get("machine");
  if (m) {
    if (!isMap(m.node)) problems.add(m.line, "'machine' must be keys and values (image, memory, profile, registry)");
    else {
      const mm: YamlMap = { line: m.line, entries: entriesOf(m.node, map.lineOf), lineOf: map.lineOf };
      onlyKeys(mm, ["image", "memory", "profile", "registry"], "'machine'", problems);
      machine.image = str(mm, "image", "'machine'", problems) ?? machine.image;
      const memory = num(mm, "memory", "'machine'", problems, { positive: true, integer: true });
      if (memory !== undefined && memory < MIN_MEMORY_MIB) problems.add(mm.entries.get("memory")!.line, `'machine': 'memory' is MiB of guest RAM, at least ${MIN_MEMORY_MIB} (got ${memory})`);
      else if (memory !== undefined) machine.memoryMiB = memory;
      const profile = str(mm, "profile", "'machine'", problems);
      if (profile !== undefined && !(LAB_PROFILES as readonly string[]).includes(profile)) {
        problems.add(mm.entries.get("profile")!.line, `'machine': 'profile' must be ${LAB_PROFILES.join(" or ")}, not '${profile}'`);
      } else if (profile !== undefined) machine.profile = profile as LabProfile;
      const registry = str(mm, "registry", "'machine'", problems);
      if (registry !== undefined) {
        const line = mm.entries.get("registry")!.line;
        if (!REGISTRY_ADDRESS.test(registry)) problems.add(line, `'machine': 'registry' is the address a registry is named by in image names, host[:port] with a '.' or ':' in it or 'localhost' (e.g. localhost:5000), not '${registry}'`);
        else if (machine.profile !== "docker") problems.add(line, "'machine': 'registry' is for docker in the guest: it needs 'profile: docker'");
        else machine.registry = registry;
      }
    }
  }
  return { id, title, machine, timeoutMs: timeoutS === undefined ? DEFAULT_CHECK_TIMEOUT_MS : timeoutS * 1000 };
}

/** A registry's address as Docker tells it from a repository path: host[:port] with a '.' or a port, or localhost. */
const REGISTRY_ADDRESS = /^(?:(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+)(?::\d{1,5})?|[a-z0-9-]+:\d{1,5})$/;

/** The lines [from, to) of `lines` joined, trimmed of blank lines at both ends. */
function slice(lines: string[], ranges: Array<[number, number]>): string {
  return ranges
    .map(([a, b]) => lines.slice(a, b).join("\n"))
    .join("\n\n")
    .replace(/^\s*\n|\n\s*$/g, "")
    .trim();
}

/** A step being read. */
interface Draft {
  title: string;
  line: number;
  text: Array<[number, number]>;
  hints: string[];
  checks: Check[];
  solutions: LabScript[];
}

/**
 * Parses the lab file `source` (named `file` in messages). Fails with
 * LAB_INVALID listing every problem as `file:line: what is wrong`.
 */
export function parseLab(source: string, file: string): Lab {
  const problems = new Problems(file);
  const md = markdown();
  let fm: string | undefined;
  md.use(frontMatter, (text: string) => {
    fm = text;
  });
  const tokens = md.parse(source, {});
  const lines = source.split("\n");
  let front: ReturnType<typeof readFrontMatter> = { machine: { image: "default", memoryMiB: 128, profile: "plain" }, timeoutMs: DEFAULT_CHECK_TIMEOUT_MS };
  const fmToken = tokens.find((t) => t.type === "front_matter");
  if (fm === undefined || !fmToken) {
    problems.add(1, "a lab starts with front matter: a line '---', YAML with id, title and machine, and a line '---'");
  } else {
    if (fmToken.map && fmToken.map[1] > lines.length - 1 && !/^---\s*$/.test(lines[fmToken.map[1] - 1] ?? "")) {
      problems.add(1, "the front matter has no closing '---' line");
    }
    const map = yamlMap(fm, 2, "the front matter", problems);
    if (map) front = readFrontMatter(map, problems);
  }

  const intro: Array<[number, number]> = [];
  const setup: LabScript[] = [];
  const steps: Draft[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t: Token = tokens[i]!;
    if (t.level !== 0 || !t.map || t.nesting < 0 || t.type === "front_matter") continue;
    const line = t.map[0] + 1;
    const step = steps.at(-1);
    if (t.type === "heading_open" && t.tag === "h2") {
      steps.push({ title: tokens[i + 1]?.content.trim() ?? "", line, text: [], hints: [], checks: [], solutions: [] });
      continue;
    }
    if (t.type === "heading_open" && t.tag === "h1" && !step) continue; // the title is the front matter's
    const range: [number, number] = [t.map[0], t.map[1]];
    if (t.type !== "fence") {
      (step ? step.text : intro).push(range);
      continue;
    }
    const words = t.info.trim().split(/\s+/);
    const [lang = "", role = "", ...rest] = words;
    const body = t.content.replace(/\n$/, "");
    const bodyLine = t.map[0] + 2;
    if (lang === "sh" && role === "setup") {
      if (step) problems.add(line, `setup goes before the first step (it runs before the learner starts), not in step ${steps.length} '${step.title}'`);
      else setup.push({ script: body, at: { file, line: bodyLine } });
    } else if (lang === "sh" && role === "check") {
      const title = rest.join(" ");
      if (!step) problems.add(line, "a check belongs to a step: put it after a '## ' heading");
      else if (!title) problems.add(line, "an sh check needs a title after the words: ```sh check WHAT IT CHECKS");
      else if (!body.trim()) problems.add(line, `check '${title}' has no commands`);
      else step.checks.push({ kind: "sh", script: body, title, timeoutMs: front.timeoutMs, at: { file, line } });
    } else if (lang === "sh" && role === "solution") {
      if (!step) problems.add(line, "a solution belongs to a step: put it after a '## ' heading");
      else step.solutions.push({ script: body, at: { file, line: bodyLine } });
    } else if (lang === "check") {
      if (!step) problems.add(line, "a check belongs to a step: put it after a '## ' heading");
      else {
        const map = yamlMap(body, bodyLine, "a check", problems);
        const check = map && yamlCheck(map, front.timeoutMs, { file, line }, problems);
        if (check) step.checks.push(check);
      }
    } else if (lang === "hint") {
      if (!step) problems.add(line, "a hint belongs to a step: put it after a '## ' heading");
      else if (!body.trim()) problems.add(line, "the hint is empty");
      else step.hints.push(body.trim());
    } else if (["setup", "solution"].includes(lang)) {
      problems.add(line, `a ${lang} is shell: write \`\`\`sh ${lang}`);
    } else {
      (step ? step.text : intro).push(range);
    }
  }
  if (steps.length === 0) problems.add(lines.length, "the lab has no steps: each step starts with a '## ' heading");
  const out: LabStep[] = [];
  for (const [n, s] of steps.entries()) {
    const name = `step ${n + 1} '${s.title}'`;
    if (!s.title) problems.add(s.line, `step ${n + 1} has an empty heading`);
    if (s.checks.length === 0) problems.add(s.line, `${name} has no check: add a \`\`\`sh check TITLE or a \`\`\`check block`);
    if (s.solutions.length === 0) problems.add(s.line, `${name} has no solution: add a \`\`\`sh solution block (what a learner would type; --solve runs it)`);
    if (s.solutions.length > 1) problems.add(s.solutions[1]!.at.line - 1, `${name} has more than one solution: put its commands in one block`);
    out.push({ number: n + 1, title: s.title, text: slice(lines, s.text), hints: s.hints, checks: s.checks, solution: s.solutions[0] ?? { script: "", at: { file, line: s.line } }, at: { file, line: s.line } });
  }
  if (problems.list.length) {
    const sorted = problems.list.sort((a, b) => a.line - b.line);
    throw new HyperlabError("LAB_INVALID", sorted.map((p) => `${p.file}:${p.line}: ${p.message}`).join("\n"), { problems: sorted });
  }
  return { id: front.id!, title: front.title!, machine: front.machine, intro: slice(lines, intro), setup, steps: out, file };
}
