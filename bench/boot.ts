// Cold boot to a usable shell: new machine, power on, until the guest reports
// ready (console shell started). Each run is a fresh v86 instance and a fresh
// guest; v86's WebAssembly is compiled once per process and reported apart.
// Baseline, measured in the same run: the same kernel booted through SeaBIOS
// from the compressed bzImage, the way a PC boots.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type BootReport, type Firmware, Machine, type NetworkCard } from "../src/hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../src/hardware/node.ts";
import { summarize, writeResult } from "./stats.ts";

const RUNS = Number(process.env.BOOT_RUNS ?? 5);
const BASELINE_RUNS = Number(process.env.BOOT_BASELINE_RUNS ?? 3);
const PROCESS_RUNS = Number(process.env.BOOT_PROCESS_RUNS ?? 3);
const NO_NIC_RUNS = Number(process.env.BOOT_NO_NIC_RUNS ?? 3);
const cli = fileURLToPath(new URL("../bin/hyperlab.js", import.meta.url));

/** Wall time of a whole `hyperlab boot --exec true` process, as a user runs it (restored from the boot snapshot, or `--cold`). */
function processOnce(cold: boolean): number {
  const t = performance.now();
  execFileSync(process.execPath, [cli, "boot", "--exec", "true", ...(cold ? ["--cold"] : [])], { stdio: "ignore" });
  return performance.now() - t;
}

async function bootOnce(firmware: Firmware, nic?: NetworkCard): Promise<BootReport> {
  const machine = new Machine({ image: await loadNodeImage(), wasm: v86Wasm(), firmware, nic });
  try {
    return await machine.boot({ timeoutMs: 60_000 });
  } finally {
    await machine.stop();
  }
}

function describeRuns(reports: BootReport[]) {
  const phase = (name: keyof BootReport["phases"]) => ({
    wall_ms: summarize(reports.map((r) => r.phases[name].wallMs)),
    instructions: summarize(reports.map((r) => r.phases[name].instructions)),
  });
  return {
    runs: reports.length,
    wall_ms: summarize(reports.map((r) => r.wallMs)),
    instructions: summarize(reports.map((r) => r.instructions)),
    phases: { firmware: phase("firmware"), kernel: phase("kernel"), init: phase("init") },
  };
}

/** Runs the boot benchmark and writes bench/results/boot.json. */
export async function run(): Promise<void> {
  const t = performance.now();
  await v86Wasm();
  const compileMs = performance.now() - t;
  await loadNodeImage();

  const direct: BootReport[] = [];
  const seabios: BootReport[] = [];
  const noNic: BootReport[] = [];
  // Interleave so that drift in the machine's speed hits all alike.
  for (let i = 0; i < Math.max(RUNS, BASELINE_RUNS, NO_NIC_RUNS); i++) {
    if (i < RUNS) direct.push(await bootOnce("direct"));
    if (i < NO_NIC_RUNS) noNic.push(await bootOnce("direct", "none"));
    if (i < BASELINE_RUNS) seabios.push(await bootOnce("seabios"));
    process.stderr.write(".");
  }
  processOnce(false); // builds the boot snapshot if this image has none cached yet
  const processes: number[] = [];
  const coldProcesses: number[] = [];
  for (let i = 0; i < PROCESS_RUNS; i++) {
    processes.push(processOnce(false));
    coldProcesses.push(processOnce(true));
  }
  process.stderr.write("\n");

  const main = describeRuns(direct);
  const base = describeRuns(seabios);
  const bare = describeRuns(noNic);
  const nicCost = main.instructions.median / bare.instructions.median - 1;
  const path = writeResult("boot", {
    description: "cold boot to a usable shell (guest ready signal), hyperlab's direct loader + uncompressed kernel",
    ...main,
    v86_compile_ms: Math.round(compileMs),
    whole_process: {
      description: "`hyperlab boot --exec true` from process start to exit: Node and tsx start, v86 compile, restore from the cached boot snapshot, exec, stop",
      runs: processes.length,
      wall_ms: summarize(processes),
    },
    whole_process_cold: {
      description: "`hyperlab boot --exec true --cold`: the same with a cold boot instead of the restore",
      runs: coldProcesses.length,
      wall_ms: summarize(coldProcesses),
    },
    baseline: { description: "same guest booted through SeaBIOS from the LZ4 bzImage", ...base },
    ratio_to_baseline: {
      wall_ms: Math.round((main.wall_ms.median / base.wall_ms.median) * 100) / 100,
      instructions: Math.round((main.instructions.median / base.instructions.median) * 100) / 100,
    },
    without_nic: { description: "same boot with no network card (the default machine has virtio-net)", ...bare },
    nic_cost: {
      description: "extra boot instructions of the virtio-net card (median with / median without − 1); target ≤ 0.05",
      instructions: Math.round(nicCost * 10000) / 10000,
      wall_ms: Math.round((main.wall_ms.median / bare.wall_ms.median - 1) * 10000) / 10000,
    },
    targets: { wall_ms_median: 2000, instructions_median: 150e6, nic_cost_instructions: 0.05 },
  });
  const s = (x: { median: number }, d = 1) => (x.median / d).toFixed(d === 1 ? 0 : 1);
  console.log(
    `boot: median ${s(main.wall_ms)} ms, ${s(main.instructions, 1e6)} M instructions (${RUNS} runs); ` +
      `SeaBIOS baseline ${s(base.wall_ms)} ms, ${s(base.instructions, 1e6)} M; v86 compile ${Math.round(compileMs)} ms; ` +
      `whole process ${s(summarize(processes))} ms (--cold ${s(summarize(coldProcesses))} ms); ` +
      `without the NIC ${s(bare.instructions, 1e6)} M instructions (the NIC adds ${(nicCost * 100).toFixed(2)} %) → ${path}`,
  );
}
