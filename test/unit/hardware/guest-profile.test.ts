import { copyFile, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HyperlabError } from "../../../src/errors.ts";
import { profileNames } from "../../../src/hardware/guest-image.ts";
import { checkMemoryMiB, minimumMemoryMiB } from "../../../src/hardware/machine.ts";
import { defaultImageDir, loadNodeImage } from "../../../src/hardware/node.ts";
import { startGuest } from "../../../src/hypervisor/local-guest.ts";

describe("guest profiles", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-profile-"));
    // The profile's layer and the manifest are copied (tests change them); the default's files are linked.
    for (const name of await readdir(defaultImageDir)) {
      if (name === "manifest.json" || name.startsWith("profile-")) await copyFile(join(defaultImageDir, name), join(dir, name));
      else await symlink(join(defaultImageDir, name), join(dir, name));
    }
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: HyperlabError) => e);

  it("loads the lxc profile as the default guest's layers plus its own, under an id of its own", async () => {
    const base = await loadNodeImage(dir);
    const lxc = await loadNodeImage(dir, "lxc");
    expect(lxc.profile).toBe("lxc");
    expect(base.profile).toBeUndefined();
    expect(lxc.manifest.initrd).toEqual([...base.manifest.initrd, "profile-lxc.cpio"]);
    expect(lxc.layers).toHaveLength(base.layers.length + 1);
    base.layers.forEach((layer, i) => expect(Buffer.from(lxc.layers[i]!).equals(layer)).toBe(true));
    expect(lxc.id).toMatch(/^[0-9a-f]{16}$/);
    expect(lxc.id).not.toBe(base.id);
    // The default guest's id (and so its boot snapshots) does not depend on the profiles.
    expect(base.id).toBe(JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")).id);
  });

  it("treats 'default' as the default guest", async () => {
    const image = await loadNodeImage(dir, "default");
    expect(image.profile).toBeUndefined();
    expect(image.id).toBe((await loadNodeImage(dir)).id);
  });

  it("refuses an unknown profile, listing the known ones", async () => {
    const err = await failure(loadNodeImage(dir, "podmn"));
    expect(err?.code).toBe("INVALID_ARGUMENT");
    expect(err?.message).toMatch(/^unknown profile 'podmn': the guest image in .* has the profiles default, lxc, podman\.$/);
    expect(profileNames((await loadNodeImage(dir)).manifest)).toEqual(["default", "lxc", "podman"]);
  });

  it("names a profile's missing layer and the command that rebuilds it", async () => {
    await rm(join(dir, "profile-lxc.cpio"));
    const err = await failure(loadNodeImage(dir, "lxc"));
    expect(err?.code).toBe("IMAGE_MISSING");
    expect(err?.message).toMatch(/guest image file profile-lxc\.cpio could not be read from .*'npm run images -- profiles'/);
    // The default guest does not need it.
    await expect(loadNodeImage(dir)).resolves.toBeDefined();
  });

  it("names a profile's damaged layer (sha256) and the command that rebuilds it", async () => {
    const bytes = await readFile(join(dir, "profile-lxc.cpio"));
    bytes[bytes.length - 600] = bytes[bytes.length - 600]! ^ 0x01;
    await writeFile(join(dir, "profile-lxc.cpio"), bytes);
    const err = await failure(loadNodeImage(dir, "lxc"));
    expect(err?.code).toBe("IMAGE_CORRUPT");
    expect(err?.message).toMatch(/guest image file profile-lxc\.cpio in .* is damaged: it has sha256 [0-9a-f]{12}…, the manifest says [0-9a-f]{12}…\. .*'npm run images -- profiles'/);
  });

  it("refuses a memory size below the profile's minimum, naming the minimum", async () => {
    const lxc = await loadNodeImage(dir, "lxc");
    const min = lxc.manifest.profiles!.lxc!.minimumMemoryMiB;
    expect(minimumMemoryMiB(lxc)).toBe(min);
    expect(() => checkMemoryMiB(lxc, min - 1)).toThrow(`memory ${min - 1} MiB is too small for the lxc profile: it needs at least ${min} MiB (e.g. --memory ${min}).`);
    expect(() => checkMemoryMiB(lxc, min)).not.toThrow();
    // The default guest runs in less.
    const base = await loadNodeImage(dir);
    expect(() => checkMemoryMiB(base, min - 1)).not.toThrow();
  });

  it("refuses it before starting anything when a guest is asked for", async () => {
    const err = await failure(startGuest({ imageDir: dir, profile: "lxc", memoryMiB: 64 }));
    expect(err?.code).toBe("INVALID_ARGUMENT");
    expect(err?.message).toMatch(/memory 64 MiB is too small for the lxc profile: it needs at least \d+ MiB/);
  });
});
