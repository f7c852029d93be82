// Snapshots and instant start: how big a post-boot state is, what encoding
// and decoding it cost, and how long a new machine restored from the decoded
// boot snapshot takes until the guest agent answers `exec echo ok` (the
// issue's "restore to a usable shell"), phase by phase, against a cold boot
// to the same point measured in the same run.
//
// `npx tsx bench/snapshot.ts [RUNS]` prints the result as JSON.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { AgentClient } from "../src/guest/agent.ts";
import { Machine } from "../src/hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../src/hardware/node.ts";
import { buildBootSnapshot } from "../src/hypervisor/boot-snapshot.ts";
import { nodeCodec } from "../src/hypervisor/boot-snapshot-node.ts";
import { decodeSnapshot } from "../src/hypervisor/delta-snapshot.ts";
import { type Snapshot, type SnapshotCodec, encodeSnapshot, restoreSnapshot, webCodec } from "../src/hypervisor/snapshot.ts";
import { type Summary, summarize } from "./stats.ts";

const cli = fileURLToPath(new URL("../bin/hyperlab.js", import.meta.url));

/** One restore, from a decoded snapshot in memory until `exec echo ok` answers. */
interface RestoreRun {
  wallMs: number;
  instructions: number;
  emulatorMs: number;
  stateMs: number;
  pingMs: number;
  execMs: number;
  clockMs: number;
}

/** Sizes and codec costs of one boot snapshot. */
export interface SnapshotSizeResult {
  memory_mib: number;
  build_ms: number;
  state_bytes: number;
  deflate_raw_bytes: number;
  ratio: number;
  encode_ms: { node_deflate_raw: number; web_deflate_raw: number; none: number };
  decode_ms: { node_deflate_raw: number; web_deflate_raw: number; node_none: number; web_none: number };
}

/** What benchSnapshot measures; wall times in ms, each a min/median/max over the runs. */
export interface SnapshotBenchResult {
  description: string;
  runs: number;
  restore_to_exec: {
    description: string;
    wall_ms: Summary;
    instructions: Summary;
    phases: { emulator_ms: Summary; state_ms: Summary; agent_ping_ms: Summary; exec_echo_ms: Summary };
    target_wall_ms_median: number;
  };
  clock_set_ms: Summary;
  cold_boot_to_exec: { description: string; runs: number; wall_ms: Summary; instructions: Summary };
  speedup_median: number;
  sizes: SnapshotSizeResult[];
  whole_process: { description: string; runs: number; restore_wall_ms: Summary; cold_wall_ms: Summary };
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await f();
  return [r, performance.now() - t];
}

async function restoreOnce(snapshot: Snapshot): Promise<RestoreRun> {
  const image = await loadNodeImage();
  const t0 = performance.now();
  const { machine, report } = await restoreSnapshot(snapshot, { image, wasm: v86Wasm(), timeoutMs: 30_000 });
  try {
    const [agent, pingMs] = await timed(() => AgentClient.attach(machine, { timeoutMs: 10_000, agent: snapshot.header.agent }));
    const [r, execMs] = await timed(() => agent.exec(["echo", "ok"]));
    const wallMs = performance.now() - t0;
    const instructions = machine.instructions();
    if (r.stdout !== "ok\n") throw new Error(`exec echo ok printed ${JSON.stringify(r.stdout)}`);
    const [, clockMs] = await timed(() => agent.setClock());
    return { wallMs, instructions, emulatorMs: report.phases.emulator.wallMs, stateMs: report.phases.state.wallMs, pingMs, execMs, clockMs };
  } finally {
    await machine.stop();
  }
}

async function coldOnce(): Promise<{ wallMs: number; instructions: number }> {
  const machine = new Machine({ image: await loadNodeImage(), wasm: v86Wasm() });
  const t0 = performance.now();
  try {
    await machine.boot({ timeoutMs: 60_000 });
    const agent = await AgentClient.connect(machine, { timeoutMs: 30_000 });
    await agent.exec(["echo", "ok"]);
    return { wallMs: performance.now() - t0, instructions: machine.instructions() };
  } finally {
    await machine.stop();
  }
}

async function sizes(snapshot: Snapshot, buildMs: number): Promise<SnapshotSizeResult> {
  const codecs: Record<"node" | "web", SnapshotCodec> = { node: nodeCodec, web: webCodec };
  const [nodeDeflate, nodeEncodeMs] = await timed(() => encodeSnapshot(snapshot, { compression: "deflate-raw", codec: codecs.node }));
  const [, webEncodeMs] = await timed(() => encodeSnapshot(snapshot, { compression: "deflate-raw", codec: codecs.web }));
  const [plain, noneEncodeMs] = await timed(() => encodeSnapshot(snapshot, { compression: "none", codec: codecs.node }));
  const decode = async (bytes: Uint8Array, codec: SnapshotCodec) => (await timed(() => decodeSnapshot(bytes, {}, { codec })))[1];
  return {
    memory_mib: snapshot.header.vm.memoryMiB,
    build_ms: Math.round(buildMs),
    state_bytes: snapshot.state.length,
    deflate_raw_bytes: nodeDeflate.length,
    ratio: Math.round((nodeDeflate.length / snapshot.state.length) * 1000) / 1000,
    encode_ms: { node_deflate_raw: Math.round(nodeEncodeMs), web_deflate_raw: Math.round(webEncodeMs), none: Math.round(noneEncodeMs) },
    decode_ms: {
      node_deflate_raw: Math.round(await decode(nodeDeflate, codecs.node)),
      web_deflate_raw: Math.round(await decode(nodeDeflate, codecs.web)),
      node_none: Math.round(await decode(plain, codecs.node)),
      web_none: Math.round(await decode(plain, codecs.web)),
    },
  };
}

/** Wall time of whole `hyperlab boot --exec true` processes (Node start, v86 compile, start, exec, exit). */
function processRuns(runs: number, args: string[], env: Record<string, string>): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [cli, "boot", ...args, "--exec", "true"], { stdio: "ignore", env: { ...process.env, ...env } });
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * Measures snapshots and instant start with `runs` restores (and a third as
 * many cold boots, at least 2). Boot snapshots are built fresh here, not taken
 * from the cache; the whole-process figures use a temporary cache folder.
 */
export async function benchSnapshot(runs = 7): Promise<SnapshotBenchResult> {
  const image = await loadNodeImage();
  const wasm = v86Wasm();
  await wasm;
  const results: SnapshotSizeResult[] = [];
  let main: Snapshot | undefined;
  for (const memoryMiB of [128, 96]) {
    const [snapshot, buildMs] = await timed(() => buildBootSnapshot({ image, wasm, memoryMiB }));
    results.push(await sizes(snapshot, buildMs));
    if (memoryMiB === 128) main = snapshot;
  }

  const restores: RestoreRun[] = [];
  const colds: Array<{ wallMs: number; instructions: number }> = [];
  const coldRuns = Math.max(2, Math.ceil(runs / 3));
  // One warm-up restore: the first in a process pays for lazily initialized parts of Node and v86.
  await restoreOnce(main!);
  for (let i = 0; i < runs; i++) {
    restores.push(await restoreOnce(main!));
    if (i < coldRuns) colds.push(await coldOnce());
    process.stderr.write(".");
  }

  const cache = await mkdtemp(join(tmpdir(), "hyperlab-bench-cache-"));
  let restoreProcesses: number[];
  let coldProcesses: number[];
  try {
    processRuns(1, [], { HYPERLAB_CACHE: cache }); // builds the cached boot snapshot
    restoreProcesses = processRuns(3, [], { HYPERLAB_CACHE: cache });
    coldProcesses = processRuns(3, ["--cold"], { HYPERLAB_CACHE: cache });
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
  process.stderr.write("\n");

  const pick = (f: (r: RestoreRun) => number) => summarize(restores.map(f));
  const restoreWall = pick((r) => r.wallMs);
  const coldWall = summarize(colds.map((c) => c.wallMs));
  return {
    description: "instant start: a new machine restored from the decoded post-boot snapshot (128 MiB) until the agent answers exec echo ok",
    runs,
    restore_to_exec: {
      description: "new Machine → restore → AgentClient.attach (PING) → exec echo ok answered; instructions emulated after the restore",
      wall_ms: restoreWall,
      instructions: pick((r) => r.instructions),
      phases: {
        emulator_ms: pick((r) => r.emulatorMs),
        state_ms: pick((r) => r.stateMs),
        agent_ping_ms: pick((r) => r.pingMs),
        exec_echo_ms: pick((r) => r.execMs),
      },
      target_wall_ms_median: 150,
    },
    clock_set_ms: pick((r) => r.clockMs),
    cold_boot_to_exec: {
      description: "the same point reached by a cold boot (new Machine → boot → agent hello → exec echo ok)",
      runs: colds.length,
      wall_ms: coldWall,
      instructions: summarize(colds.map((c) => c.instructions)),
    },
    speedup_median: Math.round((coldWall.median / restoreWall.median) * 10) / 10,
    sizes: results,
    whole_process: {
      description: "`hyperlab boot --exec true` from process start to exit, with the boot snapshot cached on disk vs --cold",
      runs: 3,
      restore_wall_ms: summarize(restoreProcesses),
      cold_wall_ms: summarize(coldProcesses),
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const result = await benchSnapshot(Number(process.argv[2] ?? 7));
  console.log(JSON.stringify(result, null, 2));
  process.exit(0);
}
