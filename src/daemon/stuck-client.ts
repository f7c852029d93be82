// A client that stops reading a stream (an attach, exec's output, logs
// --follow, events) while the container keeps printing: Node queues what
// the client does not take, in the daemon's memory, without end (the soak
// measured 184 MiB in 40 s for one `docker attach` that never read). The
// engine keeps reading the guest regardless (other clients, the log), so the
// queue of that one connection is where the bound goes: once a client is
// more than MAX_UNSENT_BYTES behind and has not caught up for
// STUCK_CLIENT_MS, its connection is closed. dockerd instead blocks the
// container's output after about 1 MB (its BytesPipe), stalling the
// container and its other readers; here only the stuck client loses.

/** Output a client may leave unread before it may count as stuck. */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024;
/** How long a client may stay more than MAX_UNSENT_BYTES behind before its connection is closed. */
export const STUCK_CLIENT_MS = 10_000;

/** What the guard needs of a connection (a net.Socket or an http.ServerResponse). */
export interface GuardedStream {
  readonly writableLength: number;
  readonly destroyed: boolean;
  destroy(): unknown;
  on(event: "drain", listener: () => void): unknown;
}

/**
 * Returns a check to call after each write to `stream`: it closes the
 * connection (and returns true) once the client has been more than
 * `limits.bytes` behind for `limits.ms` without catching up. Legal for any
 * writable connection; the limits are for tests.
 */
export function guardStuckClient(stream: GuardedStream, limits = { bytes: MAX_UNSENT_BYTES, ms: STUCK_CLIENT_MS }): () => boolean {
  let behindSince: number | undefined;
  stream.on("drain", () => (behindSince = undefined));
  return () => {
    if (stream.destroyed) return true;
    if (stream.writableLength <= limits.bytes) {
      behindSince = undefined;
      return false;
    }
    const now = Date.now();
    behindSince ??= now;
    if (now - behindSince < limits.ms) return false;
    stream.destroy();
    return true;
  };
}
