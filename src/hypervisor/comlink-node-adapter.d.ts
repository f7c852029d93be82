// Types for Comlink's Node adapter as an ES module (the package ships them
// only beside its UMD build).
declare module "comlink/dist/esm/node-adapter.mjs" {
  import type { Endpoint } from "comlink";
  /** A worker_threads Worker or MessagePort. */
  export interface NodeEndpoint {
    postMessage(message: unknown, transfer?: readonly unknown[]): void;
    on(type: string, listener: (value: unknown) => void): void;
    off(type: string, listener: (value: unknown) => void): void;
    start?: () => void;
  }
  /** Adapts a Node endpoint to the Endpoint shape Comlink talks to. */
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
