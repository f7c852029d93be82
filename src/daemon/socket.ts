// Where the daemon listens and how to tell a live one from a stale socket:
// what the daemon and its clients agree on before any request.
import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { HyperlabError } from "../errors.ts";

/** API version, the first path segment of every /v1 route. */
export const API_VERSION = "v1";

/** The folder of the default socket: one per user, only its owner may enter it. */
export function defaultSocketDir(): string {
  return join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `hyperlab-${process.getuid?.() ?? 0}`);
}

/** Where the daemon listens unless told otherwise ($HYPERLAB_SOCKET, else hyperlab.sock in defaultSocketDir()). */
export function defaultSocketPath(): string {
  return process.env.HYPERLAB_SOCKET ?? join(defaultSocketDir(), "hyperlab.sock");
}

/**
 * Makes sure only this user can enter the socket's folder: a user who can
 * reach the socket controls every VM and container of the daemon (as with
 * Docker's). The default folder is made (mode 0700) or repaired; another
 * folder that others can enter is refused.
 */
export function privateSocketDir(socketPath: string): void {
  const dir = dirname(socketPath);
  const uid = process.getuid?.();
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  const st = statSync(dir);
  if ((uid === undefined || st.uid === uid) && (st.mode & 0o077) === 0) return;
  if (dir === defaultSocketDir() && (uid === undefined || st.uid === uid)) {
    chmodSync(dir, 0o700);
    return;
  }
  const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
  throw new HyperlabError(
    "INVALID_ARGUMENT",
    `other users can enter the socket's folder ${dir} (mode ${mode}${uid !== undefined && st.uid !== uid ? `, owned by uid ${st.uid}` : ""}); whoever reaches the daemon's socket controls every VM and container in it. ` +
      `Use a folder only you can enter (mkdir -m 700 DIR) or leave --socket out for the default (${defaultSocketPath()}).`,
  );
}

/** True when a hyperlab daemon answers on the socket (within 2 s). */
export function isAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: `/${API_VERSION}/version`, method: "GET", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/**
 * Makes `socketPath` free to listen on: a socket left by a daemon that died
 * is removed (never trusted); one a live daemon answers on is an error.
 */
export async function claimSocket(socketPath: string): Promise<void> {
  privateSocketDir(socketPath);
  if (!existsSync(socketPath)) return;
  if (await isAlive(socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${socketPath}`);
  unlinkSync(socketPath);
}
