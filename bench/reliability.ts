// `npm run bench -- reliability`: runs the tests behind docs/reliability.md
// (the fault tests, the hostile-archive tests, and the property tests with a
// count of the inputs each tried), writes bench/results/reliability.json, and
// rewrites docs/reliability.md from it and from bench/results/soak.json (the
// soak benchmark rewrites the document too, see reliability-doc.ts).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type FaultRow, type PropertyRow, type ReliabilityResult, writeReliabilityDoc } from "./reliability-doc.ts";
import { writeResult } from "./stats.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

const F = "test/integration/faults.test.ts";

/** The faults the issue names, each with the test that injects it and what a user sees then. */
const FAULTS: Array<{ fault: string; file: string; test: RegExp; sees: string }> = [
  { fault: "the agent killed mid-request", file: "test/integration/agent.test.ts", test: /AGENT_GONE when the agent is killed/, sees: "the request fails with AGENT_GONE; the next one is served" },
  { fault: "the VM's worker killed", file: "test/integration/hypervisor.test.ts", test: /worker dies/, sees: "that VM is stopped with WORKER_DIED; the other VMs run on" },
  { fault: "a call cut off by the guest stopping", file: "test/integration/hypervisor.test.ts", test: /cut off by the guest stopping/, sees: "the call fails with why the guest stopped (the panic's line, a power-off)" },
  { fault: "a snapshot file truncated", file: "test/integration/snapshot.test.ts", test: /truncated/, sees: "SNAPSHOT_CORRUPT, before any VM exists" },
  { fault: "a snapshot file with a changed byte", file: "test/integration/snapshot.test.ts", test: /one byte of the file changed/, sees: "SNAPSHOT_CORRUPT naming the checksum" },
  { fault: "the guest kernel out of memory: a process in the VM past its RAM", file: F, test: /allocates past its RAM/, sees: "that process is OOM-killed (signal 9); the agent, the VM and the daemon go on" },
  { fault: "a container without a limit OOM-killed by the kernel", file: F, test: /without a memory limit that the kernel killed/, sees: "exit 137, OOMKilled true, oom and die events" },
  { fault: "an exec OOM-killed", file: F, test: /exec the kernel killed/, sees: "exit 137; its container keeps running" },
  { fault: "a build step OOM-killed", file: F, test: /build whose RUN step the kernel killed/, sees: "the build fails naming exit code 137; the daemon goes on" },
  { fault: "a container at its -m limit", file: F, test: /OOMKilled in docker inspect/, sees: "OOMKilled true, exit 137" },
  { fault: "the OOM killer taking a container's runtime and the agent", file: F, test: /even when it took the agent/, sees: "no container left listed running; each exited with why" },
  { fault: "the guest's /run (containers' files) full", file: F, test: /refuses new containers with a daemon error/, sees: "docker run exits 125 saying what is full and what to do; works once space is freed" },
  { fault: "the host store's disk full (load)", file: F, test: /refuses a load into a full store/, sees: "507 naming the store and what to do; the store unchanged" },
  { fault: "the host store's disk full (pull)", file: F, test: /fails a pull into a full store/, sees: "the store's message; nothing kept; the pull works once there is room" },
  { fault: "the host store read-only", file: F, test: /read-only store/, sees: "tag and rmi refused naming the store (STORE_READ_ONLY); work again once writable" },
  { fault: "a registry dropping the connection mid-blob", file: F, test: /fails the pull with a coded error naming the blob/, sees: "the pull fails naming the blob and bytes received, stores nothing; a retry pulls the image" },
  { fault: "a client disconnecting mid-attach", file: F, test: /leaves the container running to its end/, sees: "the container runs to its end as with dockerd (kept, or removed with --rm)" },
  { fault: "a client disconnecting mid-build", file: F, test: /stops the RUN step's work/, sees: "the step's processes stop, no build container left, the next build works" },
  { fault: "the daemon stopped (SIGTERM)", file: "test/integration/daemon-restart.test.ts", test: /saves every VM on SIGTERM/, sees: "the next start restores every VM and container as it was" },
  { fault: "the daemon killed (SIGKILL, a power cut)", file: "test/integration/daemon-restart.test.ts", test: /after a SIGKILL/, sees: "VMs back fresh, their containers Exited (255) with why; images intact; a half-written file discarded" },
  { fault: "a saved VM snapshot damaged", file: "test/integration/daemon-restart.test.ts", test: /damaged snapshot/, sees: "reported with SNAPSHOT_CORRUPT; the VM starts fresh" },
  { fault: "a second daemon on the same data root", file: "test/integration/daemon-restart.test.ts", test: /second daemon/, sees: "refused, naming the running daemon's PID" },
];

/** The property tests: what each file's inputs are. */
const PROPERTIES: Array<{ target: string; file: string }> = [
  { target: "Docker API bodies, query strings, paths and auth headers", file: "test/unit/daemon/docker/fuzz-bodies.test.ts" },
  { target: "agent frames", file: "test/unit/guest/agent-frames.property.test.ts" },
  { target: "snapshot files and headers", file: "test/unit/hypervisor/snapshot-header.property.test.ts" },
  { target: "lab files", file: "test/unit/labs/parse-lab.property.test.ts" },
  { target: "Dockerfiles", file: "test/unit/containers/build/dockerfile.property.test.ts" },
];

/** Hand-made hostile archives: every test of these files. */
const ARCHIVES = ["test/unit/containers/layer-tar.test.ts", "test/integration/hostile-layers.test.ts"];

interface JsonReport {
  testResults: Array<{ name: string; assertionResults: Array<{ fullName: string; status: string; title: string }> }>;
}

/** Runs vitest on `files` (optionally only tests matching `names`), returning its JSON report. */
function vitest(files: string[], env: Record<string, string> = {}): JsonReport {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-reliability-"));
  const out = join(dir, "report.json");
  try {
    const r = spawnSync(process.execPath, [join(root, "node_modules/vitest/vitest.mjs"), "run", ...files, "--reporter=json", `--outputFile=${out}`], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "inherit"],
      timeout: 30 * 60_000,
    });
    if (r.error) throw r.error;
    return JSON.parse(readFileSync(out, "utf8")) as JsonReport;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The tests of `file` in `report` (none when it did not run). */
function testsOf(report: JsonReport, file: string): JsonReport["testResults"][number]["assertionResults"] {
  return report.testResults.find((r) => relative(root, r.name) === file)?.assertionResults ?? [];
}

function statusOf(report: JsonReport, file: string, test: RegExp): { name: string; status: string } {
  const results = testsOf(report, file);
  const hit = results.find((a) => test.test(a.fullName));
  return hit ? { name: hit.title, status: hit.status } : { name: `(no test matching ${test})`, status: "missing" };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hyperlab-properties-"));
  const counts = join(dir, "counts.jsonl");
  let properties: PropertyRow[];
  try {
    console.error("reliability: the property tests, counting inputs");
    const report = vitest(PROPERTIES.map((p) => p.file), { HYPERLAB_RELIABILITY_REPORT: counts });
    const lines = readFileSync(counts, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { file: string; test: string; runs: number; failed: boolean });
    properties = PROPERTIES.map((p) => {
      const mine = lines.filter((l) => relative(root, l.file) === p.file);
      const tests = testsOf(report, p.file);
      return {
        target: p.target,
        file: p.file,
        properties: mine.length,
        inputs: mine.reduce((n, l) => n + l.runs, 0),
        failed: tests.filter((t) => t.status !== "passed").length,
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  console.error("reliability: the fault tests and the hostile archives");
  const files = [...new Set([...FAULTS.map((f) => f.file), ...ARCHIVES])];
  const report = vitest(files);
  const faults: FaultRow[] = FAULTS.map((f) => ({ fault: f.fault, sees: f.sees, file: f.file, ...statusOf(report, f.file, f.test) }));
  const archives = ARCHIVES.map((file) => {
    const tests = testsOf(report, file);
    return { file, tests: tests.length, passed: tests.filter((t) => t.status === "passed").length, names: tests.map((t) => t.title) };
  });
  const result: ReliabilityResult = { properties, faults, archives, measured_at: new Date().toISOString() };
  console.log(`wrote ${writeResult("reliability", { description: "The tests behind docs/reliability.md: faults injected, hostile archives, property-test inputs per target.", ...result })}`);
  writeReliabilityDoc();
}
