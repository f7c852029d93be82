// Labs: the time of one check on a warm VM (each kind: a shell snippet in the
// guest, a file, a cgroup value and the process table read from the host),
// the time to grade 32 saved learner states of one lab with `hyperlab lab run
// --snapshot DIR` at --jobs 1 and --jobs 4 (the real CLI, one run each: the
// machine is shared), and `hyperlab --version` of the packed CLI (npm pack,
// the tarball unpacked, its bin run as an installed package runs it).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeContainers } from "../src/containers/node-containers.ts";
import { Hypervisor } from "../src/hypervisor/hypervisor.ts";
import { runCheck } from "../src/labs/checks.ts";
import { LabSession } from "../src/labs/lab-session.ts";
import { parseLab } from "../src/labs/parse-lab.ts";
import { summarize, writeResult } from "./stats.ts";

const CHECK_ROUNDS = Number(process.env.LAB_CHECK_ROUNDS ?? 15);
const STATES = 32;
const VERSION_RUNS = Number(process.env.VERSION_RUNS ?? 10);
const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "bin/hyperlab.js");
const cgroupsLab = join(root, "examples/labs/cgroups.md");

/** One check of each kind, on what the cgroups lab leaves behind. */
const CHECKS_LAB = `---
id: bench-checks
title: One check of each kind
---

## Checks

\`\`\`sh check a shell snippet in the guest
test -d /sys/fs/cgroup/lab && grep -q '^oom_kill [1-9]' /sys/fs/cgroup/lab/memory.events
\`\`\`

\`\`\`check
title: a file
file: /sys/fs/cgroup/jail/pids.max
equals: "20"
\`\`\`

\`\`\`check
title: a cgroup value
cgroup: slow
value: cpu.stat
matches: "^nr_throttled [1-9]"
\`\`\`

\`\`\`check
title: the process table
process: "^/sbin/hyperlab-agent"
\`\`\`

\`\`\`sh solution
true
\`\`\`
`;

/** Per-check times on one warm VM that has done the cgroups lab; also returns learner states of the lab at each step. */
async function checksAndStates(): Promise<{ checks: Record<string, number[]>; states: Uint8Array[] }> {
  const lab = parseLab(readFileSync(cgroupsLab, "utf8"), cgroupsLab);
  const checksLab = parseLab(CHECKS_LAB, "bench-checks.md");
  const hypervisor = await Hypervisor.create({ warmPool: 1 });
  const containers = nodeContainers(hypervisor);
  try {
    await hypervisor.ready();
    const vm = await hypervisor.createVm();
    const session = new LabSession(lab, vm, containers.engine(vm.name));
    await session.setup();
    // A learner's state after each step: what a class hands in is a mix of progress.
    const states: Uint8Array[] = [];
    for (const step of lab.steps) {
      await session.solve(step);
      await session.check(step);
      states.push(await session.saveState());
    }
    const target = { exec: (argv: string[], o: { timeoutMs?: number }) => vm.exec(argv, o), readFile: (p: string) => vm.readFile(p) };
    const checks: Record<string, number[]> = {};
    const all = checksLab.steps[0]!.checks;
    for (const c of all) await runCheck(c, target); // warm-up
    for (let i = 0; i < CHECK_ROUNDS; i++) {
      for (const c of all) {
        const r = await runCheck(c, target);
        if (!r.passed) throw new Error(`bench check '${c.title}' failed: ${r.reason}`);
        (checks[c.title] ??= []).push(r.ms);
      }
    }
    await vm.destroy();
    return { checks, states };
  } finally {
    containers.close();
    await hypervisor.close();
  }
}

/** Wall ms of `hyperlab lab run --snapshot DIR --jobs N`, which must pass every state it grades. */
function grade(dir: string, jobs: number): { ms: number; summary: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [bin, "lab", "run", "--snapshot", dir, "--jobs", String(jobs), "--reporter", "json", cgroupsLab], { encoding: "utf8", maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  const report = JSON.parse(r.stdout) as { units: Array<{ error?: unknown; steps: unknown[] }> };
  if (report.units.length !== STATES || report.units.some((u) => u.error || u.steps.length === 0)) throw new Error(`grading failed: ${r.stderr}`);
  return { ms, summary: r.stderr.trim() };
}

/** `hyperlab --version` of the packed package (npm pack, unpack, run its bin), and `node -e 0` interleaved: Node's own start on this machine. */
function packedVersion(): { version: number[]; node: number[] } {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-pack-"));
  try {
    const out = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    const tarball = (JSON.parse(out) as Array<{ filename: string }>)[0]!.filename;
    execFileSync("tar", ["-xzf", join(dir, tarball), "-C", dir]);
    const packedBin = join(dir, "package/bin/hyperlab.js");
    const times = { version: [] as number[], node: [] as number[] };
    for (let i = 0; i <= VERSION_RUNS; i++) {
      let t0 = performance.now();
      const r = spawnSync(process.execPath, [packedBin, "--version"], { encoding: "utf8" });
      const ms = performance.now() - t0;
      if (!/^hyperlab \d+\.\d+\.\d+\n$/.test(r.stdout)) throw new Error(`the packed CLI printed ${JSON.stringify(r.stdout)} ${r.stderr}`);
      t0 = performance.now();
      spawnSync(process.execPath, ["-e", "0"]);
      const node = performance.now() - t0;
      if (i > 0) {
        // the first run warms the file cache
        times.version.push(ms);
        times.node.push(node);
      }
    }
    return times;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the labs benchmark and writes bench/results/labs.json. */
export async function run(): Promise<void> {
  const { checks, states } = await checksAndStates();
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-states-"));
  try {
    for (let i = 0; i < STATES; i++) {
      const file = join(dir, `state-${String(i).padStart(2, "0")}.snap`);
      writeFileSync(file, states[i % states.length]!);
    }
    const stateBytes = states.map((s) => s.length);
    process.stderr.write(`labs: grading ${STATES} states with --jobs 1\n`);
    const jobs1 = grade(dir, 1);
    process.stderr.write(`labs: ${jobs1.summary}\nlabs: grading ${STATES} states with --jobs 4\n`);
    const jobs4 = grade(dir, 4);
    process.stderr.write(`labs: ${jobs4.summary}\nlabs: npm pack and hyperlab --version\n`);
    const { version, node } = packedVersion();
    const perCheck = Object.values(checks).flat();
    const result = {
      description:
        "one check of each kind on a warm VM (after the cgroups lab), grading 32 saved states of examples/labs/cgroups.md with the CLI (one run each), and the packed CLI's --version",
      check_ms: { runs: perCheck.length, ...summarize(perCheck) },
      check_ms_by_kind: Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, summarize(v)])),
      grade_32_states_ms: { jobs_1: Math.round(jobs1.ms), jobs_4: Math.round(jobs4.ms) },
      state_bytes: summarize(stateBytes),
      version_ms: { runs: version.length, ...summarize(version) },
      node_startup_ms: { runs: node.length, ...summarize(node), what: "node -e 0, interleaved with the --version runs: Node's own start on this machine" },
      targets: { check_ms_median: 50, grade_32_states_jobs_4_ms: 20_000, version_ms_median: 150 },
    };
    const path = writeResult("labs", result);
    console.log(
      `labs: a check ${result.check_ms.median} ms median (${Object.entries(result.check_ms_by_kind).map(([k, v]) => `${k} ${v.median}`).join(", ")}), ` +
        `32 states graded in ${(jobs1.ms / 1000).toFixed(1)} s with --jobs 1, ${(jobs4.ms / 1000).toFixed(1)} s with --jobs 4, ` +
        `packed --version ${result.version_ms.median} ms (node -e 0: ${result.node_startup_ms.median} ms) → ${path}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
