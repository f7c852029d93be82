// Runs a lab's checks against a running VM: `sh` checks in the guest, the
// others from the host (a file or cgroup value read through the agent, the
// process table read from /proc, a container from the VM's engine). One
// table of kinds; each check has its timeout, after which it is stopped
// (the guest's process killed) and failed with that reason.
import type { Container } from "../containers/engine.ts";
import { HyperlabError, isHyperlabError } from "../errors.ts";
import type { ExecResult } from "../guest/agent.ts";
import type { Check, CheckResult, CheckSpec, TextMatch } from "./lab.ts";

/** What checks need of the machine: a VM's exec and readFile, and its containers when it has an engine. */
export interface CheckTarget {
  exec(argv: string[], opts: { timeoutMs?: number }): Promise<ExecResult>;
  readFile(path: string): Promise<Uint8Array>;
  /** every container of the VM (running or not) */
  containers?(): Container[];
}

const decoder = new TextDecoder();
/** How much of a command's output a failure reason quotes. */
const REASON_CHARS = 300;

/** The last lines of `text`, short enough for a reason. */
function tail(text: string): string {
  const t = text.trim();
  return t.length > REASON_CHARS ? `…${t.slice(-REASON_CHARS)}` : t;
}

/** Why `text` fails `match`, or undefined when it passes. */
export function mismatch(text: string, match: TextMatch, what: string): string | undefined {
  const t = text.trim();
  const shown = JSON.stringify(t.length > 80 ? `${t.slice(0, 80)}…` : t);
  if (match.equals !== undefined && t !== match.equals.trim()) return `${what} is ${shown}, expected ${JSON.stringify(match.equals.trim())}`;
  if (match.contains !== undefined && !t.includes(match.contains)) return `${what} (${shown}) does not contain ${JSON.stringify(match.contains)}`;
  if (match.matches !== undefined && !new RegExp(match.matches, "m").test(t)) return `${what} (${shown}) does not match /${match.matches}/`;
  if (match.atLeast !== undefined || match.atMost !== undefined) {
    const n = Number(t);
    if (t === "" || !Number.isFinite(n)) return `${what} is ${shown}, not a number`;
    if (match.atLeast !== undefined && n < match.atLeast) return `${what} is ${n}, expected at least ${match.atLeast}`;
    if (match.atMost !== undefined && n > match.atMost) return `${what} is ${n}, expected at most ${match.atMost}`;
  }
  return undefined;
}

/** A guest file's text, or undefined if it does not exist. */
async function readText(target: CheckTarget, path: string): Promise<string | undefined> {
  try {
    return decoder.decode(await target.readFile(path));
  } catch (err) {
    if (isHyperlabError(err) && (err.detail?.errno === "ENOENT" || err.detail?.errno === "ENOTDIR")) return undefined;
    throw err;
  }
}

/** One process of the guest: its PID and its command line (arguments joined by spaces). */
interface ProcessEntry {
  pid: number;
  cmdline: string;
}

/** The guest's processes with their command lines: one busybox `ps` (its args are whole when not on a terminal), without itself. */
async function processes(target: CheckTarget, timeoutMs: number): Promise<ProcessEntry[]> {
  const ps = await target.exec(["/bin/ps", "-o", "pid,args"], { timeoutMs });
  const out: ProcessEntry[] = [];
  for (const line of ps.stdout.split("\n").slice(1)) {
    const m = /^\s*(\d+)\s(.*)$/.exec(line);
    if (m && m[2] !== "/bin/ps -o pid,args") out.push({ pid: Number(m[1]), cmdline: m[2]!.trim() });
  }
  return out;
}

/** A process's cgroup v2 path (e.g. /lab), or undefined when it is gone. */
async function cgroupOf(target: CheckTarget, pid: number): Promise<string | undefined> {
  const text = await readText(target, `/proc/${pid}/cgroup`).catch(() => undefined);
  return text === undefined ? undefined : (/^0::(.*)$/m.exec(text)?.[1] ?? "");
}

type Outcome = { passed: true } | { passed: false; reason: string };
const pass: Outcome = { passed: true };
const fail = (reason: string): Outcome => ({ passed: false, reason });

/** How each kind of check is evaluated. */
const evaluators: { [K in CheckSpec["kind"]]: (check: Extract<CheckSpec, { kind: K }> & { timeoutMs: number }, target: CheckTarget) => Promise<Outcome> } = {
  async sh(check, target) {
    const r = await target.exec(["/bin/sh", "-c", check.script], { timeoutMs: check.timeoutMs });
    if (r.exitCode === 0 && !r.signal) return pass;
    const how = r.signal ? `was killed by signal ${r.signal}` : `exited ${r.exitCode}`;
    const said = tail(r.stderr) || tail(r.stdout);
    return fail(said ? `${how}: ${said}` : how);
  },
  async file(check, target) {
    const text = await readText(target, check.path);
    if (!check.exists) return text === undefined ? pass : fail(`${check.path} exists`);
    if (text === undefined) return fail(`${check.path} does not exist`);
    const why = mismatch(text, check.match, check.path);
    return why ? fail(why) : pass;
  },
  async cgroup(check, target) {
    const dir = `/sys/fs/cgroup/${check.group}`.replace(/\/$/, "");
    const text = await readText(target, `${dir}/${check.value}`);
    if (text === undefined) return fail(`${dir}/${check.value} does not exist${check.group ? ` (is there a cgroup ${check.group}?)` : ""}`);
    const why = mismatch(text, check.match, `${dir}/${check.value}`);
    return why ? fail(why) : pass;
  },
  async process(check, target) {
    const re = new RegExp(check.pattern);
    const all = await processes(target, check.timeoutMs);
    const found = all.filter((p) => re.test(p.cmdline));
    if (!check.running) return found.length === 0 ? pass : fail(`a process matching /${check.pattern}/ runs: pid ${found[0]!.pid} (${found[0]!.cmdline})`);
    if (found.length === 0) return fail(`no process matches /${check.pattern}/`);
    if (check.inCgroup === undefined) return pass;
    const want = `/${check.inCgroup.replace(/^\/sys\/fs\/cgroup\/?/, "").replace(/^\/+|\/+$/g, "")}`;
    const groups = await Promise.all(found.map((p) => cgroupOf(target, p.pid)));
    return groups.some((g) => g !== undefined && (g === want || g.startsWith(`${want}/`)))
      ? pass
      : fail(`the process matching /${check.pattern}/ (pid ${found[0]!.pid}) is in cgroup ${groups[0] ?? "?"}, not ${want}`);
  },
  async container(check, target) {
    if (!target.containers) return fail("this machine has no container engine (profile plain)");
    const c = target.containers().find((x) => x.name === check.name || x.name === `/${check.name}`);
    if (check.state === "absent") return c ? fail(`container ${check.name} exists (${c.status})`) : pass;
    if (!c) return fail(`there is no container named ${check.name}`);
    if (check.state !== undefined && c.status !== check.state) return fail(`container ${check.name} is ${c.status}, expected ${check.state}`);
    if (check.exitCode !== undefined && c.exitCode !== check.exitCode) {
      return fail(c.exitCode === undefined ? `container ${check.name} has not exited` : `container ${check.name} exited ${c.exitCode}, expected ${check.exitCode}`);
    }
    if (check.image !== undefined) {
      const want = check.image.includes(":") ? check.image : `${check.image}:latest`;
      if (c.image.reference !== want && c.image.reference !== check.image) return fail(`container ${check.name} runs image ${c.image.reference}, expected ${want}`);
    }
    if (check.logs !== undefined) {
      const output = c.logs.map((l) => decoder.decode(l.data)).join("");
      if (!output.includes(check.logs)) return fail(`the output of container ${check.name} does not contain ${JSON.stringify(check.logs)}${output.trim() ? ` (it ends: ${tail(output)})` : " (it printed nothing)"}`);
    }
    return pass;
  },
};

/**
 * Runs one check against `target`. Never throws: a check that could not be
 * evaluated, or that took longer than its timeout, is a failed check whose
 * reason says so.
 */
export async function runCheck(check: Check, target: CheckTarget): Promise<CheckResult> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    // The guest's own timeout kills an `sh` check's process; this one also bounds host-side checks (and a lost agent).
    timer = setTimeout(() => resolve(fail(`timed out after ${check.timeoutMs / 1000} s (stopped)`)), check.timeoutMs + 1000);
  });
  const evaluate = evaluators[check.kind] as (c: Check, t: CheckTarget) => Promise<Outcome>;
  let outcome: Outcome;
  try {
    outcome = await Promise.race([evaluate(check, target), timeout]);
  } catch (err) {
    if (isHyperlabError(err, "TIMEOUT")) outcome = fail(`timed out after ${check.timeoutMs / 1000} s (stopped)`);
    else outcome = fail(`could not be checked: ${(err as Error).message}${isHyperlabError(err) ? ` [${err.code}]` : ""}`);
  } finally {
    clearTimeout(timer);
  }
  const ms = performance.now() - started;
  return outcome.passed ? { passed: true, ms } : { passed: false, reason: outcome.reason, ms };
}

/** Runs a shell snippet of the lab (setup or a solution); fails with `code` and what it printed when it exits non-zero. */
export async function runScript(target: CheckTarget, script: string, what: string, opts: { timeoutMs: number; code?: "LAB_SETUP_FAILED" }): Promise<ExecResult> {
  const r = await target.exec(["/bin/sh", "-c", script], { timeoutMs: opts.timeoutMs });
  if ((r.exitCode !== 0 || r.signal) && opts.code) {
    throw new HyperlabError(opts.code, `${what} ${r.signal ? `was killed by signal ${r.signal}` : `exited ${r.exitCode}`}${tail(r.stderr || r.stdout) ? `: ${tail(r.stderr || r.stdout)}` : ""}`);
  }
  return r;
}
