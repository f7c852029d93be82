// One running guest with its agent, in this Node process (no worker, no
// hypervisor): what the CLI's single-guest verbs and tests start from. By
// default it is restored from the boot snapshot (instant start); a cold boot
// is asked for, or implied by options the snapshot cannot have.
import { AgentClient } from "../guest/agent.ts";
import type { Firmware } from "../hardware/machine.ts";
import { Machine, checkMemoryMiB } from "../hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../hardware/node.ts";
import { nodeBootSnapshot } from "./boot-snapshot-node.ts";
import { restoreSnapshot } from "./snapshot.ts";

/** A running guest and the connection to its agent. */
export interface Guest {
  machine: Machine;
  agent: AgentClient;
  /** how the guest started and how long until its agent answered */
  started: { from: "snapshot" | "boot"; wallMs: number };
  /** powers the guest off */
  stop(): Promise<void>;
}

/** How to start a guest. */
export interface StartGuestOptions {
  memoryMiB?: number;
  /** seabios implies a cold boot (the boot snapshot is of the direct-boot guest) */
  firmware?: Firmware;
  /** extra kernel arguments; they imply a cold boot (the boot snapshot has the default ones) */
  cmdline?: string;
  timeoutMs?: number;
  imageDir?: string;
  /** the guest profile (default "default"; docs/profiles.md) */
  profile?: string;
  /** boot the kernel instead of restoring the boot snapshot */
  cold?: boolean;
}

/** True when these options start from the boot snapshot rather than a cold boot. */
export function startsFromSnapshot(opts: Pick<StartGuestOptions, "cold" | "firmware" | "cmdline">): boolean {
  return !opts.cold && (opts.firmware ?? "direct") === "direct" && !opts.cmdline;
}

/**
 * Starts the default guest (or a profile's) and connects to its agent: restored from the boot
 * snapshot (built and cached on first use), with its clock set to the host's;
 * or booted cold when `cold` is set or `firmware`/`cmdline` ask for something
 * the snapshot does not have.
 */
export async function startGuest(opts: StartGuestOptions = {}): Promise<Guest> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const image = await loadNodeImage(opts.imageDir, opts.profile);
  // A profile's minimum RAM is refused before its boot snapshot is looked for.
  if (opts.memoryMiB !== undefined) checkMemoryMiB(image, opts.memoryMiB, opts.firmware);
  // Compiling v86 happens once per process; like Machine.boot, the start time leaves it out.
  await v86Wasm();
  const t0 = performance.now();
  if (startsFromSnapshot(opts)) {
    // Building the snapshot (first use only) is a cold boot plus preparation: give it room.
    const snapshot = await nodeBootSnapshot(image, { memoryMiB: opts.memoryMiB, timeoutMs: Math.max(timeoutMs, 60_000) });
    const { machine } = await restoreSnapshot(snapshot, { image, wasm: v86Wasm(), timeoutMs });
    try {
      const agent = await AgentClient.attach(machine, { timeoutMs, agent: snapshot.header.agent });
      // The guest's clock resumed where the snapshot stopped it.
      await agent.setClock();
      return { machine, agent, started: { from: "snapshot", wallMs: performance.now() - t0 }, stop: () => machine.stop() };
    } catch (err) {
      await machine.stop();
      throw err;
    }
  }
  const machine = new Machine({ image, wasm: v86Wasm(), memoryMiB: opts.memoryMiB, firmware: opts.firmware, cmdline: opts.cmdline });
  try {
    await machine.boot({ timeoutMs });
    const agent = await AgentClient.connect(machine, { timeoutMs });
    return { machine, agent, started: { from: "boot", wallMs: performance.now() - t0 }, stop: () => machine.stop() };
  } catch (err) {
    await machine.stop();
    throw err;
  }
}
