// Bytes every VM worker reads (guest images, boot snapshots), copied once
// into SharedArrayBuffers where the host has them: posted to a worker, they
// are then shared with it instead of copied into it, once per VM.
import type { GuestImage } from "../hardware/guest-image.ts";
import type { Snapshot } from "./snapshot.ts";

const canShare = typeof SharedArrayBuffer === "function" && (!("crossOriginIsolated" in globalThis) || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false);

/**
 * Copies bytes into a SharedArrayBuffer (where the host has them), so that
 * every worker they are posted to shares them instead of receiving a copy.
 */
function share(bytes: Uint8Array): Uint8Array {
  if (!canShare) return bytes;
  const view = new Uint8Array(new SharedArrayBuffer(bytes.length));
  view.set(bytes);
  return view as unknown as Uint8Array;
}

/** True when `bytes` live in a SharedArrayBuffer: posting them to a worker shares them rather than copying them. */
export function isShared(bytes: Uint8Array): boolean {
  return typeof SharedArrayBuffer === "function" && bytes.buffer instanceof SharedArrayBuffer;
}

/** The image with its bytes in one SharedArrayBuffer (the machine copies them into guest RAM itself). */
export function shareImage(image: GuestImage): GuestImage {
  if (!canShare) return image;
  const parts = [image.loader, image.kernel, image.vmlinux, ...image.layers, image.bios, image.vgaBios];
  const shared = new SharedArrayBuffer(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  const put = (p: Uint8Array) => {
    const view = new Uint8Array(shared, at, p.length);
    view.set(p);
    at += p.length;
    return view as unknown as Uint8Array;
  };
  return {
    id: image.id,
    profile: image.profile,
    release: image.release,
    manifest: image.manifest,
    loader: put(image.loader),
    kernel: put(image.kernel),
    vmlinux: put(image.vmlinux),
    layers: image.layers.map(put),
    bios: put(image.bios),
    vgaBios: put(image.vgaBios),
  };
}

const sharedSnapshots = new WeakMap<Snapshot, Snapshot>();

/** A snapshot whose state workers share (copied once per snapshot). */
export function shareSnapshot(snapshot: Snapshot): Snapshot {
  let shared = sharedSnapshots.get(snapshot);
  if (!shared) {
    shared = { header: snapshot.header, state: share(snapshot.state) };
    sharedSnapshots.set(snapshot, shared);
  }
  return shared;
}
