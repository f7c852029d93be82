// Containers: `run --rm busybox true` from create to exit with crun and with
// runc (same guest, same run, interleaved), and the agent's exec round trip
// of `true`. Instructions are v86's counter over each operation.
import { ContainerEngine, type Runtime } from "../src/containers/engine.ts";
import { nodeImageStore } from "../src/containers/node-store.ts";
import { startGuest } from "../src/hypervisor/local-guest.ts";
import { summarize, writeResult } from "./stats.ts";

const RUNS = Number(process.env.CONTAINER_RUNS ?? 10);
const EXEC_RUNS = Number(process.env.EXEC_RUNS ?? 50);

type Sample = { wall: number; instructions: number };

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
    // As `hyperlab run --rm busybox true` does it: attached, removed at exit,
    // on the default bridge network (Docker's default), and with --network none.
    const runOnce = (runtime: Runtime, network: "bridge" | "none") =>
      measure(async () => {
        const { attachment } = await engine.run({ runtime, image: "busybox", command: ["true"], autoRemove: true, network }, { attached: true });
        const code = await attachment.exited;
        if (code !== 0) throw new Error(`${runtime} run (${network}) exited ${code}`);
      });
    // Warm-up: the first run unpacks the image's layer and warms the JIT.
    await runOnce("crun", "bridge");
    await runOnce("runc", "bridge");
    await runOnce("crun", "none");
    const samples = { crun: [] as Sample[], runc: [] as Sample[], crunNone: [] as Sample[] };
    for (let i = 0; i < RUNS; i++) {
      samples.crun.push(await runOnce("crun", "bridge"));
      samples.runc.push(await runOnce("runc", "bridge"));
      samples.crunNone.push(await runOnce("crun", "none"));
      process.stderr.write(".");
    }
    await guest.agent.exec(["/bin/true"]);
    const execs: Sample[] = [];
    for (let i = 0; i < EXEC_RUNS; i++) execs.push(await measure(() => guest.agent.exec(["/bin/true"])));
    process.stderr.write("\n");

    const describe = (s: Sample[]) => ({
      runs: s.length,
      wall_ms: summarize(s.map((x) => x.wall)),
      instructions: summarize(s.map((x) => x.instructions)),
    });
    const crun = describe(samples.crun);
    const runc = describe(samples.runc);
    const crunNone = describe(samples.crunNone);
    const exec = describe(execs);
    const path = writeResult("containers", {
      description: "run --rm busybox true (default bridge network), create to exit, in one booted guest",
      ...crun,
      runtimes: { crun, runc },
      crun_network_none: crunNone,
      ratio_runc_to_crun: {
        wall_ms: Math.round((runc.wall_ms.median / crun.wall_ms.median) * 100) / 100,
        instructions: Math.round((runc.instructions.median / crun.instructions.median) * 100) / 100,
      },
      agent_exec_true: exec,
      targets: { crun_wall_ms_median: 250, crun_instructions_median: 20e6, agent_exec_wall_ms_median: 20 },
    });
    console.log(
      `containers: crun ${crun.wall_ms.median} ms / ${(crun.instructions.median / 1e6).toFixed(1)} M ` +
        `(network none ${crunNone.wall_ms.median} ms / ${(crunNone.instructions.median / 1e6).toFixed(1)} M), ` +
        `runc ${runc.wall_ms.median} ms / ${(runc.instructions.median / 1e6).toFixed(1)} M, ` +
        `agent exec ${exec.wall_ms.median} ms / ${(exec.instructions.median / 1e6).toFixed(2)} M → ${path}`,
    );
  } finally {
    await guest.stop();
  }
}
