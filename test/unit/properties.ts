// Shared by the property tests (fast-check) of hyperlab's parsers of hostile
// input: how many runs, the per-run and per-property time limits that make a
// hang fail, the one outcome every parser must have (a value or a coded
// HyperlabError), and mutations of valid inputs (flipped bytes, cuts,
// insertions, duplicated runs, huge numbers), which reach far deeper into a
// parser than random bytes do.
import { appendFileSync } from "node:fs";
import fc from "fast-check";
import { expect } from "vitest";
import { concatBytes } from "../../src/bytes.ts";
import { HyperlabError } from "../../src/errors.ts";

/**
 * Runs per property: enough to find the shallow crashes, few enough that all
 * properties take seconds. HYPERLAB_PROPERTY_RUNS=5000 searches deeper (by hand, not in CI).
 */
export const RUNS = Number(process.env.HYPERLAB_PROPERTY_RUNS) || 300;

/** Time one run may take before it counts as a hang (async code only: a synchronous loop cannot be interrupted). */
export const RUN_TIMEOUT_MS = 2_000;

/**
 * fast-check's parameters for a property: its runs, a per-run timeout (a run
 * that does not settle fails), and a time limit for the whole property that
 * fails it when reached (so a hang never passes as "fewer runs").
 */
export function params(numRuns = RUNS): fc.Parameters<unknown> {
  const limitMs = Math.max(20_000, numRuns * 50);
  const p = { numRuns, plugins: [fc.timeout(RUN_TIMEOUT_MS), fc.interruptAfterTimeLimit(limitMs, { failOnInterrupt: true })] } as fc.Parameters<unknown>;
  const report = process.env.HYPERLAB_RELIABILITY_REPORT;
  if (!report) return p;
  // `npm run bench -- reliability` counts the inputs each property tried (docs/reliability.md); failing stays fast-check's own.
  const record = (d: fc.RunDetails<unknown>) => {
    const { testPath, currentTestName } = expect.getState();
    appendFileSync(report, JSON.stringify({ file: testPath, test: currentTestName, runs: d.numRuns, failed: d.failed }) + "\n");
    if (d.failed) throw new Error(fc.defaultReportMessage(d) ?? "property failed", { cause: d.errorInstance });
  };
  return { ...p, reporter: record } as fc.Parameters<unknown>;
}

/** What a hostile input did: it was taken (`value`), or refused with a coded error. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: HyperlabError };

/**
 * Runs `fn` on one input and fails unless it returns or throws a
 * HyperlabError with a code (a TypeError, a RangeError or a plain Error is a
 * crash the input caused). Synchronous work that takes longer than
 * `RUN_TIMEOUT_MS` fails too: a timer cannot interrupt it, so it is measured.
 */
export async function coded<T>(fn: () => T | Promise<T>): Promise<Outcome<Awaited<T>>> {
  const t0 = performance.now();
  let outcome: Outcome<Awaited<T>>;
  try {
    outcome = { ok: true, value: await fn() };
  } catch (err) {
    if (!(err instanceof HyperlabError)) throw new Error(`not a coded error: ${(err as Error)?.stack ?? String(err)}`);
    expect(err.code).toMatch(/^[A-Z_]+$/);
    expect(err.message.length).toBeGreaterThan(0);
    outcome = { ok: false, error: err };
  }
  const ms = performance.now() - t0;
  if (ms > RUN_TIMEOUT_MS) throw new Error(`one input took ${Math.round(ms)} ms (a hang or a blow-up)`);
  return outcome;
}

/** Numbers that break careless arithmetic: limits of each width, negatives, NaN's neighbours. */
export const hugeNumbers = fc.constantFrom(
  0,
  -1,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  2 ** 32,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  -(2 ** 31),
  1e308,
  1.5,
);

/** One change to a byte string. */
type ByteEdit =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "cut"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "duplicate"; at: number; length: number }
  | { kind: "u32"; at: number; value: number }
  | { kind: "remove"; at: number; length: number };

const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("duplicate" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("u32" as const), at: fc.nat(), value: hugeNumbers.map((n) => n >>> 0) }),
  fc.record({ kind: fc.constant("remove" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
);

function applyEdit(bytes: Uint8Array, e: ByteEdit): Uint8Array {
  if (bytes.length === 0) return e.kind === "insert" ? e.bytes : bytes;
  const at = e.at % bytes.length;
  switch (e.kind) {
    case "flip": {
      const out = bytes.slice();
      out[at]! ^= e.xor;
      return out;
    }
    case "cut":
      return bytes.slice(0, at);
    case "insert":
      return concat(bytes.subarray(0, at), e.bytes, bytes.subarray(at));
    case "duplicate":
      return concat(bytes.subarray(0, at + e.length), bytes.subarray(at, at + e.length), bytes.subarray(at + e.length));
    case "remove":
      return concat(bytes.subarray(0, at), bytes.subarray(at + e.length));
    case "u32": {
      const out = bytes.slice();
      if (at + 4 <= out.length) new DataView(out.buffer).setUint32(at, e.value, true);
      return out;
    }
  }
}

const concat = (...parts: Uint8Array[]): Uint8Array => concatBytes(parts);

/** `valid` with one to four edits (a mutated valid input). */
export function mutatedBytes(valid: Uint8Array, maxEdits = 4): fc.Arbitrary<Uint8Array> {
  return fc.array(byteEdit, { minLength: 1, maxLength: maxEdits }).map((edits) => edits.reduce(applyEdit, valid));
}

/** One change to a text, by lines and by characters. */
type TextEdit =
  | { kind: "dropLine" | "dupLine"; at: number }
  | { kind: "insertLine"; at: number; line: string }
  | { kind: "insertText"; at: number; text: string }
  | { kind: "cut"; at: number }
  | { kind: "swapLines"; at: number; to: number };

/** `text` with one to four edits; `pieces` are fragments worth inserting (keywords, delimiters of the format). */
export function mutatedText(text: string, pieces: readonly string[], maxEdits = 4): fc.Arbitrary<string> {
  const piece = fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 8 }));
  const edit: fc.Arbitrary<TextEdit> = fc.oneof(
    fc.record({ kind: fc.constantFrom("dropLine" as const, "dupLine" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("insertLine" as const), at: fc.nat(), line: piece }),
    fc.record({ kind: fc.constant("insertText" as const), at: fc.nat(), text: piece }),
    fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("swapLines" as const), at: fc.nat(), to: fc.nat() }),
  );
  return fc.array(edit, { minLength: 1, maxLength: maxEdits }).map((edits) =>
    edits.reduce((t, e) => {
      const lines = t.split("\n");
      const line = e.at % lines.length;
      switch (e.kind) {
        case "dropLine":
          lines.splice(line, 1);
          return lines.join("\n");
        case "dupLine":
          lines.splice(line, 0, lines[line]!);
          return lines.join("\n");
        case "insertLine":
          lines.splice(line, 0, e.line);
          return lines.join("\n");
        case "swapLines": {
          const to = e.to % lines.length;
          [lines[line], lines[to]] = [lines[to]!, lines[line]!];
          return lines.join("\n");
        }
        case "insertText": {
          const at = e.at % (t.length + 1);
          return t.slice(0, at) + e.text + t.slice(at);
        }
        case "cut":
          return t.slice(0, e.at % (t.length + 1));
      }
    }, text),
  );
}

/** JSON values of any shape, nested a few levels, with the numbers and strings parsers trip on. */
export const anyJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    hugeNumbers,
    fc.double(),
    fc.string({ maxLength: 16 }),
    fc.constantFrom("", "0", "-1", "true", "null", "../..", "/", ":", "a:b:c:d", "__proto__", "constructor", "toString"),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "toString")), tie("value"), { maxKeys: 4 }),
  ),
})).value;

/**
 * `valid` (a JSON object) with a few fields replaced by values of any type,
 * removed, or nested objects replaced, at any depth: what "wrong types" means
 * to a parser that trusts a body's shape.
 */
export function mutatedJson(valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const paths = jsonPaths(valid);
  const change = fc.record({ path: fc.constantFrom(...paths), value: fc.oneof(anyJson, fc.constant(undefined)) });
  return fc.array(change, { minLength: 1, maxLength: 4 }).map((changes) => {
    const out = structuredClone(valid) as Record<string, unknown>;
    for (const { path, value } of changes) {
      let at: Record<string, unknown> = out;
      for (const key of path.slice(0, -1)) {
        const next = at[key];
        if (typeof next !== "object" || next === null) break;
        at = next as Record<string, unknown>;
      }
      const last = path[path.length - 1]!;
      // An earlier change may have put an array where an object was: only its indices are fields.
      if (Array.isArray(at) && !/^\d+$/.test(last)) continue;
      if (value === undefined) delete at[last];
      else at[last] = value;
    }
    return out;
  });
}

function jsonPaths(v: unknown, prefix: string[] = []): string[][] {
  if (typeof v !== "object" || v === null) return [];
  const out: string[][] = [];
  for (const [k, child] of Object.entries(v)) {
    out.push([...prefix, k], ...jsonPaths(child, [...prefix, k]));
  }
  return out;
}
