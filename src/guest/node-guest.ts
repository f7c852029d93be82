// A booted guest with its agent, in Node: what the CLI and tests start from.
import type { Firmware } from "../hardware/machine.ts";
import { Machine } from "../hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../hardware/node.ts";
import { AgentClient } from "./agent.ts";

/** A running guest and the connection to its agent. */
export interface Guest {
  machine: Machine;
  agent: AgentClient;
  /** powers the guest off */
  stop(): Promise<void>;
}

/** Boots the default guest image and connects to its agent. */
export async function startGuest(
  opts: { memoryMiB?: number; firmware?: Firmware; cmdline?: string; timeoutMs?: number; imageDir?: string } = {},
): Promise<Guest> {
  const machine = new Machine({
    image: await loadNodeImage(opts.imageDir),
    wasm: v86Wasm(),
    memoryMiB: opts.memoryMiB,
    firmware: opts.firmware,
    cmdline: opts.cmdline,
  });
  try {
    await machine.boot({ timeoutMs: opts.timeoutMs ?? 30_000 });
    const agent = await AgentClient.connect(machine, { timeoutMs: opts.timeoutMs ?? 30_000 });
    return { machine, agent, stop: () => machine.stop() };
  } catch (err) {
    await machine.stop();
    throw err;
  }
}
