// Text in and out of the stack view: figures as a visitor reads them, and
// the Run form's command line as the runtime takes it.
import type { Limits } from "../../containers/limits.ts";

/** Bytes in MiB, one decimal below 10. */
export function mib(bytes: number): string {
  const m = bytes / 2 ** 20;
  return `${m < 10 ? m.toFixed(1) : m.toFixed(0)} MiB`;
}

/** Milliseconds in seconds, two decimals below 10 s. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** A count with k or M for thousands and millions. */
export function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

/** A container's limits in words, as cgroup v2 enforces them. */
export function limitsText(l: Limits): string {
  const parts: string[] = [];
  if (l.memoryBytes) parts.push(`memory ${mib(l.memoryBytes)}`);
  if (l.cpuQuotaUs) parts.push(`CPU ${(l.cpuQuotaUs / (l.cpuPeriodUs ?? 100_000)).toFixed(2).replace(/\.?0+$/, "")}`);
  if (l.pidsLimit) parts.push(`pids ${l.pidsLimit}`);
  return parts.length ? parts.join(" · ") : "none (it may use the whole VM)";
}

/** Splits a command line as a shell would for plain words and quoted strings (no variables, no globbing). */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) out.push(m[1]?.replace(/\\(.)/g, "$1") ?? m[2] ?? m[3]!);
  return out;
}
