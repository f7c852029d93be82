// Cross-VM page sharing: which page contents occur more than once among the
// page hashes of several VMs, i.e. what Linux KSM would merge. An open-
// addressing table keyed by the (already well mixed) 64-bit page hash.
import { E_CAPACITY } from "./errors";
import { ZERO_PAGE_HASH } from "./xxh3";

/** Table entry: hash (8), occurrences (4), first VM or MANY_VMS (4). */
const ENTRY: usize = 16;
const MANY_VMS: u32 = 0xffffffff;

/** Where sharingStats writes its four u32 results, in order. */
export const enum Stat {
  Distinct = 0,
  Shareable = 1,
  CrossVm = 2,
  Zero = 3,
}

/**
 * Counts page sharing among `vms` VMs whose page hashes lie back to back at
 * `hashes` (VM v has `load<u32>(counts + 4v)` of them). `table` has room for
 * `capacity` entries (a power of two above the total). Writes Stat.* to `out`.
 */
export function sharingStats(hashes: usize, counts: usize, vms: u32, table: usize, capacity: u32, out: usize): void {
  let total: u32 = 0;
  for (let v: u32 = 0; v < vms; v++) total += load<u32>(counts + (<usize>v << 2));
  assert(popcnt(capacity) == 1 && capacity > total, E_CAPACITY);
  memory.fill(table, 0, <usize>capacity * ENTRY);
  const mask = capacity - 1;
  let p = hashes;
  for (let v: u32 = 0; v < vms; v++) {
    const end = p + (<usize>load<u32>(counts + (<usize>v << 2)) << 3);
    for (; p < end; p += 8) {
      const h = load<u64>(p);
      let i = <u32>h & mask;
      while (true) {
        const e = table + <usize>i * ENTRY;
        const n = load<u32>(e, 8);
        if (n == 0) {
          store<u64>(e, h);
          store<u32>(e, 1, 8);
          store<u32>(e, v, 12);
          break;
        }
        if (load<u64>(e) == h) {
          store<u32>(e, n + 1, 8);
          if (load<u32>(e, 12) != v) store<u32>(e, MANY_VMS, 12);
          break;
        }
        i = (i + 1) & mask;
      }
    }
  }
  let distinct: u32 = 0, shareable: u32 = 0, crossVm: u32 = 0, zero: u32 = 0;
  const end = table + <usize>capacity * ENTRY;
  for (let e = table; e < end; e += ENTRY) {
    const n = load<u32>(e, 8);
    if (n == 0) continue;
    distinct++;
    if (n > 1) shareable += n;
    if (load<u32>(e, 12) == MANY_VMS) crossVm += n;
    if (load<u64>(e) == ZERO_PAGE_HASH) zero = n;
  }
  store<u32>(out, distinct, Stat.Distinct << 2);
  store<u32>(out, shareable, Stat.Shareable << 2);
  store<u32>(out, crossVm, Stat.CrossVm << 2);
  store<u32>(out, zero, Stat.Zero << 2);
}
