import { describe, expect, it } from "vitest";
import { type CpuSample, CpuScheduler } from "../../../src/hypervisor/scheduler.ts";

/** A simulated VM: runs `rate` instructions per ms when it is busy and not held. */
interface SimVm {
  id: string;
  rate: number;
  busy: boolean;
  paused?: boolean;
  instructions: number;
  runMs: number;
  activeMs: number;
  held: boolean;
}

function vm(id: string, rate = 10_000, busy = true): SimVm {
  return { id, rate, busy, instructions: 0, runMs: 0, activeMs: 0, held: false };
}

/** Runs `ms` of simulated time in periods of `period` ms. */
function run(s: CpuScheduler, vms: SimVm[], ms: number, period = 20): void {
  for (let t = 0; t < ms; t += period) {
    for (const v of vms) {
      if (v.paused || v.held) continue;
      v.runMs += period;
      // An idle guest halts: a few instructions of timer work, the loop mostly asleep.
      v.activeMs += v.busy ? period : period * 0.02;
      v.instructions += v.busy ? v.rate * period : v.rate * period * 0.01;
    }
    const samples: CpuSample[] = vms.map((v) => ({ ...v, runnable: !v.paused }));
    const held = s.step(samples);
    for (const v of vms) v.held = held.has(v.id);
  }
}

function delta(vms: SimVm[], ms: number, s: CpuScheduler): number[] {
  const before = vms.map((v) => v.instructions);
  run(s, vms, ms);
  return vms.map((v, i) => v.instructions - before[i]!);
}

describe("CpuScheduler", () => {
  it("splits instructions 3:1 between two busy VMs with shares 3 and 1", () => {
    const s = new CpuScheduler();
    const vms = [vm("a"), vm("b")];
    s.add("a", 3);
    s.add("b", 1);
    const [a, b] = delta(vms, 10_000, s);
    expect(a! / b!).toBeGreaterThan(2.9);
    expect(a! / b!).toBeLessThan(3.1);
  });

  it("enforces shares by instructions even when the VMs emulate at different speeds", () => {
    const s = new CpuScheduler();
    const vms = [vm("fast", 20_000), vm("slow", 5_000)];
    s.add("fast", 1);
    s.add("slow", 1);
    const [fast, slow] = delta(vms, 10_000, s);
    expect(fast! / slow!).toBeGreaterThan(0.95);
    expect(fast! / slow!).toBeLessThan(1.05);
  });

  it("never holds a busy VM back for an idle one (work conserving)", () => {
    const s = new CpuScheduler();
    const vms = [vm("busy"), vm("idle", 10_000, false)];
    s.add("busy", 1);
    s.add("idle", 10);
    run(s, vms, 5_000);
    expect(vms[0]!.runMs).toBe(5_000);
    expect(s.accounts().find((a) => a.id === "idle")).toMatchObject({ busy: false, held: false });
  });

  it("does not let an idle VM bank credit: when it wakes up it gets its share from then on", () => {
    const s = new CpuScheduler();
    const vms = [vm("a"), vm("b", 10_000, false)];
    s.add("a", 1);
    s.add("b", 1);
    run(s, vms, 5_000);
    vms[1]!.busy = true;
    const [a, b] = delta(vms, 2_000, s);
    // With banked credit b would run alone for seconds; without, they split at once.
    expect(a! / b!).toBeGreaterThan(0.9);
    expect(a! / b!).toBeLessThan(1.1);
  });

  it("leaves a VM paused by its user out of the accounting", () => {
    const s = new CpuScheduler();
    const vms = [vm("a"), vm("b")];
    s.add("a", 1);
    s.add("b", 1);
    vms[1]!.paused = true;
    run(s, vms, 2_000);
    expect(vms[0]!.runMs).toBe(2_000);
    vms[1]!.paused = false;
    const [a, b] = delta(vms, 4_000, s);
    expect(a! / b!).toBeGreaterThan(0.9);
    expect(a! / b!).toBeLessThan(1.1);
  });

  it("applies a share change live", () => {
    const s = new CpuScheduler();
    const vms = [vm("a"), vm("b")];
    s.add("a", 1);
    s.add("b", 1);
    const [a1, b1] = delta(vms, 4_000, s);
    expect(a1! / b1!).toBeCloseTo(1, 1);
    s.setShare("a", 4);
    const [a2, b2] = delta(vms, 8_000, s);
    expect(a2! / b2!).toBeGreaterThan(3.8);
    expect(a2! / b2!).toBeLessThan(4.2);
  });

  it("shares among many VMs in proportion to their shares", () => {
    const s = new CpuScheduler();
    const shares = [1, 2, 3, 4];
    const vms = shares.map((_, i) => vm(`v${i}`));
    shares.forEach((share, i) => s.add(`v${i}`, share));
    const d = delta(vms, 20_000, s);
    for (let i = 1; i < shares.length; i++) {
      expect(d[i]! / d[0]! / shares[i]!).toBeGreaterThan(0.95);
      expect(d[i]! / d[0]! / shares[i]!).toBeLessThan(1.05);
    }
  });
});
