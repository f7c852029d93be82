// This process's terminal, connected to a process in the guest: stdin, raw
// mode and size, for run -i/-t and exec -i/-t (directly or through the daemon).

/** Output of a process in the guest to this process's stdout (stream 1) or stderr (2). */
export function writeOutput(stream: 1 | 2, data: Uint8Array): void {
  (stream === 2 ? process.stderr : process.stdout).write(data);
}

/** The size of this process's terminal (24×80 when it has none). */
export function terminalSize(): { rows: number; cols: number } {
  return { rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 };
}

/**
 * Connects this terminal to a container process until it exits: stdin with
 * -i (raw with -t), and with -t the container's terminal follows this one's size.
 */
export async function attachTerminal(
  target: { write(d: Uint8Array): void; closeStdin(): void; resize(rows: number, cols: number): void; exited: Promise<number> },
  flags: { interactive?: boolean; tty?: unknown },
): Promise<number> {
  const stdin = process.stdin;
  if (flags.tty && stdin.isTTY) stdin.setRawMode(true);
  const onResize = () => target.resize(terminalSize().rows, terminalSize().cols);
  if (flags.tty) process.stdout.on("resize", onResize);
  if (flags.interactive) {
    stdin.on("data", (d: Buffer) => target.write(new Uint8Array(d)));
    stdin.on("end", () => target.closeStdin());
  }
  try {
    return await target.exited;
  } finally {
    process.stdout.off("resize", onResize);
    if (flags.tty && stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
  }
}
