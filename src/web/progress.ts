// Start-up progress of a page VM: which phase it is in and how many bytes of
// which files have arrived, so the page can draw a bar with real figures.
import { HyperlabError } from "../errors.ts";

/** The phases a VM on the page goes through before its prompt, in order. */
export type StartPhase = "download" | "compile" | "restore" | "boot" | "prompt" | "ready";

/** A picture of start-up progress at one moment. */
export interface ProgressSnapshot {
  phase: StartPhase;
  /** bytes received so far (all files, as the network delivered them after decompression) */
  loadedBytes: number;
  /** bytes expected in all (known once the guest manifest has arrived; 0 before) */
  totalBytes: number;
  /** files still arriving */
  pending: string[];
}

/** Human words for each phase. */
export const PHASE_LABEL: Readonly<Record<StartPhase, string>> = {
  download: "Downloading the guest",
  compile: "Compiling the emulator",
  restore: "Restoring Linux from its boot snapshot",
  boot: "Booting Linux",
  prompt: "Waiting for the shell",
  ready: "Ready",
};

/**
 * Counts bytes of the files a page VM needs. One tracker per page load; the
 * files are shared by every VM of the page, so every VM's bar shows them.
 */
export class ProgressTracker {
  private readonly loaded = new Map<string, number>();
  private readonly expected = new Map<string, number>();
  private readonly done = new Set<string>();
  private readonly listeners = new Set<() => void>();

  /** Declares that `name` will be `bytes` long (from the manifest, or Content-Length). */
  expect(name: string, bytes: number): void {
    if (!this.expected.has(name)) this.expected.set(name, bytes);
    this.changed();
  }

  /** Adds bytes received for `name`. */
  received(name: string, bytes: number): void {
    this.loaded.set(name, (this.loaded.get(name) ?? 0) + bytes);
    this.changed();
  }

  /** Marks `name` complete. */
  finished(name: string): void {
    this.done.add(name);
    this.changed();
  }

  /** Bytes received so far and bytes expected in all. */
  totals(): { loadedBytes: number; totalBytes: number; pending: string[] } {
    let loadedBytes = 0;
    for (const n of this.loaded.values()) loadedBytes += n;
    let totalBytes = 0;
    for (const [name, n] of this.expected) totalBytes += Math.max(n, this.loaded.get(name) ?? 0);
    const pending = [...this.expected.keys()].filter((n) => !this.done.has(n));
    return { loadedBytes, totalBytes, pending };
  }

  /** Calls `listener` after every change. Returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}

/**
 * Fetches `url` whole, reporting each chunk to `tracker` under `name`.
 * Rejects with a message naming the URL and the HTTP status (or the network
 * failure); `loadGuestImage` wraps it into IMAGE_MISSING naming the file.
 */
export async function fetchBytes(url: string, name: string, tracker: ProgressTracker): Promise<Uint8Array> {
  const response = await fetchOrExplain(url);
  const length = Number(response.headers.get("content-length") ?? 0);
  // Content-Length counts compressed bytes when the server compresses; the manifest's sizes are what we count against.
  if (length > 0 && response.headers.get("content-encoding") === null) tracker.expect(name, length);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    tracker.received(name, value.length);
  }
  tracker.finished(name);
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Fetches the first `bytes` of `url` (a byte range; a server that ignores
 * ranges sends the whole file, of which the rest is not read), counted
 * under `name`.
 */
export async function fetchHead(url: string, name: string, bytes: number, tracker: ProgressTracker): Promise<Uint8Array> {
  const response = await fetchOrExplain(url, { headers: { range: `bytes=0-${bytes - 1}` } });
  const out = new Uint8Array(bytes);
  let at = 0;
  const reader = response.body!.getReader();
  while (at < bytes) {
    const { done, value } = await reader.read();
    if (done) break;
    const take = Math.min(value.length, bytes - at);
    out.set(value.subarray(0, take), at);
    at += take;
    tracker.received(name, take);
  }
  await reader.cancel().catch(() => {});
  tracker.finished(name);
  return out.subarray(0, at);
}

/**
 * Compiles v86's WebAssembly while it downloads (the browser compiles as
 * bytes arrive), counting the bytes under `name`.
 */
export async function compileWasm(url: string, name: string, tracker: ProgressTracker): Promise<WebAssembly.Module> {
  const response = await fetchOrExplain(url);
  const length = Number(response.headers.get("content-length") ?? 0);
  if (length > 0 && response.headers.get("content-encoding") === null) tracker.expect(name, length);
  const counted = response.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        tracker.received(name, chunk.length);
        out.enqueue(chunk);
      },
    }),
  );
  try {
    // compileStreaming insists on the application/wasm type; the body is the one we count.
    return await WebAssembly.compileStreaming(new Response(counted, { headers: { "content-type": "application/wasm" } }));
  } catch (err) {
    throw new HyperlabError(
      "IMAGE_CORRUPT",
      `the emulator's WebAssembly (${url}) could not be compiled: ${(err as Error).message}. ` +
        "The file is damaged or is not WebAssembly (a server that answers missing files with a page does this): rebuild and redeploy the site.",
      { file: name, url },
    );
  } finally {
    tracker.finished(name);
  }
}

async function fetchOrExplain(url: string, init?: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new Error(`the network request for ${url} failed (${(err as Error).message})`);
  }
  if (!response.ok || !response.body) {
    throw new Error(`the server answered ${url} with HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  return response;
}
