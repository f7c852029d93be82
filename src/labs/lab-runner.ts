// Runs labs headless in Node (`hyperlab lab run`): each unit of work (a lab
// on a fresh VM, its self-test, or one learner's saved state) gets its own VM
// of one in-process hypervisor, up to `jobs` at once within the memory
// budget; a warm pool keeps fresh VMs ready. Units are sorted by name, so
// `shard` picks the same subset on every machine.
import type { ContainerEngine } from "../containers/engine.ts";
import { MemoryRegistry } from "../containers/memory-registry.ts";
import { nodeContainers } from "../containers/node-containers.ts";
import type { VmContainers } from "../containers/vm-containers.ts";
import { nodeLlhttpModule } from "../daemon/docker/llhttp-node.ts";
import { type GuestDocker, serveGuestDocker } from "../daemon/guest-docker.ts";
import { HyperlabError, isHyperlabError } from "../errors.ts";
import { loadNodeTool } from "../hardware/node.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import type { Lab } from "./lab.ts";
import { LabSession, type StepOutcome, assertSnapshotOfLab, labOfSnapshot } from "./lab-session.ts";

/** How a unit runs its lab: checks on an untouched machine, the lab's own solutions, or a learner's saved state. */
export type LabMode = "fresh" | "solve" | "snapshot";

/** A learner's saved state to grade: a name for reports and a way to read its bytes. */
export interface SavedState {
  name: string;
  read(): Promise<Uint8Array>;
}

/** One unit of work: a lab, and a saved state in mode "snapshot". */
export interface LabUnit {
  lab: Lab;
  mode: LabMode;
  state?: SavedState;
  /** what reports call it: the lab's file, or the state's name */
  name: string;
}

/** What one unit did. */
export interface UnitResult {
  unit: LabUnit;
  steps: StepOutcome[];
  /** why the unit could not be run (setup failed, a snapshot refused): its checks were not run */
  error?: { code: string; message: string };
  passed: boolean;
  ms: number;
}

/** Which part of the units a run takes: shard `index` (1-based) of `total`. */
export interface Shard {
  index: number;
  total: number;
}

/** How runLabs runs. */
export interface LabRunOptions {
  /** run each step's solution before its checks (default false) */
  solve?: boolean;
  /** learner states to grade instead of fresh VMs; each goes to the lab whose id it names */
  states?: SavedState[];
  /** units run at once, each in its own VM (default 1; fewer when the memory budget holds fewer VMs) */
  jobs?: number;
  shard?: Shard;
  /** MiB the run's VMs may reserve together (default: the hypervisor's default budget) */
  memoryBudgetMiB?: number;
  /** hears of each unit as it ends */
  onResult?: (r: UnitResult) => void;
  /**
   * receives the whole state of each fresh or solved unit's VM once its checks
   * ran (a learner's state as the page's "Download my work" saves it), e.g. to
   * test a grading pipeline with the lab's own solutions
   */
  saveState?: (unit: LabUnit, state: Uint8Array) => Promise<void>;
}

/** Parses `i/n` (1 ≤ i ≤ n), as `--shard` takes it. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const total = Number(m?.[2]);
  if (!m || total < 1 || index < 1 || index > total) {
    throw new HyperlabError("INVALID_ARGUMENT", `--shard needs INDEX/TOTAL with 1 ≤ INDEX ≤ TOTAL (e.g. 2/4; a Kubernetes Indexed Job passes $((JOB_COMPLETION_INDEX + 1))/N), not '${text}'`);
  }
  return { index, total };
}

/** The units shard `shard` takes of `units`: sorted by name, then every total-th from index-1. The same on every machine. */
export function shardUnits<T extends { name: string }>(units: readonly T[], shard: Shard | undefined): T[] {
  const sorted = [...units].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return shard ? sorted.filter((_, i) => i % shard.total === shard.index - 1) : sorted;
}

/** The units of a run: each lab once (fresh or solve), or each saved state with its lab. */
export function labUnits(labs: readonly Lab[], opts: { solve?: boolean; states?: readonly SavedState[] }): LabUnit[] {
  if (opts.states?.length) return opts.states.map((state) => ({ lab: labs[0]!, mode: "snapshot" as const, state, name: state.name }));
  return labs.map((lab) => ({ lab, mode: opts.solve ? ("solve" as const) : ("fresh" as const), name: lab.file }));
}

/** Picks the lab a state belongs to among `labs` (SNAPSHOT_MISMATCH when none is). */
function labOfState(bytes: Uint8Array, labs: readonly Lab[], name: string): Lab {
  const record = labOfSnapshot(bytes);
  const lab = labs.find((l) => l.id === record?.id) ?? labs[0]!;
  assertSnapshotOfLab(bytes, lab, name);
  return lab;
}

/** The machinery of one run: a hypervisor, its containers and docker in the guests. */
class Machines {
  private constructor(
    readonly hypervisor: Hypervisor,
    readonly containers: VmContainers,
    private readonly docker: GuestDocker | undefined,
    /** each running lab VM's own registry, for labs that ask for one (machine.registry) */
    readonly registries: Map<string, MemoryRegistry>,
  ) {}

  static async create(labs: readonly Lab[], opts: { warm: number; memoryBudgetMiB?: number }): Promise<Machines> {
    const memories = labs.filter((l) => l.machine.image === "default").map((l) => l.machine.memoryMiB);
    const hypervisor = await Hypervisor.create({ warmPool: opts.warm, warmPoolMemoryMiB: memories[0], memoryBudgetMiB: opts.memoryBudgetMiB });
    const containers = nodeContainers(hypervisor);
    // docker in the guests only when a lab asks for it (it listens on a socket in every VM).
    const registries = new Map<string, MemoryRegistry>();
    const docker = labs.some((l) => l.machine.profile === "docker")
      ? serveGuestDocker(containers, hypervisor, {
          loadTool: async (name) => (await loadNodeTool(name)).data,
          llhttp: nodeLlhttpModule,
          lazy: true,
          registryFetch: (vm) => registries.get(vm)?.fetch,
        })
      : undefined;
    return new Machines(hypervisor, containers, docker, registries);
  }

  /** VMs of `memoryMiB` that fit in the budget at once. */
  async fit(memoryMiB: number): Promise<number> {
    const { budget } = await this.hypervisor.stats();
    return Math.max(1, Math.floor(budget.totalMiB / memoryMiB));
  }

  engineOf(vm: Vm): ContainerEngine {
    return this.containers.engine(vm.name);
  }

  async close(): Promise<void> {
    this.docker?.close();
    this.containers.close();
    await this.hypervisor.close();
  }
}

/** Runs one unit in its own VM, destroyed at the end whatever happened. */
async function runUnit(machines: Machines, unit: LabUnit, labs: readonly Lab[], saveState?: LabRunOptions["saveState"]): Promise<UnitResult> {
  const started = performance.now();
  let vm: Vm | undefined;
  try {
    let lab = unit.lab;
    if (unit.mode === "snapshot") {
      const bytes = await unit.state!.read();
      lab = labOfState(bytes, labs, unit.state!.name);
      unit.lab = lab;
      vm = await machines.hypervisor.restore(bytes, { image: lab.machine.image === "default" ? undefined : lab.machine.image, memoryMiB: lab.machine.memoryMiB });
    } else {
      vm = await machines.hypervisor.createVm({ image: lab.machine.image === "default" ? undefined : lab.machine.image, memoryMiB: lab.machine.memoryMiB });
    }
    if (lab.machine.registry) machines.registries.set(vm.name, new MemoryRegistry(lab.machine.registry));
    const session = new LabSession(lab, vm, machines.engineOf(vm));
    if (unit.mode !== "snapshot") await session.setup();
    const steps = unit.mode === "solve" ? await session.solveAll() : await session.checkAll();
    if (saveState && unit.mode !== "snapshot") await saveState(unit, await session.saveState({ full: true }));
    return { unit, steps, passed: steps.every((s) => s.passed), ms: performance.now() - started };
  } catch (err) {
    const error = isHyperlabError(err) ? { code: err.code, message: err.message } : { code: "ERROR", message: (err as Error).message ?? String(err) };
    return { unit, steps: [], error, passed: false, ms: performance.now() - started };
  } finally {
    if (vm) machines.registries.delete(vm.name);
    await vm?.destroy().catch(() => {});
  }
}

/**
 * Runs `labs` (fresh, with `solve`, or over `states`), `jobs` units at once,
 * only those of `shard`. Resolves with every unit's result, in unit order;
 * a unit that could not run is a failed result with its error, never a
 * rejection. Fails only when the run itself cannot start.
 */
export async function runLabs(labs: readonly Lab[], opts: LabRunOptions = {}): Promise<UnitResult[]> {
  if (labs.length === 0) throw new HyperlabError("INVALID_ARGUMENT", "no lab to run");
  const units = shardUnits(labUnits(labs, opts), opts.shard);
  if (units.length === 0) return [];
  const fresh = units.every((u) => u.mode !== "snapshot");
  const memoryMiB = Math.max(...labs.map((l) => l.machine.memoryMiB));
  let jobs = Math.max(1, Math.min(opts.jobs ?? 1, units.length));
  const machines = await Machines.create(labs, { warm: fresh ? jobs : 0, memoryBudgetMiB: opts.memoryBudgetMiB });
  try {
    // Fresh runs keep a warm pool of `jobs` VMs beside the `jobs` in use.
    jobs = Math.min(jobs, Math.max(1, Math.floor((await machines.fit(memoryMiB)) / (fresh ? 2 : 1))));
    const results: UnitResult[] = new Array(units.length);
    let next = 0;
    const worker = async () => {
      while (next < units.length) {
        const i = next++;
        const r = await runUnit(machines, units[i]!, labs, opts.saveState);
        results[i] = r;
        opts.onResult?.(r);
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
    return results;
  } finally {
    await machines.close();
  }
}
