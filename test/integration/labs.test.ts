// Course labs headless, as a CI job and a grader run them: every lab of
// examples/labs/ passes with its own solutions and fails on an untouched
// machine (each step has a check that fails there); learners' saved states
// are graded, and one saved in another lab or machine is refused with
// SNAPSHOT_MISMATCH; a check that hangs is stopped at its timeout; --shard
// splits the runs the same way on every machine.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { nodeContainers } from "../../src/containers/node-containers.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import { LabSession } from "../../src/labs/lab-session.ts";
import { parseLab } from "../../src/labs/parse-lab.ts";

const bin = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));
const labsDir = fileURLToPath(new URL("../../examples/labs/", import.meta.url));
const labFiles = readdirSync(labsDir).filter((f) => f.endsWith(".md")).sort().map((f) => join(labsDir, f));
const work = mkdtempSync(join(tmpdir(), "hyperlab-labs-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `hyperlab ARGS` and resolves with its exit status and output. */
function hyperlab(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

interface JsonReport {
  passed: boolean;
  units: Array<{
    name: string;
    lab: string;
    mode: string;
    passed: boolean;
    error?: { code: string; message: string };
    steps: Array<{ step: number; title: string; passed: boolean; checks: Array<{ title: string; passed: boolean; reason?: string }> }>;
  }>;
}

const minute = 60_000;

describe("the labs of examples/labs/", () => {
  const solvedStates = join(work, "solved");

  it("pass with their own solutions (--solve), reported as JUnit with no failure", async () => {
    const junit = join(work, "solve.xml");
    const r = await hyperlab(["lab", "run", "--solve", "--save-state", solvedStates, "--jobs", "2", "--reporter", "junit", "-o", junit, ...labFiles]);
    const xml = readFileSync(junit, "utf8");
    // Each failure with its test case: which check of which lab, and why.
    expect([...xml.matchAll(/<testcase classname="([^"]+)" name="([^"]+)"[^>]*>\s*<failure message="([^"]*)"/g)].map((m) => `${m[1]}: ${m[2]}: ${m[3]}`)).toEqual([]);
    expect(r.code, r.stderr).toBe(0);
    expect(xml.match(/<testsuite /g)).toHaveLength(5);
    expect(r.stderr).toMatch(/^5 runs: (\d+) of \1 checks passed$/m);
  }, 20 * minute);

  it("grade their solved states as passed: every check works on a saved state, not only live", async () => {
    expect(readdirSync(solvedStates).sort()).toEqual(["cgroup-v2-limits.snap", "dockerfile-lifecycle.snap", "namespaces-by-hand.snap", "two-versions.snap", "vm-vs-container.snap"]);
    const r = await hyperlab(["lab", "run", "--snapshot", solvedStates, "--jobs", "2", "--reporter", "json", ...labFiles]);
    const report = JSON.parse(r.stdout) as JsonReport;
    const failed = report.units.flatMap((u) => u.steps.flatMap((s) => s.checks.filter((c) => !c.passed).map((c) => `${u.lab}: ${c.title}: ${c.reason}`)));
    expect(failed).toEqual([]);
    expect(report.units.map((u) => [u.lab, u.passed, u.error])).toEqual(report.units.map((u) => [u.lab, true, undefined]));
    expect(r.code).toBe(0);
  }, 20 * minute);

  it("fail on an untouched machine: every step has a check that fails there, with its reason", async () => {
    const r = await hyperlab(["lab", "run", "--jobs", "2", "--reporter", "json", ...labFiles]);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.units.map((u) => u.lab).sort()).toEqual(["cgroup-v2-limits", "dockerfile-lifecycle", "namespaces-by-hand", "two-versions", "vm-vs-container"]);
    for (const unit of report.units) {
      expect(unit.error, unit.lab).toBeUndefined();
      for (const step of unit.steps) {
        const failed = step.checks.filter((c) => !c.passed);
        expect(failed.length, `${unit.lab} step ${step.step} '${step.title}' passes on an untouched machine`).toBeGreaterThan(0);
        for (const c of failed) expect(c.reason, `${unit.lab}: ${c.title}`).toBeTruthy();
      }
    }
  }, 20 * minute);
});

describe("grading learners' saved states", () => {
  const cgroups = labFiles.find((f) => f.endsWith("cgroups.md"))!;
  const namespaces = labFiles.find((f) => f.endsWith("namespaces.md"))!;
  const done = join(work, "done.snap");
  const started = join(work, "started.snap");

  it("saves a learner's state (LabSession.saveState) and grades it: all done passes, only set up fails", async () => {
    const lab = parseLab(readFileSync(cgroups, "utf8"), cgroups);
    const hypervisor = await Hypervisor.create();
    const containers = nodeContainers(hypervisor);
    try {
      for (const [file, solve] of [[started, false], [done, true]] as const) {
        const vm = await hypervisor.createVm();
        const session = new LabSession(lab, vm, containers.engine(vm.name));
        await session.setup();
        if (solve) await session.solveAll();
        writeFileSync(file, await session.saveState());
        await vm.destroy();
      }
    } finally {
      containers.close();
      await hypervisor.close();
    }
    const pass = await hyperlab(["lab", "run", "--snapshot", done, "--reporter", "json", cgroups]);
    expect(pass.code, pass.stdout + pass.stderr).toBe(0);
    expect((JSON.parse(pass.stdout) as JsonReport).units).toMatchObject([{ name: done, mode: "snapshot", passed: true }]);
    // The CLI saves the state of a solved run as a learner's download would be; graded, it passes.
    const saved = join(work, "saved");
    const solved = await hyperlab(["lab", "run", "--solve", "--save-state", saved, cgroups]);
    expect(solved.code, solved.stderr).toBe(0);
    const regraded = await hyperlab(["lab", "run", "--snapshot", saved, "--reporter", "json", cgroups]);
    expect(regraded.code, regraded.stderr).toBe(0);
    expect((JSON.parse(regraded.stdout) as JsonReport).units).toMatchObject([{ name: join(saved, "cgroup-v2-limits.snap"), passed: true }]);
    const fail = await hyperlab(["lab", "run", "--snapshot", started, "--reporter", "tap", cgroups]);
    expect(fail.code).toBe(1);
    expect(fail.stdout).toContain("not ok 1 - step 1: the group lab exists and can limit memory");
    expect(fail.stdout).toContain("error: '/sys/fs/cgroup/lab/cgroup.controllers does not exist (is there a cgroup lab?)'");
  }, 10 * minute);

  it("refuses a state saved in another lab, or for another machine, with SNAPSHOT_MISMATCH", async () => {
    const other = await hyperlab(["lab", "run", "--snapshot", done, "--reporter", "json", namespaces]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`${done} was saved in lab 'cgroup-v2-limits' (cgroup v2 limits), not in lab 'namespaces-by-hand' (${namespaces}) [SNAPSHOT_MISMATCH]`);
    expect((JSON.parse(other.stdout) as JsonReport).units[0]).toMatchObject({ passed: false, error: { code: "SNAPSHOT_MISMATCH" }, steps: [] });

    const bigger = join(work, "cgroups-160.md");
    writeFileSync(bigger, readFileSync(cgroups, "utf8").replace("memory: 128", "memory: 160"));
    const machine = await hyperlab(["lab", "run", "--snapshot", done, "--reporter", "json", bigger]);
    expect(machine.code).toBe(1);
    expect((JSON.parse(machine.stdout) as JsonReport).units[0]!.error).toMatchObject({ code: "SNAPSHOT_MISMATCH", message: expect.stringMatching(/128 MiB.*160 MiB|160.*128/) });

    const junk = join(work, "junk.snap");
    writeFileSync(junk, "not a snapshot");
    const bad = await hyperlab(["lab", "run", "--snapshot", junk, cgroups]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/junk\.snap: .*\[SNAPSHOT_CORRUPT\]/);
  }, 10 * minute);
});

describe("hyperlab lab run", () => {
  const tiny = (id: string, extra = "") =>
    `---\nid: ${id}\ntitle: Tiny ${id}\ntimeout: 2\n---\n\n## Touch\n\n\`\`\`check\nfile: /root/${id}\n\`\`\`\n${extra}\n\`\`\`sh solution\ntouch /root/${id}\n\`\`\`\n`;

  it("stops a check that hangs at its timeout and reports it failed with the reason", async () => {
    const file = join(work, "hangs.md");
    writeFileSync(file, tiny("hangs", "\n```sh check never ends\nsleep 1000\n```\n"));
    const t0 = Date.now();
    const r = await hyperlab(["lab", "run", "--solve", "--reporter", "json", file]);
    expect(r.code).toBe(1);
    const checks = (JSON.parse(r.stdout) as JsonReport).units[0]!.steps[0]!.checks;
    expect(checks).toMatchObject([
      { title: "/root/hangs is there", passed: true },
      { title: "never ends", passed: false, reason: "timed out after 2 s (stopped)" },
    ]);
    expect(Date.now() - t0).toBeLessThan(2 * minute);
  }, 5 * minute);

  it("runs disjoint shares with --shard whose union is every lab", async () => {
    const files = ["c", "a", "b"].map((id) => {
      const f = join(work, `shard-${id}.md`);
      writeFileSync(f, tiny(id));
      return f;
    });
    const shares = [];
    for (const shard of ["1/2", "2/2"]) {
      const r = await hyperlab(["lab", "run", "--solve", "--shard", shard, "--reporter", "json", ...files]);
      expect(r.code, r.stderr).toBe(0);
      shares.push((JSON.parse(r.stdout) as JsonReport).units.map((u) => u.lab));
    }
    expect(shares).toEqual([["a", "c"], ["b"]]);
  }, 5 * minute);

  it("says what is wrong with a lab file and its line, exit 125, before any VM starts", async () => {
    const file = join(work, "broken.md");
    writeFileSync(file, "---\nid: broken\ntitle: Broken\nmachine:\n  memry: 128\n---\n\n## No check\n\n```sh solution\ntrue\n```\n");
    const r = await hyperlab(["lab", "run", file]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(
      `hyperlab: error: ${file}:5: 'machine' has no key 'memry' (known: image, memory, profile, registry) [LAB_INVALID]\n${file}:8: step 1 'No check' has no check: add a \`\`\`sh check TITLE or a \`\`\`check block\n`,
    );
    const usage = await hyperlab(["lab", "run", "--jobs", "0", file]);
    expect(usage.code).toBe(125);
    expect(usage.stderr).toContain("--jobs needs at least 1");
  });
});
