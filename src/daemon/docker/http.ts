// The Docker Engine API's view of one HTTP exchange, without a server: a
// request, a response, and the raw two-way stream a hijacked connection
// becomes (attach, exec). The Node daemon adapts its http server to these
// (node.ts); the page adapts the bytes its guest's docker client sends.
// Nothing here needs Node.

/** One request to the Docker API. */
export interface DockerRequest {
  method: string;
  /** path and query, as sent (e.g. /v1.41/containers/json?all=1) */
  url: string;
  /** header names in lower case */
  headers: Record<string, string | undefined>;
  /** the whole body (empty when there is none); INVALID_ARGUMENT past the API's size limit */
  body(): Promise<Uint8Array>;
  /** the body as it arrives (a build context, an image archive) */
  stream(): AsyncIterable<Uint8Array>;
}

/** The raw connection after an upgrade (or a hijack): bytes both ways. */
export interface HijackedStream {
  write(chunk: Uint8Array): void;
  /** ends this side; the connection closes once the client's side has ended too */
  end(): void;
  onData(listener: (chunk: Uint8Array) => void): void;
  /** the client closed its writing side (CloseWrite: no more stdin) */
  onEnd(listener: () => void): void;
  /** the connection is gone */
  onClose(listener: () => void): void;
}

/** The answer to one request. */
export interface DockerResponse {
  /** sends the status line and headers; legal once, before any write */
  head(status: number, headers?: Record<string, string>): void;
  /** whether head() was called */
  readonly headSent: boolean;
  /** sends part of the body (after head) */
  write(chunk: Uint8Array | string): void;
  /** ends the body (and sends `chunk` first) */
  end(chunk?: Uint8Array | string): void;
  /** called once when the client goes away before the answer ended */
  onClose(listener: () => void): void;
  /**
   * Answers 101 Switching Protocols (when the client asked to upgrade) or
   * 200 with `headers`, then gives the raw connection. Legal instead of head().
   */
  hijack(headers: Record<string, string>): HijackedStream;
}

const encoder = new TextEncoder();

/** A string or bytes as bytes. */
export function bytesOf(chunk: Uint8Array | string): Uint8Array {
  return typeof chunk === "string" ? encoder.encode(chunk) : chunk;
}
