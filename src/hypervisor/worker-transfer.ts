// How values cross the worker boundary where Comlink's defaults fall short:
// our error class keeps its code, and large buffers move instead of being
// copied. The host (rpc.ts) and the worker (vm-worker.ts) both use it.
import * as Comlink from "comlink";
import { HyperlabError } from "../errors.ts";

/** Serialized form of a thrown HyperlabError (what crosses the worker boundary). */
interface WireError {
  hyperlab: true;
  code: HyperlabError["code"];
  message: string;
  detail?: Record<string, unknown>;
  stack?: string;
}

let installed = false;

/**
 * Makes thrown HyperlabErrors keep their `code` and `detail` across Comlink
 * (its own handler keeps only name, message and stack). Both sides call it;
 * other errors still take Comlink's path.
 */
export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  const original = Comlink.transferHandlers.get("throw") as Comlink.TransferHandler<{ value: unknown }, unknown>;
  const handler: Comlink.TransferHandler<{ value: unknown }, unknown> = {
    canHandle: (v): v is { value: unknown } => original.canHandle(v),
    serialize: (thrown) => {
      const e = thrown.value;
      if (e instanceof HyperlabError) {
        const wire: WireError = { hyperlab: true, code: e.code, message: e.message, detail: e.detail, stack: e.stack };
        return [wire, []];
      }
      return original.serialize(thrown);
    },
    deserialize: (s) => {
      const w = s as Partial<WireError>;
      if (w.hyperlab) {
        const err = new HyperlabError(w.code!, w.message!, w.detail);
        if (w.stack) err.stack = w.stack;
        throw err;
      }
      return original.deserialize(s);
    },
  };
  Comlink.transferHandlers.set("throw", handler as Comlink.TransferHandler<unknown, unknown>);
}

/** Marks a buffer to move (not copy) to the other side of a Comlink call. */
export function moved<T extends Uint8Array>(data: T): T {
  return Comlink.transfer(data, [data.buffer as ArrayBuffer]);
}
