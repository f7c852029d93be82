// What a lab is once its file is read (docs/labs.md): the machine it needs,
// setup run before the learner starts, and steps of text, hints, checks and a
// solution. Checks are data (a table of kinds, evaluated in checks.ts), so the
// page, the CLI and a grader run the same ones.

/** What the host serves to the guest besides the agent: `plain` nothing more; `docker` a docker CLI in the guest backed by hyperlab's engine. */
export type LabProfile = "plain" | "docker";

/** The profiles a lab may ask for. */
export const LAB_PROFILES: readonly LabProfile[] = ["plain", "docker"];

/** The VM a lab runs in. */
export interface LabMachine {
  /** guest image (default: the default guest, "default") */
  image: string;
  /** guest RAM in MiB (default 128) */
  memoryMiB: number;
  profile: LabProfile;
  /**
   * an empty registry of the lab's own at this address (e.g. localhost:5000),
   * for `docker push` and `docker pull` in the guest; it lives in the host's
   * memory for as long as the lab's VM (profile docker only)
   */
  registry?: string;
}

/** Where something came from in the lab file, for messages. */
export interface LabSource {
  file: string;
  /** 1-based line */
  line: number;
}

/** A shell snippet run in the guest with /bin/sh -c (setup, solutions, `sh` checks). */
export interface LabScript {
  script: string;
  at: LabSource;
}

/** How a host-side check compares a text it read (all given must hold). */
export interface TextMatch {
  /** the text, surrounding whitespace trimmed, is exactly this */
  equals?: string;
  contains?: string;
  /** a JavaScript regular expression that must match somewhere */
  matches?: string;
  /** the text is a number ≥ this */
  atLeast?: number;
  /** the text is a number ≤ this */
  atMost?: number;
}

/** One check: what it looks at (its kind), and what must hold. */
export type CheckSpec =
  /** a shell snippet in the guest that must exit 0 */
  | { kind: "sh"; script: string }
  /** a file of the guest: it exists (or not, with `exists: false`) and its content matches */
  | { kind: "file"; path: string; exists: boolean; match: TextMatch }
  /** a value of a cgroup v2 group (a file under /sys/fs/cgroup/GROUP) */
  | { kind: "cgroup"; group: string; value: string; match: TextMatch }
  /** a process whose command line matches `pattern` runs (or not, with `running: false`), optionally in a cgroup */
  | { kind: "process"; pattern: string; running: boolean; inCgroup?: string }
  /** a container of the VM's engine, by name: its state, exit code and image */
  | { kind: "container"; name: string; state?: "created" | "running" | "exited" | "absent"; exitCode?: number; image?: string; logs?: string };

/** The kinds of check, as named in a lab file. */
export type CheckKind = CheckSpec["kind"];

/** A check with its place in the lab. */
export type Check = CheckSpec & {
  /** what the learner reads beside its tick */
  title: string;
  /** how long it may take before it is stopped and failed, in ms */
  timeoutMs: number;
  at: LabSource;
};

/** One step: a heading, its text, hints, checks and the solution. */
export interface LabStep {
  /** 1-based */
  number: number;
  title: string;
  /** the step's text, Markdown (rendered without HTML) */
  text: string;
  /** hints, Markdown each, shown one by one on request */
  hints: string[];
  checks: Check[];
  /** shell run in the guest by `--solve`: what a learner would type */
  solution: LabScript;
  at: LabSource;
}

/** A lab, read from its file by parseLab. */
export interface Lab {
  /** a stable name: learner snapshots say which lab they belong to with it */
  id: string;
  title: string;
  machine: LabMachine;
  /** the text before the first step, Markdown */
  intro: string;
  /** run in order before the learner starts; each must exit 0 */
  setup: LabScript[];
  steps: LabStep[];
  file: string;
}

/** How long a check may take unless the lab says otherwise. */
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;

/** What the result of one check says. */
export interface CheckResult {
  passed: boolean;
  /** why it failed, in words the learner can act on */
  reason?: string;
  ms: number;
}
