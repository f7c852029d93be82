// Node entry of a VM worker thread: our sources are TypeScript, and a worker
// thread does not inherit the parent's loader (nor does vitest transform
// worker files), so it registers tsx itself before loading the worker.
import { register } from "tsx/esm/api";

register();
await import("./vm-worker.ts");
