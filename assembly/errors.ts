// Messages of the engine's own assertions (debug builds trap with them; the
// release build drops assertions, and the host checks arguments first, see
// src/hypervisor/memory-engine.ts).

export const E_ALIGN = "pointer must be 16-byte aligned";
export const E_BOUNDS = "region reaches past the end of memory";
export const E_CAPACITY = "table capacity must be a power of two above the entry count";
