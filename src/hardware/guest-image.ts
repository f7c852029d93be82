import { HyperlabError } from "../errors.ts";

/** One entry of guest-images/dist/manifest.json. */
export interface ManifestFile {
  sha256: string;
  size: number;
  what: string;
}

/** The parts of dist/manifest.json the host reads. */
export interface GuestManifest {
  format: number;
  id: string;
  /** physical load address, entry point and end (with bss and brk) of vmlinux.bin */
  kernel: { release: string; arch: string; load: number; entry: number; end: number };
  initrd: string[];
  files: Record<string, ManifestFile>;
}

/** A verified guest image: firmware, loader, kernel and initramfs layers, in memory. */
export interface GuestImage {
  /** Short id derived from every output's sha256: changes whenever any artifact changes. */
  readonly id: string;
  readonly release: string;
  readonly manifest: GuestManifest;
  readonly loader: Uint8Array;
  /** the compressed kernel (bzImage): booted by SeaBIOS; its setup header serves the loader */
  readonly kernel: Uint8Array;
  /** the uncompressed kernel's bytes from its load address: booted by the loader */
  readonly vmlinux: Uint8Array;
  /** initramfs layers in the order the kernel unpacks them. */
  readonly layers: readonly Uint8Array[];
  readonly bios: Uint8Array;
  readonly vgaBios: Uint8Array;
}

/** Reads one artifact by file name; Node reads a folder, a browser fetches a URL. */
export type ArtifactReader = (name: string) => Promise<Uint8Array>;

/** Where the image's files come from and how to describe that place in errors. */
export interface ImageSource {
  read: ArtifactReader;
  /** e.g. the folder or base URL, named in error messages. */
  where: string;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readArtifact(source: ImageSource, name: string): Promise<Uint8Array> {
  try {
    return await source.read(name);
  } catch (err) {
    throw new HyperlabError(
      "IMAGE_MISSING",
      `guest image file ${name} could not be read from ${source.where} (${(err as Error).message}). ` +
        `Restore it with 'git checkout -- guest-images/dist' or rebuild it with 'npm run images'.`,
      { file: name },
    );
  }
}

/** Loads every artifact the manifest lists and checks its size and sha256. */
export async function loadGuestImage(source: ImageSource): Promise<GuestImage> {
  const manifestBytes = await readArtifact(source, "manifest.json");
  let manifest: GuestManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as GuestManifest;
  } catch (err) {
    throw new HyperlabError(
      "IMAGE_CORRUPT",
      `manifest.json in ${source.where} is not valid JSON (${(err as Error).message}); restore it with 'git checkout -- guest-images/dist'.`,
      { file: "manifest.json" },
    );
  }
  if (manifest.format !== 1 || !manifest.files) {
    throw new HyperlabError("IMAGE_CORRUPT", `manifest.json in ${source.where} has format ${manifest.format}; this hyperlab reads format 1.`);
  }

  const load = async (name: string): Promise<Uint8Array> => {
    const expected = manifest.files[name];
    if (!expected) {
      throw new HyperlabError("IMAGE_CORRUPT", `manifest.json in ${source.where} does not list ${name}; rebuild the image with 'npm run images'.`);
    }
    const data = await readArtifact(source, name);
    const actual = data.length === expected.size ? await sha256Hex(data) : undefined;
    if (actual !== expected.sha256) {
      const why =
        actual === undefined
          ? `is ${data.length} bytes, the manifest says ${expected.size}`
          : `has sha256 ${actual.slice(0, 12)}…, the manifest says ${expected.sha256.slice(0, 12)}…`;
      throw new HyperlabError(
        "IMAGE_CORRUPT",
        `guest image file ${name} in ${source.where} is damaged: it ${why}. ` +
          `Restore it with 'git checkout -- guest-images/dist' or rebuild it with 'npm run images'.`,
        { file: name },
      );
    }
    return data;
  };

  const [loader, kernel, vmlinux, bios, vgaBios, ...layers] = await Promise.all(
    ["loader.elf", "bzImage", "vmlinux.bin", "bios.bin", "vgabios-stdvga.bin", ...manifest.initrd].map(load),
  );
  return {
    id: manifest.id,
    release: manifest.kernel.release,
    manifest,
    loader: loader!,
    kernel: kernel!,
    vmlinux: vmlinux!,
    bios: bios!,
    vgaBios: vgaBios!,
    layers,
  };
}
