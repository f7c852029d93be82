// The PC: the one file that imports v86. It turns a guest image into a running
// emulator, carries console bytes in and out, and knows when the guest is
// ready, has panicked, or has stopped.
import { V86 } from "v86";
import { concatBytes } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import { ConsoleWindow } from "./console-window.ts";
import { V86_PAGE_SIZE, V86_STATE_MAGIC, V86_STATE_VERSION, type V86StateLayout, readV86State, v86Buffer } from "./v86-state.ts";
import type { GuestImage } from "./guest-image.ts";

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
}

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

/** The port of v86's virtio console that carries hyperlab's control channel (guest: /dev/vport0p1). */
export const CONTROL_PORT = 1;
/** v86 puts each input message into one guest receive buffer; Linux posts page-sized ones. */
const CONTROL_CHUNK = 4096;
/** Control bytes kept for a listener that subscribes late (the agent's hello comes early). */
const CONTROL_BACKLOG_LIMIT = 1 << 20;

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

/** Smallest RAM (MiB) that holds this image for the given firmware, plus room to run. */
export function minimumMemoryMiB(image: GuestImage, firmware: Firmware = "direct"): number {
  const initrd = image.layers.reduce((n, l) => n + l.length, 0);
  const top = firmware === "direct" ? directModuleLayout(image).size + image.manifest.kernel.load : SEABIOS_INITRD_BASE + initrd;
  return Math.ceil(top / (1 << 20)) + 16;
}

function align4k(n: number): number {
  return (n + 4095) & ~4095;
}

const TRAILER_MAGIC = 0x31424c48; // "HLB1"
const TRAILER_SIZE = 28;
const SETUP_HEADER_SIZE = 4096;

/** Where each part of the loader's module goes (see guest-images/loader/loader.c). */
function directModuleLayout(image: GuestImage) {
  const { load, end } = image.manifest.kernel;
  const initrdOffset = align4k(Math.max(end - load, image.vmlinux.length));
  const initrdSize = image.layers.reduce((n, l) => n + l.length, 0);
  const headerOffset = align4k(initrdOffset + initrdSize);
  return { initrdOffset, initrdSize, headerOffset, size: headerOffset + SETUP_HEADER_SIZE + TRAILER_SIZE };
}

/** The multiboot module the loader expects: kernel, initramfs, setup header, trailer. */
function directModule(image: GuestImage): Uint8Array {
  const layout = directModuleLayout(image);
  const out = new Uint8Array(layout.size);
  out.set(image.vmlinux, 0);
  let at = layout.initrdOffset;
  for (const l of image.layers) {
    out.set(l, at);
    at += l.length;
  }
  out.set(image.kernel.subarray(0, SETUP_HEADER_SIZE), layout.headerOffset);
  const { load, entry, end } = image.manifest.kernel;
  const trailer = new DataView(out.buffer, layout.size - TRAILER_SIZE);
  [load, entry, end, layout.initrdOffset, layout.initrdSize, layout.headerOffset, TRAILER_MAGIC].forEach((v, i) =>
    trailer.setUint32(i * 4, v, true),
  );
  return out;
}

function buffer(data: Uint8Array): { buffer: ArrayBuffer } {
  // v86 takes whole ArrayBuffers; copy when `data` is a view into a larger one.
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  return { buffer: (whole ? data.buffer : data.slice().buffer) as ArrayBuffer };
}

/** virtio-console's control event that makes a port a console (hvc) in the guest. */
const VIRTIO_CONSOLE_CONSOLE_PORT = 4;

/**
 * v86 announces every virtio-console port as a console, so Linux drives each
 * through the tty layer as /dev/hvcN, which moves at most 16 bytes per call
 * (about 45 emulated instructions a byte, ~0.5 MB/s). The control channel
 * carries bulk data (files, layers), so hyperlab's machine leaves out that
 * announcement for its port: the guest then sees an ordinary virtio-serial
 * port, /dev/vport0p1, which reads and writes whole buffers.
 */
function makeControlPortRaw(emulator: Emulator): void {
  const device = emulator.v86.cpu.devices.virtio_console;
  if (!device) return;
  const send = device.SendEvent.bind(device);
  device.SendEvent = (port, event, value) => {
    if (port === CONTROL_PORT && event === VIRTIO_CONSOLE_CONSOLE_PORT) return;
    send(port, event, value);
  };
}

type ConsoleListener = (chunk: string) => void;

/** The parts of v86's API this file uses (its bundled typings miss some events and options). */
interface Emulator {
  bus: { send(event: string, data: unknown): void };
  /** internals, for the virtio console's receive queue (v86 drops input when the guest has no buffer posted) */
  v86: {
    cpu: {
      devices: {
        virtio_console?: {
          virtio: { queues: Array<{ has_request(): boolean }> };
          /** sends a control event (VIRTIO_CONSOLE_*) about a port to the guest */
          SendEvent(port: number, event: number, value: number): void;
        };
        /** the VGA's memory, a view into v86's WebAssembly memory (a restore copies the saved one into it) */
        vga?: { svga_memory: Uint8Array };
      };
      wasm_memory: WebAssembly.Memory;
      mem8: Uint8Array;
      memory_size: Uint32Array;
      set_state(state: unknown[]): void;
      zero_memory(addr: number, length: number): void;
      /** runs the next tick now if v86 waits for one (what a device interrupt does) */
      stop_idling(): void;
    };
    save_state(): ArrayBuffer;
    /** the CPU loop runs (ticks are scheduled) */
    running: boolean;
    restore_state(state: ArrayBuffer): void;
  };
  add_listener(event: "serial0-output-byte", listener: (byte: number) => void): void;
  add_listener(event: `virtio-console${number}-output-bytes`, listener: (bytes: Uint8Array) => void): void;
  add_listener(event: "emulator-loaded", listener: () => void): void;
  serial_send_bytes(port: number, data: Uint8Array): void;
  get_instruction_counter(): number;
  run(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * One emulated PC running the guest image. Create it, `boot()` it (or
 * `restore()` a saved state into it), talk to its serial console, `stop()`
 * it. The machine never runs after a panic.
 */
export class Machine {
  private emulator: Emulator | undefined;
  private _state: MachineState = "created";
  /** the serial console's recent text, for waits */
  readonly console = new ConsoleWindow();
  /** the control channel's recent text, for boot events */
  private readonly control = new ConsoleWindow();
  private readonly listeners = new Set<ConsoleListener>();
  private readonly controlListeners = new Set<(bytes: Uint8Array) => void>();
  private controlBacklog: Uint8Array[] = [];
  private controlBacklogBytes = 0;
  private controlOut: Uint8Array[] = [];
  private controlPump: ReturnType<typeof setTimeout> | undefined;
  private pending: number[] = [];
  private flushScheduled = false;
  private readonly decoder = new TextDecoder();
  private instrHigh = 0;
  private instrLast = 0;
  private wrapTimer: ReturnType<typeof setInterval> | undefined;
  private stopReason: HyperlabError | undefined;
  private stoppedListeners = new Set<(reason: HyperlabError) => void>();
  /** the emulator built ahead of a restore by prepare() */
  private prepared: Promise<void> | undefined;
  readonly memoryMiB: number;
  readonly firmware: Firmware;

  constructor(private readonly options: MachineOptions) {
    this.firmware = options.firmware ?? "direct";
    const min = minimumMemoryMiB(options.image, this.firmware);
    this.memoryMiB = options.memoryMiB ?? defaultMemoryMiB(options.image, this.firmware);
    if (!Number.isInteger(this.memoryMiB) || this.memoryMiB < min || this.memoryMiB > 2047) {
      throw new HyperlabError(
        "INVALID_ARGUMENT",
        `memory ${options.memoryMiB} MiB is not usable: this image needs a whole number from ${min} to 2047 MiB (the kernel and initramfs are loaded into guest RAM).`,
      );
    }
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
        this.control.waitFor(/hyperlab:init\r?\n/, { timeoutMs: left(), what: "/init to start", from: 0 }).then(mark),
        failure,
      ]);
      const ready = await Promise.race([
        this.control.waitFor(/hyperlab:ready\r?\n/, { timeoutMs: left(), what: "the guest's ready signal", from: 0 }).then(mark),
        failure,
      ]);
      watch.abort();
      // Deliver the console text the guest printed before it signalled ready.
      this.flush();
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
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Subscribes to raw bytes from the control channel (virtio console port 1).
   * Bytes that arrived while nobody listened are delivered first. Returns an unsubscribe function.
   */
  onControl(listener: (bytes: Uint8Array) => void): () => void {
    const backlog = this.controlBacklog;
    this.controlBacklog = [];
    this.controlBacklogBytes = 0;
    this.controlListeners.add(listener);
    for (const b of backlog) listener(b);
    return () => this.controlListeners.delete(listener);
  }

  /**
   * Sends bytes to the guest on the control channel, in order, as fast as the
   * guest posts receive buffers. Legal while booting or running.
   */
  writeControl(bytes: Uint8Array): void {
    if (!this.emulator || (this._state !== "running" && this._state !== "booting" && this._state !== "paused")) {
      throw new HyperlabError("VM_INVALID_STATE", `cannot write to the control channel: machine is ${this._state}`);
    }
    for (let at = 0; at < bytes.length; at += CONTROL_CHUNK) this.controlOut.push(bytes.slice(at, at + CONTROL_CHUNK));
    this.pumpControl();
  }

  private pumpControl(): void {
    const emulator = this.emulator;
    if (!emulator) return;
    const queue = emulator.v86.cpu.devices.virtio_console?.virtio.queues[CONTROL_PORT * 2 + 2];
    while (this.controlOut.length && queue?.has_request()) {
      emulator.bus.send(`virtio-console${CONTROL_PORT}-input-bytes`, this.controlOut.shift());
    }
    if (this.controlOut.length && !this.controlPump) {
      this.controlPump = setTimeout(() => {
        this.controlPump = undefined;
        this.pumpControl();
      }, 1);
    }
  }

  private onControlBytes(bytes: Uint8Array): void {
    // Boot events are text lines; after boot the channel belongs to the agent.
    if (this._state === "booting") this.control.push(new TextDecoder().decode(bytes));
    if (this.controlListeners.size === 0) {
      if (this.controlBacklogBytes + bytes.length <= CONTROL_BACKLOG_LIMIT) {
        this.controlBacklog.push(bytes.slice());
        this.controlBacklogBytes += bytes.length;
      }
      return;
    }
    for (const l of this.controlListeners) l(bytes);
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
    const cpu = this.emulator.v86.cpu;
    // mem8 is a Proxy in v86's build; its offset and length still read through.
    return new Uint8Array(cpu.wasm_memory.buffer, cpu.mem8.byteOffset, cpu.mem8.length);
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
    return new Uint8Array(this.emulator.v86.save_state());
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
    emulator.add_listener("serial0-output-byte", (byte: number) => this.onSerialByte(byte));
    emulator.add_listener(`virtio-console${CONTROL_PORT}-output-bytes`, (bytes: Uint8Array) => this.onControlBytes(bytes));
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

  private onSerialByte(byte: number): void {
    this.pending.push(byte);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const chunk = this.decoder.decode(new Uint8Array(this.pending), { stream: true });
    this.pending = [];
    this.console.push(chunk);
    for (const l of this.listeners) l(chunk);
    if (this._state !== "running") return;
    // A panic stops the machine as soon as its line is complete; so does a power-off.
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
    clearTimeout(this.controlPump);
    this.controlOut = [];
    this.instructions();
    const emulator = this.emulator;
    this.emulator = undefined;
    if (emulator) {
      const destroyed = emulator.destroy();
      stopNow(emulator);
      // An emulator still being built (a machine stopped while prepared) may fail to tear down: it is dropped all the same.
      await destroyed.catch(() => {});
    }
    this.flush();
    this.console.close(reason);
    this.control.close(reason);
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

/** v86 writes a few bytes of low memory while it builds the machine; RAM above this is still untouched then. */
const LOW_MEMORY_WRITTEN_AT_INIT = 1 << 20;
const PAGE = V86_PAGE_SIZE;

const STATE_TYPES: Record<string, new (buffer: ArrayBuffer) => unknown> = {
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
};

function corrupt(what: string): HyperlabError {
  return new HyperlabError("SNAPSHOT_CORRUPT", `the saved machine state is damaged: ${what}. Take the snapshot again (or delete the cached file so it is rebuilt).`);
}

/**
 * Takes apart a state for a machine of `memoryMiB` (src/hardware/v86-state.ts
 * reads the layout): SNAPSHOT_CORRUPT if it cannot be read, SNAPSHOT_MISMATCH
 * if it is another v86 state format or another memory size.
 */
function parseState(state: Uint8Array, memoryMiB: number): V86StateLayout {
  if (state.byteOffset !== 0 || state.byteLength !== state.buffer.byteLength) {
    throw new HyperlabError("INVALID_ARGUMENT", "a machine state must span its whole ArrayBuffer (pass what saveState or decodeSnapshot returned)");
  }
  // The format first: another format's description need not read as this one's.
  if (state.byteLength >= 16) {
    const head = new Int32Array(state.buffer, 0, 2);
    if (head[0] === V86_STATE_MAGIC && head[1] !== V86_STATE_VERSION) {
      throw new HyperlabError(
        "SNAPSHOT_MISMATCH",
        `the saved machine state has v86 state format ${head[1]}; this v86 reads format ${V86_STATE_VERSION}. Take the snapshot again with this hyperlab.`,
        { stateFormat: head[1], expected: V86_STATE_VERSION },
      );
    }
  }
  const layout = readV86State(state);
  if (layout.totalBytes !== state.byteLength) throw corrupt(`it is ${state.byteLength} bytes long, its header says ${layout.totalBytes}`);
  if (layout.memoryBytes !== memoryMiB << 20) {
    const savedMiB = layout.memoryBytes / (1 << 20);
    throw new HyperlabError(
      "SNAPSHOT_MISMATCH",
      `the saved machine has ${savedMiB} MiB of memory; this machine has ${memoryMiB} MiB. Restore it into a machine with ${savedMiB} MiB.`,
      { savedMiB, memoryMiB },
    );
  }
  return layout;
}

/**
 * Faults in the guest RAM pages `state` holds (writing a zero to each: RAM
 * of a machine not yet restored is all zero), and the VGA memory every
 * restore overwrites, so that loading a state like it later copies into
 * mapped memory. A state of another size or an unreadable one touches no
 * RAM: it is only a hint.
 */
function touchPages(emulator: Emulator, state: Uint8Array): void {
  const cpu = emulator.v86.cpu;
  const vga = cpu.devices.vga?.svga_memory;
  for (let at = 0; vga && at < vga.length; at += PAGE) vga[at] = 0;
  let layout: V86StateLayout;
  try {
    layout = parseState(state, cpu.mem8.length / (1 << 20));
  } catch {
    return;
  }
  const ram = new Uint8Array(cpu.wasm_memory.buffer, cpu.mem8.byteOffset, cpu.mem8.length);
  const bitmap = v86Buffer(state, layout, layout.bitmapId);
  const pageCount = Math.min(ram.length / PAGE, bitmap.length * 8);
  for (let page = LOW_MEMORY_WRITTEN_AT_INIT / PAGE; page < pageCount; page++) {
    if ((bitmap[page >> 3]! >> (page & 7)) & 1) ram[page * PAGE] = 0;
  }
}

/**
 * Loads a state saved by v86 into a freshly built emulator: what v86's
 * restore_state does, minus two costs that dominate a restore. v86 zeroes all
 * of guest RAM first and copies the packed pages out of the state before
 * placing them; here RAM is fresh from WebAssembly's memory.grow (zero, and
 * zeroing it again faults in every page), so only the low memory v86 touched
 * while building the machine is cleared, and the pages are copied straight
 * from `state` into RAM in runs. Everything else goes through v86's own
 * set_state, so devices restore exactly as v86 restores them.
 */
function loadState(emulator: Emulator, state: Uint8Array, memoryMiB: number): void {
  const layout = parseState(state, memoryMiB);
  const { packedId, bitmapId } = layout;
  const saved = layout.description.state;
  const buffers = layout.buffers.map(({ start, length }, id) => {
    // v86 gets an empty page list and an all-zero bitmap; the pages are placed below.
    if (id === packedId) return new ArrayBuffer(0);
    if (id === bitmapId) return new ArrayBuffer(length);
    return state.buffer.slice(start, start + length) as ArrayBuffer;
  });
  const revive = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) return value;
    if (Array.isArray(value)) return value.map(revive);
    const v = value as { __state_type__?: string; buffer_id?: number; args?: unknown };
    if (v.__state_type__ === "Map") return new Map(v.args as Array<[unknown, unknown]>);
    const type = v.__state_type__ === undefined ? undefined : STATE_TYPES[v.__state_type__];
    if (!type || v.buffer_id === undefined || !buffers[v.buffer_id]) throw corrupt(`it holds a value of unknown type ${String(v.__state_type__)}`);
    return new type(buffers[v.buffer_id]!);
  };

  const cpu = emulator.v86.cpu;
  const zeroMemory = cpu.zero_memory;
  cpu.zero_memory = (addr, length) => zeroMemory.call(cpu, addr, Math.min(length, LOW_MEMORY_WRITTEN_AT_INIT));
  try {
    cpu.set_state(revive(saved) as unknown[]);
  } finally {
    cpu.zero_memory = zeroMemory;
  }

  const ram = new Uint8Array(cpu.wasm_memory.buffer, cpu.mem8.byteOffset, cpu.mem8.length);
  const bitmap = v86Buffer(state, layout, bitmapId);
  const packed = v86Buffer(state, layout, packedId);
  const pageCount = ram.length / PAGE;
  let from = 0;
  for (let page = 0; page < pageCount; ) {
    if (!((bitmap[page >> 3]! >> (page & 7)) & 1)) {
      page++;
      continue;
    }
    let end = page + 1;
    while (end < pageCount && (bitmap[end >> 3]! >> (end & 7)) & 1) end++;
    const bytes = (end - page) * PAGE;
    if (from + bytes > packed.length) throw corrupt("its page bitmap lists more pages than it holds");
    ram.set(packed.subarray(from, from + bytes), page * PAGE);
    from += bytes;
    page = end;
  }
  if (from !== packed.length) throw corrupt("it holds more pages than its page bitmap lists");
}
