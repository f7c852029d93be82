// What `hyperlab lab run` prints for CI: TAP that a TAP parser reads back
// (tap-parser, node-tap's), JUnit XML with a test case per check, and JSON;
// and --shard's split of the runs, the same on every machine.
import { Parser } from "tap-parser";
import { describe, expect, it } from "vitest";
import type { Check, Lab } from "../../../src/labs/lab.ts";
import { type LabUnit, type UnitResult, labUnits, parseShard, shardUnits } from "../../../src/labs/lab-runner.ts";
import { jsonReport, junitReport, tapReport } from "../../../src/labs/reporters.ts";

const check = (title: string, line: number): Check => ({ kind: "sh", script: "true", title, timeoutMs: 1000, at: { file: "labs/a.md", line } });
const lab: Lab = {
  id: "lab-a",
  title: "Lab <A> & co",
  file: "labs/a.md",
  machine: { image: "default", memoryMiB: 128, profile: "plain" },
  intro: "",
  setup: [],
  steps: [
    { number: 1, title: "One", text: "", hints: [], checks: [check("first", 10), check("second", 14)], solution: { script: "true", at: { file: "labs/a.md", line: 18 } }, at: { file: "labs/a.md", line: 8 } },
  ],
};
const [c1, c2] = lab.steps[0]!.checks;
const unit: LabUnit = { lab, mode: "solve", name: "labs/a.md" };
const results: UnitResult[] = [
  {
    unit,
    passed: false,
    ms: 1234,
    steps: [
      {
        step: lab.steps[0]!,
        passed: false,
        solutionError: "the solution (labs/a.md:18) exited 2: oops",
        checks: [
          { check: c1!, step: 1, passed: true, ms: 12 },
          { check: c2!, step: 1, passed: false, reason: "timed out after 1 s (stopped)", ms: 1001 },
        ],
      },
    ],
  },
  { unit: { lab, mode: "snapshot", name: "states/bob.snap" }, passed: false, ms: 5, steps: [], error: { code: "SNAPSHOT_MISMATCH", message: "states/bob.snap was saved in lab 'other'" } },
];

/** Parses TAP with node-tap's parser and returns its final summary and every assertion. */
async function parseTap(text: string) {
  const asserts: Array<{ ok: boolean; id: number; name: string; diag?: Record<string, unknown> }> = [];
  const parser = new Parser({ passes: true });
  parser.on("assert", (a) => asserts.push(a));
  const complete = new Promise<{ ok: boolean; count: number; fail: number; pass: number }>((resolve) => parser.on("complete", resolve));
  parser.end(text);
  return { summary: await complete, asserts };
}

describe("lab reporters", () => {
  it("TAP: a subtest per run, an assertion per check with its reason, read back by a TAP parser", async () => {
    const text = await tapReport(results);
    expect(text.startsWith("TAP version 13\n")).toBe(true);
    const { summary, asserts } = await parseTap(text);
    expect(summary).toMatchObject({ ok: false, count: 2, fail: 2 });
    expect(asserts.map((a) => [a.ok, a.name])).toEqual([
      [false, "Lab <A> & co (labs/a.md, solved)"],
      [false, "Lab <A> & co: states/bob.snap"],
    ]);
    expect(text).toContain("    ok 1 - step 1: first\n");
    expect(text).toContain("    not ok 2 - step 1: second\n");
    expect(text).toContain("error: 'timed out after 1 s (stopped); the solution (labs/a.md:18) exited 2: oops'");
    expect(text).toContain("location: 'labs/a.md:14:1'");
    expect(text).toContain(`error: "states/bob.snap was saved in lab 'other' [SNAPSHOT_MISMATCH]"`);
    expect(text).not.toMatch(/\bat .*\(.*:\d+:\d+\)/); // no stack traces of hyperlab's own code
  });

  it("JUnit: a suite per run, a case per check named by step and title, class name the lab's id, XML escaped", () => {
    const xml = junitReport(results);
    expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites tests="3" failures="1" errors="1"/);
    expect(xml).toContain('<testsuite name="Lab &lt;A> &amp; co (labs/a.md, solved)"');
    expect(xml).toContain('<testcase classname="lab-a" name="step 1: first" file="labs/a.md" time="0.012"/>');
    expect(xml).toMatch(/<testcase classname="lab-a" name="step 1: second" file="labs\/a.md" time="1.001">\s*<failure message="timed out after 1 s \(stopped\); the solution \(labs\/a.md:18\) exited 2: oops" type="sh"\/>/);
    expect(xml).toMatch(/<testcase classname="lab-a" name="states\/bob.snap: could not run"[^>]*>\s*<error message="states\/bob.snap was saved in lab 'other' \[SNAPSHOT_MISMATCH\]" type="SNAPSHOT_MISMATCH"/);
    expect(xml.match(/<testcase /g)).toHaveLength(3);
  });

  it("JSON: every run, step and check with its outcome", () => {
    const json = JSON.parse(jsonReport(results));
    expect(json.passed).toBe(false);
    expect(json.units[0]).toMatchObject({ name: "labs/a.md", lab: "lab-a", mode: "solve", passed: false, ms: 1234 });
    expect(json.units[0].steps[0]).toMatchObject({ step: 1, title: "One", passed: false, solutionError: "the solution (labs/a.md:18) exited 2: oops" });
    expect(json.units[0].steps[0].checks).toEqual([
      { title: "first", kind: "sh", line: 10, passed: true, ms: 12 },
      { title: "second", kind: "sh", line: 14, passed: false, ms: 1001, reason: "timed out after 1 s (stopped)" },
    ]);
    expect(json.units[1]).toMatchObject({ mode: "snapshot", error: { code: "SNAPSHOT_MISMATCH" }, steps: [] });
  });
});

describe("--shard", () => {
  const names = ["s/07.snap", "s/01.snap", "s/10.snap", "s/03.snap", "s/02.snap", "s/05.snap", "s/04.snap", "s/09.snap", "s/06.snap", "s/08.snap"];
  const states = names.map((name) => ({ name, read: async () => new Uint8Array() }));

  it("splits the runs into disjoint shares that together are all of them, whatever order they were given in", () => {
    const units = labUnits([lab], { states });
    const shares = [1, 2, 3].map((i) => shardUnits(units, { index: i, total: 3 }).map((u) => u.name));
    expect(shares).toEqual([
      ["s/01.snap", "s/04.snap", "s/07.snap", "s/10.snap"],
      ["s/02.snap", "s/05.snap", "s/08.snap"],
      ["s/03.snap", "s/06.snap", "s/09.snap"],
    ]);
    const reversed = labUnits([lab], { states: [...states].reverse() });
    expect([1, 2, 3].map((i) => shardUnits(reversed, { index: i, total: 3 }).map((u) => u.name))).toEqual(shares);
    expect(shardUnits(units, undefined)).toHaveLength(10);
  });

  it("reads I/N, 1-based, and refuses what is not a share", () => {
    expect(parseShard("2/4")).toEqual({ index: 2, total: 4 });
    for (const bad of ["0/4", "5/4", "1/0", "2", "a/b", "-1/2"]) expect(() => parseShard(bad)).toThrow(/--shard needs INDEX\/TOTAL with 1 ≤ INDEX ≤ TOTAL/);
  });
});
