import { describe, expect, it } from "vitest";
import type { HyperlabError } from "../../../src/errors.ts";
import type { Emulator } from "../../../src/hardware/emulator.ts";
import { loadState, parseState, touchPages } from "../../../src/hardware/machine-state.ts";
import { V86_PAGE_SIZE, V86_STATE_MAGIC, V86_STATE_VERSION } from "../../../src/hardware/v86-state.ts";

const PAGE = V86_PAGE_SIZE;

/**
 * A state in v86's save_state layout for a machine of `memoryMiB`, whose RAM
 * holds the pages `pages` names (each filled with its byte), plus a device's
 * Int32Array and a Map in its state tree. `packedPages` packs another count
 * of pages than the bitmap lists (a damaged state).
 */
function makeState(opts: { memoryMiB: number; pages: Record<number, number>; version?: number; packedPages?: number }): Uint8Array {
  const pageCount = (opts.memoryMiB << 20) / PAGE;
  const bitmap = new Uint8Array(pageCount / 8);
  const listed = Object.keys(opts.pages).map(Number).sort((a, b) => a - b);
  for (const p of listed) bitmap[p >> 3]! |= 1 << (p & 7);
  const packed = new Uint8Array((opts.packedPages ?? listed.length) * PAGE);
  listed.forEach((p, i) => {
    if ((i + 1) * PAGE <= packed.length) packed.fill(opts.pages[p]!, i * PAGE, (i + 1) * PAGE);
  });
  const device = new Uint8Array(new Int32Array([7, -8, 9]).buffer);
  const raw = [packed, bitmap, device];
  let offset = 0;
  const buffer_infos = raw.map((b) => {
    const info = { offset, length: b.length };
    offset = (offset + b.length + 3) & ~3;
    return info;
  });
  const state: unknown[] = new Array(79).fill(null);
  state[0] = opts.memoryMiB << 20;
  state[1] = { __state_type__: "Int32Array", buffer_id: 2 };
  state[2] = { __state_type__: "Map", args: [[1, "one"]] };
  state[77] = { __state_type__: "Uint8Array", buffer_id: 0 };
  state[78] = { __state_type__: "Uint8Array", buffer_id: 1 };
  const info = new TextEncoder().encode(JSON.stringify({ buffer_infos, state }));
  const blockStart = (16 + info.length + 3) & ~3;
  const out = new Uint8Array(blockStart + offset);
  new Int32Array(out.buffer, 0, 4).set([V86_STATE_MAGIC, opts.version ?? V86_STATE_VERSION, out.length, info.length]);
  out.set(info, 16);
  raw.forEach((b, i) => out.set(b, blockStart + buffer_infos[i]!.offset));
  return out;
}

/** An emulator with only guest RAM (off the start of its WebAssembly memory, as in v86), VGA memory and set_state. */
function fakeEmulator(memoryMiB: number) {
  const memory = new WebAssembly.Memory({ initial: (memoryMiB << 20) / 65536 + 1 });
  const ram = new Uint8Array(memory.buffer, 65536, memoryMiB << 20);
  const vga = new Uint8Array(4 * PAGE);
  const calls = { setState: [] as unknown[][], zeroed: [] as Array<[number, number]> };
  const cpu = {
    wasm_memory: memory,
    mem8: ram,
    devices: { vga: { svga_memory: vga } },
    zero_memory(addr: number, length: number) {
      calls.zeroed.push([addr, length]);
    },
    set_state(state: unknown[]) {
      calls.setState.push(state);
      // v86's CPU zeroes all of RAM before it places the saved pages.
      cpu.zero_memory(0, memoryMiB << 20);
    },
  };
  const emulator = { v86: { cpu } } as unknown as Emulator;
  return { emulator, ram, vga, calls, cpu };
}

const errorOf = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return err as HyperlabError;
  }
  throw new Error("it did not throw");
};

describe("parseState", () => {
  it("reads a state saved by a machine of the same memory size", () => {
    const layout = parseState(makeState({ memoryMiB: 2, pages: { 3: 1 } }), 2);
    expect(layout.memoryBytes).toBe(2 << 20);
    expect(layout.buffers[layout.packedId]!.length).toBe(PAGE);
  });

  it("refuses a state of another memory size with SNAPSHOT_MISMATCH naming both sizes", () => {
    const err = errorOf(() => parseState(makeState({ memoryMiB: 2, pages: {} }), 4));
    expect(err.code).toBe("SNAPSHOT_MISMATCH");
    expect(err.message).toBe("the saved machine has 2 MiB of memory; this machine has 4 MiB. Restore it into a machine with 2 MiB.");
    expect(err.detail).toEqual({ savedMiB: 2, memoryMiB: 4 });
  });

  it("refuses another v86 state format with SNAPSHOT_MISMATCH before reading its description", () => {
    const err = errorOf(() => parseState(makeState({ memoryMiB: 2, pages: {}, version: 5 }), 2));
    expect(err.code).toBe("SNAPSHOT_MISMATCH");
    expect(err.detail).toEqual({ stateFormat: 5, expected: V86_STATE_VERSION });
  });

  it("refuses a state longer than its header says with SNAPSHOT_CORRUPT", () => {
    const state = makeState({ memoryMiB: 2, pages: {} });
    const longer = new Uint8Array(state.length + 4);
    longer.set(state);
    const err = errorOf(() => parseState(longer, 2));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    expect(err.message).toBe(
      `the saved machine state is damaged: it is ${longer.length} bytes long, its header says ${state.length}. Take the snapshot again (or delete the cached file so it is rebuilt).`,
    );
  });

  it("refuses a view into a larger buffer with INVALID_ARGUMENT", () => {
    const state = makeState({ memoryMiB: 2, pages: {} });
    const padded = new Uint8Array(state.length + 8);
    padded.set(state, 8);
    expect(errorOf(() => parseState(padded.subarray(8), 2)).code).toBe("INVALID_ARGUMENT");
  });
});

describe("loadState", () => {
  it("places every saved page where its bitmap says and leaves the others zero", () => {
    const { emulator, ram } = fakeEmulator(2);
    loadState(emulator, makeState({ memoryMiB: 2, pages: { 0: 0x11, 1: 0x22, 300: 0x33 } }), 2);
    const pageOf = (p: number) => ram.subarray(p * PAGE, (p + 1) * PAGE);
    expect(pageOf(0).every((b) => b === 0x11)).toBe(true);
    expect(pageOf(1).every((b) => b === 0x22)).toBe(true);
    expect(pageOf(300).every((b) => b === 0x33)).toBe(true);
    expect(ram.subarray(2 * PAGE, 300 * PAGE).every((b) => b === 0)).toBe(true);
    expect(ram.subarray(301 * PAGE).every((b) => b === 0)).toBe(true);
  });

  it("gives v86's set_state the state tree with its typed arrays and maps revived, and RAM left out", () => {
    const { emulator, calls } = fakeEmulator(2);
    loadState(emulator, makeState({ memoryMiB: 2, pages: { 5: 1 } }), 2);
    const [state] = calls.setState;
    expect(state![0]).toBe(2 << 20);
    expect([...(state![1] as Int32Array)]).toEqual([7, -8, 9]);
    expect(state![2]).toEqual(new Map([[1, "one"]]));
    expect((state![77] as Uint8Array).length).toBe(0);
    const bitmap = state![78] as Uint8Array;
    expect(bitmap.length).toBe(512 / 8);
    expect(bitmap.every((b) => b === 0)).toBe(true);
  });

  it("lets v86 zero only the low memory it wrote while building the machine, then puts its zeroing back", () => {
    const { emulator, calls, cpu } = fakeEmulator(2);
    const zeroMemory = cpu.zero_memory;
    loadState(emulator, makeState({ memoryMiB: 2, pages: {} }), 2);
    expect(calls.zeroed).toEqual([[0, 1 << 20]]);
    expect(cpu.zero_memory).toBe(zeroMemory);
  });

  it("refuses with SNAPSHOT_CORRUPT a bitmap that lists more pages than the state packs, and the other way round", () => {
    const fewer = errorOf(() => loadState(fakeEmulator(2).emulator, makeState({ memoryMiB: 2, pages: { 1: 1, 2: 2 }, packedPages: 1 }), 2));
    expect(fewer.code).toBe("SNAPSHOT_CORRUPT");
    expect(fewer.message).toMatch(/its page bitmap lists more pages than it holds/);
    const more = errorOf(() => loadState(fakeEmulator(2).emulator, makeState({ memoryMiB: 2, pages: { 1: 1 }, packedPages: 2 }), 2));
    expect(more.code).toBe("SNAPSHOT_CORRUPT");
    expect(more.message).toMatch(/it holds more pages than its page bitmap lists/);
  });
});

describe("touchPages", () => {
  it("writes to each page above low memory that the state holds, and to every page of VGA memory", () => {
    const { emulator, ram, vga } = fakeEmulator(2);
    ram.fill(0xff);
    vga.fill(0xff);
    touchPages(emulator, makeState({ memoryMiB: 2, pages: { 3: 1, 256: 1, 400: 1 } }));
    const touched = Array.from({ length: 512 }, (_, p) => p).filter((p) => ram[p * PAGE] === 0);
    expect(touched).toEqual([256, 400]);
    expect(ram.filter((b) => b === 0).length).toBe(2);
    expect([0, 1, 2, 3].map((p) => vga[p * PAGE])).toEqual([0, 0, 0, 0]);
    expect(vga.filter((b) => b === 0).length).toBe(4);
  });

  it("touches no RAM for a state of another memory size", () => {
    const { emulator, ram, vga } = fakeEmulator(2);
    ram.fill(0xff);
    touchPages(emulator, makeState({ memoryMiB: 4, pages: { 300: 1 } }));
    expect(ram.every((b) => b === 0xff)).toBe(true);
    expect(vga[0]).toBe(0);
  });
});
