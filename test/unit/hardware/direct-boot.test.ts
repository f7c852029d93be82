import { describe, expect, it } from "vitest";
import { directModule, directModuleLayout } from "../../../src/hardware/direct-boot.ts";
import { type GuestImage, SETUP_HEADER_BYTES } from "../../../src/hardware/guest-image.ts";

/** A small image with recognisable bytes: only the parts the direct boot reads. */
function fakeImage(opts: { vmlinux: number; bssEnd: number; layers: number[] }): GuestImage {
  const load = 0x100000;
  const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);
  const kernel = fill(SETUP_HEADER_BYTES + 100, 0xbb);
  kernel[SETUP_HEADER_BYTES] = 0xcc; // past the setup header: must not be copied
  return {
    manifest: { kernel: { load, entry: load + 0x40, end: load + opts.bssEnd } },
    vmlinux: fill(opts.vmlinux, 0xaa),
    kernel,
    layers: opts.layers.map((n, i) => fill(n, 0x10 + i)),
  } as unknown as GuestImage;
}

describe("the direct boot's multiboot module", () => {
  it("puts the initramfs after the kernel's bss, page aligned, and the setup header after the initramfs", () => {
    const layout = directModuleLayout(fakeImage({ vmlinux: 5000, bssEnd: 9000, layers: [100, 30] }));
    expect(layout).toEqual({ initrdOffset: 12288, initrdSize: 130, headerOffset: 16384, size: 16384 + SETUP_HEADER_BYTES + 28 });
  });

  it("starts the initramfs after the kernel's bytes when they reach past its stated end", () => {
    const layout = directModuleLayout(fakeImage({ vmlinux: 8193, bssEnd: 4096, layers: [1] }));
    expect(layout.initrdOffset).toBe(12288);
  });

  it("holds the kernel, the layers in order, the setup header and a trailer the loader reads", () => {
    const image = fakeImage({ vmlinux: 5000, bssEnd: 9000, layers: [100, 30] });
    const module = directModule(image);
    const layout = directModuleLayout(image);
    expect(module.length).toBe(layout.size);
    expect(module.subarray(0, 5000).every((b) => b === 0xaa)).toBe(true);
    expect(module.subarray(5000, layout.initrdOffset).every((b) => b === 0)).toBe(true);
    expect(module.subarray(12288, 12388).every((b) => b === 0x10)).toBe(true);
    expect(module.subarray(12388, 12418).every((b) => b === 0x11)).toBe(true);
    const header = module.subarray(layout.headerOffset, layout.headerOffset + SETUP_HEADER_BYTES);
    expect(header.every((b) => b === 0xbb)).toBe(true);
    const trailer = new DataView(module.buffer, layout.size - 28, 28);
    const words = Array.from({ length: 7 }, (_, i) => trailer.getUint32(i * 4, true));
    expect(words).toEqual([0x100000, 0x100040, 0x100000 + 9000, 12288, 130, 16384, 0x31424c48]);
  });
});
