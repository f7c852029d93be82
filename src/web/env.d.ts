// Vite's client types (import.meta.glob, `?url` and `?inline` imports) for the page's sources.
/// <reference types="vite/client" />

/** The boot snapshots the built site ships (vite.config.ts makes this module; see src/web/site-snapshots.ts). */
declare module "virtual:hyperlab-boot-snapshots" {
  /** one per memory size of the default guest and one per guest profile: its profile (undefined: the default guest), the guest RAM it was taken with, its URL (as Vite gives asset URLs) and its size in bytes */
  export const bootSnapshots: ReadonlyArray<{ profile: string | undefined; memoryMiB: number; url: string; bytes: number }>;
}

/** URL of llhttp's WebAssembly in the built site (vite.config.ts makes this module; see src/daemon/docker/llhttp.ts). */
declare module "virtual:hyperlab-llhttp-wasm" {
  const url: string;
  export default url;
}
