// Boots real guests for integration tests and makes sure none outlives its test file.
import { afterAll, expect } from "vitest";
import { HyperlabError } from "../../src/errors.ts";
import { SerialShell } from "../../src/guest/serial-shell.ts";
import { type BootReport, Machine, type MachineOptions } from "../../src/hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../../src/hardware/node.ts";

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

/** The HyperlabError a promise rejects with (fails the test if it resolves or throws something else). */
export async function errorOf(p: Promise<unknown>): Promise<HyperlabError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HyperlabError);
  return err as HyperlabError;
}
