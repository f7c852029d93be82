// The image store in Node: the committed OCI layout of this checkout
// (guest-images/dist/images) read only, under a writable OCI layout in the
// daemon's data root (<data root>/images). Every write goes to a temporary
// file that is flushed to disk and then renamed over its name, so a crash
// leaves the old file or the new one, never half of one; the index is
// written last, so an image shows only once all its blobs are there.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HyperlabError } from "../errors.ts";
import { ImageStore, type WritableLayout } from "./image-store.ts";

/** The folder of the committed OCI image layout. */
export const defaultImageLayoutDir = fileURLToPath(new URL("../../guest-images/dist/images/", import.meta.url));

/** The daemon's data root when none is given: $XDG_DATA_HOME/hyperlab, else ~/.local/share/hyperlab. */
export function defaultDataRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "hyperlab");
}

/**
 * An ImageStore over the built-in layout folder `dir`, with the writable
 * layout of `dataRoot` over it (created on first write). Without a data
 * root, writes stay in memory.
 */
export function nodeImageStore(dir: string = defaultImageLayoutDir, opts: { dataRoot?: string } = {}): ImageStore {
  const base = dir.replace(/\/?$/, "/");
  const read = async (path: string) => new Uint8Array(await readFile(base + path));
  return opts.dataRoot === undefined ? new ImageStore(read, dir) : new ImageStore(read, dir, folderLayout(join(opts.dataRoot, "images")));
}

/**
 * Writes `data` to `path` atomically: a temporary file beside it (named
 * `.tmp-PID-…`, cleared by folderLayout once PID is gone), flushed, renamed
 * over it, and the folder flushed. A crash leaves the old file or the new one.
 */
export async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const tmp = `${dir}/.tmp-${process.pid}-${Math.random().toString(36).slice(2)}-${path.slice(dir.length + 1)}`;
  const f = await open(tmp, "wx", 0o644);
  try {
    await f.writeFile(data);
    await f.sync();
  } catch (err) {
    await f.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await f.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** What a write to the store failing with each errno means, and what the user can do. */
const UNWRITABLE: Record<string, { code: "RESOURCE_EXHAUSTED" | "STORE_READ_ONLY"; why: string; todo: string }> = {
  ENOSPC: { code: "RESOURCE_EXHAUSTED", why: "its disk is full", todo: "free space there (docker image prune, docker rmi) or start the daemon with another --data-root" },
  EDQUOT: { code: "RESOURCE_EXHAUSTED", why: "its disk quota is used up", todo: "free space there (docker image prune, docker rmi) or start the daemon with another --data-root" },
  EROFS: { code: "STORE_READ_ONLY", why: "it is on a read-only file system", todo: "remount it writable or start the daemon with another --data-root" },
  EACCES: { code: "STORE_READ_ONLY", why: "the daemon may not write there", todo: "give the daemon's user write access to it or start the daemon with another --data-root" },
  EPERM: { code: "STORE_READ_ONLY", why: "the daemon may not write there", todo: "give the daemon's user write access to it or start the daemon with another --data-root" },
};

/**
 * Runs the write `fn` to the store at `dir`: a full disk or a read-only one
 * becomes a coded error naming the store, why and what to do (the store is
 * as before: writes that fail leave no file behind); other errors pass.
 */
async function storeWrite<T>(dir: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = UNWRITABLE[(err as NodeJS.ErrnoException)?.code ?? ""];
    if (!e) throw err;
    const errno = (err as NodeJS.ErrnoException).code;
    throw new HyperlabError(e.code, `cannot ${what} in the image store at ${dir}: ${e.why} (${errno}); nothing was changed: ${e.todo}`, { path: dir, errno });
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

/** Whether process `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A writable OCI image layout in the folder `dir` (oci-layout, index.json,
 * blobs/sha256/). Its lock is a file holding the owner's PID, taken with an
 * exclusive create; one left by a process that is gone is taken over.
 */
export function folderLayout(dir: string): WritableLayout {
  const blobs = join(dir, "blobs", "sha256");
  let ready: Promise<void> | undefined;
  const prepare = () => {
    ready ??= (async () => {
      await mkdir(blobs, { recursive: true, mode: 0o700 });
      // Temporary files of writes a process did not finish (it died): never renamed, so never seen; cleared here.
      for (const folder of [dir, blobs]) {
        for (const name of await readdir(folder)) {
          const pid = /^\.tmp-(\d+)-/.exec(name)?.[1];
          if (pid && !alive(Number(pid))) await rm(join(folder, name), { force: true });
        }
      }
      await stat(join(dir, "oci-layout")).catch(async (err) => {
        if (!isMissing(err)) throw err;
        await writeAtomic(join(dir, "oci-layout"), new TextEncoder().encode(`{"imageLayoutVersion": "1.0.0"}\n`));
      });
    })();
    ready.catch(() => (ready = undefined));
    return ready;
  };
  const lockPath = join(dir, "index.lock");
  const lock = async (): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        const fd = openSync(lockPath, "wx", 0o600);
        try {
          writeFileSync(fd, String(process.pid));
          fsyncSync(fd);
        } catch (err) {
          // A full disk can take the file but not the PID: a lock left empty would hold the next taker a second.
          closeSync(fd);
          rmSync(lockPath, { force: true });
          throw err;
        }
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = Number(readFileSync(lockPath, { encoding: "utf8", flag: "r" }).trim() || NaN);
      // Written by a process that is gone (or half-written by one that died): take it over.
      if (!Number.isInteger(owner) || !alive(owner)) {
        if (!Number.isInteger(owner) && Date.now() - statSync(lockPath).mtimeMs < 1000) {
          // Its owner may be writing its PID right now.
        } else {
          rmSync(lockPath, { force: true });
          continue;
        }
      }
      if (Date.now() > deadline) {
        throw new HyperlabError("TIMEOUT", `the image store at ${dir} is locked by process ${owner}; it may be another hyperlab daemon using the same data root (give it another with --data-root)`);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  };
  return {
    where: dir,
    readIndex: async () => {
      try {
        return new Uint8Array(await readFile(join(dir, "index.json")));
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    },
    writeIndex: (data) =>
      storeWrite(dir, "write the image index", async () => {
        await prepare();
        await writeAtomic(join(dir, "index.json"), data);
      }),
    indexVersion: async () => {
      try {
        const s = await stat(join(dir, "index.json"), { bigint: true });
        return `${s.ino}:${s.mtimeNs}:${s.size}`;
      } catch (err) {
        if (isMissing(err)) return "none";
        throw err;
      }
    },
    readBlob: async (hex) => new Uint8Array(await readFile(join(blobs, hex))),
    hasBlob: async (hex) =>
      stat(join(blobs, hex)).then(
        () => true,
        (err) => (isMissing(err) ? false : Promise.reject(err)),
      ),
    writeBlob: (hex, data) =>
      storeWrite(dir, `write blob sha256:${hex}`, async () => {
        await prepare();
        await writeAtomic(join(blobs, hex), data);
      }),
    removeBlob: (hex) => storeWrite(dir, `remove blob sha256:${hex}`, () => rm(join(blobs, hex), { force: true })),
    listBlobs: async () => {
      let names: string[];
      try {
        names = await readdir(blobs);
      } catch (err) {
        if (isMissing(err)) return [];
        throw err;
      }
      const out: Array<{ hex: string; size: number; mtimeMs: number }> = [];
      for (const hex of names.filter((n) => /^[0-9a-f]{64}$/.test(n))) {
        const s = await stat(join(blobs, hex)).catch(() => undefined);
        if (s) out.push({ hex, size: s.size, mtimeMs: s.mtimeMs });
      }
      return out;
    },
    locked: async (fn) => {
      await storeWrite(dir, "change the image index", async () => {
        await prepare();
        await lock();
      });
      try {
        return await fn();
      } finally {
        rmSync(lockPath, { force: true });
      }
    },
  };
}

/** Makes the data root (readable by its owner only) if it is not there. */
export function ensureDataRoot(dataRoot: string): void {
  mkdirSync(dataRoot, { recursive: true, mode: 0o700 });
}
