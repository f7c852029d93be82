import os from "node:os";
import { describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { DEFAULT_NODE_FRACTION, MemoryBudget, defaultBudgetMiB } from "../../../src/hypervisor/budget.ts";

describe("MemoryBudget", () => {
  it("reserves memory until it is released", () => {
    const b = new MemoryBudget(512);
    const a = b.reserve("a", 200);
    b.reserve("b", 300);
    expect(b.usedMiB).toBe(500);
    expect(b.freeMiB).toBe(12);
    a.release();
    expect(b.freeMiB).toBe(212);
    a.release(); // twice is harmless
    expect(b.freeMiB).toBe(212);
    expect(b.reservations()).toEqual([{ owner: "b", mib: 300 }]);
  });

  it("refuses over-commit with RESOURCE_EXHAUSTED stating what was asked and what is free", () => {
    const b = new MemoryBudget(256);
    b.reserve("a", 200);
    let err: unknown;
    try {
      b.reserve("big", 100);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HyperlabError);
    expect((err as HyperlabError).code).toBe("RESOURCE_EXHAUSTED");
    expect((err as HyperlabError).message).toContain("asks for 100 MiB of memory but only 56 MiB of the host budget (256 MiB) is free");
    expect((err as HyperlabError).detail).toEqual({ askedMiB: 100, freeMiB: 56, totalMiB: 256 });
    expect(b.usedMiB).toBe(200);
  });

  it("accepts a reservation that fills the budget exactly", () => {
    const b = new MemoryBudget(256);
    b.reserve("a", 256);
    expect(b.freeMiB).toBe(0);
  });

  it("rejects nonsense amounts", () => {
    expect(() => new MemoryBudget(0)).toThrow(/positive number of MiB/);
    expect(() => new MemoryBudget(100).reserve("a", -1)).toThrow(/positive amount of memory/);
  });

  it("defaults to a documented fraction of the host's memory in Node", async () => {
    expect(await defaultBudgetMiB()).toBe(Math.floor((os.totalmem() / 2 ** 20) * DEFAULT_NODE_FRACTION));
  });
});
