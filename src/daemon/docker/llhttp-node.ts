// llhttp's WebAssembly in Node: the bytes undici ships (the package is a
// pinned dependency; its llhttp-wasm.js exports them as a Buffer), compiled
// once per process. The page gets the same bytes as an asset of the site.
import { createRequire } from "node:module";

let compiled: Promise<WebAssembly.Module> | undefined;

/** llhttp compiled to WebAssembly (undici's build), once per process. */
export function nodeLlhttpModule(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const bytes = createRequire(import.meta.url)("undici/lib/llhttp/llhttp-wasm.js") as Uint8Array;
    return WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  })();
  return compiled;
}
