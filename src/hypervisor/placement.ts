// Where VMs fit on the host: each VM's guest RAM is reserved from the memory
// budget (budget.ts) before it exists, and its CPU share is enforced by the
// scheduler (scheduler.ts), which this drives: every period it hands the
// scheduler the VMs' samples and holds the VMs the scheduler says are ahead.
import { HyperlabError } from "../errors.ts";
import { MemoryBudget, type Reservation } from "./budget.ts";
import { CpuScheduler, MAX_SHARE, MIN_SHARE, type SchedulerOptions, validShare } from "./scheduler.ts";
import type { Vm } from "./vm.ts";

/**
 * The budget and the CPU scheduling of one hypervisor's VMs. Scheduling
 * runs from construction until close(); every other method is legal until then.
 */
export class Placement {
  /** the host memory VMs reserve from */
  readonly budget: MemoryBudget;
  private readonly scheduler: CpuScheduler;
  private readonly timer: ReturnType<typeof setInterval>;

  /** `budgetMiB`: what all VMs together may reserve; `vms`: the VMs to schedule, as the hypervisor lists them. */
  constructor(budgetMiB: number, opts: (SchedulerOptions & { periodMs?: number }) | undefined, private readonly vms: () => Vm[]) {
    this.budget = new MemoryBudget(budgetMiB);
    this.scheduler = new CpuScheduler(opts);
    this.timer = setInterval(() => this.schedule(), opts?.periodMs ?? 20);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /**
   * Checks a new VM's memory and CPU share (INVALID_ARGUMENT) and reserves
   * its memory under `name` (RESOURCE_EXHAUSTED stating asked and free).
   * `handOver`, memory already reserved for it (a warm VM's), is released first.
   */
  admit(name: string, memoryMiB: number, cpuShare: number, handOver?: Reservation): Reservation {
    if (!Number.isInteger(memoryMiB) || memoryMiB <= 0) {
      throw new HyperlabError("INVALID_ARGUMENT", `memory must be a whole, positive number of MiB, not ${memoryMiB}`);
    }
    if (!validShare(cpuShare)) throw new HyperlabError("INVALID_ARGUMENT", `a CPU share must be a number from ${MIN_SHARE} to ${MAX_SHARE}, not ${cpuShare}`);
    // A warm VM's memory changes hands: released, and taken again under the VM's name.
    handOver?.release();
    return this.budget.reserve(name, memoryMiB);
  }

  /** Throws RESOURCE_EXHAUSTED when `n` copies of `vm` cannot fit in the free budget: checked before the fork snapshots it. */
  checkFork(vm: Vm, n: number): void {
    const asked = n * vm.memoryMiB;
    if (asked > this.budget.freeMiB) {
      throw new HyperlabError(
        "RESOURCE_EXHAUSTED",
        `cannot fork VM ${vm.name} into ${n}: that asks for ${n} × ${vm.memoryMiB} = ${asked} MiB of memory but only ${this.budget.freeMiB} MiB of the host budget (${this.budget.totalMiB} MiB) is free`,
        { askedMiB: asked, freeMiB: this.budget.freeMiB, totalMiB: this.budget.totalMiB },
      );
    }
  }

  /** Starts scheduling `vm` with its CPU share. Legal once per VM, when it is registered. */
  add(vm: Vm): void {
    this.scheduler.add(vm.id, vm.cpuShare);
  }

  /** Applies `vm`'s new CPU share from the next period on. */
  shareChanged(vm: Vm): void {
    this.scheduler.setShare(vm.id, vm.cpuShare);
  }

  /** Stops scheduling `vm` (stopped or destroyed); its memory returns with its reservation. */
  remove(vm: Vm): void {
    this.scheduler.remove(vm.id);
  }

  /** Stops scheduling. Legal once, when the hypervisor closes. */
  close(): void {
    clearInterval(this.timer);
  }

  /** One scheduler period: samples in, holds out. */
  private schedule(): void {
    // Booting VMs are left alone: a boot is short, and the guest needs it done.
    const live = this.vms().filter((vm) => vm.sample && (vm.state === "running" || vm.state === "paused"));
    if (live.length === 0) return;
    const held = this.scheduler.step(live.map((vm) => ({ id: vm.id, ...vm.sample!, runnable: vm.state === "running" })));
    for (const vm of live) vm.setHeld(vm.state === "running" && held.has(vm.id));
  }
}
