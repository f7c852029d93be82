// What `hyperlab lab run` prints: TAP (Node's own TAP reporter from
// node:test/reporters, fed the test runner's events), JUnit XML (built with
// junit-report-builder, which writes the Jenkins/Surefire flavour that
// GitLab, GitHub Actions' test-report actions and Jenkins read), or JSON.
// One test per check, grouped by unit (a lab, or a learner's state).
import junitModule from "junit-report-builder";
import { tap } from "node:test/reporters";
import type { UnitResult } from "./lab-runner.ts";
import type { CheckOutcome } from "./lab-session.ts";

// The package's types describe an ES default export; in Node its CommonJS module.exports is the builder itself.
const junit = junitModule as unknown as typeof junitModule.default;

/** The reporters `--reporter` names. */
export const REPORTERS = ["tap", "junit", "json"] as const;
export type ReporterName = (typeof REPORTERS)[number];

/** A check's name in reports: its step and its title. */
function checkName(c: CheckOutcome): string {
  return `step ${c.step}: ${c.check.title}`;
}

/** Why a check failed, with the step's solution failure when there was one. */
function failureOf(r: UnitResult, c: CheckOutcome): string {
  const step = r.steps.find((s) => s.step.number === c.step);
  return [c.reason ?? "failed", step?.solutionError].filter(Boolean).join("; ");
}

/** A unit's name in reports. */
function unitName(r: UnitResult): string {
  return r.unit.mode === "snapshot" ? `${r.unit.lab.title}: ${r.unit.name}` : `${r.unit.lab.title} (${r.unit.name}${r.unit.mode === "solve" ? ", solved" : ""})`;
}

/** An error without a stack: TAP's YAML then shows the reason only. */
function reasonError(message: string, failureType: string, cause?: string): Error {
  const err = Object.assign(new Error(message), { code: "ERR_TEST_FAILURE", failureType }) as Error & { cause?: unknown };
  if (cause !== undefined) err.cause = Object.assign(new Error(cause), { stack: undefined });
  err.stack = undefined;
  return err;
}

/** The test runner's events for `results` (the shape node:test/reporters read). */
async function* events(results: readonly UnitResult[]) {
  for (const [i, r] of results.entries()) {
    const base = { nesting: 0, file: r.unit.lab.file, line: 1, column: 1, name: unitName(r) };
    yield { type: "test:start", data: base };
    const checks = r.steps.flatMap((s) => s.checks);
    for (const [j, c] of checks.entries()) {
      const data = { nesting: 1, file: c.check.at.file, line: c.check.at.line, column: 1, name: checkName(c), testNumber: j + 1 };
      yield { type: "test:start", data };
      const details = { duration_ms: Math.round(c.ms) };
      if (c.passed) yield { type: "test:pass", data: { ...data, details } };
      else yield { type: "test:fail", data: { ...data, details: { ...details, error: reasonError(failureOf(r, c), "testCodeFailure") } } };
    }
    if (checks.length) yield { type: "test:plan", data: { nesting: 1, count: checks.length } };
    const details = { duration_ms: Math.round(r.ms) };
    const data = { ...base, testNumber: i + 1 };
    if (r.passed) yield { type: "test:pass", data: { ...data, details } };
    else if (r.error) yield { type: "test:fail", data: { ...data, details: { ...details, error: reasonError(`${r.error.message} [${r.error.code}]`, "hookFailed") } } };
    else {
      const failed = checks.filter((c) => !c.passed).length;
      yield { type: "test:fail", data: { ...data, details: { ...details, error: reasonError(`${failed} of ${checks.length} checks failed`, "subtestsFailed") } } };
    }
  }
  yield { type: "test:plan", data: { nesting: 0, count: results.length } };
}

/** TAP version 13, as `node --test --test-reporter=tap` writes it. */
export async function tapReport(results: readonly UnitResult[]): Promise<string> {
  let out = "";
  // The reporter takes the runner's event stream; ours has the same shape.
  for await (const chunk of tap(events(results) as unknown as Parameters<typeof tap>[0])) out += chunk;
  return out;
}

/** JUnit XML: a test suite per unit, a test case per check (class name: the lab's id). */
export function junitReport(results: readonly UnitResult[]): string {
  const builder = junit.newBuilder();
  for (const r of results) {
    const suite = builder.testSuite().name(unitName(r)).time(r.ms / 1000);
    suite.property("lab", r.unit.lab.id).property("mode", r.unit.mode).property("file", r.unit.lab.file);
    if (r.error) {
      suite
        .testCase()
        .className(r.unit.lab.id)
        .name(`${r.unit.name}: could not run`)
        .file(r.unit.lab.file)
        .error(`${r.error.message} [${r.error.code}]`, r.error.code);
    }
    for (const c of r.steps.flatMap((s) => s.checks)) {
      const tc = suite.testCase().className(r.unit.lab.id).name(checkName(c)).file(c.check.at.file).time(c.ms / 1000);
      if (!c.passed) tc.failure(failureOf(r, c), c.check.kind);
    }
  }
  return `${builder.build()}\n`;
}

/** Results as JSON: each unit, each step, each check with its outcome. */
export function jsonReport(results: readonly UnitResult[]): string {
  const passed = results.every((r) => r.passed);
  return `${JSON.stringify(
    {
      passed,
      units: results.map((r) => ({
        name: r.unit.name,
        lab: r.unit.lab.id,
        file: r.unit.lab.file,
        mode: r.unit.mode,
        passed: r.passed,
        ms: Math.round(r.ms),
        ...(r.error ? { error: r.error } : {}),
        steps: r.steps.map((s) => ({
          step: s.step.number,
          title: s.step.title,
          passed: s.passed,
          ...(s.solutionError ? { solutionError: s.solutionError } : {}),
          checks: s.checks.map((c) => ({ title: c.check.title, kind: c.check.kind, line: c.check.at.line, passed: c.passed, ms: Math.round(c.ms), ...(c.reason ? { reason: c.reason } : {}) })),
        })),
      })),
    },
    null,
    2,
  )}\n`;
}

/** The report `name` of `results`. */
export async function report(name: ReporterName, results: readonly UnitResult[]): Promise<string> {
  switch (name) {
    case "tap":
      return tapReport(results);
    case "junit":
      return junitReport(results);
    case "json":
      return jsonReport(results);
  }
}
