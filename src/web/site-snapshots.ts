// The boot snapshots the built site ships (Node, at build time: vite.config.ts
// calls this). A page restores one instead of booting the kernel, which is
// what brings it to a prompt in about a second, and downloads it instead of
// the kernel and initramfs (its saved RAM holds both). A snapshot fits one
// image and one memory size; the site has one per size listed here for the
// default guest, and one for each guest profile (at the profile's own
// memory), which a page downloads only for an element that names it.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultMemoryMiB } from "../hardware/machine.ts";
import { profileNames } from "../hardware/guest-image.ts";
import { loadNodeImage } from "../hardware/node.ts";
import { nodeBootSnapshot, nodeCodec } from "../hypervisor/boot-snapshot-node.ts";
import { encodeSnapshot } from "../hypervisor/snapshot.ts";

/** One boot snapshot file for the site. */
export interface SiteSnapshot {
  /** the guest profile it is of (undefined: the default guest) */
  profile?: string;
  /** guest RAM the snapshot was taken with (a VM restoring it gets exactly this) */
  memoryMiB: number;
  /** the encoded file (payload deflate-raw: a page inflates it with DecompressionStream) */
  file: string;
  /** its size in bytes, for the page's progress bar */
  bytes: number;
}

/**
 * The site's boot snapshots, written as files in `dir`: the default image's,
 * one per memory size (default: the image's default memory), and each guest
 * profile's in `profiles` (default: every profile the manifest lists) at that
 * profile's default memory. Each is the Node boot snapshot (built by a cold
 * boot on first use, then cached), encoded with its payload compressed: about
 * 28 MB of state becomes about 10 MB to download (the podman profile's 81 MB,
 * about 30 MB), and any static host serves it as it is. An encoded file is
 * reused while the snapshot it came from is the same.
 */
export async function siteSnapshots(opts: { dir: string; memoryMiB?: number[]; profiles?: string[] }): Promise<SiteSnapshot[]> {
  const image = await loadNodeImage();
  const sizes = opts.memoryMiB?.length ? opts.memoryMiB : [defaultMemoryMiB(image)];
  const profiles = opts.profiles ?? profileNames(image.manifest).slice(1);
  const wanted: Array<{ profile?: string; memoryMiB: number }> = sizes.map((memoryMiB) => ({ memoryMiB }));
  for (const profile of profiles) wanted.push({ profile, memoryMiB: defaultMemoryMiB(await loadNodeImage(undefined, profile)) });
  await mkdir(opts.dir, { recursive: true });
  const out: SiteSnapshot[] = [];
  // One at a time: building a missing snapshot is a cold boot, and the build machine is small.
  for (const { profile, memoryMiB } of wanted) {
    const snapshot = await nodeBootSnapshot(profile ? await loadNodeImage(undefined, profile) : image, { memoryMiB });
    const file = join(opts.dir, `boot-${profile ? `${profile}-` : ""}${memoryMiB}m.hlsnap`);
    const source = `${snapshot.header.image.id} ${snapshot.header.image.sha256} ${snapshot.header.createdAt} ${snapshot.state.length}`;
    const recorded = await readFile(`${file}.source`, "utf8").catch(() => "");
    let bytes = recorded === source ? await readFile(file).then((b) => b.length, () => 0) : 0;
    if (bytes === 0) {
      const encoded = await encodeSnapshot(snapshot, { compression: "deflate-raw", codec: nodeCodec });
      await writeFile(`${file}.tmp`, encoded);
      await rename(`${file}.tmp`, file);
      await writeFile(`${file}.source`, source);
      bytes = encoded.length;
    }
    out.push({ ...(profile ? { profile } : {}), memoryMiB, file, bytes });
  }
  return out;
}
