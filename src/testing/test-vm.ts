// One test's VM: a hypervisor VM with the calls a test makes, each returning
// what a test asserts on (status, stdout, stderr) instead of throwing on a
// non-zero exit. Commands given as one string run through the guest's
// /bin/sh -c, as a line typed at its prompt would.
import type { ContainerEngine, CreateOptions } from "../containers/engine.ts";
import { HyperlabError } from "../errors.ts";
import type { Vm } from "../hypervisor/vm.ts";

/** How a command ended and what it printed (named as `child_process.spawnSync` names them). */
export interface CommandResult {
  /** its exit status (128 + the signal's number when a signal ended it, as a shell and Docker report it) */
  status: number;
  stdout: string;
  stderr: string;
}

/** How `exec` runs a command in the guest. */
export interface TestExecOptions {
  /** `KEY=VALUE` entries or an object (default: the guest agent's environment) */
  env?: readonly string[] | Readonly<Record<string, string>>;
  /** working directory (default /) */
  cwd?: string;
  /** written to the command's standard input, which is then closed */
  stdin?: string | Uint8Array;
  /** how long it may run before it is killed and the call fails with TIMEOUT (default 60 s) */
  timeoutMs?: number;
}

/** How `run` runs a container: the engine's options (see CreateOptions), and a time limit. */
export interface TestRunOptions extends Omit<CreateOptions, "image" | "command" | "tty" | "interactive" | "autoRemove"> {
  /** written to the container's standard input, which is then closed */
  stdin?: string | Uint8Array;
  /** keep the container once it has exited, for `containers.inspect` or logs (default false: removed) */
  keep?: boolean;
  /** how long it may run before it is killed and the call fails with TIMEOUT (default 60 s) */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const SIGNAL_STATUS = 128;

/** argv of a command given as a string (through the shell) or as argv. */
function argvOf(command: string | readonly string[]): string[] {
  return typeof command === "string" ? ["/bin/sh", "-c", command] : [...command];
}

/**
 * A fresh VM for one test, from `TestLab.vm()`. Every call is legal until
 * the VM is destroyed (by `destroy()`, the lab's clean-up after the test, or
 * the lab closing); after that each fails with VM_INVALID_STATE.
 */
export class TestVm {
  constructor(
    /** the VM itself, for anything the helpers do not cover (snapshots, forks, spawn) */
    readonly vm: Vm,
    /** the VM's container engine (create, exec, logs, inspect, networks, …) */
    readonly containers: ContainerEngine,
    private readonly onDestroy: (vm: TestVm) => void,
  ) {}

  /** The VM's name in its hypervisor. */
  get name(): string {
    return this.vm.name;
  }

  /**
   * Runs `command` in the guest (a string through /bin/sh -c, or argv) and
   * resolves with its status and output once it ends, whatever its status.
   */
  async exec(command: string | readonly string[], opts: TestExecOptions = {}): Promise<CommandResult> {
    const r = await this.vm.exec(argvOf(command), { env: opts.env, cwd: opts.cwd, stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS });
    return { status: r.signal ? SIGNAL_STATUS + r.signal : r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Runs a container of `image` (its own command unless `command` is given: a
   * string through the container's /bin/sh -c, or argv) to its end and
   * resolves with its status and output, as `docker run --rm` would show
   * them. The container is removed unless `keep`. Fails with IMAGE_NOT_FOUND
   * and the other errors of the engine's run, and with TIMEOUT (the
   * container killed) after `timeoutMs`.
   */
  async run(image: string, command?: string | readonly string[], opts: TestRunOptions = {}): Promise<CommandResult & { id: string }> {
    const { stdin, keep, timeoutMs = DEFAULT_TIMEOUT_MS, ...create } = opts;
    const { container, attachment } = await this.containers.run(
      { ...create, image, command: command === undefined ? undefined : argvOf(command), interactive: stdin !== undefined, autoRemove: !keep },
      { attached: true },
    );
    const out = { stdout: "", stderr: "" };
    const decoders = [new TextDecoder(), new TextDecoder()] as const;
    attachment.onOutput((stream, data) => {
      if (stream === 1) out.stdout += decoders[0].decode(data, { stream: true });
      else out.stderr += decoders[1].decode(data, { stream: true });
    });
    if (stdin !== undefined) {
      attachment.write(stdin);
      attachment.closeStdin();
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.containers.kill(container.id).catch(() => {});
        reject(new HyperlabError("TIMEOUT", `container ${container.name} (${image}) did not end within ${timeoutMs} ms; it was killed`, { id: container.id }));
      }, timeoutMs);
    });
    try {
      const status = await Promise.race([attachment.exited, timeout]);
      out.stdout += decoders[0].decode();
      out.stderr += decoders[1].decode();
      return { id: container.id, status, ...out };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes a file in the guest (its folders made as needed); `mode` e.g. 0o755 for a script. */
  async put(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<void> {
    await this.vm.writeFile(path, data, opts);
  }

  /** Reads a whole file from the guest. */
  async get(path: string): Promise<Uint8Array> {
    return this.vm.readFile(path);
  }

  /** Reads a whole file from the guest as UTF-8 text. */
  async getText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.get(path));
  }

  /** Destroys the VM and returns its memory. Legal in any state; twice is a no-op. */
  async destroy(): Promise<void> {
    this.onDestroy(this);
    await this.vm.destroy();
  }

  /** `await using vm = await lab.vm()`: destroyed when the block ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }
}
