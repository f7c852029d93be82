// A lab for a test file: one hypervisor whose warm pool keeps VMs restored
// from the boot snapshot and paused, so that each test takes a fresh VM at
// once. The VMs a test took are destroyed when it ends, whatever happened
// (passed, failed, timed out, threw), and the hypervisor with every worker
// thread when the file ends. Any test runner: the lab hooks itself into the
// runner's afterEach and afterAll (node:test's after), given or found as
// globals, and works without them through withVm, `await using` and close().
import type { ContainerEngine } from "../containers/engine.ts";
import { nodeContainers } from "../containers/node-containers.ts";
import type { VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { TestVm } from "./test-vm.ts";

/** A test runner's hook: registers `fn` to run after each test or after all (vitest, jest, mocha, node:test). */
export type TestHook = (fn: () => Promise<void>) => unknown;

/** How a lab makes its VMs, and the runner hooks it cleans up in. */
export interface TestLabOptions {
  /** VMs kept restored and paused ahead, so a test's VM is handed over at once (default 2; 0: each VM restored when asked) */
  warm?: number;
  /** guest RAM of each VM in MiB (default: the image's default, 128) */
  memoryMiB?: number;
  /** MiB the lab's VMs may reserve together, warm ones included (default: a fraction of the host's memory) */
  memoryBudgetMiB?: number;
  /** how long a VM may take to start (default 60 s; the first one of a fresh install also builds the boot snapshot) */
  timeoutMs?: number;
  /** the runner's afterEach: the VMs a test took are destroyed after it (default: a global afterEach if there is one; false: none) */
  afterEach?: TestHook | false;
  /** the runner's afterAll, or node:test's after: the lab is closed after the file (default: a global afterAll or after; false: none) */
  afterAll?: TestHook | false;
}

/** The runner hook named `name` if the runner put it on globalThis (jest, mocha, vitest with `globals: true`). */
function globalHook(name: string): TestHook | undefined {
  const hook = (globalThis as Record<string, unknown>)[name];
  return typeof hook === "function" ? (hook as TestHook) : undefined;
}

/**
 * Fresh VMs for tests. Build with `testLab()`, at the top of a test file or
 * a describe block (its hooks then apply there). Every method is legal
 * until close(); after it, vm() fails with VM_INVALID_STATE.
 */
export class TestLab {
  private started: Promise<{ hypervisor: Hypervisor; containers: VmContainers }> | undefined;
  /** VMs handed out and not destroyed yet */
  private readonly live = new Set<TestVm>();
  /** bumped by every clean-up: a VM asked for before it and ready after it belongs to a test that has ended */
  private epoch = 0;
  private closed = false;

  constructor(private readonly opts: TestLabOptions = {}) {
    const afterEach = opts.afterEach ?? globalHook("afterEach");
    const afterAll = opts.afterAll ?? globalHook("afterAll") ?? globalHook("after");
    if (afterEach) afterEach(() => this.cleanup());
    if (afterAll) afterAll(() => this.close());
  }

  /**
   * A fresh running VM for the calling test: from the warm pool when one
   * waits there, else restored from the boot snapshot (the first VM of a
   * fresh install waits for the snapshot to be built by a cold boot, about
   * 10 s). It is destroyed by the next clean-up (after the test), by
   * `vm.destroy()` or when the lab closes. A VM that becomes ready only after
   * its test's clean-up ran is destroyed at once and this fails with
   * VM_INVALID_STATE.
   */
  async vm(): Promise<TestVm> {
    const epoch = this.epoch;
    const { hypervisor, containers } = await this.start();
    const vm = await hypervisor.createVm({ memoryMiB: this.opts.memoryMiB, timeoutMs: this.opts.timeoutMs });
    if (epoch !== this.epoch || this.closed) {
      await vm.destroy();
      throw new HyperlabError("VM_INVALID_STATE", `VM ${vm.name} was ready only after its test had ended (the lab cleaned up meanwhile): it was destroyed`);
    }
    let engine: ContainerEngine;
    try {
      engine = containers.engine(vm.name);
    } catch (err) {
      await vm.destroy();
      throw err;
    }
    const test = new TestVm(vm, engine, (v) => this.live.delete(v));
    this.live.add(test);
    return test;
  }

  /** Runs `fn` with a fresh VM and destroys the VM when `fn` ends, whatever happens; resolves or rejects as `fn` does. */
  async withVm<T>(fn: (vm: TestVm) => Promise<T> | T): Promise<T> {
    const vm = await this.vm();
    try {
      return await fn(vm);
    } finally {
      await vm.destroy();
    }
  }

  /** The lab's hypervisor (made on first use), for what the helpers do not cover: more VMs, snapshots, stats. */
  async hypervisor(): Promise<Hypervisor> {
    return (await this.start()).hypervisor;
  }

  /**
   * Makes the hypervisor and waits until its warm pool is full: call it in
   * beforeAll (with a long timeout) so that the first test does not pay for
   * the start, nor for the boot snapshot's first build.
   */
  async ready(): Promise<void> {
    await (await this.start()).hypervisor.ready();
  }

  /**
   * Destroys every VM handed out so far, and any still starting for a test
   * that has ended. Run after each test (the lab registers it with the
   * runner's afterEach); legal any time.
   */
  async cleanup(): Promise<void> {
    this.epoch++;
    const vms = [...this.live];
    this.live.clear();
    await Promise.all(vms.map((vm) => vm.destroy()));
  }

  /** Destroys every VM and ends the hypervisor, its warm pool and worker threads. Legal any time; twice is a no-op. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cleanup();
    const started = await this.started?.catch(() => undefined);
    started?.containers.close();
    await started?.hypervisor.close();
  }

  /** `await using lab = testLab()`: closed when the block ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** The hypervisor and its container engines, made once. */
  private start(): Promise<{ hypervisor: Hypervisor; containers: VmContainers }> {
    if (this.closed) return Promise.reject(new HyperlabError("VM_INVALID_STATE", "cannot make a VM: the test lab is closed"));
    this.started ??= Hypervisor.create({
      warmPool: this.opts.warm ?? 2,
      warmPoolMemoryMiB: this.opts.memoryMiB,
      memoryBudgetMiB: this.opts.memoryBudgetMiB,
    }).then((hypervisor) => ({ hypervisor, containers: nodeContainers(hypervisor) }));
    return this.started;
  }
}

/**
 * A lab of fresh VMs for the tests of one file (see TestLab). Give it the
 * runner's hooks, e.g. `testLab({ afterEach, afterAll })` with vitest or
 * `testLab({ afterEach, afterAll: after })` with node:test; jest's and
 * mocha's globals are found without.
 */
export function testLab(opts: TestLabOptions = {}): TestLab {
  return new TestLab(opts);
}
