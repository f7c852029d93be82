// The memory engine's operations in plain TypeScript: the specification the
// Wasm engine is tested against, and the baseline bench/memory.ts measures
// it against. Written to be as fast as plain TypeScript honestly gets: whole
// 32-bit words through Uint32Array views, unrolled loops, the same zero-page
// shortcut as the engine, and XXH3's 64-bit arithmetic on float64 limbs
// (exact below 2^53) instead of BigInt.
import {
  bytesOf,
  decodeDelta,
  encodeDelta,
  type MemoryOps,
  type MemorySource,
  pageCount,
  type PageBitmap,
  PageChange,
  type PageDiff,
  type SharingStats,
  ZERO_PAGE_HASH,
} from "./memory-engine.ts";

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error("memory-reference.ts assumes a little-endian host");

const WORDS = 1024; // u32 words per page
const TWO16 = 65536;
const TWO32 = 4294967296;

/** XXH3_kSecret, xxHash's 192-byte default secret. */
const SECRET = new Uint8Array([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
]);

/** 16 little-endian u32 words of the secret from byte `at` (any alignment). */
function secretWords(at: number, n = 16): Uint32Array {
  const dv = new DataView(SECRET.buffer);
  return Uint32Array.from({ length: n }, (_, i) => dv.getUint32(at + i * 4, true));
}

/** Stripe keys: 16 words for each of the 16 stripes of a block, then the last stripe's (secret + 121). */
const KEYS = new Uint32Array(17 * 16);
for (let s = 0; s < 16; s++) KEYS.set(secretWords(s * 8), s * 16);
KEYS.set(secretWords(121), 16 * 16);
const SCRAMBLE_KEY = secretWords(128);
const MERGE_KEY = secretWords(11);

// 64-bit constants as [hi, lo] u32 halves
const P32_1 = 0x9e3779b1;
const P64_1 = [0x9e3779b1, 0x85ebca87] as const;
const P64_2 = [0xc2b2ae3d, 0x27d4eb4f] as const;
const P64_3 = [0x165667b1, 0x9e3779f9] as const;
const P64_4 = [0x85ebca77, 0xc2b2ae63] as const;
const P64_5 = [0x27d4eb2f, 0x165667c5] as const;
const PRIME_MX1 = [0x16566791, 0x9e3779f9] as const;
/** XXH3's initial accumulators, [hi, lo] per lane. */
const INIT: ReadonlyArray<readonly [number, number]> = [[0, 0xc2b2ae3d], P64_1, P64_2, P64_3, P64_4, [0, 0x85ebca77], P64_5, [0, P32_1]];

// Results of the 64-bit helpers (no allocation in the hot paths).
let rHi = 0;
let rLo = 0;

/** u32 × u32 → rHi:rLo (exact 64-bit product). */
function mul32(a: number, b: number): void {
  const lo16 = a * (b & 0xffff); // < 2^48
  const hi16 = a * (b >>> 16); // < 2^48, in units of 2^16
  const mid = (hi16 % TWO16) * TWO16 + lo16; // < 2^49
  const lo = mid % TWO32;
  rLo = lo;
  rHi = (Math.floor(hi16 / TWO16) + (mid - lo) / TWO32) >>> 0;
}

/** (aHi:aLo × bHi:bLo) mod 2^64 → rHi:rLo. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  rHi = (rHi + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) >>> 0;
}

/** XXH3_mul128_fold64: low and high halves of the 128-bit product, xored → rHi:rLo. */
function mul128Fold64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  const llHi = rHi;
  const llLo = rLo;
  mul32(aHi, bLo);
  const hlHi = rHi;
  const hlLo = rLo;
  mul32(aLo, bHi);
  const lhHi = rHi;
  const lhLo = rLo;
  mul32(aHi, bHi);
  const hhHi = rHi;
  const hhLo = rLo;
  const crossLoSum = llHi + hlLo + lhLo; // < 3·2^32
  const crossLo = crossLoSum % TWO32;
  const crossHi = lhHi + (crossLoSum - crossLo) / TWO32; // < 2^32
  const upperLoSum = hlHi + crossHi + hhLo;
  const upperLo = upperLoSum % TWO32;
  const upperHi = (hhHi + (upperLoSum - upperLo) / TWO32) >>> 0;
  // lower = crossLo:llLo
  rHi = (crossLo ^ upperHi) >>> 0;
  rLo = (llLo ^ upperLo) >>> 0;
}

/** True when the page at word `o` is all zero. */
function zeroWords(w: Uint32Array, o: number): boolean {
  for (let i = o, end = o + WORDS; i < end; i += 16) {
    if ((w[i]! | w[i + 1]! | w[i + 2]! | w[i + 3]! | w[i + 4]! | w[i + 5]! | w[i + 6]! | w[i + 7]! |
      w[i + 8]! | w[i + 9]! | w[i + 10]! | w[i + 11]! | w[i + 12]! | w[i + 13]! | w[i + 14]! | w[i + 15]!) !== 0) {
      return false;
    }
  }
  return true;
}

/** True when the pages at words `ao` of `a` and `bo` of `b` are equal. */
function equalWords(a: Uint32Array, ao: number, b: Uint32Array, bo: number): boolean {
  for (let i = 0; i < WORDS; i += 8) {
    if (((a[ao + i]! ^ b[bo + i]!) | (a[ao + i + 1]! ^ b[bo + i + 1]!) | (a[ao + i + 2]! ^ b[bo + i + 2]!) |
      (a[ao + i + 3]! ^ b[bo + i + 3]!) | (a[ao + i + 4]! ^ b[bo + i + 4]!) | (a[ao + i + 5]! ^ b[bo + i + 5]!) |
      (a[ao + i + 6]! ^ b[bo + i + 6]!) | (a[ao + i + 7]! ^ b[bo + i + 7]!)) !== 0) {
      return false;
    }
  }
  return true;
}

/** Accumulators between blocks: [lo, mid, hi] float limbs per lane (value = lo + mid·2^16 + hi·2^32). */
const ACC = new Float64Array(24);

/** Normalizes lane `i` of ACC to u32 halves → rHi:rLo. */
function normalize(i: number): void {
  const l = ACC[i * 3]!;
  const m = ACC[i * 3 + 1]!;
  const h = ACC[i * 3 + 2]!;
  const lh = Math.floor(l / TWO32);
  const mh = Math.floor(m / TWO16);
  const t = l - lh * TWO32 + (m - mh * TWO16) * TWO16; // < 2^33
  const lo = t % TWO32;
  rLo = lo;
  rHi = (h + lh + mh + (t - lo) / TWO32) % TWO32;
}

/**
 * XXH3-64 of the page at word `o` of `w` (always computed) → rHi:rLo. Every
 * accumulator lane is kept as three float64 limbs that only ever grow within
 * a block (at most 17 additions below 2^48 each, so they stay exact), and is
 * normalized to 64 bits only where XXH3 scrambles.
 */
function xxh3Words(w: Uint32Array, o: number): void {
  let l0 = INIT[0]![1], m0 = 0, h0 = INIT[0]![0];
  let l1 = INIT[1]![1], m1 = 0, h1 = INIT[1]![0];
  let l2 = INIT[2]![1], m2 = 0, h2 = INIT[2]![0];
  let l3 = INIT[3]![1], m3 = 0, h3 = INIT[3]![0];
  let l4 = INIT[4]![1], m4 = 0, h4 = INIT[4]![0];
  let l5 = INIT[5]![1], m5 = 0, h5 = INIT[5]![0];
  let l6 = INIT[6]![1], m6 = 0, h6 = INIT[6]![0];
  let l7 = INIT[7]![1], m7 = 0, h7 = INIT[7]![0];
  let p = o;
  for (let block = 0; block < 4; block++) {
    for (let s = 0; s < 16; s++, p += 16) {
      const k = (block === 3 && s === 15 ? 16 : s) << 4;
      let d = w[p]!, e = w[p + 1]!, x = (d ^ KEYS[k]!) >>> 0, y = e ^ KEYS[k + 1]!;
      l0 += x * (y & 0xffff); m0 += x * (y >>> 16); l1 += d; h1 += e;
      d = w[p + 2]!; e = w[p + 3]!; x = (d ^ KEYS[k + 2]!) >>> 0; y = e ^ KEYS[k + 3]!;
      l1 += x * (y & 0xffff); m1 += x * (y >>> 16); l0 += d; h0 += e;
      d = w[p + 4]!; e = w[p + 5]!; x = (d ^ KEYS[k + 4]!) >>> 0; y = e ^ KEYS[k + 5]!;
      l2 += x * (y & 0xffff); m2 += x * (y >>> 16); l3 += d; h3 += e;
      d = w[p + 6]!; e = w[p + 7]!; x = (d ^ KEYS[k + 6]!) >>> 0; y = e ^ KEYS[k + 7]!;
      l3 += x * (y & 0xffff); m3 += x * (y >>> 16); l2 += d; h2 += e;
      d = w[p + 8]!; e = w[p + 9]!; x = (d ^ KEYS[k + 8]!) >>> 0; y = e ^ KEYS[k + 9]!;
      l4 += x * (y & 0xffff); m4 += x * (y >>> 16); l5 += d; h5 += e;
      d = w[p + 10]!; e = w[p + 11]!; x = (d ^ KEYS[k + 10]!) >>> 0; y = e ^ KEYS[k + 11]!;
      l5 += x * (y & 0xffff); m5 += x * (y >>> 16); l4 += d; h4 += e;
      d = w[p + 12]!; e = w[p + 13]!; x = (d ^ KEYS[k + 12]!) >>> 0; y = e ^ KEYS[k + 13]!;
      l6 += x * (y & 0xffff); m6 += x * (y >>> 16); l7 += d; h7 += e;
      d = w[p + 14]!; e = w[p + 15]!; x = (d ^ KEYS[k + 14]!) >>> 0; y = e ^ KEYS[k + 15]!;
      l7 += x * (y & 0xffff); m7 += x * (y >>> 16); l6 += d; h6 += e;
    }
    ACC[0] = l0; ACC[1] = m0; ACC[2] = h0; ACC[3] = l1; ACC[4] = m1; ACC[5] = h1;
    ACC[6] = l2; ACC[7] = m2; ACC[8] = h2; ACC[9] = l3; ACC[10] = m3; ACC[11] = h3;
    ACC[12] = l4; ACC[13] = m4; ACC[14] = h4; ACC[15] = l5; ACC[16] = m5; ACC[17] = h5;
    ACC[18] = l6; ACC[19] = m6; ACC[20] = h6; ACC[21] = l7; ACC[22] = m7; ACC[23] = h7;
    if (block === 3) break;
    // scramble: acc ^= acc >> 47; acc ^= key; acc *= PRIME32_1
    for (let i = 0; i < 8; i++) {
      normalize(i);
      const hi = (rHi ^ SCRAMBLE_KEY[i * 2 + 1]!) >>> 0;
      const lo = (rLo ^ (rHi >>> 15) ^ SCRAMBLE_KEY[i * 2]!) >>> 0;
      ACC[i * 3] = lo * (P32_1 & 0xffff);
      ACC[i * 3 + 1] = lo * (P32_1 >>> 16);
      ACC[i * 3 + 2] = Math.imul(hi, P32_1) >>> 0;
    }
    l0 = ACC[0]!; m0 = ACC[1]!; h0 = ACC[2]!; l1 = ACC[3]!; m1 = ACC[4]!; h1 = ACC[5]!;
    l2 = ACC[6]!; m2 = ACC[7]!; h2 = ACC[8]!; l3 = ACC[9]!; m3 = ACC[10]!; h3 = ACC[11]!;
    l4 = ACC[12]!; m4 = ACC[13]!; h4 = ACC[14]!; l5 = ACC[15]!; m5 = ACC[16]!; h5 = ACC[17]!;
    l6 = ACC[18]!; m6 = ACC[19]!; h6 = ACC[20]!; l7 = ACC[21]!; m7 = ACC[22]!; h7 = ACC[23]!;
  }
  // merge: start = len · PRIME64_1, + Σ mul128_fold64(acc[2j] ^ key, acc[2j+1] ^ key'), then avalanche
  mul64(0, 4096, P64_1[0], P64_1[1]);
  let hHi = rHi;
  let hLo = rLo;
  for (let j = 0; j < 4; j++) {
    normalize(2 * j);
    const aHi = (rHi ^ MERGE_KEY[j * 4 + 1]!) >>> 0;
    const aLo = (rLo ^ MERGE_KEY[j * 4]!) >>> 0;
    normalize(2 * j + 1);
    const bHi = (rHi ^ MERGE_KEY[j * 4 + 3]!) >>> 0;
    const bLo = (rLo ^ MERGE_KEY[j * 4 + 2]!) >>> 0;
    mul128Fold64(aHi, aLo, bHi, bLo);
    const lo = hLo + rLo;
    hLo = lo % TWO32;
    hHi = (hHi + rHi + (lo - hLo) / TWO32) % TWO32;
  }
  hLo = (hLo ^ (hHi >>> 5)) >>> 0; // h ^= h >> 37
  mul64(hHi, hLo, PRIME_MX1[0], PRIME_MX1[1]);
  rLo = (rLo ^ rHi) >>> 0; // h ^= h >> 32
}

const ZERO_HI = Number(ZERO_PAGE_HASH >> 32n);
const ZERO_LO = Number(ZERO_PAGE_HASH & 0xffffffffn);

/** XXH3-64 of the page at word `o`, zero pages by the shortcut → rHi:rLo. */
function hashWords(w: Uint32Array, o: number): void {
  if (zeroWords(w, o)) {
    rHi = ZERO_HI;
    rLo = ZERO_LO;
  } else xxh3Words(w, o);
}

/** `mem` as u32 words (copied when it is not 4-byte aligned). */
function words(mem: MemorySource): Uint32Array {
  const b = bytesOf(mem);
  return b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : new Uint32Array(b.slice().buffer);
}

/** XXH3-64 of one 4096-byte page: the building block, for tests. */
export function xxh3Page(page: Uint8Array): bigint {
  if (page.byteLength !== 4096) throw new RangeError("xxh3Page hashes exactly 4096 bytes");
  xxh3Words(words(page), 0);
  return (BigInt(rHi) << 32n) | BigInt(rLo);
}

function hashPages(mem: MemorySource): BigUint64Array {
  const pages = pageCount(mem);
  const w = words(mem);
  const out = new BigUint64Array(pages);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < pages; i++) {
    hashWords(w, i * WORDS);
    o32[i * 2] = rLo;
    o32[i * 2 + 1] = rHi;
  }
  return out;
}

function zeroPages(mem: MemorySource): PageBitmap {
  const pages = pageCount(mem);
  const w = words(mem);
  const bits = new Uint8Array(Math.ceil(pages / 8));
  let count = 0;
  for (let i = 0; i < pages; i++) {
    if (zeroWords(w, i * WORDS)) {
      bits[i >> 3]! |= 1 << (i & 7);
      count++;
    }
  }
  return { pages, count, bits };
}

function diffPages(base: MemorySource, current: MemorySource): PageDiff {
  const pages = pageCount(base, "base memory");
  if (pageCount(current, "current memory") !== pages) {
    throw new RangeError("diffPages needs two memories of the same size"); // encodeDelta checks first
  }
  const a = words(base);
  const b = words(current);
  const codes = new Uint8Array(pages);
  const baseHashes = new BigUint64Array(pages);
  const currentHashes = new BigUint64Array(pages);
  const bh = new Uint32Array(baseHashes.buffer);
  const ch = new Uint32Array(currentHashes.buffer);
  let changed = 0;
  for (let i = 0; i < pages; i++) {
    const o = i * WORDS;
    hashWords(a, o);
    bh[i * 2] = rLo;
    bh[i * 2 + 1] = rHi;
    if (!equalWords(a, o, b, o)) {
      changed++;
      if (zeroWords(b, o)) {
        codes[i] = PageChange.zeroed;
        rHi = ZERO_HI;
        rLo = ZERO_LO;
      } else {
        codes[i] = PageChange.changed;
        xxh3Words(b, o);
      }
    }
    ch[i * 2] = rLo;
    ch[i * 2 + 1] = rHi;
  }
  return { codes, changed, baseHashes, currentHashes };
}

/** XXH64's 8-byte round and avalanche over the hashes, seeded with their count. */
function digest(hashes: BigUint64Array): bigint {
  const w = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2);
  // h = PRIME64_5 + count·8
  let lo = P64_5[1] + hashes.length * 8;
  let hLo = lo % TWO32;
  let hHi = (P64_5[0] + (lo - hLo) / TWO32) % TWO32;
  for (let i = 0; i < w.length; i += 2) {
    // k = rotl(x · PRIME64_2, 31) · PRIME64_1
    mul64(w[i + 1]!, w[i]!, P64_2[0], P64_2[1]);
    const kHi = ((rHi << 31) | (rLo >>> 1)) >>> 0;
    const kLo = ((rLo << 31) | (rHi >>> 1)) >>> 0;
    mul64(kHi, kLo, P64_1[0], P64_1[1]);
    hHi = (hHi ^ rHi) >>> 0;
    hLo = (hLo ^ rLo) >>> 0;
    // h = rotl(h, 27) · PRIME64_1 + PRIME64_4
    mul64(((hHi << 27) | (hLo >>> 5)) >>> 0, ((hLo << 27) | (hHi >>> 5)) >>> 0, P64_1[0], P64_1[1]);
    lo = rLo + P64_4[1];
    hLo = lo % TWO32;
    hHi = (rHi + P64_4[0] + (lo - hLo) / TWO32) % TWO32;
  }
  hLo = (hLo ^ (hHi >>> 1)) >>> 0; // h ^= h >> 33
  mul64(hHi, hLo, P64_2[0], P64_2[1]);
  hLo = (rLo ^ ((rHi << 3) | (rLo >>> 29))) >>> 0; // h ^= h >> 29
  hHi = (rHi ^ (rHi >>> 29)) >>> 0;
  mul64(hHi, hLo, P64_3[0], P64_3[1]);
  return (BigInt(rHi) << 32n) | BigInt((rLo ^ rHi) >>> 0); // h ^= h >> 32
}

function sharingStats(vms: readonly BigUint64Array[]): SharingStats {
  const total = vms.reduce((n, h) => n + h.length, 0);
  let capacity = 16;
  while (capacity < total * 2) capacity *= 2;
  const mask = capacity - 1;
  // entry: hash lo, hash hi, count, first VM (or MANY)
  const table = new Uint32Array(capacity * 4);
  const MANY = 0xffffffff;
  for (let v = 0; v < vms.length; v++) {
    const w = new Uint32Array(vms[v]!.buffer, vms[v]!.byteOffset, vms[v]!.length * 2);
    for (let j = 0; j < w.length; j += 2) {
      const lo = w[j]!;
      const hi = w[j + 1]!;
      let i = lo & mask;
      for (;;) {
        const e = i * 4;
        const n = table[e + 2]!;
        if (n === 0) {
          table[e] = lo;
          table[e + 1] = hi;
          table[e + 2] = 1;
          table[e + 3] = v;
          break;
        }
        if (table[e] === lo && table[e + 1] === hi) {
          table[e + 2] = n + 1;
          if (table[e + 3] !== v) table[e + 3] = MANY;
          break;
        }
        i = (i + 1) & mask;
      }
    }
  }
  let unique = 0, shareable = 0, crossVm = 0, zero = 0;
  for (let e = 0; e < table.length; e += 4) {
    const n = table[e + 2]!;
    if (n === 0) continue;
    unique++;
    if (n > 1) shareable += n;
    if (table[e + 3] === MANY) crossVm += n;
    if (table[e] === ZERO_LO && table[e + 1] === ZERO_HI) zero = n;
  }
  return { vms: vms.length, totalPages: total, zeroPages: zero, uniquePages: unique, shareablePages: shareable, savedPages: total - unique, crossVmPages: crossVm };
}

const kernels = { hashPages, zeroPages, diffPages, digest, sharingStats };

/** The memory engine's operations in plain TypeScript (same results as MemoryEngine). */
export const memoryReference: MemoryOps = {
  ...kernels,
  encodeDelta: (base, current) => encodeDelta(kernels, base, current),
  decodeDelta: (base, delta, into) => decodeDelta(kernels, base, delta, into),
};
