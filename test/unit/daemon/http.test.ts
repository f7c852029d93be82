// The /v1 API's request bodies: a JSON body is read whole into memory, so it
// is bounded (MAX_V1_JSON_BODY) and refused as soon as it passes the bound.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { MAX_V1_JSON_BODY, body, rawBody } from "../../../src/daemon/http.ts";

/** A body of `chunks` chunks of 1 MiB, counting how many were read. */
function megabytes(chunks: number) {
  let read = 0;
  const stream = Readable.from(
    (function* () {
      for (let i = 0; i < chunks; i++) {
        read++;
        yield Buffer.alloc(1 << 20, 0x20);
      }
    })(),
  );
  return { stream, read: () => read };
}

describe("the /v1 API's request bodies", () => {
  it("refuses a JSON body past 10 MiB with INVALID_ARGUMENT, reading no further", async () => {
    const b = megabytes(1000);
    await expect(body(b.stream)).rejects.toMatchObject({ code: "INVALID_ARGUMENT", message: `request body is larger than ${MAX_V1_JSON_BODY} bytes` });
    expect(MAX_V1_JSON_BODY).toBe(10 * 1024 * 1024);
    expect(b.read()).toBeLessThanOrEqual(12);
  });

  it("takes a JSON body under the bound, and a raw body (a snapshot) past it", async () => {
    expect(await body(Readable.from([Buffer.from('{"a":1}')]))).toEqual({ a: 1 });
    expect((await rawBody(megabytes(11).stream)).length).toBe(11 << 20);
  });
});
