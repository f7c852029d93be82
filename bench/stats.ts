// Shared helpers for benchmarks: summaries and the result file every benchmark writes.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { createRequire } from "node:module";

/** min / median / max of a series. */
export interface Summary {
  min: number;
  median: number;
  max: number;
}

/** Summarizes `values` (rounded to 0.1). */
export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { min: r(s[0]!), median: r(median), max: r(s[s.length - 1]!) };
}

/** What the numbers were measured on. */
export function machineInfo() {
  const require = createRequire(import.meta.url);
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    v86: (require("v86/package.json") as { version: string }).version,
  };
}

/** Writes bench/results/<name>.json and returns its path. */
export function writeResult(name: string, result: Record<string, unknown>): string {
  const dir = new URL("./results/", import.meta.url);
  mkdirSync(dir, { recursive: true });
  const path = new URL(`${name}.json`, dir);
  writeFileSync(path, JSON.stringify({ name, ...result, machine: machineInfo() }, null, 2) + "\n");
  return path.pathname;
}
