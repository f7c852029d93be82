// Files in and out of a container as tar archives (`docker cp`): the guest's
// busybox tar does the work next to the files, so the host only passes bytes
// through (no tar parser on the host, nothing that needs Node). Every path is
// resolved inside the container's root, as dockerd does, so a symbolic link in
// the container's files cannot reach the VM's own: the work runs chrooted into
// the container's root filesystem (mounted from create until remove, so a
// stopped container's files are there too), in a private mount namespace
// where a tmpfs over its /proc holds the guest's static busybox.
import { concatBytes } from "../bytes.ts";
import { HyperlabError } from "../errors.ts";
import type { GuestProcess } from "../guest/agent.ts";

/** What `docker cp` and `HEAD /archive` tell about a path: Docker's X-Docker-Container-Path-Stat. */
export interface PathStat {
  /** the path's last element, as asked (`.` for `dir/.`, `/` for the root) */
  name: string;
  size: number;
  /** Go's os.FileMode bits (type bits high, permissions low), as Docker sends them */
  mode: number;
  /** RFC 3339 with the fraction the guest's clock gives */
  mtime: string;
  /** for a symbolic link: where it leads, resolved inside the container; else "" */
  linkTarget: string;
}

/** A path as Docker reads it: absolute in the container, cleaned, a trailing `/` or `/.` kept. */
export interface ContainerPath {
  abs: string;
  name: string;
}

/** Cleans `path` the way dockerd does (Go's filepath.Join("/", path), keeping a trailing `/` or `/.`). */
export function containerPath(path: string): ContainerPath {
  if (!path) throw new HyperlabError("INVALID_ARGUMENT", "path cannot be empty: name a file or folder in the container");
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  let abs = "/" + parts.join("/");
  const last = path.split("/").pop();
  if (last === "." && !abs.endsWith("/.")) abs += abs.endsWith("/") ? "." : "/.";
  else if (path.endsWith("/") && !abs.endsWith("/")) abs += "/";
  const trimmed = abs.replace(/\/+$/, "");
  const name = trimmed === "" ? "/" : trimmed.slice(trimmed.lastIndexOf("/") + 1);
  return { abs, name };
}

const S_IFMT = 0o170000;
/** Unix file types → Go's os.FileMode type bits. */
const GO_TYPE: Record<number, number> = {
  0o040000: 2 ** 31, // ModeDir
  0o120000: 2 ** 27, // ModeSymlink
  0o010000: 2 ** 25, // ModeNamedPipe
  0o140000: 2 ** 24, // ModeSocket
  0o020000: 2 ** 26 + 2 ** 21, // ModeDevice | ModeCharDevice
  0o060000: 2 ** 26, // ModeDevice
};

/** A Unix st_mode as Go's os.FileMode (what Docker's stat header carries). */
export function goFileMode(stMode: number): number {
  let mode = (GO_TYPE[stMode & S_IFMT] ?? 0) + (stMode & 0o777);
  if (stMode & 0o4000) mode += 2 ** 23; // ModeSetuid
  if (stMode & 0o2000) mode += 2 ** 22; // ModeSetgid
  if (stMode & 0o1000) mode += 2 ** 20; // ModeSticky
  return mode;
}

/** busybox stat's `%y` ("2026-12-07 09:48:59.696000000 +0000") as Go writes a time ("2026-12-07T09:48:59.696Z"). */
export function goTime(statTime: string): string {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d)$/.exec(statTime.trim());
  if (!m) return "0001-01-01T00:00:00Z";
  const fraction = (m[3] ?? "").replace(/0+$/, "");
  const zone = m[5] === "00" && m[6] === "00" ? "Z" : `${m[4]}${m[5]}:${m[6]}`;
  return `${m[1]}T${m[2]}${fraction ? `.${fraction}` : ""}${zone}`;
}

/** Docker's stat of `path` from the guest's two lines: `%f %s %y` and the link's target. */
function parseStat(name: string, statLine: string, linkLine: string): PathStat {
  const [hex, size, ...time] = statLine.trim().split(" ");
  return { name, size: Number(size), mode: goFileMode(parseInt(hex ?? "0", 16)), mtime: goTime(time.join(" ")), linkTarget: linkLine.trim() };
}

/**
 * Runs in the guest's root namespace: $1 the container's root, $2 the work
 * (INNER below), then its arguments. A private mount namespace gets a tmpfs
 * over the root's /proc with busybox bound into it; then the work runs
 * chrooted. Nothing of this is seen outside (the container's own /proc is
 * its procfs, in its own namespace).
 */
const OUTER = `R=$1; shift
[ -d "$R" ] || { echo "the container's files are not mounted in the guest" >&2; exit 6; }
[ -L "$R/proc" ] && { echo "the container's /proc is a symbolic link: hyperlab copies files only through a real /proc folder" >&2; exit 7; }
[ -d "$R/proc" ] || mkdir "$R/proc" || exit 7
exec unshare -m --propagation private /bin/sh -c '
R=$1; shift
mount -t tmpfs -o size=1m,mode=700 hyperlab-archive "$R/proc" && : > "$R/proc/busybox" && mount --bind /bin/busybox "$R/proc/busybox" || exit 8
exec chroot "$R" /proc/busybox sh "$@"
' - "$R" "$@"`;

/**
 * The work, chrooted in the container's root: $1 stat|get|put, $2 the path,
 * $3 its name, $4 (put) the owner to give extracted files ("" keeps root).
 * stat and get print `%f %s %y` and the link's target on two lines (get then
 * the tar); exit 2: no such path; 3: not a folder (put).
 */
const INNER = `B=/proc/busybox
op=$1 p=$2 name=$3 owner=$4
case $op in
stat|get)
  s=$($B stat -c '%f %s %y' "$p" 2>/dev/null) || exit 2
  l=""
  [ -L "$p" ] && l=$($B readlink -f "$p" 2>/dev/null)
  echo "$s"; echo "$l"
  [ "$op" = stat ] && exit 0
  if [ -d "$p" ] && [ ! -L "$p" ]; then
    [ "$name" = . ] && { cd "$p" && exec $B tar -cf - .; }
    real=$($B readlink -f "$p")
    if [ "\${real##*/}" = "$name" ]; then parent=\${real%/*}; exec $B tar -cf - -C "\${parent:-/}" -- "$name"; fi
    # The folder was reached through a link named otherwise: its entries take the name asked for.
    $B mkdir -p "/proc/x/$name" && $B mount --bind "$real" "/proc/x/$name" || exit 5
    exec $B tar -cf - -C /proc/x -- "$name"
  fi
  d=\${p%/*}; exec $B tar -cf - -C "\${d:-/}" -- "$name" ;;
put)
  [ -e "$p" ] || exit 2
  [ -d "$p" ] || exit 3
  [ -z "$owner" ] && exec $B tar -x -o -f - -C "$p"
  set -o pipefail
  $B tar -x -o -v -f - -C "$p" | while IFS= read -r f; do $B chown -h "$owner" "$p/$f"; done ;;
esac`;

/** What the archive functions need of the guest: a process started in its root namespace. */
export type ArchiveAgent = { spawn(argv: readonly string[], opts?: { stdin?: true; timeoutMs?: number }): GuestProcess };

function argv(root: string, op: "stat" | "get" | "put", p: ContainerPath, owner = ""): string[] {
  return ["/bin/sh", "-c", OUTER, "-", root, "-c", INNER, "-", op, p.abs, p.name, owner];
}

/** The error of a failed archive step, in dockerd's words where it has them. */
function failure(exitCode: number, stderr: string, p: ContainerPath, container: string, path: string): HyperlabError {
  if (exitCode === 2) return new HyperlabError("FILE_NOT_FOUND", `Could not find the file ${path} in container ${container}`);
  if (exitCode === 3) return new HyperlabError("INVALID_ARGUMENT", `extraction point is not a directory: ${p.abs} in container ${container} is not a folder`);
  const why = stderr.trim().replace(/^tar: /gm, "") || `exit status ${exitCode}`;
  return new HyperlabError("RUNTIME_ERROR", `could not copy ${p.abs} of container ${container}: ${why}`);
}

/** Collects a process's stderr as text. */
function stderrOf(proc: GuestProcess): () => string {
  const parts: string[] = [];
  const decoder = new TextDecoder();
  proc.onOutput((stream, data) => stream === 2 && parts.push(decoder.decode(data, { stream: true })));
  return () => parts.join("");
}

/** The stat of `path` in the container whose root is `root` (FILE_NOT_FOUND when there is none). */
export async function statPath(agent: ArchiveAgent, root: string, path: string, container: string): Promise<PathStat> {
  const p = containerPath(path);
  const proc = agent.spawn(argv(root, "stat", p));
  const out: Uint8Array[] = [];
  proc.onOutput((stream, data) => stream === 1 && out.push(data));
  const stderr = stderrOf(proc);
  const { exitCode } = await proc.exited;
  if (exitCode !== 0) throw failure(exitCode, stderr(), p, container, path);
  const [statLine = "", linkLine = ""] = new TextDecoder().decode(concatBytes(out)).split("\n");
  return parseStat(p.name, statLine, linkLine);
}

/** A tar of a path, streaming: its stat first, then its bytes. */
export interface ArchiveRead {
  stat: PathStat;
  /** the tar's bytes from the start (what came before the call is replayed) */
  onData(listener: (chunk: Uint8Array) => void): void;
  /** resolves when the whole tar has come; RUNTIME_ERROR when tar failed part way */
  done: Promise<void>;
}

/**
 * Starts a tar of `path` (a folder's entries named after the path's last
 * element, as dockerd names them). FILE_NOT_FOUND before any byte when there
 * is no such path.
 */
export async function readArchive(agent: ArchiveAgent, root: string, path: string, container: string): Promise<ArchiveRead> {
  const p = containerPath(path);
  if (p.abs === "/") throw new HyperlabError("NOT_SUPPORTED", "copying the container's whole root as / is not supported by hyperlab: copy /. (its contents) or name a folder");
  const proc = agent.spawn(argv(root, "get", p), { timeoutMs: Infinity });
  const stderr = stderrOf(proc);
  // The first two lines are the stat; the rest is the tar.
  let head: Uint8Array = new Uint8Array(0);
  let newlines = 0;
  let statDone: (lines: string[] | undefined) => void;
  const statLines = new Promise<string[] | undefined>((r) => (statDone = r));
  const body: Uint8Array[] = [];
  const listeners: Array<(chunk: Uint8Array) => void> = [];
  const deliver = (chunk: Uint8Array) => {
    body.push(chunk);
    for (const l of listeners) l(chunk);
  };
  proc.onOutput((stream, data) => {
    if (stream !== 1) return;
    if (newlines >= 2) return deliver(data);
    let at = head.length;
    head = concatBytes([head, data]);
    for (; at < head.length && newlines < 2; at++) if (head[at] === 10) newlines++;
    if (newlines < 2) return;
    statDone(new TextDecoder().decode(head.subarray(0, at)).split("\n"));
    if (at < head.length) deliver(head.slice(at));
  });
  const exited = proc.exited.then(({ exitCode }) => {
    statDone(undefined);
    if (exitCode !== 0) throw failure(exitCode, stderr(), p, container, path);
  });
  exited.catch(() => {});
  const lines = await statLines;
  if (!lines) {
    await exited;
    throw failure(1, stderr(), p, container, path);
  }
  return {
    stat: parseStat(p.name, lines[0] ?? "", lines[1] ?? ""),
    onData: (l) => {
      for (const chunk of body) l(chunk);
      listeners.push(l);
    },
    done: exited,
  };
}

/**
 * Extracts a tar into the folder `path` (followed if it is a link). Files
 * belong to root, or with `owner` ("uid:gid") to that user, as dockerd's
 * copyUIDGID. FILE_NOT_FOUND when there is no such path, INVALID_ARGUMENT
 * when it is not a folder, RUNTIME_ERROR with tar's words when the archive
 * cannot be extracted.
 */
export async function writeArchive(agent: ArchiveAgent, root: string, path: string, tar: AsyncIterable<Uint8Array>, container: string, owner?: string): Promise<void> {
  const p = containerPath(path);
  const proc = agent.spawn(argv(root, "put", p, owner ?? ""), { stdin: true, timeoutMs: Infinity });
  const stderr = stderrOf(proc);
  let ended = false;
  const exited = proc.exited.then((e) => ((ended = true), e));
  try {
    for await (const chunk of tar) {
      if (ended) break;
      proc.write(chunk);
    }
  } finally {
    proc.closeStdin();
  }
  const { exitCode } = await exited;
  if (exitCode !== 0) throw failure(exitCode, stderr(), p, container, path);
}
