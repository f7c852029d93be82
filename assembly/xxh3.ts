// XXH3-64 (seed 0, default secret) of one 4 KiB page, with WebAssembly SIMD.
// The page size is fixed, so only XXH3's "long input" path exists here and
// every secret offset is a constant: 4 blocks of 16 stripes of 64 bytes,
// scrambling after blocks 0..2, and the 64th stripe (the "last stripe" of
// XXH3) keyed at secret + 121. Equal to the reference XXH3_64bits(page, 4096).
import { PAGE_SIZE } from "./layout";
import { isZeroPage } from "./pages";

/** XXH3_kSecret, the 192-byte default secret of xxHash. */
const SECRET: usize = memory.data<u8>([
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
], 16);

const PRIME32_1: u64 = 0x9e3779b1;
const PRIME32_2: u64 = 0x85ebca77;
const PRIME32_3: u64 = 0xc2b2ae3d;
export const PRIME64_1: u64 = 0x9e3779b185ebca87;
export const PRIME64_2: u64 = 0xc2b2ae3d27d4eb4f;
export const PRIME64_3: u64 = 0x165667b19e3779f9;
export const PRIME64_4: u64 = 0x85ebca77c2b2ae63;
export const PRIME64_5: u64 = 0x27d4eb2f165667c5;
const PRIME_MX1: u64 = 0x165667919e3779f9;

/** XXH3-64 of a page of zeros: zero pages skip the arithmetic. */
export const ZERO_PAGE_HASH: u64 = 0x93d76fe148c689ba;

/** The 64-bit halves of a 64×64 → 128-bit product, xored (XXH3_mul128_fold64). */
@inline
export function mul128Fold64(a: u64, b: u64): u64 {
  const aLo = a & 0xffffffff, aHi = a >> 32, bLo = b & 0xffffffff, bHi = b >> 32;
  const loLo = aLo * bLo, hiLo = aHi * bLo, loHi = aLo * bHi, hiHi = aHi * bHi;
  const cross = (loLo >> 32) + (hiLo & 0xffffffff) + loHi;
  const upper = (hiLo >> 32) + (cross >> 32) + hiHi;
  const lower = (cross << 32) | (loLo & 0xffffffff);
  return lower ^ upper;
}

// The accumulators are kept with the two 64-bit lanes of each vector
// swapped (b = [acc1, acc0]): XXH3 adds each data lane to its neighbour's
// accumulator, and in this layout the data is added as loaded while the
// swap moves to the products, where the de-interleaving shuffle does it for
// free. That saves one shuffle per 16 bytes.

@inline
function scramble(b: v128, key: usize): v128 {
  const k = v128.load(key);
  b = v128.xor(b, i64x2.shr_u(b, 47));
  b = v128.xor(b, i64x2.shuffle(k, k, 1, 0));
  return i64x2.mul(b, i64x2.splat(PRIME32_1));
}

@inline
function mix2Accs(b: v128, secret: usize): u64 {
  return mul128Fold64(i64x2.extract_lane(b, 1) ^ load<u64>(secret), i64x2.extract_lane(b, 0) ^ load<u64>(secret, 8));
}

/** XXH3-64 of the 4096 bytes at `p`, computed (no zero-page shortcut). */
export function xxh3Page(p: usize): u64 {
  let b0 = i64x2(PRIME64_1, PRIME32_3);
  let b1 = i64x2(PRIME64_3, PRIME64_2);
  let b2 = i64x2(PRIME32_2, PRIME64_4);
  let b3 = i64x2(PRIME32_1, PRIME64_5);
  let q = p;
  for (let block = 0; block < 4; block++) {
    for (let s = 0; s < 16; s++) {
      // the 64th stripe is XXH3's last stripe: same data, key at secret + 192 - 64 - 7
      const k = block == 3 && s == 15 ? SECRET + 121 : SECRET + (<usize>s << 3);
      const d0 = v128.load(q), d1 = v128.load(q, 16), d2 = v128.load(q, 32), d3 = v128.load(q, 48);
      const x0 = v128.xor(d0, v128.load(k)), x1 = v128.xor(d1, v128.load(k, 16));
      const x2 = v128.xor(d2, v128.load(k, 32)), x3 = v128.xor(d3, v128.load(k, 48));
      // de-interleave two vectors into their low and high 32-bit halves (lanes
      // swapped), then widen-multiply: [hi*lo of lane 1, hi*lo of lane 0]
      const lo01 = i32x4.shuffle(x0, x1, 2, 0, 6, 4), hi01 = i32x4.shuffle(x0, x1, 3, 1, 7, 5);
      const lo23 = i32x4.shuffle(x2, x3, 2, 0, 6, 4), hi23 = i32x4.shuffle(x2, x3, 3, 1, 7, 5);
      b0 = i64x2.add(b0, i64x2.add(d0, i64x2.extmul_low_i32x4_u(lo01, hi01)));
      b1 = i64x2.add(b1, i64x2.add(d1, i64x2.extmul_high_i32x4_u(lo01, hi01)));
      b2 = i64x2.add(b2, i64x2.add(d2, i64x2.extmul_low_i32x4_u(lo23, hi23)));
      b3 = i64x2.add(b3, i64x2.add(d3, i64x2.extmul_high_i32x4_u(lo23, hi23)));
      q += 64;
    }
    if (block < 3) {
      const k = SECRET + 128;
      b0 = scramble(b0, k);
      b1 = scramble(b1, k + 16);
      b2 = scramble(b2, k + 32);
      b3 = scramble(b3, k + 48);
    }
  }
  let h: u64 = <u64>PAGE_SIZE * PRIME64_1;
  h += mix2Accs(b0, SECRET + 11);
  h += mix2Accs(b1, SECRET + 27);
  h += mix2Accs(b2, SECRET + 43);
  h += mix2Accs(b3, SECRET + 59);
  h ^= h >> 37;
  h *= PRIME_MX1;
  return h ^ (h >> 32);
}

/** XXH3-64 of the page at `p`; an all-zero page costs only the zero check. */
@inline
export function hashPage(p: usize): u64 {
  return isZeroPage(p) ? ZERO_PAGE_HASH : xxh3Page(p);
}
