// Page predicates: all-zero, and equal to another page. Both stop at the
// first 64-byte line that decides the answer.
import { PAGE_SIZE } from "./layout";

/** True when the 4096 bytes at `p` are all zero. */
@inline
export function isZeroPage(p: usize): bool {
  const end = p + PAGE_SIZE;
  do {
    const v = v128.or(
      v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48))),
      v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112))),
    );
    if (v128.any_true(v)) return false;
    p += 128;
  } while (p < end);
  return true;
}

/** True when the pages at `a` and `b` hold the same bytes. */
@inline
export function pagesEqual(a: usize, b: usize): bool {
  const end = a + PAGE_SIZE;
  do {
    const v = v128.or(
      v128.or(v128.xor(v128.load(a), v128.load(b)), v128.xor(v128.load(a, 16), v128.load(b, 16))),
      v128.or(v128.xor(v128.load(a, 32), v128.load(b, 32)), v128.xor(v128.load(a, 48), v128.load(b, 48))),
    );
    if (v128.any_true(v)) return false;
    a += 64;
    b += 64;
  } while (a < end);
  return true;
}
