// The parts of v86's emulator API that hyperlab's machine and its devices use.
// v86's bundled typings miss some events, options and the internals reached
// here, so the machine casts its V86 instance to this once, in machine.ts.

/** v86's emulator as hyperlab drives it; obtained by casting a `new V86(...)` (see machine.ts). */
export interface Emulator {
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
  /** a frame the guest's network card sent (a view into a fresh buffer, without virtio's 12-byte header) */
  add_listener(event: "net0-send", listener: (frame: Uint8Array) => void): void;
  serial_send_bytes(port: number, data: Uint8Array): void;
  get_instruction_counter(): number;
  run(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/** The guest's RAM as a live view into v86's WebAssembly memory; legal once the emulator is loaded, valid until its memory grows. */
export function guestRam(emulator: Emulator): Uint8Array {
  const cpu = emulator.v86.cpu;
  // mem8 is a Proxy in v86's build; its offset and length still read through.
  return new Uint8Array(cpu.wasm_memory.buffer, cpu.mem8.byteOffset, cpu.mem8.length);
}
