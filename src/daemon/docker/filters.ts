// Docker's `filters` query parameter, which every list and prune endpoint takes.
import { HyperlabError } from "../../errors.ts";

/**
 * Reads `filters`: a JSON map of value lists (or of value → true maps, from
 * older clients). With `known`, a filter not among them is dockerd's
 * "invalid filter" 400.
 */
export function parseFilters(raw: string | null, known?: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid filter: ${raw} is not JSON`);
  }
  if (!parsed || typeof parsed !== "object") throw new HyperlabError("INVALID_ARGUMENT", `invalid filter: ${raw}`);
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (known && !known.includes(k)) throw new HyperlabError("INVALID_ARGUMENT", `invalid filter '${k}'`);
    out.set(k, Array.isArray(v) ? v.map(String) : Object.keys(v as object));
  }
  return out;
}
