// What the engine keeps of a container after it is removed: nothing (found by
// the soak, bench/soak.ts: each started container's exit stayed in a map for
// the life of the engine, so a daemon that runs containers all day grew
// without end). The records are private, so this test reads them by name:
// every per-container map and set of the engine must be empty again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContainerEngine } from "../../src/containers/engine.ts";
import { nodeImageStore } from "../../src/containers/node-store.ts";
import { VmContainers } from "../../src/containers/vm-containers.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";

/** The engine's per-container records (private fields, by name) and how many entries each holds. */
function records(engine: ContainerEngine): Record<string, number> {
  const names = ["containers", "exits", "markerless", "removeVolumesOf", "restarting", "oomKillsBefore", "attached", "shims", "earlyStdin", "held", "logBytes"];
  const fields = engine as unknown as Record<string, Map<unknown, unknown> | Set<unknown>>;
  return Object.fromEntries(names.map((n) => [n, fields[n]!.size]));
}

describe("the engine after its containers are removed", () => {
  let hypervisor: Hypervisor;
  let engine: ContainerEngine;

  beforeAll(async () => {
    hypervisor = await Hypervisor.create({ spareWorkers: 0, warmPool: 0 });
    const vm = await hypervisor.createVm({ name: "records" });
    engine = new VmContainers(hypervisor, nodeImageStore()).engine(vm.name);
  });
  afterAll(async () => {
    await hypervisor?.close();
  });

  it("keeps no record of them", async () => {
    const empty = records(engine);
    expect(Object.values(empty).every((n) => n === 0), JSON.stringify(empty)).toBe(true);
    // run --rm attached, run --rm detached, and create/start/remove, as clients do.
    const { attachment } = await engine.run({ image: "busybox", command: ["true"], autoRemove: true }, { attached: true });
    expect(await attachment.exited).toBe(0);
    const detached = await engine.create({ image: "busybox", command: ["true"], autoRemove: true });
    const gone = engine.waitFor(detached.id, "removed");
    await engine.start(detached.id);
    await gone;
    const kept = await engine.create({ image: "busybox", command: ["sleep", "100"] });
    await engine.start(kept.id);
    await engine.remove(kept.id, { force: true });
    expect(records(engine)).toEqual(empty);
  }, 120_000);
});
