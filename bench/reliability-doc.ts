// Writes docs/reliability.md from bench/results/reliability.json (`npm run
// bench -- reliability`: faults, hostile archives, property-test inputs) and
// bench/results/soak.json (`npm run bench -- soak`: load held). Either
// benchmark calls it after writing its results, so the document always shows
// the last measured figures, with when they were measured.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";

export interface PropertyRow {
  target: string;
  file: string;
  /** properties (fast-check asserts) run */
  properties: number;
  /** generated inputs tried, all properties together */
  inputs: number;
  /** tests of the file that did not pass */
  failed: number;
}

export interface FaultRow {
  fault: string;
  sees: string;
  file: string;
  /** the test's name */
  name: string;
  /** passed, failed, skipped, missing */
  status: string;
}

export interface ReliabilityResult {
  properties: PropertyRow[];
  faults: FaultRow[];
  archives: Array<{ file: string; tests: number; passed: number; names: string[] }>;
  measured_at: string;
}

const root = new URL("../", import.meta.url);

function readJson<T>(name: string): T | undefined {
  const url = new URL(`bench/results/${name}.json`, root);
  return existsSync(url) ? (JSON.parse(readFileSync(url, "utf8")) as T) : undefined;
}

/** A Markdown table. */
function table(head: string[], rows: Array<Array<string | number>>): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** The soak section, from soak.json. */
function soakSection(soak: Record<string, any> | undefined): string {
  if (!soak) return "Not measured yet: run `npm run bench -- soak`.";
  const out: string[] = [];
  const vms: string[] = Array.isArray(soak.vms) ? soak.vms : [];
  out.push(
    `${soak.clients} concurrent clients for ${soak.duration_s} s across ${vms.length} VMs (${vms.join(", ")}), plus one client that attaches and never reads` +
      ` (\`npm run bench -- soak --clients ${soak.clients} --duration ${soak.duration_s}\`). Load: ${soak.load_note ?? (soak.load_average_1_5_15_min ? `load average over 1, 5 and 15 min ${soak.load_average_1_5_15_min.start.join(", ")} at the start and ${soak.load_average_1_5_15_min.end.join(", ")} at the end, on ${cpus().length} cores` : "not noted")}.`,
  );
  out.push("");
  out.push(table(["requests", "errors (target 0)", "p99 of all calls with the stuck client attached"], [[soak.requests, soak.errors, `${soak.p99_all_calls_with_stuck_client_ms} ms`]]));
  const kinds = Object.entries((soak.error_kinds ?? {}) as Record<string, number>);
  if (kinds.length) out.push("", "Errors by kind: " + kinds.map(([k, n]) => `${n} × ${k}`).join("; ") + ".");
  out.push("");
  out.push(table(["call", "requests", "errors", "p50 ms", "p99 ms"], Object.entries((soak.calls ?? {}) as Record<string, any>).map(([k, v]) => [k, v.requests, v.errors, v.p50_ms, v.p99_ms])));
  const st = soak.stuck_client;
  if (st) out.push("", `The stuck client (${st.container}): ${st.closed_by_daemon ? "let go by the daemon" : "NOT let go"} after the container printed ${st.chatter_output_bytes} bytes, ${st.bytes_left_for_it} of them still queued for it (docs/api.md, "Limits").`);
  const b = soak.before ?? {};
  const a = soak.after ?? {};
  const rows: Array<Array<string | number>> = [
    ["daemon RSS (KiB)", b.daemon_rss_kib, a.daemon_rss_kib, a.daemon_rss_kib - b.daemon_rss_kib],
    ["of it guest memories (KiB)", b.daemon_rss_guest_memory_kib, a.daemon_rss_guest_memory_kib, a.daemon_rss_guest_memory_kib - b.daemon_rss_guest_memory_kib],
    ["of it compiled code (KiB)", b.daemon_rss_code_kib, a.daemon_rss_code_kib, a.daemon_rss_code_kib - b.daemon_rss_code_kib],
    ["compiled code mappings", b.daemon_code_mappings, a.daemon_code_mappings, a.daemon_code_mappings - b.daemon_code_mappings],
    ["daemon descriptors", b.daemon_fds, a.daemon_fds, a.daemon_fds - b.daemon_fds],
  ];
  for (const vm of vms) {
    const gb = b.guests?.[vm] ?? {};
    const ga = a.guests?.[vm] ?? {};
    for (const k of Object.keys(gb)) rows.push([`${vm}: ${k.replace(/_/g, " ")}`, gb[k], ga[k], ga[k] - gb[k]]);
  }
  // Guest memories and the VMs' compiled code fill up to bounds of their own (a guest's RAM; v86's 900 compiled functions per VM).
  const codeGrowthKiB = (a.daemon_rss_code_kib ?? 0) - (b.daemon_rss_code_kib ?? 0);
  const hostGrowthMiB = (a.daemon_rss_kib - b.daemon_rss_kib - (a.daemon_rss_guest_memory_kib - b.daemon_rss_guest_memory_kib) - codeGrowthKiB) / 1024;
  const codeBound = V86_JIT_FUNCTIONS * vms.length + CODE_MAPPINGS_OF_THE_PROCESS;
  // The same figure through the run (every 5 s): a leak climbs to the end, warm-up levels off.
  const timeline = ((soak.daemon_rss_kib_timeline ?? []) as number[][]).filter((t) => t.length >= 4);
  const rest = (t: number[]) => (t[1]! - t[2]! - t[3]!) / 1024;
  const half = timeline.findIndex((t) => t[0]! >= timeline.at(-1)![0]! / 2);
  const lateGrowthMiB = timeline.length > 2 && half > 0 ? rest(timeline.at(-1)!) - rest(timeline[half]!) : undefined;
  out.push("", "Before and after (settled, the guests' page cache dropped):", "", table(["figure", "before", "after", "growth"], rows));
  out.push(
    "",
    `Two parts of the daemon's RSS fill up to bounds of their own and are left out of the growth target: the guests' memories (pages a guest touches for the first time, up to its RAM) and the VMs' compiled code. v86 compiles a guest's hot code into WebAssembly, one module per function, and a VM keeps at most ${V86_JIT_FUNCTIONS} of them (its table of compiled functions): as guests run new programs the count climbs, more slowly as it nears that bound (at most ${codeBound} mappings for ${vms.length} VMs, counting the process's own). The rest of the daemon (its JavaScript heap, buffers, allocator) is the growth target.`,
  );
  // The verdict against the targets (0 errors, no growth beyond noise), from the same figures.
  const counts = vms.flatMap((vm) => Object.entries(soak.growth?.guests?.[vm] ?? {}).filter(([k, v]) => !/kib$/.test(k) && v !== 0).map(([k, v]) => `${vm} ${k} ${v}`));
  const misses = [
    ...(soak.errors ? [`${soak.errors} error(s)`] : []),
    ...(hostGrowthMiB > 64
      ? [
          `the daemon's RSS outside guest memories and compiled code grew by ${Math.round(hostGrowthMiB)} MiB` +
            (lateGrowthMiB === undefined ? "" : `, of which ${Math.round(lateGrowthMiB)} MiB in the second half of the run (${timeline[half]![0]} s to ${timeline.at(-1)![0]} s)${lateGrowthMiB <= 64 ? ": it rose while the load began and then levelled off" : ""}`),
        ]
      : []),
    ...(a.daemon_code_mappings > codeBound ? [`${a.daemon_code_mappings} compiled code mappings, over the bound of ${codeBound}`] : []),
    ...counts,
  ];
  out.push("", misses.length ? `**Targets not met in this run:** ${misses.join("; ")}.` : "Targets met: no error, and nothing grew beyond noise.");
  return out.join("\n");
}

/** Compiled functions a VM's v86 keeps (its WebAssembly table: 1924 entries, the first 1024 its own). */
const V86_JIT_FUNCTIONS = 900;
/** Executable mappings of the daemon besides the VMs' compiled functions (V8's own code spaces), with room. */
const CODE_MAPPINGS_OF_THE_PROCESS = 100;

/** The document's text from the results there are. */
export function reliabilityDoc(): string {
  const rel = readJson<ReliabilityResult>("reliability");
  const soak = readJson<Record<string, any>>("soak");
  const faults = rel?.faults ?? [];
  const failedFaults = faults.filter((f) => f.status !== "passed");
  const lostSoak = Number(soak?.errors ?? 0);
  const props = rel?.properties ?? [];
  return `# Reliability: figures

What hyperlab holds under load, which faults it survives, and which hostile
inputs it refuses, as last measured. Generated: do not edit by hand.
\`npm run bench -- soak\` rewrites the load figures, \`npm run bench --
reliability\` runs the tests below and rewrites the rest (bench/results/soak.json
and bench/results/reliability.json hold the raw figures). \`npm test\` runs
every test named here, and a one-minute soak (test/integration/soak.test.ts).

## Load held

${soakSection(soak)}

## Faults survived

${rel ? `Measured ${rel.measured_at}.\n\n${table(["fault", "what a user sees", "test", "result"], faults.map((f) => [f.fault, f.sees, `${f.file} › ${f.name}`, f.status]))}` : "Not measured yet: run `npm run bench -- reliability`."}

## Hostile input refused

Property tests (fast-check): each property generates inputs (random, and
valid ones mutated: flipped bytes, cuts, insertions, duplicated runs, huge
numbers, wrong JSON types) and requires a value or a coded error for each,
never a crash or a hang (docs/api.md, "Limits", lists every size bound).

${rel ? table(["target", "properties", "inputs tried", "failed tests"], [...props.map((p) => [`${p.target} (${p.file})`, p.properties, p.inputs, p.failed]), ["all", props.reduce((n, p) => n + p.properties, 0), props.reduce((n, p) => n + p.inputs, 0), props.reduce((n, p) => n + p.failed, 0)]]) : "Not measured yet."}

Hostile image archives (layer tars and \`docker load\` archives: \`../\` paths,
absolute paths, links out of the root, writes through links, device nodes,
truncated, huge and endless entries, gzip bombs), each a test:

${rel ? table(["file", "cases", "passed"], rel.archives.map((a) => [a.file, a.tests, a.passed])) : "Not measured yet."}

## What was lost

${rel || soak ? (failedFaults.length === 0 && lostSoak === 0 ? "Nothing: every fault test passed and the soak had no errors." : `${failedFaults.length} fault test(s) did not pass (${failedFaults.map((f) => f.fault).join("; ") || "none"}); the soak had ${lostSoak} error(s).`) : "Not measured yet."}
What a crash cannot keep, by design (docs/api.md, "Across restarts"): after a
SIGKILL or a power cut, the memory of each VM (its running processes and the
files its containers wrote) is gone; the VM comes back fresh and its
containers are listed \`Exited (255)\` with why, with their logs up to their
last event. A clean stop (SIGTERM, Ctrl-C) keeps everything.
`;
}

/** Rewrites docs/reliability.md. */
export function writeReliabilityDoc(): void {
  const path = fileURLToPath(new URL("docs/reliability.md", root));
  writeFileSync(path, reliabilityDoc());
  console.error(`reliability: wrote ${path}`);
}
