// Containers: `run --rm busybox true` from create to exit with crun and with
// runc (same guest, same run, interleaved), and the agent's exec round trip
// of `true`. Instructions are v86's counter over each operation.
import { ContainerEngine, type Runtime } from "../src/containers/engine.ts";
import { nodeImageStore } from "../src/containers/node-store.ts";
import { startGuest } from "../src/guest/node-guest.ts";
import { summarize, writeResult } from "./stats.ts";

const RUNS = Number(process.env.CONTAINER_RUNS ?? 10);
const EXEC_RUNS = Number(process.env.EXEC_RUNS ?? 50);

/** Runs the containers benchmark and writes bench/results/containers.json. */
export async function run(): Promise<void> {
  const guest = await startGuest();
  try {
    const engine = new ContainerEngine(guest.agent, nodeImageStore());
    const measure = async (fn: () => Promise<unknown>) => {
      const i0 = guest.machine.instructions();
      const t0 = performance.now();
      await fn();
      return { wall: performance.now() - t0, instructions: guest.machine.instructions() - i0 };
    };
    const runOnce = (runtime: Runtime) =>
      measure(async () => {
        // As `hyperlab run --rm --network none busybox true` does it: attached, removed at exit.
        const { attachment } = await engine.run({ runtime, image: "busybox", command: ["true"], autoRemove: true, network: "none" }, { attached: true });
        const code = await attachment.exited;
        if (code !== 0) throw new Error(`${runtime} run exited ${code}`);
      });
    // Warm-up: the first run unpacks the image's layer and warms the JIT.
    await runOnce("crun");
    await runOnce("runc");
    const samples: Record<Runtime, Array<{ wall: number; instructions: number }>> = { crun: [], runc: [] };
    for (let i = 0; i < RUNS; i++) {
      samples.crun.push(await runOnce("crun"));
      samples.runc.push(await runOnce("runc"));
      process.stderr.write(".");
    }
    await guest.agent.exec(["/bin/true"]);
    const execs: Array<{ wall: number; instructions: number }> = [];
    for (let i = 0; i < EXEC_RUNS; i++) execs.push(await measure(() => guest.agent.exec(["/bin/true"])));
    process.stderr.write("\n");

    const describe = (s: Array<{ wall: number; instructions: number }>) => ({
      runs: s.length,
      wall_ms: summarize(s.map((x) => x.wall)),
      instructions: summarize(s.map((x) => x.instructions)),
    });
    const crun = describe(samples.crun);
    const runc = describe(samples.runc);
    const exec = describe(execs);
    const path = writeResult("containers", {
      description: "run --rm busybox true (network none), create to exit, in one booted guest",
      ...crun,
      phases: {},
      runtimes: { crun, runc },
      ratio_runc_to_crun: {
        wall_ms: Math.round((runc.wall_ms.median / crun.wall_ms.median) * 100) / 100,
        instructions: Math.round((runc.instructions.median / crun.instructions.median) * 100) / 100,
      },
      agent_exec_true: exec,
      targets: { crun_wall_ms_median: 250, crun_instructions_median: 20e6, agent_exec_wall_ms_median: 20 },
    });
    console.log(
      `containers: crun ${crun.wall_ms.median} ms / ${(crun.instructions.median / 1e6).toFixed(1)} M, ` +
        `runc ${runc.wall_ms.median} ms / ${(runc.instructions.median / 1e6).toFixed(1)} M, ` +
        `agent exec ${exec.wall_ms.median} ms / ${(exec.instructions.median / 1e6).toFixed(2)} M → ${path}`,
    );
  } finally {
    await guest.stop();
  }
}
