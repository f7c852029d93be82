// Where the page finds the guest's files and v86's WebAssembly. Vite copies
// each into the built site under a name with its content hash (so a static
// host may cache them for ever) and gives us its URL; in development the dev
// server serves them from the checkout.
import v86WasmUrl from "v86/build/v86.wasm?url";
import llhttpUrl from "virtual:hyperlab-llhttp-wasm";

/**
 * The guest artifacts a page's cold boot reads (guest-images/dist/manifest.json
 * names them), by file name: the direct boot's, so no BIOS (a page never
 * boots through SeaBIOS), and the build recipes' extras (kernel.config,
 * licenses) are not part of the page either. A page that restores the boot
 * snapshot reads only the manifest.
 */
const found = import.meta.glob(["../../guest-images/dist/*.{json,bin,cpio,elf}", "../../guest-images/dist/bzImage", "!**/bios.bin", "!**/vgabios-*.bin"], {
  query: "?url",
  import: "default",
  eager: true,
}) as Record<string, string>;

/**
 * Programs a guest loads on first use (guest-images/dist/tools/, the
 * manifest's `tools`): the docker client is 14.6 MB, so it is a file of the
 * site that no start downloads; the page fetches one when a guest asks.
 */
const tools = import.meta.glob("../../guest-images/dist/tools/*.gz", { query: "?url", import: "default", eager: true }) as Record<string, string>;

/** URL of each guest artifact, by the name the manifest uses. */
export const guestAssetUrls: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(found).map(([path, url]) => [path.slice(path.lastIndexOf("/") + 1), url]),
);

/** URL of v86's WebAssembly module. */
export const v86Url: string = v86WasmUrl;

/** Absolute URL of a guest artifact (relative URLs resolve against this module, which is where the site's assets are). */
export function guestAssetUrl(name: string): string | undefined {
  const url = guestAssetUrls[name];
  return url === undefined ? undefined : new URL(url, import.meta.url).href;
}

/**
 * The site's root, where its read-only registry's `v2/` is (written by
 * `npm run build`, served by the dev server in development): the folder
 * above the guest's hashed files (assets/) in a build, the server's root in
 * development. The page pulls its images from `<root>v2/…` on first use.
 */
export function siteRegistryUrl(): string {
  const manifest = guestAssetUrl("manifest.json");
  if (import.meta.env.DEV || manifest === undefined) return new URL("/", import.meta.url).href;
  return new URL("../", manifest).href;
}

/** Absolute URL of a guest tool's file, by the name the manifest gives it (tools/docker.gz). */
export function guestToolUrl(file: string): string | undefined {
  const entry = Object.entries(tools).find(([path]) => path.endsWith(`/dist/${file}`));
  return entry && new URL(entry[1], import.meta.url).href;
}

/** Absolute URL of llhttp's WebAssembly (the parser of the Docker API the page serves its guests). */
export function llhttpWasmUrl(): string {
  return new URL(llhttpUrl, import.meta.url).href;
}
