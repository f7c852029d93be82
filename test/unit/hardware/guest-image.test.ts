import { cp, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HyperlabError } from "../../../src/errors.ts";
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
});
