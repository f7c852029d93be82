// One lab on one VM: setup, a step's solution, its checks, and the learner's
// saved state. The CLI's runner and the page's <hyperlab-lab> both drive a
// lab through this; the VM says which lab it belongs to in its snapshots
// (records key "lab"), so a grader refuses a state saved in another lab.
import type { ContainerEngine } from "../containers/engine.ts";
import { HyperlabError } from "../errors.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { readSnapshotHeader } from "../hypervisor/snapshot.ts";
import { type CheckTarget, runCheck, runScript } from "./checks.ts";
import type { Check, CheckResult, Lab, LabStep } from "./lab.ts";

/** The key of the lab's record in a VM's snapshots. */
export const LAB_RECORDS_KEY = "lab";

/** What a learner's saved state says of its lab. */
export interface LabRecord {
  id: string;
  title: string;
  /** the steps whose checks had all passed when the state was saved (as the page last saw them) */
  passed?: number[];
}

/** How long setup and a solution may run (a solution may build an image). */
export const SCRIPT_TIMEOUT_MS = 180_000;

/** One check's outcome, with its step. */
export interface CheckOutcome extends CheckResult {
  check: Check;
  step: number;
}

/** One step's outcomes. */
export interface StepOutcome {
  step: LabStep;
  checks: CheckOutcome[];
  /** the solution's failure (with --solve): its exit and what it printed */
  solutionError?: string;
  passed: boolean;
}

/** The lab record kept in a snapshot, or undefined when the snapshot was not saved in a lab (throws SNAPSHOT_CORRUPT for bytes that are no snapshot). */
export function labOfSnapshot(bytes: Uint8Array): LabRecord | undefined {
  const header = readSnapshotHeader(bytes);
  const record = header.records?.[LAB_RECORDS_KEY] as LabRecord | undefined;
  return record && typeof record.id === "string" ? record : undefined;
}

/**
 * Refuses a learner's state that belongs to another lab (SNAPSHOT_MISMATCH,
 * naming both); its image and memory are checked by the restore itself.
 */
export function assertSnapshotOfLab(bytes: Uint8Array, lab: Lab, name: string): LabRecord {
  const record = labOfSnapshot(bytes);
  if (!record) throw new HyperlabError("SNAPSHOT_MISMATCH", `${name} was not saved in a lab (it has no lab record): grade only states saved by a lab's "download my work" or LabSession.saveState`);
  if (record.id !== lab.id) throw new HyperlabError("SNAPSHOT_MISMATCH", `${name} was saved in lab '${record.id}' (${record.title}), not in lab '${lab.id}' (${lab.file})`);
  return record;
}

/**
 * A lab on a running VM. Made once per VM; it marks the VM's snapshots with
 * the lab's id. Every method is legal while the VM runs.
 */
export class LabSession {
  private passedSteps: number[] = [];
  private readonly target: CheckTarget;

  constructor(
    readonly lab: Lab,
    readonly vm: Vm,
    /** the VM's container engine (container checks need it) */
    readonly engine?: ContainerEngine,
  ) {
    this.target = {
      exec: (argv, opts) => vm.exec(argv, opts),
      readFile: (path) => vm.readFile(path),
      containers: engine ? () => engine.ps({ all: true }) : undefined,
    };
    vm.provideRecords(LAB_RECORDS_KEY, (): LabRecord => ({ id: lab.id, title: lab.title, passed: [...this.passedSteps] }));
  }

  /** Says which steps had passed before this session (a learner's work brought back): the saved state's lab record lists them. */
  markPassed(steps: readonly number[]): void {
    this.passedSteps = [...new Set([...this.passedSteps, ...steps])].sort((a, b) => a - b);
  }

  /** Runs the lab's setup, in order; fails with LAB_SETUP_FAILED naming the block that failed. */
  async setup(): Promise<void> {
    for (const s of this.lab.setup) {
      await runScript(this.target, s.script, `the setup at ${s.at.file}:${s.at.line}`, { timeoutMs: SCRIPT_TIMEOUT_MS, code: "LAB_SETUP_FAILED" });
    }
  }

  /** Runs a step's solution as a learner would type it; resolves with its failure, if it failed. */
  async solve(step: LabStep): Promise<string | undefined> {
    try {
      const r = await runScript(this.target, step.solution.script, "the solution", { timeoutMs: SCRIPT_TIMEOUT_MS });
      if (r.exitCode === 0 && !r.signal) return undefined;
      const said = (r.stderr || r.stdout).trim().slice(-300);
      return `the solution (${step.solution.at.file}:${step.solution.at.line}) ${r.signal ? `was killed by signal ${r.signal}` : `exited ${r.exitCode}`}${said ? `: ${said}` : ""}`;
    } catch (err) {
      return `the solution could not run: ${(err as Error).message}`;
    }
  }

  /** Runs a step's checks, one after the other (a check may depend on what an earlier one saw). */
  async check(step: LabStep): Promise<StepOutcome> {
    const checks: CheckOutcome[] = [];
    for (const check of step.checks) checks.push({ ...(await runCheck(check, this.target)), check, step: step.number });
    const passed = checks.every((c) => c.passed);
    this.passedSteps = passed ? [...new Set([...this.passedSteps, step.number])].sort((a, b) => a - b) : this.passedSteps.filter((n) => n !== step.number);
    return { step, checks, passed };
  }

  /** Runs every step's checks (a learner's state, or an untouched machine). */
  async checkAll(): Promise<StepOutcome[]> {
    const out: StepOutcome[] = [];
    for (const step of this.lab.steps) out.push(await this.check(step));
    return out;
  }

  /** For each step: its solution, then its checks (the lab's self-test). */
  async solveAll(): Promise<StepOutcome[]> {
    const out: StepOutcome[] = [];
    for (const step of this.lab.steps) {
      const solutionError = await this.solve(step);
      out.push({ ...(await this.check(step)), ...(solutionError ? { solutionError } : {}) });
    }
    return out;
  }

  /** The learner's state: a snapshot of the VM that names this lab (a delta against the boot snapshot unless `full`). */
  saveState(opts: { full?: boolean } = {}): Promise<Uint8Array> {
    return this.vm.snapshot({ full: opts.full });
  }
}
