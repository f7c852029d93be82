// The memory engine: per-page hashes, zero-page scans, deltas against a base
// and cross-VM page-sharing statistics of guest RAM, computed by the
// AssemblyScript module built from assembly/ (WebAssembly SIMD). The same
// operations in plain TypeScript are in memory-reference.ts; the tests hold
// the two equal and bench/memory.ts measures both. Design notes and figures:
// docs/memory-engine.md.
//
// Memory is given either as a Uint8Array (any view: a copy of guest RAM, or
// the live view `machine.memory()` of a paused machine), which the engine
// streams through a small buffer in its own Wasm memory (one copy per call,
// included in every figure), or as a MemoryImage: a copy already held in the
// engine's memory (`engine.load(mem)`, one explicit copy), which the kernels
// read in place.
import { HyperlabError } from "../errors.ts";

/** Bytes per guest page: every operation works on whole 4 KiB pages. */
export const PAGE_SIZE = 4096;
const PAGE_SHIFT = 12;

/** XXH3-64 of a page of zeros (`0x93d76fe148c689ba`): the hash every zero page gets. */
export const ZERO_PAGE_HASH = 0x93d76fe148c689ban;

/** Page codes of a PageDiff (the same values as `Change` in assembly/layout.ts). */
export const PageChange = { same: 0, changed: 1, zeroed: 2 } as const;

/** Bytes before a delta's page index; see docs/memory-engine.md for the layout. */
export const DELTA_HEADER_SIZE = 32;
/** "HLMD" read as a little-endian u32. */
const DELTA_MAGIC = 0x444d4c48;
const DELTA_VERSION = 1;
/** Set in an index entry when the page became all zero: no bytes are stored for it. */
const ZEROED_FLAG = 0x80000000;

/** All-zero pages of a memory: bit `i % 8` of `bits[i >> 3]` is set when page `i` is zero. */
export interface PageBitmap {
  pages: number;
  /** how many bits are set */
  count: number;
  bits: Uint8Array;
}

/** What differs between a base and a current memory, page by page. */
export interface PageDiff {
  /** one PageChange code per page */
  codes: Uint8Array;
  /** pages whose code is not `same` */
  changed: number;
  baseHashes: BigUint64Array;
  currentHashes: BigUint64Array;
}

/**
 * Page sharing among VMs, by page content (a page's XXH3-64 stands for its
 * bytes; a collision would only make these counts slightly off).
 */
export interface SharingStats {
  vms: number;
  /** pages of all VMs together */
  totalPages: number;
  /** all-zero pages among them */
  zeroPages: number;
  /** distinct page contents: the pages left if every identical page were merged */
  uniquePages: number;
  /** pages whose content occurs at least twice: what KSM would merge */
  shareablePages: number;
  /** totalPages - uniquePages: the pages merging would free */
  savedPages: number;
  /** pages whose content occurs in at least two different VMs */
  crossVmPages: number;
}

/** A delta's header, as read back. */
export interface DeltaHeader {
  pageCount: number;
  /** index entries: pages that changed */
  changedPages: number;
  /** changed pages stored with their 4096 bytes (the others became zero) */
  storedPages: number;
  /** digest() of the base's page hashes */
  baseDigest: bigint;
  /** digest() of the result's page hashes */
  resultDigest: bigint;
}

/** Guest memory as a view anywhere, or as a copy held in the engine (MemoryImage). */
export type MemorySource = Uint8Array | MemoryImage;

/**
 * The primitive operations, implemented by the Wasm engine (MemoryEngine) and
 * in plain TypeScript (memory-reference.ts). Every memory must be a whole
 * number of pages (else INVALID_ARGUMENT).
 */
export interface MemoryKernels {
  /** XXH3-64 (seed 0) of every page. */
  hashPages(mem: MemorySource): BigUint64Array;
  /** Which pages are all zero. */
  zeroPages(mem: MemorySource): PageBitmap;
  /** Compares two memories of the same size page by page, hashing both. */
  diffPages(base: MemorySource, current: MemorySource): PageDiff;
  /** One 64-bit digest of a sequence of page hashes (identifies a whole memory). */
  digest(hashes: BigUint64Array): bigint;
  /** Page sharing among VMs, given each VM's page hashes. */
  sharingStats(vms: readonly BigUint64Array[]): SharingStats;
}

/** The kernels plus deltas built on them. */
export interface MemoryOps extends MemoryKernels {
  /** A delta holding only the pages of `current` that differ from `base`. */
  encodeDelta(base: MemorySource, current: MemorySource): Uint8Array;
  /**
   * `base` with a delta applied, written to `into` (default: a new array;
   * `into` may be `base` itself). Checks that `base` is the delta's base
   * (SNAPSHOT_MISMATCH) and that the result is what was encoded
   * (SNAPSHOT_CORRUPT) before writing anything.
   */
  decodeDelta(base: MemorySource, delta: Uint8Array, into?: Uint8Array | MemoryImage): Uint8Array;
}

/** Pages in `mem`; throws INVALID_ARGUMENT unless it is a non-empty whole number of pages. */
export function pageCount(mem: { byteLength: number }, what = "memory"): number {
  const n = mem.byteLength;
  if (n === 0 || n % PAGE_SIZE !== 0) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `${what} is ${n} bytes, not a whole number of ${PAGE_SIZE}-byte pages: pass guest RAM (or a copy of it) whose size is a multiple of ${PAGE_SIZE}`,
      { bytes: n },
    );
  }
  return n / PAGE_SIZE;
}

/** The bytes of `mem` (a MemoryImage's view is valid until the engine's memory grows). */
export function bytesOf(mem: MemorySource): Uint8Array {
  return mem instanceof MemoryImage ? mem.view() : mem;
}

/** True when page `i` is set in `bitmap`. */
export function bitmapHas(bitmap: PageBitmap, i: number): boolean {
  return ((bitmap.bits[i >> 3]! >> (i & 7)) & 1) === 1;
}

function samePages(base: MemorySource, current: MemorySource): number {
  const pages = pageCount(base, "base memory");
  if (pageCount(current, "current memory") !== pages) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `base memory is ${base.byteLength} bytes but current memory is ${current.byteLength}: a delta needs two memories of the same size`,
    );
  }
  return pages;
}

/** Encodes a delta (layout in docs/memory-engine.md) with any kernels. */
export function encodeDelta(k: MemoryKernels, base: MemorySource, current: MemorySource): Uint8Array {
  const pages = samePages(base, current);
  const diff = k.diffPages(base, current);
  const baseDigest = k.digest(diff.baseHashes);
  const resultDigest = k.digest(diff.currentHashes);
  const { codes, changed } = diff;
  let stored = 0;
  for (let i = 0; i < pages; i++) if (codes[i] === PageChange.changed) stored++;
  const out = new Uint8Array(DELTA_HEADER_SIZE + changed * 4 + stored * PAGE_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, DELTA_MAGIC, true);
  dv.setUint16(4, DELTA_VERSION, true);
  dv.setUint16(6, PAGE_SHIFT, true);
  dv.setUint32(8, pages, true);
  dv.setUint32(12, changed, true);
  dv.setBigUint64(16, baseDigest, true);
  dv.setBigUint64(24, resultDigest, true);
  const cur = bytesOf(current);
  let entry = DELTA_HEADER_SIZE;
  let data = DELTA_HEADER_SIZE + changed * 4;
  for (let i = 0; i < pages; i++) {
    const code = codes[i];
    if (code === PageChange.same) continue;
    dv.setUint32(entry, code === PageChange.zeroed ? (i | ZEROED_FLAG) >>> 0 : i, true);
    entry += 4;
    if (code === PageChange.changed) {
      out.set(cur.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), data);
      data += PAGE_SIZE;
    }
  }
  return out;
}

function corrupt(why: string): HyperlabError {
  return new HyperlabError("SNAPSHOT_CORRUPT", `memory delta is damaged: ${why}; take the snapshot again`);
}

/** Reads and checks a delta's header and index; throws SNAPSHOT_CORRUPT when malformed. */
export function readDeltaHeader(delta: Uint8Array): DeltaHeader & { index: Uint32Array } {
  if (delta.byteLength < DELTA_HEADER_SIZE) throw corrupt(`${delta.byteLength} bytes is shorter than its ${DELTA_HEADER_SIZE}-byte header`);
  const dv = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  if (dv.getUint32(0, true) !== DELTA_MAGIC) throw corrupt("it does not start with HLMD");
  const version = dv.getUint16(4, true);
  if (version !== DELTA_VERSION) {
    throw new HyperlabError("SNAPSHOT_MISMATCH", `memory delta format ${version} is not supported (this hyperlab reads format ${DELTA_VERSION})`);
  }
  if (dv.getUint16(6, true) !== PAGE_SHIFT) throw corrupt(`page size 2^${dv.getUint16(6, true)} is not ${PAGE_SIZE}`);
  const pageCount = dv.getUint32(8, true);
  const changedPages = dv.getUint32(12, true);
  if (changedPages > pageCount) throw corrupt(`${changedPages} changed pages out of ${pageCount}`);
  const indexEnd = DELTA_HEADER_SIZE + changedPages * 4;
  if (delta.byteLength < indexEnd) throw corrupt("its page index is cut short");
  const index = new Uint32Array(changedPages);
  let stored = 0;
  let last = -1;
  for (let j = 0; j < changedPages; j++) {
    const e = dv.getUint32(DELTA_HEADER_SIZE + j * 4, true);
    const page = e & ~ZEROED_FLAG;
    if (page <= last || page >= pageCount) throw corrupt(`page index entry ${j} (${page}) is out of order or past page ${pageCount - 1}`);
    last = page;
    if (!(e & ZEROED_FLAG)) stored++;
    index[j] = e;
  }
  const expected = indexEnd + stored * PAGE_SIZE;
  if (delta.byteLength !== expected) throw corrupt(`it is ${delta.byteLength} bytes where its index says ${expected}`);
  return {
    pageCount,
    changedPages,
    storedPages: stored,
    baseDigest: dv.getBigUint64(16, true),
    resultDigest: dv.getBigUint64(24, true),
    index,
  };
}

/** Decodes a delta (see MemoryOps.decodeDelta) with any kernels. */
export function decodeDelta(k: MemoryKernels, base: MemorySource, delta: Uint8Array, into?: Uint8Array | MemoryImage): Uint8Array {
  const h = readDeltaHeader(delta);
  const pages = pageCount(base, "base memory");
  if (pages !== h.pageCount) {
    throw new HyperlabError(
      "SNAPSHOT_MISMATCH",
      `memory delta is for ${h.pageCount} pages (${h.pageCount * 4} KiB of RAM) but the base has ${pages}: restore it onto the snapshot it was taken against`,
    );
  }
  if (into && into.byteLength !== base.byteLength) {
    throw new HyperlabError("INVALID_ARGUMENT", `cannot decode a delta of ${base.byteLength} bytes of memory into ${into.byteLength} bytes`);
  }
  const hashes = k.hashPages(base);
  const baseDigest = k.digest(hashes);
  if (baseDigest !== h.baseDigest) {
    throw new HyperlabError(
      "SNAPSHOT_MISMATCH",
      `memory delta was made against another base (its base digest is ${hex(h.baseDigest)}, this memory's is ${hex(baseDigest)}): restore it onto the snapshot it was taken against`,
    );
  }
  const dataStart = DELTA_HEADER_SIZE + h.changedPages * 4;
  const storedHashes = h.storedPages ? k.hashPages(delta.subarray(dataStart)) : new BigUint64Array(0);
  let s = 0;
  for (const e of h.index) hashes[e & ~ZEROED_FLAG] = e & ZEROED_FLAG ? ZERO_PAGE_HASH : storedHashes[s++]!;
  const resultDigest = k.digest(hashes);
  if (resultDigest !== h.resultDigest) throw corrupt(`the pages it holds do not give the memory it was made from (digest ${hex(resultDigest)}, expected ${hex(h.resultDigest)})`);
  // No engine call below: views of engine memory stay valid.
  const src = bytesOf(base);
  const out = into ? bytesOf(into) : new Uint8Array(src.byteLength);
  if (out.buffer !== src.buffer || out.byteOffset !== src.byteOffset) out.set(src);
  let data = dataStart;
  for (const e of h.index) {
    const at = (e & ~ZEROED_FLAG) * PAGE_SIZE;
    if (e & ZEROED_FLAG) out.fill(0, at, at + PAGE_SIZE);
    else {
      out.set(delta.subarray(data, data + PAGE_SIZE), at);
      data += PAGE_SIZE;
    }
  }
  return out;
}

function hex(x: bigint): string {
  return "0x" + x.toString(16).padStart(16, "0");
}

/** The exports of the Wasm module (assembly/index.ts), as the generated bindings type them. */
type Bindings = typeof import("../../build/assembly/release.js");

/** Which build of assembly/ to run: release (optimized, no assertions) or debug (assertions on). */
export type EngineBuild = "release" | "debug";

const builds: Record<EngineBuild, () => Promise<Bindings>> = {
  release: () => import("../../build/assembly/release.js"),
  debug: () => import("../../build/assembly/debug.js"),
};

const engines = new Map<EngineBuild, Promise<MemoryEngine>>();

/**
 * The engine of this thread (one Wasm instance per build and thread). The
 * module comes from `build/assembly/`, which `npm install` and `npm test`
 * build (`npm run asbuild`); without it this fails saying so.
 */
export function loadMemoryEngine(build: EngineBuild = "release"): Promise<MemoryEngine> {
  let engine = engines.get(build);
  if (!engine) {
    engine = builds[build]().then(
      (wasm) => new MemoryEngine(wasm, build),
      (err: unknown) => {
        engines.delete(build);
        throw new HyperlabError(
          "IMAGE_MISSING",
          `the memory engine's WebAssembly (build/assembly/${build}.wasm) could not be loaded: run \`npm run asbuild\` (${(err as Error).message})`,
        );
      },
    );
    engines.set(build, engine);
  }
  return engine;
}

/** Pages per kernel call when streaming a Uint8Array: 128 KiB, so two buffers stay in L2. */
const STREAM_PAGES = 32;
/** Pages per kernel call on a MemoryImage (lets V8 tier the kernels up between calls). */
const RESIDENT_PAGES = 256;
/** WebAssembly memory (wasm32) ends at 4 GiB. */
const WASM_MAX_BYTES = 2 ** 32;

/**
 * A copy of guest memory held in the engine's Wasm memory, so kernels read it
 * in place. Made by `engine.load()` / `engine.allocate()`; `free()` returns its
 * space. Legal until freed.
 */
export class MemoryImage {
  private released = false;
  /** @internal use engine.load() or engine.allocate() */
  constructor(
    private readonly engine: MemoryEngine,
    /** byte offset in the engine's memory */
    readonly ptr: number,
    readonly byteLength: number,
  ) {}

  /** Pages held. */
  get pages(): number {
    return this.byteLength / PAGE_SIZE;
  }

  /** The bytes, in place. The view is detached when the engine's memory grows: take a new one after any engine call. */
  view(): Uint8Array {
    this.check();
    return new Uint8Array(this.engine.memory.buffer, this.ptr, this.byteLength);
  }

  /** Overwrites the image with `mem` (same size): one copy. */
  set(mem: Uint8Array): void {
    if (mem.byteLength !== this.byteLength) {
      throw new HyperlabError("INVALID_ARGUMENT", `cannot copy ${mem.byteLength} bytes into a memory image of ${this.byteLength}`);
    }
    this.view().set(mem);
  }

  /** Returns the image's space to the engine; the image is unusable afterwards. */
  free(): void {
    if (this.released) return;
    this.released = true;
    this.engine.release(this.ptr, this.byteLength);
  }

  private check(): void {
    if (this.released) throw new HyperlabError("INVALID_ARGUMENT", "this memory image was freed");
  }
}

/** Free space of the engine's memory: first fit, coalescing, growing the memory at the top. */
class Heap {
  private free: Array<{ start: number; end: number }> = [];
  private top: number;

  constructor(
    private readonly memory: WebAssembly.Memory,
    base: number,
  ) {
    this.top = base;
  }

  alloc(bytes: number): number {
    const size = Math.ceil(Math.max(bytes, 1) / 64) * 64;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.end - b.start < size) continue;
      const ptr = b.start;
      b.start += size;
      if (b.start === b.end) this.free.splice(i, 1);
      return ptr;
    }
    const ptr = this.top;
    const end = ptr + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try {
        if (end > WASM_MAX_BYTES) throw new RangeError("WebAssembly memory ends at 4096 MiB");
        this.memory.grow(Math.ceil((end - have) / 65536));
      } catch (err) {
        throw new HyperlabError(
          "RESOURCE_EXHAUSTED",
          `the memory engine needs ${Math.ceil(end / 2 ** 20)} MiB of WebAssembly memory and cannot grow to it (${(err as Error).message}): free memory images that are no longer needed`,
        );
      }
    }
    this.top = end;
    return ptr;
  }

  release(ptr: number, bytes: number): void {
    const size = Math.ceil(Math.max(bytes, 1) / 64) * 64;
    let start = ptr;
    let end = ptr + size;
    // merge with neighbours, then give the top back
    this.free = this.free.filter((b) => {
      if (b.end === start) return (start = b.start), false;
      if (b.start === end) return (end = b.end), false;
      return true;
    });
    if (end === this.top) this.top = start;
    else {
      this.free.push({ start, end });
      this.free.sort((a, b) => a.start - b.start);
    }
  }
}

/**
 * The Wasm memory engine (see loadMemoryEngine). Every method is synchronous
 * and legal at any time; memories are Uint8Arrays (streamed: one copy into
 * the engine per call) or MemoryImages (read in place).
 */
export class MemoryEngine implements MemoryOps {
  private readonly heap: Heap;

  /** @internal use loadMemoryEngine() */
  constructor(
    private readonly wasm: Bindings,
    /** which build of assembly/ runs */
    readonly build: EngineBuild,
  ) {
    this.heap = new Heap(wasm.memory, wasm.scratchBase());
    if (wasm.zeroPageHash() !== ZERO_PAGE_HASH) {
      throw new HyperlabError("IMAGE_CORRUPT", `build/assembly/${build}.wasm does not match this source (its zero-page hash differs): run \`npm run asbuild\``);
    }
  }

  /** The engine's WebAssembly memory (MemoryImages live in it). */
  get memory(): WebAssembly.Memory {
    return this.wasm.memory;
  }

  /** Copies `mem` into the engine once; kernels then read the copy in place. */
  load(mem: Uint8Array): MemoryImage {
    const image = this.allocate(mem.byteLength);
    image.view().set(mem);
    return image;
  }

  /** A zero-filled MemoryImage of `byteLength` bytes (a whole number of pages). */
  allocate(byteLength: number): MemoryImage {
    pageCount({ byteLength });
    const image = new MemoryImage(this, this.heap.alloc(byteLength), byteLength);
    image.view().fill(0);
    return image;
  }

  /** @internal MemoryImage.free() */
  release(ptr: number, bytes: number): void {
    this.heap.release(ptr, bytes);
  }

  hashPages(mem: MemorySource): BigUint64Array {
    const pages = pageCount(mem);
    return this.scratch(pages * 8, (out) => {
      this.each(mem, undefined, (src, _b, n, first) => this.wasm.hashPages(src, n, out + first * 8));
      return new BigUint64Array(this.memory.buffer.slice(out, out + pages * 8));
    });
  }

  zeroPages(mem: MemorySource): PageBitmap {
    const pages = pageCount(mem);
    const bytes = Math.ceil(pages / 8);
    return this.scratch(bytes, (bits) => {
      let count = 0;
      this.each(mem, undefined, (src, _b, n, first) => (count += this.wasm.zeroPages(src, n, bits + first / 8)));
      return { pages, count, bits: new Uint8Array(this.memory.buffer.slice(bits, bits + bytes)) };
    });
  }

  diffPages(base: MemorySource, current: MemorySource): PageDiff {
    const pages = samePages(base, current);
    return this.scratch(pages * 17, (out) => {
      const codes = out + pages * 16;
      let changed = 0;
      this.each(base, current, (b, c, n, first) => {
        changed += this.wasm.diffPages(b, c!, n, codes + first, out + first * 8, out + pages * 8 + first * 8);
      });
      const buf = this.memory.buffer;
      return {
        codes: new Uint8Array(buf.slice(codes, codes + pages)),
        changed,
        baseHashes: new BigUint64Array(buf.slice(out, out + pages * 8)),
        currentHashes: new BigUint64Array(buf.slice(out + pages * 8, out + pages * 16)),
      };
    });
  }

  digest(hashes: BigUint64Array): bigint {
    return this.scratch(hashes.byteLength, (p) => {
      new BigUint64Array(this.memory.buffer, p, hashes.length).set(hashes);
      return this.wasm.digest(p, hashes.length);
    });
  }

  sharingStats(vms: readonly BigUint64Array[]): SharingStats {
    const total = vms.reduce((n, h) => n + h.length, 0);
    let capacity = 16;
    while (capacity < total * 2) capacity *= 2;
    const bytes = total * 8 + vms.length * 4 + capacity * 16 + 16;
    return this.scratch(bytes, (p) => {
      const counts = p + total * 8;
      const table = Math.ceil((counts + vms.length * 4) / 16) * 16;
      const out = table + capacity * 16;
      let at = p;
      for (const [v, h] of vms.entries()) {
        new BigUint64Array(this.memory.buffer, at, h.length).set(h);
        new Uint32Array(this.memory.buffer, counts, vms.length)[v] = h.length;
        at += h.byteLength;
      }
      this.wasm.sharingStats(p, counts, vms.length, table, capacity, out);
      const [distinct, shareable, crossVm, zero] = new Uint32Array(this.memory.buffer, out, 4);
      return {
        vms: vms.length,
        totalPages: total,
        zeroPages: zero!,
        uniquePages: distinct!,
        shareablePages: shareable!,
        savedPages: total - distinct!,
        crossVmPages: crossVm!,
      };
    });
  }

  encodeDelta(base: MemorySource, current: MemorySource): Uint8Array {
    return encodeDelta(this, base, current);
  }

  decodeDelta(base: MemorySource, delta: Uint8Array, into?: Uint8Array | MemoryImage): Uint8Array {
    return decodeDelta(this, base, delta, into);
  }

  /** Runs `fn` with `bytes` of engine memory, freed afterwards. */
  private scratch<T>(bytes: number, fn: (ptr: number) => T): T {
    const ptr = this.heap.alloc(bytes + 64);
    try {
      return fn(ptr);
    } finally {
      this.heap.release(ptr, bytes + 64);
    }
  }

  /**
   * Calls `fn(a, b, pages, firstPage)` over `a` (and `b`, same size) with
   * pointers into engine memory: a MemoryImage in place, a Uint8Array copied
   * through a 128 KiB buffer.
   */
  private each(a: MemorySource, b: MemorySource | undefined, fn: (a: number, b: number | undefined, pages: number, first: number) => void): void {
    const pages = a.byteLength / PAGE_SIZE;
    const resident = (m: MemorySource | undefined) => m === undefined || m instanceof MemoryImage;
    const step = resident(a) && resident(b) ? RESIDENT_PAGES : STREAM_PAGES;
    const bufA = a instanceof MemoryImage ? 0 : this.heap.alloc(step * PAGE_SIZE);
    const bufB = b === undefined || b instanceof MemoryImage ? 0 : this.heap.alloc(step * PAGE_SIZE);
    try {
      for (const m of [a, b]) {
        // a view into engine memory is detached if the allocations above grew it
        if (m && m.byteLength !== pages * PAGE_SIZE) {
          throw new HyperlabError("INVALID_ARGUMENT", "a view of the engine's own memory was detached when it grew: pass the MemoryImage, not image.view()");
        }
      }
      const at = (m: MemorySource | undefined, buf: number, first: number, n: number): number | undefined => {
        if (m === undefined) return undefined;
        if (m instanceof MemoryImage) return m.ptr + first * PAGE_SIZE;
        new Uint8Array(this.memory.buffer, buf, n * PAGE_SIZE).set(m.subarray(first * PAGE_SIZE, (first + n) * PAGE_SIZE));
        return buf;
      };
      for (let first = 0; first < pages; first += step) {
        const n = Math.min(step, pages - first);
        fn(at(a, bufA, first, n)!, at(b, bufB, first, n), n, first);
      }
    } finally {
      if (bufB) this.heap.release(bufB, step * PAGE_SIZE);
      if (bufA) this.heap.release(bufA, step * PAGE_SIZE);
    }
  }
}
