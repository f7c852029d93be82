import { cp, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HyperlabError } from "../../../src/errors.ts";
import { SETUP_HEADER_BYTES, loadGuestImage } from "../../../src/hardware/guest-image.ts";
import { defaultImageDir, loadNodeImage } from "../../../src/hardware/node.ts";

describe("loading the guest image", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-image-"));
    await cp(defaultImageDir, dir, { recursive: true });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const failure = (d: string) => loadNodeImage(d).then(() => undefined, (e: HyperlabError) => e);

  it("loads and verifies every artifact the manifest lists", async () => {
    const image = await loadNodeImage(dir);
    expect(image.release).toMatch(/^6\.1\./);
    expect(image.layers).toHaveLength(image.manifest.initrd.length);
    expect(image.vmlinux.length).toBe(image.manifest.files["vmlinux.bin"]!.size);
  });

  it("names a missing file and says how to get it back", async () => {
    await rm(join(dir, "runtimes.cpio"));
    const err = await failure(dir);
    expect(err?.code).toBe("IMAGE_MISSING");
    expect(err?.message).toMatch(/guest image file runtimes\.cpio could not be read from .*git checkout -- guest-images\/dist.*npm run images/);
  });

  it("names a truncated kernel as damaged", async () => {
    await truncate(join(dir, "vmlinux.bin"), 1000);
    const err = await failure(dir);
    expect(err?.code).toBe("IMAGE_CORRUPT");
    expect(err?.message).toMatch(/guest image file vmlinux\.bin in .* is damaged: it is 1000 bytes, the manifest says \d+/);
  });

  it("names a file whose bytes changed as damaged", async () => {
    const changed = await readFile(join(dir, "bzImage"));
    changed[5000] = changed[5000]! ^ 0xff;
    await writeFile(join(dir, "bzImage"), changed);
    const err = await failure(dir);
    expect(err?.code).toBe("IMAGE_CORRUPT");
    expect(err?.message).toMatch(/bzImage .* is damaged: it has sha256 [0-9a-f]{12}…, the manifest says [0-9a-f]{12}…/);
  });

  it("rejects a manifest that is not JSON", async () => {
    await writeFile(join(dir, "manifest.json"), "{ not json");
    const err = await failure(dir);
    expect(err?.code).toBe("IMAGE_CORRUPT");
    expect(err?.message).toMatch(/manifest\.json in .* is not valid JSON/);
  });

  describe("with only the parts a page needs", () => {
    const read = (d: string) => async (name: string) => new Uint8Array(await readFile(join(d, name)));
    const reads: string[] = [];
    const counting = (d: string) => async (name: string) => (reads.push(name), read(d)(name));

    it("reads the direct boot's files and only the kernel's setup header, through a byte-range reader", async () => {
      reads.length = 0;
      const heads: string[] = [];
      const image = await loadGuestImage(
        { where: dir, read: counting(dir), readHead: async (name, bytes) => (heads.push(name), (await read(dir)(name)).slice(0, bytes)) },
        { parts: "direct" },
      );
      expect(heads).toEqual(["bzImage"]);
      expect(reads).not.toContain("bzImage");
      expect(reads).not.toContain("bios.bin");
      expect(image.kernel.length).toBe(SETUP_HEADER_BYTES);
      expect(image.vmlinux.length).toBe(image.manifest.files["vmlinux.bin"]!.size);
      expect(image.layers).toHaveLength(image.manifest.initrd.length);
      expect(image.bios.length).toBe(0);
    });

    it("reads the manifest alone for a snapshot restore", async () => {
      reads.length = 0;
      const image = await loadGuestImage({ where: dir, read: counting(dir) }, { parts: "manifest" });
      expect(reads).toEqual(["manifest.json"]);
      expect(image.id).toMatch(/^[0-9a-f]{16}$/);
      expect(image.vmlinux.length + image.kernel.length + image.layers.length).toBe(0);
    });

    it("names a setup header without the kernel's signature as damaged", async () => {
      const err = await loadGuestImage({ where: dir, read: read(dir), readHead: async () => new Uint8Array(SETUP_HEADER_BYTES) }, { parts: "direct" }).then(
        () => undefined,
        (e: HyperlabError) => e,
      );
      expect(err?.code).toBe("IMAGE_CORRUPT");
      expect(err?.message).toMatch(/bzImage .* its first 4096 bytes are not a kernel setup header \(no HdrS signature\)/);
    });
  });
});
