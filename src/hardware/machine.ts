// The PC's lifecycle: the one file that imports v86. It turns a guest image
// into a running emulator (or restores one), pauses, resumes and stops it, and
// knows when the guest is ready, has panicked, or has stopped. Its devices'
// host ends live next to it: serial-console.ts, control-port.ts,
// direct-boot.ts; saved states in machine-state.ts.
import { V86 } from "v86";
import { concatBytes } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import { ConsoleWindow } from "./console-window.ts";
import { CONTROL_PORT, ControlPort, makeControlPortRaw } from "./control-port.ts";
import { directModule, directModuleLayout } from "./direct-boot.ts";
import { type Emulator, guestRam } from "./emulator.ts";
import { type GuestImage, profileMinimumMemoryMiB } from "./guest-image.ts";
import { loadState, saveState, touchPages } from "./machine-state.ts";
import { P9Server } from "./p9-server.ts";
import { type ConsoleListener, SerialConsole } from "./serial-console.ts";

// The control port's number is part of the machine's contract (the guest's /dev/vport0p1): importers find it here.
export { CONTROL_PORT } from "./control-port.ts";

/** How the machine starts the kernel. */
export type Firmware =
  /** hyperlab's multiboot loader enters Linux directly: no BIOS at all (fast). */
  | "direct"
  /** SeaBIOS runs POST, then boots the kernel through an option ROM (like a real PC). */
  | "seabios";

/** What a Machine is built from. */
export interface MachineOptions {
  image: GuestImage;
  /** Guest RAM in MiB. Must hold the kernel and initramfs (see minimumMemoryMiB). */
  memoryMiB?: number;
  firmware?: Firmware;
  /** Kernel arguments added after hyperlab's defaults (later ones win). */
  cmdline?: string;
  /** How to get v86's WebAssembly module: a compiled module (Node) or a URL (browser). */
  wasm: WebAssembly.Module | Promise<WebAssembly.Module>;
  /**
   * The host end of the virtio 9p device (mount tag `host9p`), which every
   * machine has so that saved states fit every machine; default: a server
   * that shares nothing.
   */
  fileShare?: P9Server;
  /**
   * The network card: a virtio-net card (default; its frames go to
   * `onFrame` listeners and come in by `sendFrame`) or none. Saved states
   * fit only machines with the same card.
   */
  nic?: NetworkCard;
}

/** The machine's network card: v86's virtio-net (PCI 1af4:1041, the guest's eth0) or none. */
export type NetworkCard = "virtio-net" | "none";

/** The mount tag of the machine's 9p device (what the guest names in `mount -t 9p host9p …`). */
export const P9_MOUNT_TAG = "host9p";

/** Wall time and emulated instructions of the boot phases. */
export interface BootReport {
  wallMs: number;
  instructions: number;
  phases: {
    /** from power on until the first console byte of the kernel */
    firmware: { wallMs: number; instructions: number };
    /** kernel start until /init runs */
    kernel: { wallMs: number; instructions: number };
    /** /init until the guest reports ready (console shell started) */
    init: { wallMs: number; instructions: number };
  };
}

/** Wall time of a restore: creating the emulator, then loading the saved state into it. */
export interface RestoreReport {
  wallMs: number;
  phases: {
    /** building v86's devices and guest RAM (as for a boot, without firmware or kernel) */
    emulator: { wallMs: number };
    /** parsing the saved state and copying its memory pages into guest RAM */
    state: { wallMs: number };
  };
}

/** Machine states; each method says in which it is legal. */
export type MachineState = "created" | "booting" | "running" | "paused" | "stopped";

/**
 * Default kernel arguments: serial console, and no boot-time work v86 does not
 * need (TSC watchdog, speculation mitigations, waiting for entropy). Snapshots
 * add `init_on_free=1` (freed memory zeroed, so saved states compress); a cold
 * boot skips it, since zeroing all free RAM costs boot time. The initramfs
 * unpacks into ramfs rather than tmpfs (`rootfstype=ramfs`): /init mounts the
 * container runtimes read-only there, which spares them copying themselves
 * into a memfd on every run (see guest-images/rootfs/init.c).
 */
export const DEFAULT_CMDLINE = [
  "console=ttyS0",
  "loglevel=6",
  "tsc=reliable",
  "mitigations=off",
  "random.trust_cpu=on",
  "rootfstype=ramfs",
].join(" ");

/** v86 loads the initramfs at 64 MiB when it boots a bzImage through the BIOS. */
const SEABIOS_INITRD_BASE = 64 << 20;

// Whole lines only: on a busy host the console arrives in small chunks, and a
// match on a partial line would report a truncated reason.
const PANIC = /Kernel panic - not syncing: [^\r\n]*(?=\r?\n)/;
const LOADER_ERROR = /hyperlab-loader: error: [^\r\n]*(?=\r?\n)/;
/** What Linux prints when the guest powers off or halts (there is no ACPI to switch it off). */
const POWER_OFF = /reboot: (System halted|Power down|Restarting system)/;

/** The RAM (MiB) a machine gets when its options name none: 128, or more when the image needs it. */
export function defaultMemoryMiB(image: GuestImage, firmware: Firmware = "direct"): number {
  return Math.max(128, minimumMemoryMiB(image, firmware));
}

/** Smallest RAM (MiB) that holds this image for the given firmware, plus room to run; a profile may ask for more (its manifest's minimumMemoryMiB). */
export function minimumMemoryMiB(image: GuestImage, firmware: Firmware = "direct"): number {
  const initrd = image.layers.reduce((n, l) => n + l.length, 0);
  const top = firmware === "direct" ? directModuleLayout(image).size + image.manifest.kernel.load : SEABIOS_INITRD_BASE + initrd;
  return Math.max(Math.ceil(top / (1 << 20)) + 16, profileMinimumMemoryMiB(image));
}

/**
 * Throws INVALID_ARGUMENT unless `memoryMiB` is a RAM size this image can
 * run in: a whole number from its minimum (the kernel and initramfs, or a
 * profile's own minimum, named with the profile) to 2047.
 */
export function checkMemoryMiB(image: GuestImage, memoryMiB: number, firmware: Firmware = "direct"): void {
  const min = minimumMemoryMiB(image, firmware);
  if (Number.isInteger(memoryMiB) && memoryMiB < min && min === profileMinimumMemoryMiB(image)) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `memory ${memoryMiB} MiB is too small for the ${image.profile} profile: it needs at least ${min} MiB (e.g. --memory ${min}).`,
      { profile: image.profile, minimumMemoryMiB: min },
    );
  }
  if (!Number.isInteger(memoryMiB) || memoryMiB < min || memoryMiB > 2047) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `memory ${memoryMiB} MiB is not usable: this image needs a whole number from ${min} to 2047 MiB (the kernel and initramfs are loaded into guest RAM).`,
    );
  }
}

function buffer(data: Uint8Array): { buffer: ArrayBuffer } {
  // v86 takes whole ArrayBuffers; copy when `data` is a view into a larger one.
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  return { buffer: (whole ? data.buffer : data.slice().buffer) as ArrayBuffer };
}

/**
 * One emulated PC running the guest image. Create it, `boot()` it (or
 * `restore()` a saved state into it), talk to its serial console, `stop()`
 * it. The machine never runs after a panic.
 */
export class Machine {
  private emulator: Emulator | undefined;
  private _state: MachineState = "created";
  private readonly serial = new SerialConsole((chunk) => this.watchSerial(chunk));
  /** the serial console's recent text, for waits */
  readonly console = this.serial.text;
  /** the control channel's recent text while booting, for boot events */
  private readonly bootEvents = new ConsoleWindow();
  private readonly control = new ControlPort(() => this.emulator);
  private instrHigh = 0;
  private instrLast = 0;
  private wrapTimer: ReturnType<typeof setInterval> | undefined;
  private stopReason: HyperlabError | undefined;
  private stoppedListeners = new Set<(reason: HyperlabError) => void>();
  /** the emulator built ahead of a restore by prepare() */
  private prepared: Promise<void> | undefined;
  readonly memoryMiB: number;
  readonly firmware: Firmware;
  /** the 9p server the guest's `host9p` device talks to: its exports are the host directories the guest can mount */
  readonly fileShare: P9Server;
  /** the network card it was built with */
  readonly nic: NetworkCard;
  private readonly frameListeners = new Set<(frame: Uint8Array) => void>();

  constructor(private readonly options: MachineOptions) {
    this.firmware = options.firmware ?? "direct";
    this.fileShare = options.fileShare ?? new P9Server();
    this.nic = options.nic ?? "virtio-net";
    this.memoryMiB = options.memoryMiB ?? defaultMemoryMiB(options.image, this.firmware);
    checkMemoryMiB(options.image, this.memoryMiB, this.firmware);
  }

  /** Current state: created, booting, running or stopped. */
  get state(): MachineState {
    return this._state;
  }

  /** The kernel command line this machine boots with. */
  get cmdline(): string {
    return [DEFAULT_CMDLINE, this.options.cmdline].filter(Boolean).join(" ");
  }

  /** The kernel arguments this machine adds to hyperlab's defaults (its `cmdline` option). */
  get extraCmdline(): string {
    return this.options.cmdline ?? "";
  }

  /**
   * Powers the machine on and resolves when the guest reports ready. Legal
   * once, in state `created`. Rejects with GUEST_PANIC (with the kernel's panic
   * line), GUEST_BOOT_FAILED, or BOOT_TIMEOUT; on rejection the machine is stopped.
   */
  async boot(opts: { timeoutMs?: number } = {}): Promise<BootReport> {
    if (this._state !== "created") {
      throw new HyperlabError("VM_INVALID_STATE", `cannot boot: machine is ${this._state}`);
    }
    if (this.prepared) {
      throw new HyperlabError("VM_INVALID_STATE", "cannot boot: this machine was prepared for a restore (its emulator has no kernel to boot); use a new machine");
    }
    this._state = "booting";
    const timeoutMs = opts.timeoutMs ?? 30_000;
    // Compiling v86 happens once per process; it is not part of a boot.
    const wasmModule = await this.options.wasm;
    const t0 = performance.now();
    const deadline = t0 + timeoutMs;
    try {
      await this.start(wasmModule, timeoutMs);
      const left = () => Math.max(1, Math.round(deadline - performance.now()));
      const mark = () => ({ t: performance.now(), i: this.instructions() });
      const begin = mark();

      const watch = new AbortController();
      const failure = this.watchForFailure(watch.signal);
      const firstByte = await Promise.race([
        this.console.waitFor(/[^]/, { timeoutMs: left(), what: "the kernel's first console byte", from: 0 }).then(mark),
        failure,
      ]);
      const initStart = await Promise.race([
        this.bootEvents.waitFor(/hyperlab:init\r?\n/, { timeoutMs: left(), what: "/init to start", from: 0 }).then(mark),
        failure,
      ]);
      const ready = await Promise.race([
        this.bootEvents.waitFor(/hyperlab:ready\r?\n/, { timeoutMs: left(), what: "the guest's ready signal", from: 0 }).then(mark),
        failure,
      ]);
      watch.abort();
      // Deliver the console text the guest printed before it signalled ready.
      this.serial.flush();
      this._state = "running";
      const phase = (a: { t: number; i: number }, b: { t: number; i: number }) => ({
        wallMs: b.t - a.t,
        instructions: b.i - a.i,
      });
      return {
        wallMs: ready.t - t0,
        instructions: ready.i - begin.i,
        phases: {
          firmware: phase(begin, firstByte),
          kernel: phase(firstByte, initStart),
          init: phase(initStart, ready),
        },
      };
    } catch (err) {
      const reason =
        err instanceof HyperlabError && err.code === "TIMEOUT"
          ? new HyperlabError(
              "BOOT_TIMEOUT",
              `the guest did not boot within ${timeoutMs} ms: it was still waiting for ${String(err.detail?.waitedFor)}. ` +
                `Last console output:\n${this.console.tail(600) || "(none)"}`,
              err.detail,
            )
          : (err as Error);
      await this.halt(reason instanceof HyperlabError ? reason : new HyperlabError("GUEST_BOOT_FAILED", String(reason)));
      throw reason;
    }
  }

  /** Sends keystrokes or bytes to the serial console. Legal while booting or running. */
  write(data: string | Uint8Array): void {
    if (!this.emulator || (this._state !== "running" && this._state !== "booting" && this._state !== "paused")) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot write to the console: machine is ${this._state}`);
    }
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.emulator.serial_send_bytes(0, bytes);
  }

  /** Subscribes to serial console output, delivered in batches (one call per tick). Returns an unsubscribe function. */
  onConsole(listener: ConsoleListener): () => void {
    return this.serial.subscribe(listener);
  }

  /**
   * Subscribes to raw bytes from the control channel (virtio console port 1).
   * Bytes that arrived while nobody listened are delivered first. Returns an unsubscribe function.
   */
  onControl(listener: (bytes: Uint8Array) => void): () => void {
    return this.control.subscribe(listener);
  }

  /**
   * Sends bytes to the guest on the control channel, in order, as fast as the
   * guest posts receive buffers. Legal while booting or running.
   */
  writeControl(bytes: Uint8Array): void {
    if (!this.emulator || (this._state !== "running" && this._state !== "booting" && this._state !== "paused")) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot write to the control channel: machine is ${this._state}`);
    }
    this.control.send(bytes);
  }

  /**
   * Subscribes to the Ethernet frames the guest sends on its network card
   * (without virtio's header; each frame is a fresh buffer the listener may
   * keep or transfer). Returns an unsubscribe function. Legal any time.
   */
  onFrame(listener: (frame: Uint8Array) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  /**
   * Hands an Ethernet frame to the guest's network card; dropped (as a wire
   * would) when the guest has no receive buffer posted or the machine has no
   * card. Legal while booting, running or paused; a no-op otherwise.
   */
  sendFrame(frame: Uint8Array): void {
    if (!this.emulator || this.nic === "none" || this._state === "stopped" || this._state === "created") return;
    this.emulator.bus.send("net0-receive", frame);
  }

  /** Calls `listener` once when the machine stops (guest power-off, panic, or stop()). */
  onStopped(listener: (reason: HyperlabError) => void): () => void {
    this.stoppedListeners.add(listener);
    return () => this.stoppedListeners.delete(listener);
  }

  /** Why the machine stopped, once it has. */
  get stoppedBecause(): HyperlabError | undefined {
    return this.stopReason;
  }

  /** Emulated instructions since power on (v86's 32-bit counter with its wraps counted). */
  instructions(): number {
    if (!this.emulator) return this.instrHigh + this.instrLast;
    const now = this.emulator.get_instruction_counter() >>> 0;
    if (now < this.instrLast) this.instrHigh += 2 ** 32;
    this.instrLast = now;
    return this.instrHigh + now;
  }

  /**
   * Stops the CPU between instructions; devices and memory stay as they are.
   * Legal while running; pausing a paused machine is a no-op.
   */
  async pause(): Promise<void> {
    if (this._state === "paused") return;
    if (this._state !== "running" || !this.emulator) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot pause: machine is ${this._state} (pause is legal while running)`);
    }
    this._state = "paused";
    const stopped = this.emulator.stop();
    stopNow(this.emulator);
    await stopped;
  }

  /** Lets a paused CPU run again. Legal while paused; resuming a running machine is a no-op. */
  async resume(): Promise<void> {
    if (this._state === "running") return;
    if (this._state !== "paused" || !this.emulator) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot resume: machine is ${this._state} (resume is legal while paused)`);
    }
    this._state = "running";
    await this.emulator.run();
  }

  /**
   * The guest's RAM as a live view (not a copy): valid until the machine stops
   * or its memory grows. Legal while running or paused; read it while paused
   * for a consistent picture.
   */
  memory(): Uint8Array {
    if (!this.emulator || (this._state !== "running" && this._state !== "paused")) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot read guest memory: machine is ${this._state}`);
    }
    return guestRam(this.emulator);
  }

  /** Powers the machine off. Legal in any state; stopping twice is a no-op. */
  async stop(): Promise<void> {
    await this.halt(new HyperlabError("GUEST_STOPPED", "the machine was stopped by the host"));
  }

  /**
   * v86's saved state of the whole machine (CPU, devices, RAM without its
   * all-zero pages), as one buffer of its own. Legal while running or paused;
   * the machine stays as it was. Bytes the host has queued for the guest but
   * not yet delivered are not part of the state.
   */
  async saveState(): Promise<Uint8Array> {
    if (!this.emulator || (this._state !== "running" && this._state !== "paused")) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot save the machine's state: machine is ${this._state} (legal while running or paused)`);
    }
    // JavaScript runs between v86's slices of emulation, so the CPU is between instructions here.
    return saveState(this.emulator);
  }

  /**
   * Starts the machine from a state saved by `saveState()` instead of booting.
   * Legal once, in state `created`; resolves in `running` (or `paused` with
   * `paused: true`). The machine must be built with the options the state was
   * saved with (memory size, firmware). `state` must span its whole
   * ArrayBuffer (as `saveState()` returns it) and is only read, so one decoded
   * state can start many machines. Rejects with SNAPSHOT_CORRUPT or
   * SNAPSHOT_MISMATCH (the machine is then stopped), or BOOT_TIMEOUT.
   */
  async restore(state: Uint8Array, opts: { timeoutMs?: number; paused?: boolean } = {}): Promise<RestoreReport> {
    if (this._state !== "created") {
      throw new HyperlabError("VM_INVALID_STATE", `cannot restore: machine is ${this._state} (restore is legal once, in state created)`);
    }
    this._state = "booting";
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const prepared = this.prepared;
    const wasmModule = prepared ? undefined : await this.options.wasm;
    const t0 = performance.now();
    try {
      // A prepared machine's emulator is built (or being built): the restore waits for it, if at all.
      if (prepared) await prepared;
      else await this.start(wasmModule!, timeoutMs, { restoring: true });
      const t1 = performance.now();
      loadState(this.emulator!, state, this.memoryMiB);
      const t2 = performance.now();
      this.instrHigh = 0;
      this.instrLast = 0;
      this.instructions();
      if (opts.paused) {
        this._state = "paused";
      } else {
        this._state = "running";
        await this.emulator!.run();
      }
      return { wallMs: t2 - t0, phases: { emulator: { wallMs: t1 - t0 }, state: { wallMs: t2 - t1 } } };
    } catch (err) {
      const reason = err instanceof HyperlabError ? err : new HyperlabError("GUEST_BOOT_FAILED", `the machine could not be restored: ${String(err)}`);
      await this.halt(reason);
      throw reason;
    }
  }

  /**
   * Builds the emulator of a later `restore()` now, so that the restore only
   * loads its state: building v86 (its devices, I/O tables and guest RAM) is
   * most of a restore's cost, and a spare worker can pay it while idle. With
   * `pagesOf` (a state like the one to be restored, e.g. the boot snapshot's)
   * the guest RAM pages that state fills are also faulted in now, so the
   * restore copies into memory the host has already mapped (first writes to
   * fresh memory cost more than the copy). Legal once, in state `created`,
   * before `restore()`; the machine stays `created`, and can no longer boot.
   * Rejects with BOOT_TIMEOUT or the emulator's error (the machine is then stopped).
   */
  prepare(opts: { timeoutMs?: number; pagesOf?: Uint8Array } = {}): Promise<void> {
    if (this._state !== "created" || this.prepared) {
      const why = this.prepared ? "it is prepared already" : `machine is ${this._state}`;
      return Promise.reject(new HyperlabError("VM_INVALID_STATE", `cannot prepare: ${why} (prepare is legal once, in state created, before restore)`));
    }
    const timeoutMs = opts.timeoutMs ?? 30_000;
    this.prepared = (async () => {
      try {
        const wasmModule = await this.options.wasm;
        // Stopped while v86 was being compiled: nothing to build.
        if (this._state === "stopped") throw this.stopReason!;
        await this.start(wasmModule, timeoutMs, { restoring: true });
        if (opts.pagesOf) touchPages(this.emulator!, opts.pagesOf);
      } catch (err) {
        const reason = err instanceof HyperlabError ? err : new HyperlabError("GUEST_BOOT_FAILED", `the machine could not be prepared: ${String(err)}`);
        await this.halt(reason);
        throw reason;
      }
    })();
    this.prepared.catch(() => {}); // the caller of prepare() or restore() sees it
    return this.prepared;
  }

  private async start(wasmModule: WebAssembly.Module, timeoutMs: number, how: { restoring?: boolean } = {}): Promise<void> {
    const { image } = this.options;
    const v86opts: Record<string, unknown> = {
      wasm_fn: async (env: WebAssembly.Imports) => (await WebAssembly.instantiate(wasmModule, env)).exports,
      memory_size: this.memoryMiB << 20,
      vga_memory_size: 2 << 20,
      cmdline: this.cmdline,
      autostart: !how.restoring,
      disable_keyboard: true,
      disable_mouse: true,
      disable_speaker: true,
      acpi: false,
      fastboot: true,
      virtio_console: true,
      // v86's default card is an ne2k, which the guest kernel has no driver for.
      net_device: { type: this.nic === "virtio-net" ? "virtio" : "none" },
      // Answered at once, in this thread: no 9p request is ever pending when the state is saved.
      filesystem: { handle9p: (request: Uint8Array, reply: (bytes: Uint8Array) => void) => reply(this.fileShare.handle(request)) },
    };
    if (this.firmware === "seabios") {
      // The BIOS also maps itself at the top of the address space; a restored machine keeps that mapping.
      v86opts.bios = buffer(image.bios);
      v86opts.vga_bios = buffer(image.vgaBios);
    }
    // A restored machine gets its kernel and initramfs with the saved RAM.
    if (!how.restoring && this.firmware === "direct") {
      v86opts.multiboot = buffer(image.loader);
      v86opts.initrd = buffer(directModule(image));
    } else if (!how.restoring) {
      v86opts.bzimage = buffer(image.kernel);
      v86opts.initrd = buffer(concatBytes(image.layers));
    }

    const emulator = new V86(v86opts as unknown as ConstructorParameters<typeof V86>[0]) as unknown as Emulator;
    this.emulator = emulator;
    emulator.add_listener("serial0-output-byte", (byte: number) => this.serial.receive(byte));
    emulator.add_listener(`virtio-console${CONTROL_PORT}-output-bytes`, (bytes: Uint8Array) => {
      // Boot events are text lines; after boot the channel belongs to the agent.
      if (this._state === "booting") this.bootEvents.push(new TextDecoder().decode(bytes));
      this.control.receive(bytes);
    });
    emulator.add_listener("net0-send", (frame: Uint8Array) => {
      for (const l of this.frameListeners) l(frame);
    });
    this.wrapTimer = setInterval(() => this.instructions(), 1000);
    this.wrapTimer.unref?.();
    await new Promise<void>((resolve, reject) => {
      // A machine stopped meanwhile (stop() of a machine being prepared) ends the wait too.
      const off = this.onStopped((reason) => {
        clearTimeout(timer);
        reject(reason);
      });
      const timer = setTimeout(() => {
        off();
        reject(new HyperlabError("BOOT_TIMEOUT", `the emulator did not load within ${timeoutMs} ms (waiting for v86's emulator-loaded)`));
      }, timeoutMs);
      emulator.add_listener("emulator-loaded", () => {
        clearTimeout(timer);
        off();
        makeControlPortRaw(emulator);
        resolve();
      });
    });
  }

  /** Rejects when the console shows a panic or a loader error, until `signal` aborts. */
  private watchForFailure(signal: AbortSignal): Promise<never> {
    const forever = { timeoutMs: 2 ** 31 - 1, what: "a failure", from: 0, signal };
    const panic = this.console.waitFor(PANIC, forever).then((m) => {
      throw this.panicError(m[0]);
    });
    const loader = this.console.waitFor(LOADER_ERROR, forever).then((m) => {
      throw new HyperlabError("GUEST_BOOT_FAILED", `the boot loader failed: ${m[0].replace(/^hyperlab-loader: error: /, "").trim()}`);
    });
    const failure = Promise.race([panic, loader]);
    failure.catch(() => {}); // observed through the races that use it
    return failure;
  }

  /** GUEST_PANIC with the kernel's panic line and the console lines just before it. */
  private panicError(line: string): HyperlabError {
    const panic = line.trim();
    const text = this.console.tail(4000);
    const before = text
      .slice(0, text.indexOf(panic))
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-3);
    const context = before.length ? `\nconsole before the panic:\n  ${before.join("\n  ")}` : "";
    return new HyperlabError("GUEST_PANIC", `the guest kernel panicked: ${panic}${context}`, { panic, before });
  }

  /** Stops the machine when a chunk of serial output completes a panic line or shows a power-off. */
  private watchSerial(chunk: string): void {
    if (this._state !== "running") return;
    const recent = this.console.tail(chunk.length + OVERLAP_FOR_PANIC);
    const panic = /\n/.test(chunk) ? PANIC.exec(recent) : null;
    if (panic) {
      void this.halt(this.panicError(panic[0]));
    } else if (POWER_OFF.test(recent)) {
      void this.halt(new HyperlabError("GUEST_STOPPED", "the guest powered off"));
    }
  }

  private async halt(reason: HyperlabError): Promise<void> {
    if (this._state === "stopped") return;
    this._state = "stopped";
    this.stopReason = reason;
    clearInterval(this.wrapTimer);
    this.control.dropOutput();
    this.instructions();
    const emulator = this.emulator;
    this.emulator = undefined;
    if (emulator) {
      const destroyed = emulator.destroy();
      stopNow(emulator);
      // An emulator still being built (a machine stopped while prepared) may fail to tear down: it is dropped all the same.
      await destroyed.catch(() => {});
    }
    this.serial.flush();
    this.console.close(reason);
    this.bootEvents.close(reason);
    for (const l of this.stoppedListeners) l(reason);
  }
}

const OVERLAP_FOR_PANIC = 512;

/**
 * Has v86 act on a stop request now. It stops its CPU loop at the next tick,
 * and an idle guest's next tick is up to a timer period (tens of ms) away;
 * v86's own wake-up (what a device interrupt calls) runs it at once.
 */
function stopNow(emulator: Emulator): void {
  // v86 is undefined until the emulator's WebAssembly is instantiated.
  const v86 = emulator.v86 as Emulator["v86"] | undefined;
  if (v86?.running) v86.cpu.stop_idling();
}
