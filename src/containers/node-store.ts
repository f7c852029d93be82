// The image store of this checkout, read from guest-images/dist/images in Node.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { ImageStore } from "./image-store.ts";

/** The folder of the committed OCI image layout. */
export const defaultImageLayoutDir = fileURLToPath(new URL("../../guest-images/dist/images/", import.meta.url));

/** An ImageStore over an OCI layout folder. */
export function nodeImageStore(dir: string = defaultImageLayoutDir): ImageStore {
  const base = dir.replace(/\/?$/, "/");
  return new ImageStore(async (path) => new Uint8Array(await readFile(base + path)), dir);
}
