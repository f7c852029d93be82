// Where <hyperlab-lab> keeps a learner's work in the browser: one IndexedDB
// record per lab (its VM's delta snapshot, the steps passed and the hints
// shown), so that a reload brings back both the progress and the machine.
// IndexedDB because it stores binary values of tens of MB, which
// localStorage cannot.

/** One lab's saved work. */
export interface LabProgress {
  /** the VM's state: a snapshot naming the lab (a delta against the site's boot snapshot when the VM came from it) */
  state: Uint8Array;
  /** numbers of the steps whose checks all passed */
  passed: number[];
  /** how many hints of each step were shown, by step number */
  hints: Record<number, number>;
  /** when it was saved (ISO 8601) */
  savedAt: string;
}

const DB = "hyperlab-labs";
const STORE = "progress";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB could not be opened"));
  });
}

/** Runs one request in a transaction and resolves with its result once the transaction is done. */
async function request<T>(mode: IDBTransactionMode, make: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = make(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error ?? req.error ?? new Error("the IndexedDB transaction failed"));
    });
  } finally {
    db.close();
  }
}

/** The saved work of the lab stored under `key`, if any. */
export async function loadProgress(key: string): Promise<LabProgress | undefined> {
  const value = await request("readonly", (s) => s.get(key) as IDBRequest<LabProgress | undefined>);
  return value && value.state instanceof Uint8Array ? value : undefined;
}

/** Saves a lab's work under `key` (replacing what was there). */
export async function saveProgress(key: string, progress: LabProgress): Promise<void> {
  await request("readwrite", (s) => s.put(progress, key));
}

/** Forgets a lab's work. */
export async function clearProgress(key: string): Promise<void> {
  await request("readwrite", (s) => s.delete(key));
}
