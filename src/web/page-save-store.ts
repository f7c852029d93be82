// Where a page keeps its VMs between reloads: IndexedDB (binary values of
// several MB, which localStorage cannot hold), in two object stores. `parts`
// holds the bytes (one VM's snapshot each) under keys of one generation;
// `saves` holds, per saved page, the pointer: the generation that is whole,
// with each part's size and sha256. A save writes its parts under a new
// generation first and switches the pointer in a second transaction, so a
// reload in the middle of a save (the browser ends the page whenever it
// likes) finds the previous save, whole; parts of an unfinished generation are
// swept by the next save or read. A read checks each part's size and sha256
// against the pointer before anything uses it.

/** One part of a save (a VM's snapshot bytes), as the pointer describes it. */
export interface SavedPart {
  /** its key in the `parts` store */
  key: string;
  bytes: number;
  /** sha256 of the bytes, hex */
  sha256: string;
}

/** A save's pointer: what is saved (the caller's `meta`) and its parts. */
export interface SavePointer<Meta> {
  /** the format of this record (PAGE_SAVE_FORMAT) */
  format: number;
  generation: number;
  /** when it was saved (ISO 8601) */
  savedAt: string;
  meta: Meta;
  parts: SavedPart[];
}

/** A save read back and checked: its pointer and each part's bytes, in the pointer's order. */
export interface LoadedSave<Meta> {
  pointer: SavePointer<Meta>;
  parts: Uint8Array[];
}

/** The format of the records this file writes; another one is refused on read as from another version. */
export const PAGE_SAVE_FORMAT = 1;

/** Thrown by readSave when the save is there but cannot be used: `message` says why, for the visitor. */
export class SaveUnusable extends Error {
  override readonly name = "SaveUnusable";
}

const DB = "hyperlab-pages";
const PARTS = "parts";
const SAVES = "saves";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(PARTS);
      req.result.createObjectStore(SAVES);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB could not be opened"));
    req.onblocked = () => reject(new Error("IndexedDB is blocked by another tab of this site holding an older version open"));
  });
}

/** Runs `fn` in one transaction over both stores; resolves with its result once the transaction has committed. */
async function transaction<T>(mode: IDBTransactionMode, fn: (parts: IDBObjectStore, saves: IDBObjectStore) => () => T): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction([PARTS, SAVES], mode, { durability: "strict" });
      const result = fn(tx.objectStore(PARTS), tx.objectStore(SAVES));
      tx.oncomplete = () => resolve(result());
      tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("the IndexedDB transaction failed"));
    });
  } finally {
    db.close();
  }
}

/** The key range of every part of the save `key` (of any generation). */
function partsOf(key: string): IDBKeyRange {
  return IDBKeyRange.bound(`${key}\u0000`, `${key}\u0000\uffff`);
}

function partKey(key: string, generation: number, i: number): string {
  return `${key}\u0000${generation}\u0000${i}`;
}

/** sha256 of `bytes`, hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Saves `parts` with `meta` under `key`, replacing the save there only once
 * all of it is written (see the file's comment). Resolves with the pointer
 * once the switch has committed.
 */
export async function writeSave<Meta>(key: string, meta: Meta, parts: Uint8Array[]): Promise<SavePointer<Meta>> {
  const described = await Promise.all(parts.map(async (p) => ({ bytes: p.length, sha256: await sha256Hex(p) })));
  const previous = await transaction("readonly", (_p, saves) => {
    const req = saves.get(key) as IDBRequest<SavePointer<Meta> | undefined>;
    return () => req.result;
  });
  // Date.now() keeps generations apart across reloads even if a pointer was lost; +1 when two saves share a millisecond.
  const generation = Math.max(Date.now(), (previous?.generation ?? 0) + 1);
  const pointer: SavePointer<Meta> = {
    format: PAGE_SAVE_FORMAT,
    generation,
    savedAt: new Date().toISOString(),
    meta,
    parts: described.map((d, i) => ({ key: partKey(key, generation, i), ...d })),
  };
  await transaction("readwrite", (store) => {
    parts.forEach((p, i) => store.put(p, pointer.parts[i]!.key));
    return () => undefined;
  });
  // The switch: the new pointer, and every part that is not the new generation's goes (the old save's, an unfinished one's).
  await transaction("readwrite", (store, saves) => {
    saves.put(pointer, key);
    const keep = new Set(pointer.parts.map((p) => p.key));
    const req = store.getAllKeys(partsOf(key));
    req.onsuccess = () => {
      for (const k of req.result) if (!keep.has(String(k))) store.delete(k);
    };
    return () => undefined;
  });
  return pointer;
}

/**
 * The save under `key`, checked: undefined when there is none; SaveUnusable
 * (saying why) when its record is from another format or a part is missing,
 * of another size or sha256 than the pointer says.
 */
export async function readSave<Meta>(key: string): Promise<LoadedSave<Meta> | undefined> {
  const { pointer, stored } = await transaction("readonly", (store, saves) => {
    const req = saves.get(key) as IDBRequest<SavePointer<Meta> | undefined>;
    const got: Array<unknown> = [];
    req.onsuccess = () => {
      const p = req.result;
      if (!p || !Array.isArray(p.parts)) return;
      p.parts.forEach((part, i) => {
        const r = store.get(part.key);
        r.onsuccess = () => (got[i] = r.result);
      });
    };
    return () => ({ pointer: req.result, stored: got });
  });
  if (pointer === undefined) return undefined;
  if (typeof pointer !== "object" || pointer === null || pointer.format !== PAGE_SAVE_FORMAT || !Array.isArray(pointer.parts)) {
    throw new SaveUnusable(`it was written by another version of hyperlab (save format ${(pointer as { format?: unknown })?.format ?? "unknown"}, this page reads format ${PAGE_SAVE_FORMAT})`);
  }
  const parts: Uint8Array[] = [];
  for (const [i, part] of pointer.parts.entries()) {
    const bytes = stored[i];
    if (!(bytes instanceof Uint8Array)) throw new SaveUnusable(`part ${i + 1} of ${pointer.parts.length} is missing from the browser's storage`);
    if (bytes.length !== part.bytes) throw new SaveUnusable(`part ${i + 1} of ${pointer.parts.length} holds ${bytes.length} bytes, ${part.bytes} were saved`);
    if ((await sha256Hex(bytes)) !== part.sha256) throw new SaveUnusable(`part ${i + 1} of ${pointer.parts.length} is damaged (its sha256 is not the one saved with it)`);
    parts.push(bytes);
  }
  return { pointer, parts };
}

/** Forgets the save under `key` (pointer and every part). Legal any time; no save is a no-op. */
export async function clearSave(key: string): Promise<void> {
  await transaction("readwrite", (store, saves) => {
    saves.delete(key);
    store.delete(partsOf(key));
    return () => undefined;
  });
}
