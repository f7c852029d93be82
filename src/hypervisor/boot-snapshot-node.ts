// Node's side of instant start: boot snapshots cached as files, and a codec
// on node:zlib and node:crypto (several times faster than the web streams).
import { createHash } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { link, mkdir, readFile, readdir, rename, unlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { GuestImage } from "../hardware/guest-image.ts";
import { v86Wasm } from "../hardware/node.ts";
import { type SnapshotStore, bootSnapshot } from "./boot-snapshot.ts";
import type { Compression, Snapshot, SnapshotCodec } from "./snapshot.ts";

const deflateRaw = promisify(zlib.deflateRaw);
const inflateRaw = promisify(zlib.inflateRaw);

/** hyperlab's own folder: a checkout, or the installed package (src/ or lib/ sits in it). */
const packageRoot = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The folder for cached boot snapshots: $HYPERLAB_CACHE; else the
 * node_modules/.cache/hyperlab of the project hyperlab belongs to (a checkout's
 * own; for a package installed at <project>/node_modules/hyperlab, the
 * project's node_modules/.cache, where build tools keep their caches), if it
 * can be written; else $XDG_CACHE_HOME/hyperlab (default ~/.cache/hyperlab),
 * as for a global install that only root may write. Legal any time.
 */
export function snapshotCacheDir(env: NodeJS.ProcessEnv = process.env, root: string = packageRoot): string {
  if (env.HYPERLAB_CACHE) return env.HYPERLAB_CACHE;
  const installed = basename(dirname(root)) === "node_modules";
  const project = join(installed ? dirname(root) : join(root, "node_modules"), ".cache", "hyperlab");
  return writable(project) ? project : join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "hyperlab");
}

/** Whether `dir` can be written, or made: the nearest folder of it that exists is writable. */
function writable(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    try {
      accessSync(d, constants.W_OK);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || dirname(d) === d) return false;
    }
  }
}

/** Copies `bytes` only when they do not span their whole ArrayBuffer (v86 needs a buffer of its own). */
function own(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/** zlib (in libuv's thread pool, off the event loop) and OpenSSL's SHA-256. */
export const nodeCodec: SnapshotCodec = {
  async compress(data) {
    return own(await deflateRaw(data, { level: 6 }));
  },
  async decompress(data, _compression, size) {
    const out = await inflateRaw(data, { maxOutputLength: size });
    if (out.length !== size) throw new Error(`it inflates to ${out.length} bytes, the header states ${size}`);
    return own(out);
  },
  async sha256(data) {
    return own(createHash("sha256").update(data).digest());
  },
};

/**
 * Snapshots as files `<key>.hlsnap` in `dir`. A write goes to a temporary
 * name and is renamed into place, so a process reading concurrently (vitest
 * runs test files in parallel) sees the old file, no file, or the whole new
 * one. Writing a boot snapshot removes the one of the same memory size that
 * an older image, recipe or v86 left behind.
 */
export function fileSnapshotStore(dir: string = snapshotCacheDir(), compression: Compression = "none"): SnapshotStore {
  const file = (key: string) => join(dir, `${key}.hlsnap`);
  return {
    compression,
    where: dir,
    async read(key) {
      try {
        const bytes = await readFile(file(key));
        return own(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
    },
    async write(key, bytes, how = {}) {
      await mkdir(dir, { recursive: true });
      const temp = `${file(key)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      await writeFile(temp, bytes);
      if (how.replace) {
        await rename(temp, file(key));
      } else {
        // A hard link fails when the name exists: the first writer wins, atomically.
        try {
          await link(temp, file(key));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
          return false;
        } finally {
          await unlink(temp).catch(() => {});
        }
      }
      // Keys are boot-[<profile>-]<image id>-<memory>m-<hash>: one per profile and memory size is kept, the
      // newest (an older image's goes; another profile's stays).
      const family = (name: string) => {
        const m = /^boot-(?:(.+)-)?[0-9a-f]{16}-(\d+m)-[0-9a-f]{16}$/.exec(name);
        return m ? `${m[1] ?? ""} ${m[2]}` : undefined;
      };
      const mine = family(key);
      if (!mine) return true;
      for (const name of await readdir(dir)) {
        if (name.endsWith(".hlsnap") && name !== `${key}.hlsnap` && family(name.slice(0, -".hlsnap".length)) === mine) await unlink(join(dir, name)).catch(() => {});
      }
      return true;
    },
  };
}

let v86Version: string | undefined;

/** v86's package version: states saved by one v86 are only restored by the same one here. */
function installedV86(): string {
  v86Version ??= (createRequire(import.meta.url)("v86/package.json") as { version: string }).version;
  return v86Version;
}

/**
 * The boot snapshot of `image` in Node: from this process's memory, else from
 * the cache folder, else built by a cold boot (a few seconds, once) and cached.
 */
export function nodeBootSnapshot(image: GuestImage, opts: { memoryMiB?: number; timeoutMs?: number; store?: SnapshotStore } = {}): Promise<Snapshot> {
  return bootSnapshot({
    image,
    wasm: v86Wasm(),
    memoryMiB: opts.memoryMiB,
    timeoutMs: opts.timeoutMs,
    store: opts.store ?? fileSnapshotStore(),
    codec: nodeCodec,
    keyExtra: `v86 ${installedV86()}`,
  });
}
