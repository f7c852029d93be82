// Tools a guest loads on first use: the host's end. The guest image has a
// link by each tool's name (/usr/bin/docker) to the agent, which, run under
// that name, connects to TOOLS_SOCKET, sends the name on one line and waits;
// the host writes the program into the guest (TOOLS_DIR/NAME, executable
// only once complete) and answers "ok", or "error MESSAGE" (docs/agent-protocol.md,
// "Tools loaded on first use"). Works on anything that can listen in a guest
// and write its files: an AgentClient, or a hypervisor VM.
import { HyperlabError } from "../errors.ts";
import type { GuestListener, GuestStream, ListenOptions } from "./agent.ts";

/** Where a guest's stubs ask for their tool. */
export const TOOLS_SOCKET = "/run/hyperlab/tools.sock";
/** Where tools are installed in the guest (the stub execs TOOLS_DIR/NAME). */
export const TOOLS_DIR = "/usr/libexec/hyperlab";
/** The longest request line a stub sends (a tool's name). */
const MAX_LINE = 64;

/** What serving tools needs of a guest. */
export interface ToolGuest {
  listen(path: string, onConnection: (stream: GuestStream) => void, opts?: Omit<ListenOptions, "grant">): Promise<GuestListener>;
  writeFile(path: string, data: string | Uint8Array, opts?: { mode?: number; append?: boolean }): Promise<void>;
}

/** What the host offers: the unpacked program of tool `name`, or an error naming what is wrong. */
export type ToolLoader = (name: string) => Promise<Uint8Array>;

/** Reads one line (the tool's name) from a stub's connection. */
function readLine(stream: GuestStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const decoder = new TextDecoder();
    stream.onData((d) => {
      text += decoder.decode(d, { stream: true });
      const nl = text.indexOf("\n");
      if (nl >= 0) resolve(text.slice(0, nl));
      else if (text.length > MAX_LINE) reject(new HyperlabError("INVALID_ARGUMENT", `a tool request is one line of at most ${MAX_LINE} bytes`));
    });
    stream.onEnd(() => reject(new HyperlabError("INVALID_ARGUMENT", "the tool request ended before its line")));
  });
}

/**
 * Serves the guest's tool stubs on TOOLS_SOCKET: each tool is written into
 * the guest once (concurrent first uses wait for the same install), from
 * `load`. Resolves with the listener once it listens. Legal while the guest runs.
 */
/**
 * Writes tool `name` (from `load`) into the guest at TOOLS_DIR/NAME and
 * resolves with that path. It becomes executable only once whole: a stub
 * that finds it executable may run it at once. Legal while the guest runs.
 */
export async function installGuestTool(guest: Pick<ToolGuest, "writeFile">, name: string, load: ToolLoader): Promise<string> {
  const data = await load(name);
  const path = `${TOOLS_DIR}/${name}`;
  await guest.writeFile(path, data, { mode: 0o600 });
  await guest.writeFile(path, new Uint8Array(0), { append: true, mode: 0o755 });
  return path;
}

export async function serveGuestTools(guest: ToolGuest, load: ToolLoader): Promise<GuestListener> {
  const installs = new Map<string, Promise<unknown>>();
  const install = (name: string): Promise<unknown> => {
    let done = installs.get(name);
    if (!done) {
      done = installGuestTool(guest, name, load);
      installs.set(name, done);
      done.catch(() => installs.delete(name));
    }
    return done;
  };
  const answer = (stream: GuestStream, line: string) => {
    stream.write(new TextEncoder().encode(`${line}\n`));
    stream.end();
  };
  return guest.listen(TOOLS_SOCKET, (stream) => {
    void (async () => {
      try {
        const name = (await readLine(stream)).trim();
        if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new HyperlabError("INVALID_ARGUMENT", `'${name}' is not a tool name`);
        await install(name);
        answer(stream, "ok");
      } catch (err) {
        answer(stream, `error ${String((err as Error)?.message ?? err).replace(/\n/g, " ")}`);
      }
    })();
  });
}
