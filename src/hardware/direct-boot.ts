// The direct boot: hyperlab's multiboot loader (guest-images/loader/loader.c)
// enters Linux without a BIOS. v86 hands the loader one multiboot module, laid
// out here: the kernel's bytes (room for its bss and brk after them), the
// initramfs, the bzImage's setup header, and a trailer that tells the loader
// where each part lies.
import { type GuestImage, SETUP_HEADER_BYTES } from "./guest-image.ts";

const TRAILER_MAGIC = 0x31424c48; // "HLB1"
/** Bytes of the trailer: seven little-endian 32-bit words. */
const TRAILER_SIZE = 28;

function align4k(n: number): number {
  return (n + 4095) & ~4095;
}

/** Where each part of the loader's module lies, in bytes from its start. */
export interface DirectModuleLayout {
  initrdOffset: number;
  initrdSize: number;
  headerOffset: number;
  /** the whole module, trailer included */
  size: number;
}

/** Where each part of the loader's module goes (see guest-images/loader/loader.c); legal for any image, nothing is copied. */
export function directModuleLayout(image: GuestImage): DirectModuleLayout {
  const { load, end } = image.manifest.kernel;
  const initrdOffset = align4k(Math.max(end - load, image.vmlinux.length));
  const initrdSize = image.layers.reduce((n, l) => n + l.length, 0);
  const headerOffset = align4k(initrdOffset + initrdSize);
  return { initrdOffset, initrdSize, headerOffset, size: headerOffset + SETUP_HEADER_BYTES + TRAILER_SIZE };
}

/** The multiboot module the loader expects (kernel, initramfs, setup header, trailer), for a machine booting with firmware "direct". */
export function directModule(image: GuestImage): Uint8Array {
  const layout = directModuleLayout(image);
  const out = new Uint8Array(layout.size);
  out.set(image.vmlinux, 0);
  let at = layout.initrdOffset;
  for (const l of image.layers) {
    out.set(l, at);
    at += l.length;
  }
  out.set(image.kernel.subarray(0, SETUP_HEADER_BYTES), layout.headerOffset);
  const { load, entry, end } = image.manifest.kernel;
  const trailer = new DataView(out.buffer, layout.size - TRAILER_SIZE);
  [load, entry, end, layout.initrdOffset, layout.initrdSize, layout.headerOffset, TRAILER_MAGIC].forEach((v, i) =>
    trailer.setUint32(i * 4, v, true),
  );
  return out;
}
