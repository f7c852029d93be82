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
  /**
   * Reads the first `bytes` of a file (a browser asks for a byte range);
   * without it the whole file is read and cut.
   */
  readHead?: (name: string, bytes: number) => Promise<Uint8Array>;
  /** e.g. the folder or base URL, named in error messages. */
  where: string;
}

/**
 * Which of an image's files to read. Bytes that are not read are left empty
 * in the GuestImage (the kernel holds only its setup header with "direct").
 */
export type ImageParts =
  /** every file, each checked against the manifest: the image boots with either firmware (the default) */
  | "all"
  /**
   * what the direct boot reads: the loader, vmlinux and the initramfs layers
   * (checked), and the bzImage's 4 KiB setup header the loader copies its
   * fields from (checked for its HdrS signature; the manifest has no digest
   * of a part). No BIOS: such an image boots only with firmware "direct".
   */
  | "direct"
  /**
   * the manifest alone: enough to restore a snapshot of the image (its saved
   * RAM holds the kernel and the initramfs), never to boot it.
   */
  | "manifest";

/** Bytes of the bzImage's setup header that the direct boot passes on (direct-boot.ts copies this many). */
export const SETUP_HEADER_BYTES = 4096;
const EMPTY = new Uint8Array(0);

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readArtifact(source: ImageSource, name: string, read = () => source.read(name)): Promise<Uint8Array> {
  try {
    return await read();
  } catch (err) {
    throw new HyperlabError(
      "IMAGE_MISSING",
      `guest image file ${name} could not be read from ${source.where} (${(err as Error).message}). ` +
        `Restore it with 'git checkout -- guest-images/dist' or rebuild it with 'npm run images'.`,
      { file: name },
    );
  }
}

/**
 * Loads the artifacts of the image and checks each against the manifest's
 * size and sha256: all of them, or with `parts` only those a direct boot or
 * a snapshot restore needs (a page downloads no more than it uses).
 */
export async function loadGuestImage(source: ImageSource, opts: { parts?: ImageParts } = {}): Promise<GuestImage> {
  const parts = opts.parts ?? "all";
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

  /** The bzImage's setup header alone, checked for the signature every bzImage carries at 0x202. */
  const loadSetupHeader = async (): Promise<Uint8Array> => {
    const name = "bzImage";
    if (!manifest.files[name]) {
      throw new HyperlabError("IMAGE_CORRUPT", `manifest.json in ${source.where} does not list ${name}; rebuild the image with 'npm run images'.`);
    }
    const head = source.readHead
      ? await readArtifact(source, name, () => source.readHead!(name, SETUP_HEADER_BYTES))
      : (await readArtifact(source, name)).subarray(0, SETUP_HEADER_BYTES);
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    if (head.length < SETUP_HEADER_BYTES || view.getUint32(0x202, true) !== 0x53726448) {
      throw new HyperlabError(
        "IMAGE_CORRUPT",
        `guest image file ${name} in ${source.where} is damaged: its first ${SETUP_HEADER_BYTES} bytes are not a kernel setup header (no HdrS signature). ` +
          `Restore it with 'git checkout -- guest-images/dist' or rebuild it with 'npm run images'.`,
        { file: name },
      );
    }
    return head.slice();
  };

  if (parts === "manifest") {
    return { id: manifest.id, release: manifest.kernel.release, manifest, loader: EMPTY, kernel: EMPTY, vmlinux: EMPTY, bios: EMPTY, vgaBios: EMPTY, layers: [] };
  }
  if (parts === "direct") {
    const [kernel, loader, vmlinux, ...layers] = await Promise.all([loadSetupHeader(), ...["loader.elf", "vmlinux.bin", ...manifest.initrd].map(load)]);
    return { id: manifest.id, release: manifest.kernel.release, manifest, loader: loader!, kernel: kernel!, vmlinux: vmlinux!, bios: EMPTY, vgaBios: EMPTY, layers };
  }
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
