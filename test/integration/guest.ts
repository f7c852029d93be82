// Boots real guests for integration tests and makes sure none outlives its test file.
import { afterAll, expect } from "vitest";
import { HyperlabError } from "../../src/errors.ts";
import { SerialShell } from "../../src/guest/serial-shell.ts";
import { type BootReport, Machine, type MachineOptions } from "../../src/hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../../src/hardware/node.ts";
import type { AgentClient } from "../../src/guest/agent.ts";
import { startGuest } from "../../src/hypervisor/local-guest.ts";

const running = new Set<Machine>();
afterAll(async () => {
  await Promise.all([...running].map((m) => m.stop()));
});

/** A machine on the default image, not yet booted; stopped after the test file. */
export async function newMachine(opts: Partial<MachineOptions> = {}): Promise<Machine> {
  const machine = new Machine({ image: await loadNodeImage(), wasm: v86Wasm(), ...opts });
  running.add(machine);
  return machine;
}

/** Boots the default guest and returns it with a console shell. */
export async function bootGuest(opts: Partial<MachineOptions> = {}): Promise<{ machine: Machine; shell: SerialShell; report: BootReport }> {
  const machine = await newMachine(opts);
  const report = await machine.boot({ timeoutMs: 60_000 });
  return { machine, shell: new SerialShell(machine), report };
}

/**
 * The default guest as users get it (restored from the boot snapshot, the
 * agent connected), with a console shell; stopped after the test file.
 * Tests about booting itself use bootGuest.
 */
export async function restoredGuest(): Promise<{ machine: Machine; agent: AgentClient; shell: SerialShell }> {
  const guest = await startGuest({ timeoutMs: 60_000 });
  running.add(guest.machine);
  return { machine: guest.machine, agent: guest.agent, shell: new SerialShell(guest.machine) };
}

/** The HyperlabError a promise rejects with (fails the test if it resolves or throws something else). */
export async function errorOf(p: Promise<unknown>): Promise<HyperlabError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HyperlabError);
  return err as HyperlabError;
}
