// A guest byte stream (GuestStream: a connection through the VM's agent) as
// a Node Duplex, for Node code that pipes it to a socket of the host (the
// published ports' relay). Node only.
import { Duplex } from "node:stream";
import type { GuestStream } from "../guest/agent.ts";

/**
 * A guest stream as a Node Duplex: bytes both ways with back-pressure (a
 * full window holds Node's writes; a full Node buffer pauses the stream, so
 * the agent holds the guest's peer), half-close both ways, an error closes it.
 */
export function duplexOf(stream: GuestStream): Duplex {
  let waiting: ((err?: Error | null) => void) | undefined;
  stream.onDrain(() => {
    const cb = waiting;
    waiting = undefined;
    cb?.();
  });
  const duplex = new Duplex({
    allowHalfOpen: true,
    read: () => stream.resume(),
    write: (chunk: Buffer, _encoding, cb) => {
      if (stream.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) cb();
      else waiting = cb;
    },
    final: (cb) => {
      stream.end();
      cb();
    },
    destroy: (err, cb) => {
      stream.close();
      cb(err);
    },
  });
  stream.onData((d) => {
    if (!duplex.push(d)) stream.pause();
  });
  stream.onEnd(() => duplex.push(null));
  stream.onClose((err) => {
    // A clean close comes after both ends, and Node then destroys the Duplex itself.
    if (err) duplex.destroy(err);
    else if (!duplex.destroyed && duplex.writableFinished && duplex.readableEnded) duplex.destroy();
  });
  return duplex;
}
