// What every route of the daemon shares: reading a request body, answering
// JSON or a stream of NDJSON, and the HTTP status of each error code.
import type { IncomingMessage, ServerResponse } from "node:http";
import { HyperlabError } from "../errors.ts";
import { guardStuckClient } from "./stuck-client.ts";

/** HTTP status for each error code the API returns (others: 500). */
const STATUS: Partial<Record<string, number>> = {
  INVALID_ARGUMENT: 400,
  IMAGE_NOT_FOUND: 404,
  CONTAINER_NOT_FOUND: 404,
  CONTAINER_EXISTS: 409,
  CONTAINER_INVALID_STATE: 409,
  VM_NOT_FOUND: 404,
  VM_INVALID_STATE: 409,
  NETWORK_NOT_FOUND: 404,
  NETWORK_EXISTS: 409,
  NETWORK_IN_USE: 409,
  VOLUME_NOT_FOUND: 404,
  VOLUME_IN_USE: 409,
  NOT_SUPPORTED: 400,
  RESOURCE_EXHAUSTED: 507,
  SNAPSHOT_CORRUPT: 400,
  SNAPSHOT_MISMATCH: 400,
};

/** The HTTP status an error with this code is answered with. */
export function statusOf(code: string): number {
  return STATUS[code] ?? 500;
}

/** Largest request body the API reads (a snapshot to restore is the biggest). */
export const MAX_BODY = 2 ** 31 - 1;

/** Largest JSON request body (create options, exec requests): read whole into memory, so bounded far below MAX_BODY. */
export const MAX_V1_JSON_BODY = 10 * 1024 * 1024;

/** One route: method, path pattern (after the version prefix) and handler. */
export type Route = [string, RegExp, (m: RegExpMatchArray, req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => Promise<void>];

/** The whole request body as bytes: INVALID_ARGUMENT past `limit` bytes (read no further). */
export async function rawBody(req: AsyncIterable<unknown>, limit: number = MAX_BODY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HyperlabError("INVALID_ARGUMENT", `request body is larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The request body as JSON ({} when empty); INVALID_ARGUMENT when it is not JSON or larger than MAX_V1_JSON_BODY. */
export async function body(req: AsyncIterable<unknown>): Promise<unknown> {
  const text = (await rawBody(req, MAX_V1_JSON_BODY)).toString("utf8");
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HyperlabError("INVALID_ARGUMENT", "request body is not valid JSON");
  }
}

/** Answers with `status` and `value` as JSON (no body when undefined). */
export function send(res: ServerResponse, status: number, value?: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(value === undefined ? "" : JSON.stringify(value));
}

/** Streams process output as NDJSON lines: {"stream":1|2,"data":base64}…, then {"exitCode":n}. */
export function streamOutput(res: ServerResponse, onOutput: (l: (stream: 1 | 2, data: Uint8Array) => void) => void, exited: Promise<number>): void {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  // A client that stops reading while the process prints is let go (stuck-client.ts).
  const stuck = guardStuckClient(res);
  onOutput((stream, data) => void (stuck() || res.write(JSON.stringify({ stream, data: Buffer.from(data).toString("base64") }) + "\n")));
  exited.then(
    (exitCode) => res.end(JSON.stringify({ exitCode }) + "\n"),
    (err: Error) => res.end(JSON.stringify({ error: exitError(err) }) + "\n"),
  );
}

/** A stream's closing error as its last message carries it: code, message and the exit code a CLI leaves with, if it has one. */
export function exitError(err: Error): { code: string; message: string; exitCode?: number } {
  const exitCode = (err as HyperlabError).detail?.exitCode;
  return { code: (err as HyperlabError).code ?? "ERROR", message: err.message, ...(typeof exitCode === "number" ? { exitCode } : {}) };
}
