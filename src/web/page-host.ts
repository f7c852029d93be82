// The page's side of the hypervisor: one Hypervisor per page (so every
// <hyperlab-vm> on it shares one memory budget and one download of the
// guest), whose platform fetches the guest's files and v86's WebAssembly
// from the site with progress. Each VM runs in its own module Web Worker
// (spawned by the hypervisor); the page's thread never runs the emulator.
import { HyperlabError } from "../errors.ts";
import { type GuestImage, type GuestManifest, loadGuestImage } from "../hardware/guest-image.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { guestAssetUrl, v86Url } from "./assets.ts";
import { ProgressTracker, compileWasm, fetchBytes } from "./progress.ts";

/** The images a page can boot. The site ships one guest, the default. */
export const PAGE_IMAGES = ["default"] as const;

/** The files loadGuestImage reads besides the manifest and its initramfs layers (see guest-image.ts). */
const BOOT_FILES = ["loader.elf", "bzImage", "vmlinux.bin", "bios.bin", "vgabios-stdvga.bin"];

/** Name under which v86's WebAssembly is counted and named in errors. */
export const V86_WASM = "v86.wasm";

/** What to tell a visitor to do when a file of the site could not be fetched. */
export const MISSING_ASSET_ADVICE =
  "Reload the page; if it happens again, the site is missing this file: rebuild it with 'npm run build' and deploy the whole dist/ folder.";

/** One page's hypervisor and the progress of the downloads it needs. */
export interface PageHost {
  readonly hypervisor: Promise<Hypervisor>;
  readonly tracker: ProgressTracker;
  /** the guest image, once it has been downloaded and verified (the download starts with the first VM) */
  image(): Promise<GuestImage>;
}

let host: PageHost | undefined;

/** This page's host, made on first use. Legal any time. */
export function pageHost(): PageHost {
  host ??= makeHost();
  return host;
}

function where(): string {
  return `this site (${new URL("./", guestAssetUrl("manifest.json") ?? import.meta.url).href})`;
}

function makeHost(): PageHost {
  const tracker = new ProgressTracker();
  let image: Promise<GuestImage> | undefined;
  const loadImage = (ref?: string): Promise<GuestImage> => {
    if (ref !== undefined && ref !== "default") {
      return Promise.reject(
        new HyperlabError("IMAGE_NOT_FOUND", `there is no guest image '${ref}' on this site; it has: ${PAGE_IMAGES.join(", ")}. Leave out the image attribute to get the default.`, { image: ref }),
      );
    }
    image ??= loadGuestImage({
      where: where(),
      read: async (name) => {
        const url = guestAssetUrl(name);
        if (!url) throw new Error(`the site was built without ${name}`);
        const bytes = await fetchBytes(url, name, tracker);
        if (name === "manifest.json") expectFiles(bytes, tracker);
        return bytes;
      },
    }).catch((err: unknown) => {
      image = undefined; // a later VM tries again
      throw withAdvice(err);
    });
    return image;
  };
  const wasm = (): Promise<WebAssembly.Module> =>
    compileWasm(new URL(v86Url, import.meta.url).href, V86_WASM, tracker).catch((err: unknown) => {
      if (err instanceof HyperlabError) throw err;
      throw new HyperlabError("IMAGE_MISSING", `the emulator's WebAssembly (${V86_WASM}) could not be fetched: ${(err as Error).message}. ${MISSING_ASSET_ADVICE}`, {
        file: V86_WASM,
      });
    });
  // The emulator's WebAssembly is fetched and compiled at once: it is needed by every VM, and compiling overlaps the guest's download.
  const compiled = wasm();
  compiled.catch(() => {});
  return {
    tracker,
    image: () => loadImage(),
    hypervisor: Hypervisor.create({ platform: { loadImage, wasm: () => compiled } }),
  };
}

/** Tells the tracker how big each file the image loader reads will be, from the manifest. */
function expectFiles(manifestBytes: Uint8Array, tracker: ProgressTracker): void {
  try {
    const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as GuestManifest;
    for (const name of [...BOOT_FILES, ...manifest.initrd]) {
      const size = manifest.files[name]?.size;
      if (size !== undefined) tracker.expect(name, size);
    }
  } catch {
    // loadGuestImage reports a bad manifest itself.
  }
}

/** The image loader's advice is for a checkout (git checkout, npm run images); on a page the visitor reloads or the site is rebuilt. */
function withAdvice(err: unknown): unknown {
  if (!(err instanceof HyperlabError) || (err.code !== "IMAGE_MISSING" && err.code !== "IMAGE_CORRUPT")) return err;
  const message = err.message.replace(/ Restore it with .*$| rebuild the image with .*$|; restore it with .*$/s, "");
  return new HyperlabError(err.code, `${message.replace(/[.;]?$/, ".")} ${MISSING_ASSET_ADVICE}`, err.detail);
}
