// Instant start: the default guest saved right after it booted, so a new
// machine restores it instead of booting. It is built on first use (a cold
// boot, then a save), kept decoded in memory for every later restore in the
// process, and handed to a store (a folder in Node) so later processes skip
// the build too. Its key covers everything the saved RAM depends on, so a
// changed image or option builds a new one.
import { HyperlabError } from "../errors.ts";
import { AgentClient } from "../guest/agent.ts";
import type { GuestImage } from "../hardware/guest-image.ts";
import { DEFAULT_CMDLINE, Machine, defaultMemoryMiB } from "../hardware/machine.ts";
import { decodeSnapshot } from "./delta-snapshot.ts";
import {
  type Compression,
  SNAPSHOT_FORMAT,
  type Snapshot,
  type SnapshotCodec,
  captureSnapshot,
  encodeSnapshot,
  imageDigest,
  webCodec,
} from "./snapshot.ts";

/**
 * Kernel arguments of the guest a boot snapshot is taken of: the kernel
 * zeroes memory as it frees it, so pages the boot used and released (the
 * unpacked initramfs archive above all) are all-zero and not saved.
 */
export const BOOT_SNAPSHOT_CMDLINE = "init_on_free=1";

/** Changes whenever the way a boot snapshot is prepared changes, so cached ones are rebuilt. */
export const BOOT_SNAPSHOT_RECIPE = 2;

/** Where encoded boot snapshots persist between processes. */
export interface SnapshotStore {
  /** the bytes stored under `key`, or undefined when there are none */
  read(key: string): Promise<Uint8Array | undefined>;
  /**
   * Stores `bytes` under `key` so that a concurrent reader sees either nothing
   * or all of it. Unless `replace`, the first writer wins: false when another
   * process stored one under `key` first (read it and use that one, so that
   * every process takes its deltas against the same base).
   */
  write(key: string, bytes: Uint8Array, opts?: { replace?: boolean }): Promise<boolean>;
  /** how it stores the payload: "none" restores fastest, "deflate-raw" takes a third of the space */
  readonly compression: Compression;
  /** where it keeps snapshots, for messages */
  readonly where: string;
}

/** What a boot snapshot is made from. */
export interface BootSnapshotOptions {
  image: GuestImage;
  wasm: WebAssembly.Module | Promise<WebAssembly.Module>;
  /** guest RAM in MiB (default: what a Machine gets by default) */
  memoryMiB?: number;
  /** persists snapshots between processes; without one, each process builds its own */
  store?: SnapshotStore;
  codec?: SnapshotCodec;
  /** anything else the saved state depends on (e.g. the v86 version), folded into the key */
  keyExtra?: string;
  /** limit for the cold boot and each step of preparing it (default 60 s) */
  timeoutMs?: number;
}

/**
 * The console shell's prompt (PS1 '\u@\h:\w\$ ' in the guest's /etc/profile),
 * then the cursor position query busybox's line editor sends after it.
 */
const PROMPT = /[#$] (?:\x1b\[6n)?$/;

const decoded = new Map<string, Promise<Snapshot>>();
const keys = new WeakMap<Snapshot, string>();

/** The key a boot snapshot is stored under: the image, the options and the recipe it was made with. */
export async function bootSnapshotKey(opts: Pick<BootSnapshotOptions, "image" | "memoryMiB" | "keyExtra">): Promise<string> {
  const memoryMiB = opts.memoryMiB ?? defaultMemoryMiB(opts.image);
  const recipe = [
    `recipe ${BOOT_SNAPSHOT_RECIPE}`,
    `format ${SNAPSHOT_FORMAT}`,
    `image ${await imageDigest(opts.image)}`,
    `memory ${memoryMiB}`,
    // v86's saved state holds the machine's devices: one saved with another card does not restore.
    `nic virtio-net`,
    `cmdline ${DEFAULT_CMDLINE} ${BOOT_SNAPSHOT_CMDLINE}`,
    opts.keyExtra ?? "",
  ].join("\n");
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(recipe)));
  const short = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  // A profile's snapshots are a family of their own (see fileSnapshotStore: a new one replaces only its family's older ones).
  return `boot-${opts.image.profile === undefined ? "" : `${opts.image.profile}-`}${opts.image.id}-${memoryMiB}m-${short}`;
}

/**
 * The boot snapshot for these options, decoded and ready to restore (many
 * times: restores only read it). The first call in a process reads it from
 * the store or, when the store has none (or a damaged or outdated one),
 * builds it with a cold boot and stores it.
 */
export async function bootSnapshot(opts: BootSnapshotOptions): Promise<Snapshot> {
  const key = await bootSnapshotKey(opts);
  let snapshot = decoded.get(key);
  if (!snapshot) {
    snapshot = loadOrBuild(key, opts).then((s) => (keys.set(s, key), s));
    decoded.set(key, snapshot);
    snapshot.catch(() => decoded.delete(key));
  }
  return snapshot;
}

/** The key a boot snapshot returned by bootSnapshot() is stored under (delta snapshots name their base by it). */
export function bootSnapshotKeyOf(snapshot: Snapshot): string | undefined {
  return keys.get(snapshot);
}

/** Forgets the decoded boot snapshots this process holds (the store keeps its copies). */
export function dropBootSnapshots(): void {
  decoded.clear();
}

async function loadOrBuild(key: string, opts: BootSnapshotOptions): Promise<Snapshot> {
  const codec = opts.codec ?? webCodec;
  const memoryMiB = opts.memoryMiB ?? defaultMemoryMiB(opts.image);
  const stored = await opts.store?.read(key);
  if (stored) {
    try {
      return await decodeSnapshot(stored, { image: { id: opts.image.id, sha256: await imageDigest(opts.image) }, memoryMiB, firmware: "direct" }, { codec });
    } catch (err) {
      // A damaged or outdated cache entry is rebuilt, not reported: it is only a cache.
      if (!(err instanceof HyperlabError) || (err.code !== "SNAPSHOT_CORRUPT" && err.code !== "SNAPSHOT_MISMATCH")) throw err;
    }
  }
  const snapshot = await buildBootSnapshot({ ...opts, memoryMiB });
  if (!opts.store) return snapshot;
  const bytes = await encodeSnapshot(snapshot, { compression: opts.store.compression, codec });
  // A damaged or outdated entry read above is replaced; otherwise one another process stored meanwhile
  // (test files run in parallel, a daemon beside a CLI) wins, since boot snapshots differ from build to
  // build and a delta snapshot names its base: every process must use the same one.
  if (await opts.store.write(key, bytes, { replace: stored !== undefined })) return snapshot;
  const theirs = await opts.store.read(key);
  if (theirs) {
    try {
      return await decodeSnapshot(theirs, { image: { id: opts.image.id, sha256: await imageDigest(opts.image) }, memoryMiB, firmware: "direct" }, { codec });
    } catch (err) {
      if (!(err instanceof HyperlabError) || (err.code !== "SNAPSHOT_CORRUPT" && err.code !== "SNAPSHOT_MISMATCH")) throw err;
    }
  }
  await opts.store.write(key, bytes, { replace: true });
  return snapshot;
}

/**
 * Runs a profile's `ready` command (manifest.json) in the guest until it
 * exits 0, so a profile with daemons is saved once they serve; a profile
 * without one (and the default guest) is ready once its agent answers.
 */
async function waitUntilReady(agent: AgentClient, image: GuestImage): Promise<void> {
  const ready = image.profile === undefined ? null : (image.manifest.profiles?.[image.profile]?.ready ?? null);
  if (!ready) return;
  const deadline = performance.now() + ready.timeoutMs;
  let last = "";
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new HyperlabError(
        "GUEST_BOOT_FAILED",
        `preparing the ${image.profile} profile's boot snapshot: ${ready.what} not ready after ${ready.timeoutMs} ms ('${ready.argv.join(" ")}' last said: ${last.trim() || "nothing"})`,
      );
    }
    const r = await agent.exec(ready.argv, { timeoutMs: left });
    if (r.exitCode === 0) return;
    last = r.stderr || r.stdout;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * How long a profile's cold boot may take to bring its agent up when the
 * caller names no limit: its boot steps (unpacking its payload, podman's
 * image pull) run before the agent starts, which on a busy 2-core host took
 * over a minute for the podman profile (20 s on a quiet one).
 */
export const PROFILE_BOOT_TIMEOUT_MS = 300_000;

/**
 * Boots the guest (the default one or a profile) cold with BOOT_SNAPSHOT_CMDLINE, waits until its
 * agent answers and its console shows a prompt, drops the guest's page cache
 * (clean pages the restored guest can read again), and saves it paused.
 */
export async function buildBootSnapshot(opts: BootSnapshotOptions): Promise<Snapshot> {
  const timeoutMs = opts.timeoutMs ?? (opts.image.profile === undefined ? 60_000 : PROFILE_BOOT_TIMEOUT_MS);
  const machine = new Machine({ image: opts.image, wasm: opts.wasm, memoryMiB: opts.memoryMiB, cmdline: BOOT_SNAPSHOT_CMDLINE });
  try {
    await machine.boot({ timeoutMs });
    const agent = await AgentClient.connect(machine, { timeoutMs });
    await machine.console.waitFor(PROMPT, { timeoutMs, what: "the console shell's prompt", from: 0 });
    await waitUntilReady(agent, opts.image);
    const drop = await agent.exec(["/bin/sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"], { timeoutMs });
    if (drop.exitCode !== 0) {
      throw new HyperlabError("GUEST_BOOT_FAILED", `preparing the boot snapshot failed: dropping the guest's caches exited with ${drop.exitCode}: ${drop.stderr.trim()}`);
    }
    const info = agent.agent;
    agent.close();
    await machine.pause();
    return await captureSnapshot(machine, { image: opts.image, agent: info });
  } finally {
    await machine.stop();
  }
}
