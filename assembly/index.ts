// The memory engine's ABI: every export of the Wasm module. Pointers are
// offsets into this module's memory, which the host grows and lays out
// (see src/hypervisor/memory-engine.ts); the module allocates nothing.
// Pages are 4096 bytes; page regions must be 16-byte aligned.
import { E_ALIGN, E_BOUNDS } from "./errors";
import { Change, PAGE_SHIFT, PAGE_SIZE } from "./layout";
import { isZeroPage, pagesEqual } from "./pages";
import { hashPage, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME64_5, xxh3Page, ZERO_PAGE_HASH } from "./xxh3";

export { sharingStats } from "./sharing";

/** First byte the host may use: everything below is the module's static data. */
export function scratchBase(): usize {
  return (__heap_base + 63) & ~63;
}

/** XXH3-64 of an all-zero page (what zero pages hash to). */
export function zeroPageHash(): u64 {
  return ZERO_PAGE_HASH;
}

function checkPages(p: usize, pages: u32): void {
  assert((p & 15) == 0, E_ALIGN);
  assert(<u64>p + (<u64>pages << PAGE_SHIFT) <= <u64>memory.size() << 16, E_BOUNDS);
}

/** Writes the XXH3-64 of each of `pages` pages at `src` to `out` (u64 each). */
export function hashPages(src: usize, pages: u32, out: usize): void {
  checkPages(src, pages);
  for (let i: u32 = 0; i < pages; i++) {
    store<u64>(out + (<usize>i << 3), hashPage(src));
    src += PAGE_SIZE;
  }
}

/**
 * Marks each all-zero page among `pages` pages at `src` in the bitmap at
 * `bits` (bit i of byte i/8, least significant first); returns how many.
 */
export function zeroPages(src: usize, pages: u32, bits: usize): u32 {
  checkPages(src, pages);
  let count: u32 = 0, byte: u32 = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const z = <u32>isZeroPage(src);
    count += z;
    byte |= z << (i & 7);
    if ((i & 7) == 7) {
      store<u8>(bits + (i >> 3), byte);
      byte = 0;
    }
    src += PAGE_SIZE;
  }
  if (pages & 7) store<u8>(bits + (pages >> 3), byte);
  return count;
}

/**
 * Compares `pages` pages at `base` and `cur`: writes a Change code per page
 * to `codes`, and the XXH3-64 of every page of both to `baseHashes` and
 * `curHashes` (a page that did not change is hashed once); returns how many
 * pages changed.
 */
export function diffPages(base: usize, cur: usize, pages: u32, codes: usize, baseHashes: usize, curHashes: usize): u32 {
  checkPages(base, pages);
  checkPages(cur, pages);
  let count: u32 = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const hb = hashPage(base);
    let code = Change.Same;
    let hc = hb;
    if (!pagesEqual(base, cur)) {
      const zero = isZeroPage(cur);
      code = zero ? Change.Zeroed : Change.Changed;
      hc = zero ? ZERO_PAGE_HASH : xxh3Page(cur);
      count++;
    }
    store<u8>(codes + i, code);
    store<u64>(baseHashes + (<usize>i << 3), hb);
    store<u64>(curHashes + (<usize>i << 3), hc);
    base += PAGE_SIZE;
    cur += PAGE_SIZE;
  }
  return count;
}

/**
 * One 64-bit digest of `count` page hashes at `hashes` (XXH64's 8-byte
 * round and avalanche over them, seeded with the count): identifies a whole
 * memory image in a delta's header.
 */
export function digest(hashes: usize, count: u32): u64 {
  let h: u64 = PRIME64_5 + (<u64>count << 3);
  const end = hashes + (<usize>count << 3);
  for (let p = hashes; p < end; p += 8) {
    h ^= rotl<u64>(load<u64>(p) * PRIME64_2, 31) * PRIME64_1;
    h = rotl<u64>(h, 27) * PRIME64_1 + PRIME64_4;
  }
  h ^= h >> 33;
  h *= PRIME64_2;
  h ^= h >> 29;
  h *= PRIME64_3;
  return h ^ (h >> 32);
}
