// Sizes shared by every kernel.

/** Bytes per guest page. */
export const PAGE_SIZE: usize = 4096;
/** log2(PAGE_SIZE). */
export const PAGE_SHIFT: usize = 12;

/** Page codes written by diffPages, one byte per page (the host mirrors them). */
export const enum Change {
  Same = 0,
  Changed = 1,
  /** changed, and now all zero (a delta stores no bytes for it) */
  Zeroed = 2,
}
