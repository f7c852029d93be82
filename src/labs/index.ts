// `hyperlab/labs`: the package's lab API for Node programs (docs/labs.md):
// read a lab file, run it headless (fresh, solved, or over learners' saved
// states), drive one lab on a VM of your own, and report as TAP/JUnit/JSON.
export { parseLab, renderLabMarkdown } from "./parse-lab.ts";
export type { LabProblem } from "./parse-lab.ts";
export { DEFAULT_CHECK_TIMEOUT_MS, LAB_PROFILES } from "./lab.ts";
export type { Check, CheckKind, CheckResult, CheckSpec, Lab, LabMachine, LabProfile, LabScript, LabSource, LabStep, TextMatch } from "./lab.ts";
export { runCheck } from "./checks.ts";
export type { CheckTarget } from "./checks.ts";
export { LAB_RECORDS_KEY, LabSession, assertSnapshotOfLab, labOfSnapshot } from "./lab-session.ts";
export type { CheckOutcome, LabRecord, StepOutcome } from "./lab-session.ts";
export { labUnits, parseShard, runLabs, shardUnits } from "./lab-runner.ts";
export type { LabMode, LabRunOptions, LabUnit, SavedState, Shard, UnitResult } from "./lab-runner.ts";
export { REPORTERS, jsonReport, junitReport, report, tapReport } from "./reporters.ts";
export type { ReporterName } from "./reporters.ts";
