// A machine's saved state: v86's own (`save_state()`), checked against the
// machine it is restored into and loaded faster than v86's restore_state.
// src/hardware/v86-state.ts reads the layout; this file gives it meaning for
// one emulator: its memory size, its RAM, its devices.
import { HyperlabError } from "../errors.ts";
import { type Emulator, guestRam } from "./emulator.ts";
import { V86_PAGE_SIZE, V86_STATE_MAGIC, V86_STATE_VERSION, type V86StateLayout, readV86State, v86Buffer } from "./v86-state.ts";

/** v86 writes a few bytes of low memory while it builds the machine; RAM above this is still untouched then. */
const LOW_MEMORY_WRITTEN_AT_INIT = 1 << 20;
const PAGE = V86_PAGE_SIZE;

/** The typed arrays v86's state tree names (`__state_type__`), by name. */
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

/** v86's saved state of the whole machine, as one buffer of its own; legal once the emulator is loaded, between its slices of emulation. */
export function saveState(emulator: Emulator): Uint8Array {
  return new Uint8Array(emulator.v86.save_state());
}

/**
 * Takes apart a state for a machine of `memoryMiB` (src/hardware/v86-state.ts
 * reads the layout): SNAPSHOT_CORRUPT if it cannot be read, SNAPSHOT_MISMATCH
 * if it is another v86 state format or another memory size. Legal for any bytes.
 */
export function parseState(state: Uint8Array, memoryMiB: number): V86StateLayout {
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
 * RAM: it is only a hint. Legal only on a loaded emulator that has not run.
 */
export function touchPages(emulator: Emulator, state: Uint8Array): void {
  const cpu = emulator.v86.cpu;
  const vga = cpu.devices.vga?.svga_memory;
  for (let at = 0; vga && at < vga.length; at += PAGE) vga[at] = 0;
  let layout: V86StateLayout;
  try {
    layout = parseState(state, cpu.mem8.length / (1 << 20));
  } catch {
    return;
  }
  const ram = guestRam(emulator);
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
 * set_state, so devices restore exactly as v86 restores them. Legal only on
 * a loaded emulator of `memoryMiB` that has not run.
 */
export function loadState(emulator: Emulator, state: Uint8Array, memoryMiB: number): void {
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

  const ram = guestRam(emulator);
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
