// Where the daemon listens and how to tell a live one from a stale socket:
// what the daemon and its clients agree on before any request.
import { existsSync, unlinkSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HyperlabError } from "../errors.ts";

/** API version, the first path segment of every /v1 route. */
export const API_VERSION = "v1";

/** Where the daemon listens unless told otherwise ($HYPERLAB_SOCKET, else a per-user socket in $XDG_RUNTIME_DIR or the temp folder). */
export function defaultSocketPath(): string {
  return process.env.HYPERLAB_SOCKET ?? join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `hyperlab-${process.getuid?.() ?? 0}.sock`);
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
  if (!existsSync(socketPath)) return;
  if (await isAlive(socketPath)) throw new HyperlabError("INVALID_ARGUMENT", `a hyperlab daemon is already listening on ${socketPath}`);
  unlinkSync(socketPath);
}
