import { HyperlabError } from "../errors.ts";

/** One entry of guest-images/dist/manifest.json. */
export interface ManifestFile {
  sha256: string;
  size: number;
  what: string;
}

/**
 * What the host runs in a profile's freshly booted guest, until it exits 0,
 * before taking the profile's boot snapshot: a profile whose daemons start
 * at boot is saved only once they serve.
 */
export interface ProfileReady {
  /** the command (argv, run by the agent) that exits 0 once the profile is ready */
  argv: string[];
  /** what it waits for, named when it times out (e.g. "dockerd answering on /run/docker.sock") */
  what: string;
  /** how long to keep trying (ms) */
  timeoutMs: number;
}

/** One guest profile of dist/manifest.json: the default guest plus layers of its own (docs/profiles.md). */
export interface ManifestProfile {
  what: string;
  /** its own initramfs layers, unpacked after the default guest's */
  initrd: string[];
  files: Record<string, ManifestFile>;
  /** the least guest RAM (MiB) the profile boots and runs in; smaller is refused */
  minimumMemoryMiB: number;
  /** what must answer before the profile's boot snapshot is taken (null: the agent's answer is enough) */
  ready: ProfileReady | null;
}

/** The parts of dist/manifest.json the host reads. */
export interface GuestManifest {
  format: number;
  id: string;
  /** physical load address, entry point and end (with bss and brk) of vmlinux.bin */
  kernel: { release: string; arch: string; load: number; entry: number; end: number };
  initrd: string[];
  files: Record<string, ManifestFile>;
  /** the guest profiles beside the default, by name */
  profiles?: Record<string, ManifestProfile>;
}

/** The name of the guest without a profile's layers. */
export const DEFAULT_PROFILE = "default";

/** A verified guest image: firmware, loader, kernel and initramfs layers, in memory. */
export interface GuestImage {
  /** Short id derived from every output's sha256: changes whenever any artifact changes (a profile has its own). */
  readonly id: string;
  /** the profile this image is (undefined: the default guest) */
  readonly profile?: string;
  readonly release: string;
  /**
   * The manifest as this image sees it: for a profile, `id`, `initrd` and
   * `files` cover the default guest and the profile's layers together.
   */
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

async function readArtifact(source: ImageSource, name: string, read = () => source.read(name), rebuild = "npm run images"): Promise<Uint8Array> {
  try {
    return await read();
  } catch (err) {
    throw new HyperlabError(
      "IMAGE_MISSING",
      `guest image file ${name} could not be read from ${source.where} (${(err as Error).message}). ` +
        `Restore it with 'git checkout -- guest-images/dist' or rebuild it with '${rebuild}'.`,
      { file: name },
    );
  }
}

/**
 * Loads the artifacts of the image and checks each against the manifest's
 * size and sha256: all of them, or with `parts` only those a direct boot or
 * a snapshot restore needs (a page downloads no more than it uses).
 */
export async function loadGuestImage(source: ImageSource, opts: { parts?: ImageParts; profile?: string } = {}): Promise<GuestImage> {
  const parts = opts.parts ?? "all";
  const manifestBytes = await readArtifact(source, "manifest.json");
  let whole: GuestManifest;
  try {
    whole = JSON.parse(new TextDecoder().decode(manifestBytes)) as GuestManifest;
  } catch (err) {
    throw new HyperlabError(
      "IMAGE_CORRUPT",
      `manifest.json in ${source.where} is not valid JSON (${(err as Error).message}); restore it with 'git checkout -- guest-images/dist'.`,
      { file: "manifest.json" },
    );
  }
  if (whole.format !== 1 || !whole.files) {
    throw new HyperlabError("IMAGE_CORRUPT", `manifest.json in ${source.where} has format ${whole.format}; this hyperlab reads format 1.`);
  }
  const profile = opts.profile === DEFAULT_PROFILE ? undefined : opts.profile;
  const manifest = profile === undefined ? whole : await profileManifest(whole, profile, source.where);
  const rebuild = profile === undefined ? "npm run images" : "npm run images -- profiles";

  const load = async (name: string): Promise<Uint8Array> => {
    const expected = manifest.files[name];
    if (!expected) {
      throw new HyperlabError("IMAGE_CORRUPT", `manifest.json in ${source.where} does not list ${name}; rebuild the image with 'npm run images'.`);
    }
    const data = await readArtifact(source, name, undefined, profile && !whole.files[name] ? rebuild : undefined);
    const actual = data.length === expected.size ? await sha256Hex(data) : undefined;
    if (actual !== expected.sha256) {
      const why =
        actual === undefined
          ? `is ${data.length} bytes, the manifest says ${expected.size}`
          : `has sha256 ${actual.slice(0, 12)}…, the manifest says ${expected.sha256.slice(0, 12)}…`;
      throw new HyperlabError(
        "IMAGE_CORRUPT",
        `guest image file ${name} in ${source.where} is damaged: it ${why}. ` +
          `Restore it with 'git checkout -- guest-images/dist' or rebuild it with '${profile && !whole.files[name] ? rebuild : "npm run images"}'.`,
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
    return { id: manifest.id, profile, release: manifest.kernel.release, manifest, loader: EMPTY, kernel: EMPTY, vmlinux: EMPTY, bios: EMPTY, vgaBios: EMPTY, layers: [] };
  }
  if (parts === "direct") {
    const [kernel, loader, vmlinux, ...layers] = await Promise.all([loadSetupHeader(), ...["loader.elf", "vmlinux.bin", ...manifest.initrd].map(load)]);
    return { id: manifest.id, profile, release: manifest.kernel.release, manifest, loader: loader!, kernel: kernel!, vmlinux: vmlinux!, bios: EMPTY, vgaBios: EMPTY, layers };
  }
  const [loader, kernel, vmlinux, bios, vgaBios, ...layers] = await Promise.all(
    ["loader.elf", "bzImage", "vmlinux.bin", "bios.bin", "vgabios-stdvga.bin", ...manifest.initrd].map(load),
  );
  return {
    id: manifest.id,
    profile,
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

/** The names of the profiles a manifest lists, the default first. */
export function profileNames(manifest: GuestManifest): string[] {
  return [DEFAULT_PROFILE, ...Object.keys(manifest.profiles ?? {}).sort()];
}

/** The least guest RAM (MiB) an image's profile asks for (0 for the default guest: only the image's size limits it). */
export function profileMinimumMemoryMiB(image: GuestImage): number {
  return image.profile === undefined ? 0 : (image.manifest.profiles?.[image.profile]?.minimumMemoryMiB ?? 0);
}

/**
 * The manifest of profile `name` as an image of its own: the default guest's
 * files and layers followed by the profile's, under an id derived from the
 * default's id and the profile's files (so it has its own boot snapshots,
 * and the default's id does not change when a profile does).
 */
async function profileManifest(whole: GuestManifest, name: string, where: string): Promise<GuestManifest> {
  const p = Object.hasOwn(whole.profiles ?? {}, name) ? whole.profiles![name]! : undefined;
  if (!p) {
    throw new HyperlabError("INVALID_ARGUMENT", `unknown profile '${name}': the guest image in ${where} has the profiles ${profileNames(whole).join(", ")}.`, { profile: name });
  }
  const listed = p.initrd.filter((f) => p.files[f]);
  if (listed.length !== p.initrd.length || p.initrd.some((f) => whole.files[f])) {
    throw new HyperlabError("IMAGE_CORRUPT", `manifest.json in ${where}: profile '${name}' lists layers it has no entry for; rebuild it with 'npm run images -- profiles'.`);
  }
  const files = Object.fromEntries(p.initrd.map((f) => [f, p.files[f]!]));
  const id = (await sha256Hex(new TextEncoder().encode(`${whole.id}\n${name}\n${JSON.stringify(files)}`))).slice(0, 16);
  return { ...whole, id, initrd: [...whole.initrd, ...p.initrd], files: { ...whole.files, ...files } };
}
