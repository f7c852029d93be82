// The page's side of the hypervisor: one Hypervisor per page (so every
// <hyperlab-vm> on it shares one memory budget and one download of each
// file), whose platform fetches from the site, with progress, what a VM
// needs: the boot snapshot a VM restores (the usual start), or the guest's
// kernel and initramfs for a cold boot, and v86's WebAssembly. Each VM runs
// in its own module Web Worker (spawned by the hypervisor); the page's thread
// never runs the emulator.
import { bootSnapshots as SITE_SNAPSHOTS } from "virtual:hyperlab-boot-snapshots";
import { HyperlabError } from "../errors.ts";
import { type GuestImage, type GuestManifest, type ImageParts, SETUP_HEADER_BYTES, loadGuestImage } from "../hardware/guest-image.ts";
import { decodeSnapshot } from "../hypervisor/delta-snapshot.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { type Snapshot, imageDigest, webCodec } from "../hypervisor/snapshot.ts";
import { guestAssetUrl, v86Url } from "./assets.ts";
import { ProgressTracker, compileWasm, fetchBytes, fetchHead } from "./progress.ts";

/** The images a page can boot. The site ships one guest, the default. */
export const PAGE_IMAGES = ["default"] as const;

/**
 * The image refs the page's hypervisor knows, both the default guest:
 * restores read only its manifest (the snapshot's RAM holds kernel and
 * initramfs); a cold boot reads what the direct boot needs.
 */
export const RESTORE_IMAGE = undefined;
export const BOOT_IMAGE = "default";

/** The files a cold boot reads besides the manifest and its initramfs layers (see guest-image.ts, parts "direct"). */
const BOOT_FILES = ["loader.elf", "vmlinux.bin"];

/** Name under which v86's WebAssembly is counted and named in errors. */
export const V86_WASM = "v86.wasm";

/** What to tell a visitor to do when a file of the site could not be fetched. */
export const MISSING_ASSET_ADVICE =
  "Reload the page; if it happens again, the site is missing this file: rebuild it with 'npm run build' and deploy the whole dist/ folder.";

/** How a page VM will start, so the host fetches what that needs and nothing else. */
export interface StartPlan {
  /** restore the site's boot snapshot (false: boot the kernel) */
  restore: boolean;
  /** guest RAM in MiB (a restore gets the snapshot's) */
  memoryMiB?: number;
  /** the guest profile (undefined: the default guest) */
  profile?: string;
}

/** One page's hypervisor and the progress of the downloads it needs. */
export interface PageHost {
  readonly hypervisor: Promise<Hypervisor>;
  readonly tracker: ProgressTracker;
  /** guest RAM (MiB) a VM gets when its element names none: the size of the site's boot snapshot */
  readonly defaultMemoryMiB: number | undefined;
  /** the same for a VM of guest profile `profile`: the size of the site's boot snapshot of that profile, if it has one */
  profileMemoryMiB(profile: string): number | undefined;
  /** whether the site ships a boot snapshot of `profile` (undefined: the default guest) for this much guest RAM (a VM then restores it instead of booting) */
  hasBootSnapshot(memoryMiB: number, profile?: string): boolean;
  /** downloads what a VM started this way needs (each file once per page); resolves when it is there. Legal any time. */
  prepare(plan: StartPlan): Promise<void>;
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

/** The name a site snapshot is counted under in the progress bar and named in errors. */
function snapshotName(memoryMiB: number, profile?: string): string {
  return profile ? `${profile} profile's boot snapshot (${memoryMiB} MiB)` : `boot snapshot (${memoryMiB} MiB)`;
}

function makeHost(): PageHost {
  const tracker = new ProgressTracker();
  // The manifest is read by both kinds of image: fetched once.
  let manifest: Promise<Uint8Array> | undefined;
  const read = (name: string): Promise<Uint8Array> => {
    const url = guestAssetUrl(name);
    if (!url) return Promise.reject(new Error(`the site was built without ${name}`));
    if (name !== "manifest.json") return fetchBytes(url, name, tracker);
    manifest ??= fetchBytes(url, name, tracker);
    manifest.catch(() => (manifest = undefined));
    return manifest;
  };
  const readHead = (name: string, bytes: number): Promise<Uint8Array> => {
    const url = guestAssetUrl(name);
    if (!url) return Promise.reject(new Error(`the site was built without ${name}`));
    return fetchHead(url, name, bytes, tracker);
  };

  // By parts and profile: a profile's layers are read only for a cold boot of that profile.
  const images = new Map<string, Promise<GuestImage>>();
  const image = (parts: ImageParts, profile?: string): Promise<GuestImage> => {
    const key = `${parts} ${profile ?? ""}`;
    let loaded = images.get(key);
    if (!loaded) {
      // The bar counts what this start downloads: a cold boot's files are expected only when one is asked for.
      if (parts === "direct") read("manifest.json").then((bytes) => expectFiles(bytes, tracker, profile), () => {});
      loaded = loadGuestImage({ where: where(), read, readHead }, { parts, profile }).catch((err: unknown) => {
        images.delete(key); // a later VM tries again
        throw withAdvice(err);
      });
      images.set(key, loaded);
    }
    return loaded;
  };
  const loadImage = (ref?: string, profile?: string): Promise<GuestImage> => {
    if (ref !== RESTORE_IMAGE && ref !== BOOT_IMAGE) {
      return Promise.reject(
        new HyperlabError("IMAGE_NOT_FOUND", `there is no guest image '${ref}' on this site; it has: ${PAGE_IMAGES.join(", ")}. Leave out the image attribute to get the default.`, { image: ref }),
      );
    }
    return image(ref === RESTORE_IMAGE ? "manifest" : "direct", profile);
  };

  const snapshots = new Map<string, Promise<Snapshot>>();
  const bootSnapshot = (memoryMiB: number, profile?: string): Promise<Snapshot> => {
    const key = `${profile ?? ""} ${memoryMiB}`;
    let snapshot = snapshots.get(key);
    if (!snapshot) {
      snapshot = fetchSnapshot(memoryMiB, profile, image("manifest", profile), tracker);
      snapshots.set(key, snapshot);
      snapshot.catch(() => snapshots.delete(key));
    }
    return snapshot;
  };

  const wasm = (): Promise<WebAssembly.Module> =>
    compileWasm(new URL(v86Url, import.meta.url).href, V86_WASM, tracker).catch((err: unknown) => {
      if (err instanceof HyperlabError) throw err;
      throw new HyperlabError("IMAGE_MISSING", `the emulator's WebAssembly (${V86_WASM}) could not be fetched: ${(err as Error).message}. ${MISSING_ASSET_ADVICE}`, {
        file: V86_WASM,
      });
    });
  // The emulator's WebAssembly is fetched and compiled at once: it is needed by every VM, and compiling overlaps the other downloads.
  const compiled = wasm();
  compiled.catch(() => {});
  return {
    tracker,
    defaultMemoryMiB: SITE_SNAPSHOTS.find((s) => !s.profile)?.memoryMiB,
    profileMemoryMiB: (profile) => SITE_SNAPSHOTS.find((s) => s.profile === profile)?.memoryMiB,
    hasBootSnapshot: (memoryMiB, profile) => SITE_SNAPSHOTS.some((s) => s.memoryMiB === memoryMiB && s.profile === profile),
    prepare: async (plan) => {
      await (plan.restore && plan.memoryMiB !== undefined ? bootSnapshot(plan.memoryMiB, plan.profile) : loadImage(BOOT_IMAGE, plan.profile));
    },
    hypervisor: Hypervisor.create({
      memoryBudgetMiB: pageBudgetMiB(),
      // The CPU scheduler tells a busy VM from an idle one by how busy its worker's event loop is, which Node measures and
      // browsers do not: every VM would look busy, and a VM would be held back for ever behind an idle sibling that
      // executes few instructions. On a page no VM counts as busy, so none is held; each runs in its own worker thread.
      scheduler: { busyFraction: Number.POSITIVE_INFINITY },
      platform: { loadImage, wasm: () => compiled, codec: webCodec, bootSnapshot: (image, memoryMiB) => bootSnapshot(memoryMiB, image.profile) },
    }),
  };
}

/**
 * The memory all VMs of the page may reserve together, in MiB: a course page
 * sets it with `<meta name="hyperlab-memory-budget" content="512">`; without
 * one the hypervisor's default holds (a quarter of the device's memory).
 */
function pageBudgetMiB(): number | undefined {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="hyperlab-memory-budget"]');
  if (!meta) return undefined;
  const mib = Number(meta.content);
  if (Number.isFinite(mib) && mib > 0) return mib;
  console.warn(`hyperlab: ignoring <meta name="hyperlab-memory-budget" content="${meta.content}">: give a positive number of MiB`);
  return undefined;
}

/** Downloads the site's boot snapshot of `profile` (undefined: the default guest) for `memoryMiB` and decodes it (checksum, image, memory), with errors that say what to do. */
async function fetchSnapshot(memoryMiB: number, profile: string | undefined, manifestImage: Promise<GuestImage>, tracker: ProgressTracker): Promise<Snapshot> {
  const site = SITE_SNAPSHOTS.find((s) => s.memoryMiB === memoryMiB && s.profile === profile);
  const name = snapshotName(memoryMiB, profile);
  if (!site) {
    const has = SITE_SNAPSHOTS.filter((s) => s.profile === profile).map((s) => `${s.memoryMiB} MiB`).join(", ") || "none";
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `this site has no ${profile ? `${profile} profile ` : ""}boot snapshot for ${memoryMiB} MiB of memory (it has: ${has}); such a VM boots its kernel instead.`,
      { memoryMiB, ...(profile ? { profile } : {}) },
    );
  }
  tracker.expect(name, site.bytes);
  const [bytes, image] = await Promise.all([
    fetchBytes(new URL(site.url, import.meta.url).href, name, tracker).catch((err: unknown) => {
      throw new HyperlabError("IMAGE_MISSING", `the ${name} could not be fetched: ${(err as Error).message}. ${MISSING_ASSET_ADVICE}`, { file: name });
    }),
    manifestImage,
  ]);
  try {
    return await decodeSnapshot(bytes, { image: { id: image.id, sha256: await imageDigest(image) }, memoryMiB, firmware: "direct" }, { codec: webCodec });
  } catch (err) {
    if (!(err instanceof HyperlabError)) throw err;
    // Built with the site, it can only be damaged in transit or on the host, or left over from another build.
    throw new HyperlabError(err.code, `the site's ${name} cannot be used: ${err.message.replace(/ Take the snapshot again.*$/s, "")} ${MISSING_ASSET_ADVICE}`, err.detail);
  }
}

/** Tells the tracker how big each file a cold boot (of `profile`, if given) reads will be, from the manifest. */
function expectFiles(manifestBytes: Uint8Array, tracker: ProgressTracker, profile?: string): void {
  try {
    const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as GuestManifest;
    const layers = profile ? (manifest.profiles?.[profile]?.files ?? {}) : {};
    for (const name of [...BOOT_FILES, ...manifest.initrd, ...Object.keys(layers)]) {
      const size = manifest.files[name]?.size ?? layers[name]?.size;
      if (size !== undefined) tracker.expect(name, size);
    }
    tracker.expect("bzImage", SETUP_HEADER_BYTES);
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
