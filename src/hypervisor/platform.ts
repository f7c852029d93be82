// What differs between the hosts a hypervisor runs on: where guest images,
// v86 and boot snapshots come from, and how VM workers start. Node has a
// default for each; a browser page must pass its images and v86.
import { HyperlabError } from "../errors.ts";
import type { GuestImage } from "../hardware/guest-image.ts";
import { type VmWorker, spawnVmWorker } from "./rpc.ts";
import { type Snapshot, type SnapshotCodec, webCodec } from "./snapshot.ts";

/** What differs between hosts: where images, v86 and boot snapshots come from, how workers start. */
export interface Platform {
  /** the guest image named `ref` (Node: a folder of artifacts; default: the checkout's guest-images/dist), or its profile `profile` */
  loadImage(ref?: string, profile?: string): Promise<GuestImage>;
  /** v86's compiled WebAssembly (compiled once, shared with every worker) */
  wasm(): Promise<WebAssembly.Module>;
  /** a new VM worker, connected */
  spawnWorker(): Promise<VmWorker>;
  /** the boot snapshot of `image` with `memoryMiB` of RAM (undefined: no instant start, VMs boot cold); `timeoutMs` limits the cold boot that builds a missing one */
  bootSnapshot?: (image: GuestImage, memoryMiB: number, opts?: { timeoutMs?: number }) => Promise<Snapshot>;
  /** compression and checksums for snapshots (default: web streams and WebCrypto) */
  codec?: SnapshotCodec;
}

const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === "string";

/** The default platform: Node reads the checkout's artifacts and caches boot snapshots; browsers must pass loadImage and wasm. */
export function defaultPlatform(): Platform {
  const missing = (what: string) => () =>
    Promise.reject(new HyperlabError("INVALID_ARGUMENT", `in a browser the hypervisor needs platform.${what} (there is no default)`));
  if (!isNode) return { loadImage: missing("loadImage"), wasm: missing("wasm"), spawnWorker: spawnVmWorker, codec: webCodec };
  const node = import("../hardware/node.ts");
  const snapshots = import("./boot-snapshot-node.ts");
  // Node's zlib and crypto codec, loaded with the module: each call waits for it (a getter read
  // before the import settled would have fixed the slower web codec for good).
  const loaded = snapshots.then((s) => s.nodeCodec);
  const codec: SnapshotCodec = {
    compress: async (data, compression) => (await loaded).compress(data, compression),
    decompress: async (data, compression, size) => (await loaded).decompress(data, compression, size),
    sha256: async (data) => (await loaded).sha256(data),
  };
  return {
    loadImage: async (ref, profile) => (await node).loadNodeImage(ref, profile),
    wasm: async () => (await node).v86Wasm(),
    spawnWorker: spawnVmWorker,
    bootSnapshot: async (image, memoryMiB, opts) => (await snapshots).nodeBootSnapshot(image, { memoryMiB, timeoutMs: opts?.timeoutMs }),
    codec,
  };
}
