// `npm run bench -- io`: data in and out of containers, one part per file
// (each part measures with a daemon or hypervisor of its own and returns its
// figures): host directories over 9p against tmpfs (io-files.ts), published
// ports (io-ports.ts). Writes bench/results/io.json, each part
// under its own key.
import { existsSync, readFileSync } from "node:fs";
import { writeResult } from "./stats.ts";

/** The parts: key in io.json → its measurement. */
const parts: Record<string, () => Promise<Record<string, unknown>>> = {
  files: async () => (await import("./io-files.ts")).measureFiles(),
  ports: async () => (await import("./io-ports.ts")).measurePorts(),
};

/** Runs every part (IO_PARTS=ports,… picks some) and writes bench/results/io.json. */
export async function run(): Promise<void> {
  const only = (process.env.IO_PARTS ?? "").split(",").filter(Boolean);
  // A run of some parts keeps the other parts' figures from the last run.
  const last = new URL("./results/io.json", import.meta.url);
  const kept = only.length && existsSync(last) ? (JSON.parse(readFileSync(last, "utf8")) as Record<string, unknown>) : {};
  const result: Record<string, unknown> = Object.fromEntries(Object.entries(kept).filter(([k]) => k in parts && !only.includes(k)));
  for (const [name, measure] of Object.entries(parts)) {
    if (only.length && !only.includes(name)) continue;
    result[name] = await measure();
    console.log(`io ${name}: ${JSON.stringify(result[name], null, 2)}`);
  }
  console.log(`wrote ${writeResult("io", result)}`);
}
