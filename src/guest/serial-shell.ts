// Runs commands through the guest's console shell (ttyS0) and reads back their
// output and exit status. This needs nothing in the guest but a shell; the
// agent (its own channel, separate streams) is the richer path.
import { bytesToBase64 } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import type { Machine } from "../hardware/machine.ts";

/** What a command run on the console printed and how it ended. */
export interface ConsoleExecResult {
  exitCode: number;
  /** stdout and stderr interleaved as the console showed them, exactly (trailing newline included), with \n line ends */
  output: string;
}

/** Longest command accepted: the tty's line buffer holds 4096 bytes, base64 grows text by a third. */
const MAX_COMMAND_BYTES = 2800;

/**
 * Runs shell commands on a machine's serial console, one at a time. Each
 * command is sent base64-encoded between two markers the shell prints, so
 * neither the typed echo nor the command's own output can be mistaken for
 * the markers.
 */
export class SerialShell {
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly machine: Machine) {}

  /** Runs `command` with `sh -c` semantics. Legal while the machine is running; rejects with TIMEOUT naming the command. */
  exec(command: string, opts: { timeoutMs?: number } = {}): Promise<ConsoleExecResult> {
    const run = this.queue.then(() => this.run(command, opts.timeoutMs ?? 30_000));
    this.queue = run.catch(() => {});
    return run;
  }

  private run(command: string, timeoutMs: number): Promise<ConsoleExecResult> {
    const bytes = new TextEncoder().encode(command);
    if (bytes.length > MAX_COMMAND_BYTES) {
      return Promise.reject(
        new HyperlabError("INVALID_ARGUMENT", `command is ${bytes.length} bytes; the console takes at most ${MAX_COMMAND_BYTES}. Put it in a script file instead.`),
      );
    }
    const id = this.nextId++;
    const begin = `__HL_B${id}__`;
    const end = new RegExp(`__HL_E${id}_(\\d+)__`);
    const b64 = bytesToBase64(bytes);
    // The quotes split the markers in the typed line, so its echo never matches.
    const line = `echo __HL_"B${id}"__; printf %s '${b64}' | base64 -d | sh; printf '\\n__HL_E%s_%d__\\n' ${id} $?\n`;

    return new Promise<ConsoleExecResult>((resolve, reject) => {
      let buf = "";
      let bodyStart = -1;
      let scanned = 0;
      const finish = (err: Error | undefined, result?: ConsoleExecResult) => {
        clearTimeout(timer);
        unsubscribe();
        offStop();
        if (err) reject(err);
        else resolve(result!);
      };
      const onData = (chunk: string) => {
        buf += chunk;
        if (bodyStart < 0) {
          const at = buf.indexOf(begin + "\r\n", Math.max(0, scanned - begin.length - 2));
          scanned = buf.length;
          if (at < 0) return;
          bodyStart = at + begin.length + 2;
          scanned = bodyStart;
        }
        const tail = buf.slice(Math.max(bodyStart, scanned - 40));
        scanned = buf.length;
        const m = end.exec(tail);
        if (!m) return;
        const endAt = buf.length - tail.length + m.index;
        const output = buf.slice(bodyStart, endAt).replace(/\r\n/g, "\n").replace(/\n$/, "");
        finish(undefined, { exitCode: Number(m[1]), output });
      };
      const unsubscribe = this.machine.onConsole(onData);
      const offStop = this.machine.onStopped((reason) => finish(reason));
      const timer = setTimeout(
        () =>
          finish(
            new HyperlabError("TIMEOUT", `command did not finish within ${timeoutMs} ms on the guest console: ${command}`, {
              waitedFor: command,
            }),
          ),
        timeoutMs,
      );
      try {
        this.machine.write(line);
      } catch (err) {
        finish(err as Error);
      }
    });
  }
}
