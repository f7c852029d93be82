// The JSON bodies of Docker's API as dockerd decodes them: each field hyperlab
// reads has a Go type, and a value of another JSON type is refused in
// dockerd's words before anything reads it, instead of crashing the code
// that trusted the body's shape (found by the property tests in
// test/unit/daemon/docker/fuzz-bodies.test.ts).
import { HyperlabError } from "../../errors.ts";

/**
 * The Go type of a field hyperlab reads from a request body, as dockerd
 * decodes them: a value of another JSON type is refused the way dockerd
 * refuses it (`json: cannot unmarshal number into Go struct field
 * Config.Env of type []string`), before anything reads it. null is every
 * field's zero value, as in Go.
 */
export type GoType = "string" | "bool" | "int64" | "[]string" | "strslice" | "map[string]string" | "object" | "[]object" | "[]int64";

/** How Go names a JSON value's type in its unmarshal errors (a number with its value). */
export function jsonKind(v: unknown): string {
  return Array.isArray(v) ? "array" : typeof v === "boolean" ? "bool" : typeof v === "object" ? "object" : typeof v === "number" ? `number ${v}` : typeof v;
}

/** A JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Whether `v` decodes into Go type `type` (null and absent always do). */
export function fits(v: unknown, type: GoType): boolean {
  if (v === null || v === undefined) return true;
  switch (type) {
    case "string":
      return typeof v === "string";
    case "bool":
      return typeof v === "boolean";
    case "int64":
      return Number.isSafeInteger(v);
    case "[]string":
      return Array.isArray(v) && [...v].every((s) => typeof s === "string");
    case "strslice":
      return typeof v === "string" || (Array.isArray(v) && [...v].every((s) => typeof s === "string"));
    case "map[string]string":
      return isObject(v) && Object.values(v).every((s) => typeof s === "string");
    case "object":
      return isObject(v);
    case "[]object":
      return Array.isArray(v) && [...v].every(isObject);
    case "[]int64":
      return Array.isArray(v) && [...v].every((n) => Number.isSafeInteger(n));
  }
}

/** Refuses (INVALID_ARGUMENT, dockerd's words) the first field of `value` in `table` whose JSON type its Go type does not take; `where` prefixes the field's name. */
export function checkTypes(value: Record<string, unknown>, table: ReadonlyArray<readonly [string, GoType]>, where: string): void {
  for (const [field, type] of table) {
    const v = value[field];
    if (!fits(v, type)) throw new HyperlabError("INVALID_ARGUMENT", `json: cannot unmarshal ${jsonKind(v)} into Go struct field ${where}${field} of type ${type}`, { field: `${where}${field}` });
  }
}
