import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base64ToBytes, bytesToBase64 } from "../../src/bytes.ts";

describe("base64 of bytes", () => {
  it("matches Node's encoding and decodes back, for any bytes, across its chunk size", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000, size: "max" }), (bytes) => {
        const text = bytesToBase64(bytes);
        expect(text).toBe(Buffer.from(bytes).toString("base64"));
        expect(base64ToBytes(text)).toEqual(bytes);
      }),
      { numRuns: 30 },
    );
  });

  it("encodes 16 MiB (a container's whole log) in one piece", () => {
    const bytes = new Uint8Array(16 << 20).map((_, i) => i * 7);
    expect(bytesToBase64(bytes)).toBe(Buffer.from(bytes).toString("base64"));
  });

  it("refuses text outside base64's alphabet", () => {
    expect(() => base64ToBytes("not base64!")).toThrow();
  });
});
