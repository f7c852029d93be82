// Interactive streams on the daemon's side: `run -i/-t` and `exec -i/-t`.
// An HTTP request upgrades the connection (as Docker's attach hijacks it),
// then both ends exchange small binary frames (stream-frames.ts): stdin,
// stdin's end and terminal size one way; stdout, stderr and the exit status
// the other.
import type { IncomingMessage } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { type ContainerEngine, exitOrStartError } from "../containers/engine.ts";
import { DEFAULT_VM } from "../containers/vm-containers.ts";
import type { HyperlabError } from "../errors.ts";
import { exitError } from "./http.ts";
import { Frame, STREAM_PROTOCOL, StreamFrameReader, encodeStreamFrame } from "./stream-frames.ts";
import { guardStuckClient } from "./stuck-client.ts";

/** What an interactive exec asks for (the `options` query parameter, JSON). */
interface ExecStreamOptions {
  argv: string[];
  env?: string[];
  tty?: { rows: number; cols: number };
  interactive?: boolean;
}

/** The process end the daemon wires to the connection. */
interface Streams {
  onOutput(l: (stream: 1 | 2, data: Uint8Array) => void): void;
  write(data: Uint8Array): void;
  closeStdin(): void;
  resize(rows: number, cols: number): Promise<void>;
  exited: Promise<number>;
}

/**
 * Serves an upgrade request on the daemon's server:
 * `POST /v1[/vms/{vm}]/containers/{id}/start` (attach to a created container,
 * stdin included) or `POST /v1[/vms/{vm}]/containers/{id}/exec?options={json}`;
 * `engineOf` gives the engine of the VM named (default: `default`).
 */
export async function handleStreamUpgrade(
  engineOf: (vm: string) => ContainerEngine,
  req: IncomingMessage,
  socket: Duplex,
  api: { version: string; statusOf(code: string): number },
): Promise<void> {
  const apiVersion = api.version;
  const refuse = (status: number, code: string, message: string) => {
    const body = JSON.stringify({ code, message });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  };
  try {
    if (String(req.headers.upgrade ?? "").toLowerCase() !== STREAM_PROTOCOL) {
      return refuse(400, "INVALID_ARGUMENT", `unknown upgrade '${req.headers.upgrade}': this daemon speaks ${STREAM_PROTOCOL}`);
    }
    const url = new URL(req.url ?? "/", "http://hyperlab");
    const m = url.pathname.match(new RegExp(`^/${apiVersion}(?:/vms/([^/]+))?/containers/([^/]+)/(start|exec)$`));
    if (!m || req.method !== "POST") return refuse(404, "NOT_FOUND", `no such stream route: ${req.method} ${url.pathname}`);
    const engine = engineOf(m[1] === undefined ? DEFAULT_VM : decodeURIComponent(m[1]));
    const ref = decodeURIComponent(m[2]!);
    let streams: Streams;
    if (m[3] === "start") {
      const a = await engine.start(ref, { attached: true });
      streams = { ...a, exited: exitOrStartError(a) };
    } else {
      let o: ExecStreamOptions;
      try {
        o = JSON.parse(url.searchParams.get("options") ?? "{}") as ExecStreamOptions;
      } catch {
        return refuse(400, "INVALID_ARGUMENT", "the options parameter is not valid JSON");
      }
      const p = await engine.exec(ref, o.argv ?? [], { env: o.env, tty: o.tty, interactive: o.interactive });
      streams = {
        onOutput: (l) => p.onOutput(l),
        write: (d) => p.write(d),
        closeStdin: () => p.closeStdin(),
        resize: (rows, cols) => p.resize(rows, cols),
        exited: p.exited.then((e) => (e.signal ? 128 + e.signal : e.exitCode)),
      };
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${STREAM_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`);
    const reader = new StreamFrameReader();
    socket.on("data", (chunk: Buffer) =>
      reader.push(chunk, (type, payload) => {
        if (type === Frame.STDIN) streams.write(new Uint8Array(payload));
        else if (type === Frame.STDIN_EOF) streams.closeStdin();
        else if (type === Frame.RESIZE && payload.length >= 4) void streams.resize(payload.readUInt16BE(0), payload.readUInt16BE(2)).catch(() => {});
      }),
    );
    socket.on("error", () => {});
    // A client that stops reading while the container prints is let go (stuck-client.ts).
    const stuck = guardStuckClient(socket);
    streams.onOutput((stream, data) => void (stuck() || socket.write(encodeStreamFrame(stream === 2 ? Frame.STDERR : Frame.STDOUT, data))));
    const end = (value: unknown) => socket.end(encodeStreamFrame(Frame.EXIT, Buffer.from(JSON.stringify(value))));
    streams.exited.then(
      (exitCode) => end({ exitCode }),
      (err: Error) => end({ error: { ...exitError(err), code: (err as HyperlabError).code ?? "RUNTIME_ERROR" } }),
    );
  } catch (err) {
    const e = err as HyperlabError;
    const code = e.code ?? "RUNTIME_ERROR";
    refuse(api.statusOf(code), code, e.message);
  }
}

