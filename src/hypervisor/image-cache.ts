// The guest images and v86's compiled WebAssembly a hypervisor builds its
// VMs from: each loaded once through the platform and kept, the images with
// their bytes shared with every worker (shared-memory.ts).
import { DEFAULT_PROFILE, type GuestImage } from "../hardware/guest-image.ts";
import type { Platform } from "./platform.ts";
import { shareImage } from "./shared-memory.ts";

/** A loaded image: as loaded (for digests and boot snapshots) and shared (for workers). */
export interface LoadedImage {
  ref: string;
  /** the profile ("" for the default guest) */
  profile: string;
  image: GuestImage;
  shared: GuestImage;
}

/** Images and v86, each loaded once per hypervisor; every method is legal any time (a failed image load is tried again on the next call). */
export class ImageCache {
  private readonly images = new Map<string, Promise<LoadedImage>>();
  private wasm: Promise<WebAssembly.Module> | undefined;
  /** what image() and v86() resolved to, once they have (spares are prepared with them, never load them) */
  private defaultImage: LoadedImage | undefined;
  private wasmModule: WebAssembly.Module | undefined;

  /** `platform`: where images and v86 are loaded from. */
  constructor(private readonly platform: Platform) {}

  /** The image `ref` (default: the default guest) or its profile `profile`, loaded once and shared by every worker. */
  image(ref?: string, profile?: string): Promise<LoadedImage> {
    const p = profile === undefined || profile === DEFAULT_PROFILE ? "" : profile;
    const key = p ? `${ref ?? ""}\0${p}` : (ref ?? "");
    let loaded = this.images.get(key);
    if (!loaded) {
      loaded = (p ? this.platform.loadImage(ref, p) : this.platform.loadImage(ref)).then((image) => {
        const l = { ref: ref ?? "", profile: p, image, shared: shareImage(image) };
        if (key === "") this.defaultImage = l;
        return l;
      });
      this.images.set(key, loaded);
      loaded.catch(() => this.images.delete(key));
    }
    return loaded;
  }

  /** v86's compiled WebAssembly, loaded once. */
  v86(): Promise<WebAssembly.Module> {
    return (this.wasm ??= this.platform.wasm().then((m) => (this.wasmModule = m)));
  }

  /** The default image and v86 once both have loaded for some VM, without loading them; undefined until then. */
  loaded(): { image: LoadedImage; wasm: WebAssembly.Module } | undefined {
    return this.defaultImage && this.wasmModule ? { image: this.defaultImage, wasm: this.wasmModule } : undefined;
  }
}
