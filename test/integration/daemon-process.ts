// The `hyperlab` command as a user runs it, and a daemon process for it to
// talk to: what the CLI tests that need a daemon share.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));

/** One `hyperlab` run: exit status and output. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `hyperlab ARGS` against the daemon on `socket` (unless `env` says otherwise), with a 2-minute limit. */
export function hyperlab(socket: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, HYPERLAB_SOCKET: socket, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `hyperlab ARGS` with `input` on its stdin (then end of input). */
export function hyperlabWithInput(socket: string, args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, HYPERLAB_SOCKET: socket } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** A `hyperlab daemon` process. */
export interface DaemonProcess {
  /** what the daemon printed on stderr so far */
  readonly stderr: string;
  /** SIGTERM (it saves its VMs), then waits for it to exit */
  stop(): Promise<void>;
  /** SIGKILL (nothing saved, as in a crash), then waits for it to exit */
  kill(): Promise<void>;
}

/** Starts `hyperlab daemon --socket SOCKET ...extraArgs` and waits until it says it is ready. */
export async function startDaemon(socket: string, extraArgs: string[] = [], timeoutMs = 60_000): Promise<DaemonProcess> {
  // A data root of its own (unless given): what a test does to images stays out of the user's and other tests'.
  const dataRoot = extraArgs.includes("--data-root") ? undefined : await mkdtemp(join(tmpdir(), "hyperlab-data-"));
  const args = dataRoot ? [...extraArgs, "--data-root", dataRoot] : extraArgs;
  const child: ChildProcess = spawn(process.execPath, [bin, "daemon", "--socket", socket, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const end = Date.now() + timeoutMs;
  while (!stderr.includes("daemon ready")) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`the daemon did not start within ${timeoutMs / 1000} s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    get stderr() {
      return stderr;
    },
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
      if (dataRoot) await rm(dataRoot, { recursive: true, force: true });
    },
    kill: async () => {
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r)));
      if (dataRoot) await rm(dataRoot, { recursive: true, force: true });
    },
  };
}
