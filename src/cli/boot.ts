// `hyperlab boot`: start the default guest (restored from the boot snapshot,
// or booted cold); attach the terminal, or run one command.
import { HyperlabError } from "../errors.ts";
import { startGuest, startsFromSnapshot } from "../hypervisor/local-guest.ts";
import { SerialShell } from "../guest/serial-shell.ts";
import { type Firmware, Machine } from "../hardware/machine.ts";
import { loadNodeImage, v86Wasm } from "../hardware/node.ts";
import { parseVerb } from "./args.ts";
import type { Verb } from "./verb.ts";

const USAGE = "hyperlab boot [OPTIONS]";
const HELP = `Usage: ${USAGE}

Starts the default guest (Linux on the v86 PC), or a guest profile, and
attaches this terminal to its serial console. The guest is restored from the boot snapshot (a guest
saved just after it booted; built and cached on first use), unless --cold.
Press Ctrl-] to detach: that powers the machine off. Typing 'poweroff' in the
guest does the same.

Options:
  --exec CMD          run CMD in the guest's shell, print its output and exit
                      with its exit status (the console is not attached)
  --memory MIB        guest RAM in MiB (default 128)
  --firmware NAME     direct (default: hyperlab's loader, no BIOS) or seabios
  --cmdline ARGS      extra kernel arguments (e.g. "init=/bin/sh"); boots cold
  --cold              boot the kernel instead of restoring the boot snapshot
                      (implied by --cmdline and --firmware seabios)
  --timeout SECONDS   give up if the guest is not ready in time (default 30)
  --image DIR         guest image folder (default: this checkout's guest-images/dist)
  --profile NAME      guest profile: default, or one the image lists (lxc:
                      LXC 5.0 beside crun and runc); see docs/profiles.md
  -h, --help          show this help
`;

/** The byte Ctrl-] sends: detach (like telnet). */
const DETACH = 0x1d;

function positiveNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new HyperlabError("INVALID_ARGUMENT", `--${name} must be a positive number, got '${value}'`);
  }
  return n;
}

/** Runs `hyperlab boot` with its arguments; resolves to the process exit status. */
async function bootCommand(args: string[]): Promise<number> {
  const parsed = parseVerb("boot", USAGE, args, {
    options: {
      exec: { type: "string" },
      memory: { type: "string" },
      firmware: { type: "string" },
      cmdline: { type: "string" },
      timeout: { type: "string" },
      image: { type: "string" },
      profile: { type: "string" },
      cold: { type: "boolean" },
    },
    positionals: { max: 0 },
  });
  if (parsed === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const opts = parsed.values;
  const firmware = (opts.firmware ?? "direct") as Firmware;
  if (firmware !== "direct" && firmware !== "seabios") {
    throw new HyperlabError("INVALID_ARGUMENT", `--firmware must be 'direct' or 'seabios', got '${opts.firmware}'`);
  }
  const timeoutMs = positiveNumber("timeout", opts.timeout, 30) * 1000;
  const memoryMiB = opts.memory === undefined ? undefined : positiveNumber("memory", opts.memory, 128);

  if (startsFromSnapshot({ cold: opts.cold, firmware, cmdline: opts.cmdline })) {
    const guest = await startGuest({ memoryMiB, timeoutMs, imageDir: opts.image, profile: opts.profile });
    const { machine } = guest;
    guest.agent.close();
    if (opts.exec !== undefined) {
      try {
        const result = await new SerialShell(machine).exec(opts.exec, { timeoutMs: 10 * 60_000 });
        process.stdout.write(result.output);
        return result.exitCode;
      } finally {
        await machine.stop();
      }
    }
    const { release, profile } = await loadNodeImage(opts.image, opts.profile);
    return attach(machine, `Linux ${release}${profile ? ` (${profile} profile)` : ""} restored from the boot snapshot`, async () => {
      // The restored shell printed its prompt before the snapshot: ask for a fresh one.
      machine.write("\r");
      return `guest ready in ${(guest.started.wallMs / 1000).toFixed(2)} s (restored from the boot snapshot)`;
    });
  }

  const wasm = v86Wasm();
  const image = await loadNodeImage(opts.image, opts.profile);
  const machine = new Machine({ image, wasm, firmware, memoryMiB, cmdline: opts.cmdline });

  if (opts.exec !== undefined) {
    try {
      await machine.boot({ timeoutMs });
      const result = await new SerialShell(machine).exec(opts.exec, { timeoutMs: 10 * 60_000 });
      process.stdout.write(result.output);
      return result.exitCode;
    } finally {
      await machine.stop();
    }
  }
  return attach(machine, `booting Linux ${image.release}${image.profile ? ` (${image.profile} profile)` : ""}`, async () => {
    const report = await machine.boot({ timeoutMs });
    return `guest ready in ${(report.wallMs / 1000).toFixed(2)} s`;
  });
}

/**
 * Connects this terminal to the machine's console until detach or power-off.
 * `start` brings the guest up (boots it, or readies a restored one) and says how long that took.
 */
async function attach(machine: Machine, starting: string, start: () => Promise<string>): Promise<number> {
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  process.stderr.write(`hyperlab: ${starting} (${machine.memoryMiB} MiB); press Ctrl-] to detach and power off\r\n`);
  machine.onConsole((chunk) => process.stdout.write(chunk));

  const stopped = new Promise<number>((resolve) => {
    machine.onStopped((reason) => {
      if (reason.code === "GUEST_PANIC") process.stderr.write(`\r\nhyperlab: ${reason.message}\r\n`);
      resolve(reason.code === "GUEST_STOPPED" ? 0 : 1);
    });
  });
  const onInput = (data: Buffer) => {
    const at = data.indexOf(DETACH);
    const keep = at >= 0 ? data.subarray(0, at) : data;
    if (keep.length && machine.state !== "stopped") machine.write(new Uint8Array(keep));
    if (at >= 0) {
      process.stderr.write("\r\nhyperlab: detached; powering off\r\n");
      void machine.stop();
    }
  };
  if (tty) stdin.setRawMode(true);
  stdin.on("data", onInput);
  stdin.on("end", () => void machine.stop());
  try {
    const ready = await start();
    process.stderr.write(`hyperlab: ${ready}\r\n`);
    return await stopped;
  } finally {
    stdin.off("data", onInput);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
    await machine.stop();
  }
}

export const bootVerb: Verb = {
  name: "boot",
  summary: "boot the default guest (or --profile P) and attach this terminal to its console",
  run: bootCommand,
};
