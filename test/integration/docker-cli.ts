// The real docker CLI against a hyperlab daemon: what the Docker API tests
// share. The daemon runs in a private folder (its socket is refused in one
// others can enter); DOCKER_HOST points the CLI at it.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DaemonProcess, startDaemon } from "./daemon-process.ts";

/** The docker CLI the tests drive: the one on these machines (client 28), else any on PATH. */
export const DOCKER_CLI = process.env.HYPERLAB_DOCKER_CLI ?? (existsSync("/usr/local/bin/docker") ? "/usr/local/bin/docker" : "docker");

/** One docker CLI run: exit status and output. */
export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A hyperlab daemon for docker CLI tests, and a runner for the CLI pointed at it. */
export interface DockerLab {
  socket: string;
  dir: string;
  daemon: DaemonProcess;
  /** runs `docker ARGS` (stdin: `input`, then end of input), with a 2-minute limit */
  docker(args: string[], opts?: { input?: string; env?: Record<string, string> }): Promise<DockerResult>;
  /** stops the daemon and removes its folder */
  close(): Promise<void>;
}

/** Starts a daemon in a fresh private folder (extra daemon flags in `args`). */
export async function dockerLab(args: string[] = ["--warm-pool", "0"]): Promise<DockerLab> {
  const dir = await mkdtemp(join(tmpdir(), "hyperlab-docker-"));
  const socket = join(dir, "hyperlab.sock");
  // Its own data root: images tagged, loaded or removed by one test's daemon are not another's.
  const daemon = await startDaemon(socket, args.includes("--data-root") ? args : [...args, "--data-root", join(dir, "data")]);
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "docker-config"), DOCKER_CLI_HINTS: "false" };
  return {
    socket,
    dir,
    daemon,
    docker: (argv, opts = {}) =>
      new Promise((resolve) => {
        if (opts.input === undefined) {
          execFile(DOCKER_CLI, argv, { env: { ...env, ...opts.env }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
            resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
          });
          return;
        }
        const child = spawn(DOCKER_CLI, argv, { env: { ...env, ...opts.env } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? 1, stdout, stderr });
        });
        child.stdin.end(opts.input);
      }),
    close: async () => {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
