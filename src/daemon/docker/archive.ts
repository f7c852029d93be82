// `docker cp` through the Docker Engine API: HEAD /archive (a path's stat in
// the X-Docker-Container-Path-Stat header), GET /archive (the path as a tar)
// and PUT /archive (a tar extracted into a folder), on running and stopped
// containers alike. The tars are made and unpacked by the guest's busybox tar
// next to the files (src/containers/archive.ts); the bytes pass through.
import { bytesToBase64 } from "../../bytes.ts";
import type { PathStat } from "../../containers/archive.ts";
import { HyperlabError } from "../../errors.ts";
import { type DockerRoute, type RouteCall, dockerHeaders, flag, sendEmpty } from "./api.ts";
import { containerOf } from "./containers.ts";

const ID = "([^/]+)";

/** The stat as Docker's header carries it: base64 of its JSON (UTF-8). */
export function statHeader(stat: PathStat): string {
  return bytesToBase64(new TextEncoder().encode(JSON.stringify(stat)));
}

/** The `path` query parameter, which every archive request needs. */
function pathOf(call: RouteCall): string {
  const path = call.query.get("path");
  if (!path) throw new HyperlabError("INVALID_ARGUMENT", "bad parameter: path cannot be empty: name a file or folder in the container (?path=)");
  return path;
}

/** `HEAD /containers/{id}/archive?path=`: 200 with the stat header; 404 when there is no such path. */
async function stat(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const ref = call.params[0]!;
  containerOf(engine, ref);
  const s = await engine.statPath(ref, pathOf(call));
  call.res.head(200, { ...dockerHeaders(), "X-Docker-Container-Path-Stat": statHeader(s) });
  call.res.end();
}

/** `GET /containers/{id}/archive?path=`: the path as a tar (a folder with its contents), its stat in the header. */
async function get(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const ref = call.params[0]!;
  containerOf(engine, ref);
  const archive = await engine.readArchive(ref, pathOf(call));
  call.res.head(200, { ...dockerHeaders(), "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": statHeader(archive.stat) });
  archive.onData((chunk) => call.res.write(chunk));
  // A tar that fails part way cannot be reported any more: the body ends short, which tar readers notice.
  await archive.done.catch(() => {});
  call.res.end();
}

/** `PUT /containers/{id}/archive?path=&copyUIDGID=`: extracts the body (a tar) into the folder `path`. */
async function put(call: RouteCall): Promise<void> {
  const engine = call.api.engine();
  const ref = call.params[0]!;
  containerOf(engine, ref);
  await engine.writeArchive(ref, pathOf(call), call.req.stream(), { copyOwner: flag(call.query, "copyUIDGID") });
  sendEmpty(call.res, 200);
}

/** The archive routes. */
export const archiveRoutes: DockerRoute[] = [
  ["HEAD", new RegExp(`^/containers/${ID}/archive$`), stat],
  ["GET", new RegExp(`^/containers/${ID}/archive$`), get],
  ["PUT", new RegExp(`^/containers/${ID}/archive$`), put],
];
