// Docker-style resource flags, parsed and checked before anything starts.
import { HyperlabError } from "../errors.ts";

/** Resource limits of a container, as cgroup v2 values. */
export interface Limits {
  /** memory.max in bytes */
  memoryBytes?: number;
  /** cpu.max quota in microseconds per `cpuPeriodUs` */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  /** pids.max */
  pidsLimit?: number;
  /** cpu.weight (1-10000; Docker's --cpu-shares 1024 is weight 100) */
  cpuWeight?: number;
}

/** Docker's CPU shares (2-262144, default 1024) as cgroup v2 cpu.weight (1-10000), the conversion runc and crun use. */
export function cpuSharesToWeight(shares: number): number {
  if (!Number.isInteger(shares) || shares < 2 || shares > 262144) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid CPU shares ${shares}: use a whole number from 2 to 262144 (Docker's default is 1024)`);
  }
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
/** Smallest memory limit accepted (Docker's minimum is 6 MiB too). */
const MIN_MEMORY = 6 * 1024 ** 2;
export const CPU_PERIOD_US = 100_000;

/** Parses `--memory` (`64m`, `1g`, `524288k`, bytes); throws INVALID_ARGUMENT naming the value. */
export function parseMemory(value: string): number {
  const m = /^(\d+(?:\.\d+)?)([bkmg]?)$/i.exec(value.trim());
  if (!m) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `invalid --memory '${value}': use a positive number with an optional unit b, k, m or g (for example 64m)`,
    );
  }
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (bytes < MIN_MEMORY) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid --memory '${value}': the minimum is 6m (a container needs room to start)`);
  }
  return bytes;
}

/** Parses `--cpus` (`0.5` = half a CPU) into a cpu.max quota; throws INVALID_ARGUMENT. */
export function parseCpus(value: string): { cpuQuotaUs: number; cpuPeriodUs: number } {
  const n = Number(value);
  if (!/^\d*\.?\d+$/.test(value.trim()) || !Number.isFinite(n) || n <= 0) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid --cpus '${value}': use a positive number such as 0.5 (half of the guest's one CPU)`);
  }
  if (n > 1) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid --cpus '${value}': the guest has 1 CPU, so at most 1`);
  }
  return { cpuQuotaUs: Math.max(1000, Math.round(n * CPU_PERIOD_US)), cpuPeriodUs: CPU_PERIOD_US };
}

/** Parses `--pids-limit` (a positive whole number); throws INVALID_ARGUMENT. */
export function parsePidsLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid --pids-limit '${value}': use a whole number of at least 1`);
  }
  return n;
}
