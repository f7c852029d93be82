// Node-only pieces of the machine: artifacts from the checkout's folder, and
// v86's WebAssembly compiled once per process.
import { readFile } from "node:fs/promises";
import v8 from "node:v8";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { type GuestImage, loadGuestImage } from "./guest-image.ts";
import { type ManifestTool, loadGuestTool } from "./guest-tools.ts";

/** The folder holding the committed guest artifacts of this checkout. */
export const defaultImageDir = fileURLToPath(new URL("../../guest-images/dist/", import.meta.url));

const images = new Map<string, Promise<GuestImage>>();

/** Loads (once per process, folder and profile) and verifies the guest image in `dir`, or its profile `profile` (default: the default guest). */
export function loadNodeImage(dir: string = defaultImageDir, profile?: string): Promise<GuestImage> {
  const key = `${dir}\0${profile ?? ""}`;
  let image = images.get(key);
  if (!image) {
    const base = dir.replace(/\/?$/, "/");
    image = loadGuestImage({ where: dir, read: async (name) => new Uint8Array(await readFile(base + name)) }, { profile });
    images.set(key, image);
    image.catch(() => images.delete(key));
  }
  return image;
}

const tools = new Map<string, Promise<{ tool: ManifestTool; data: Uint8Array }>>();

/**
 * A tool guests load on first use (the docker client), unpacked and checked
 * against the manifest of the image in `dir`: read once per process and kept
 * (every VM that asks gets the same bytes).
 */
export function loadNodeTool(name: string, dir: string = defaultImageDir): Promise<{ tool: ManifestTool; data: Uint8Array }> {
  const key = `${dir}\0${name}`;
  let tool = tools.get(key);
  if (!tool) {
    const base = dir.replace(/\/?$/, "/");
    tool = loadGuestTool(async (file) => new Uint8Array(await readFile(base + file)), dir, name);
    tools.set(key, tool);
    tool.catch(() => tools.delete(key));
  }
  return tool;
}

let wasm: Promise<WebAssembly.Module> | undefined;

/**
 * v86's WebAssembly module, compiled on first use and shared by every machine
 * in this process. V8 is told to compile all WebAssembly with its optimizing
 * tier up front: that costs about a second once per process, but a boot then
 * runs about twice as fast as with the default (baseline code first, tiering
 * up while the guest boots), because v86's interpreter and the code its JIT
 * generates are hot from the first instruction.
 */
export function v86Wasm(): Promise<WebAssembly.Module> {
  if (!wasm) {
    v8.setFlagsFromString("--no-liftoff");
    v8.setFlagsFromString("--no-wasm-lazy-compilation");
    wasm = readFile(createRequire(import.meta.url).resolve("v86/build/v86.wasm")).then((b) => WebAssembly.compile(b));
  }
  return wasm;
}
