import { describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { VM_STATES, type VmState, assertState, assertTransition, canTransition } from "../../../src/hypervisor/vm-state.ts";

function thrown(fn: () => void): HyperlabError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HyperlabError);
    return err as HyperlabError;
  }
  throw new Error("expected a throw");
}

describe("VM lifecycle", () => {
  it("allows created → booting → running ⇄ paused → stopped", () => {
    const path: VmState[] = ["created", "booting", "running", "paused", "running", "paused", "stopped"];
    for (let i = 1; i < path.length; i++) expect(() => assertTransition(path[i - 1]!, path[i]!)).not.toThrow();
  });

  it("allows destroyed from every state but destroyed itself", () => {
    for (const s of VM_STATES) expect(canTransition(s, "destroyed")).toBe(s !== "destroyed");
  });

  it("allows stopping from every live state", () => {
    for (const s of ["created", "booting", "running", "paused"] as const) expect(canTransition(s, "stopped")).toBe(true);
  });

  it("refuses every move out of stopped except destroy", () => {
    for (const s of VM_STATES) expect(canTransition("stopped", s)).toBe(s === "destroyed");
  });

  it("rejects pause when the VM is already paused, naming the current state", () => {
    const err = thrown(() => assertTransition("paused", "paused", { action: "pause", vm: "web" }));
    expect(err.code).toBe("VM_INVALID_STATE");
    expect(err.message).toBe("cannot pause: VM web is paused (pause is legal while running)");
    expect(err.detail).toMatchObject({ state: "paused", to: "paused" });
  });

  it("rejects resume of a running VM and start of a stopped one", () => {
    expect(thrown(() => assertTransition("running", "running", { action: "resume" })).message).toBe(
      "cannot resume: the VM is running (resume is legal while paused)",
    );
    expect(thrown(() => assertTransition("stopped", "booting", { action: "start", vm: "a" })).message).toBe(
      "cannot start: VM a is stopped (start is legal while created)",
    );
  });

  it("rejects an action outside its legal states with the list of them", () => {
    const err = thrown(() => assertState("paused", ["running"], { action: "exec", vm: "db" }));
    expect(err.code).toBe("VM_INVALID_STATE");
    expect(err.message).toBe("cannot exec: VM db is paused (exec is legal while running)");
    expect(() => assertState("running", ["running", "paused"], { action: "snapshot" })).not.toThrow();
  });
});
