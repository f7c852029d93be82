// The 9p server's file system in Node: host directories, reached so that
// nothing outside an export's root is: every path is an export root and a
// list of names; the directory holding the last name is opened with
// O_NOFOLLOW (and O_PATH) and the directory actually opened is checked to be
// the root or below it (Linux's /proc/self/fd tells where an open file is),
// then the last name is acted on through that open directory
// (/proc/self/fd/N/name, as openat would), never following a symlink. A
// parent swapped for a symlink between two requests therefore leads
// nowhere. Where /proc is missing (not Linux) the parent's realpath is
// checked instead, which leaves a race with the host's own processes.
// Node's synchronous calls are used on purpose: the server answers each
// request before the emulator runs on (see p9-server.ts).
import {
  type BigIntStats,
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmdirSync,
  statSync,
  statfsSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { DOTL, ERRNO, P9Error } from "./p9-message.ts";
import type { P9Backend, P9SetAttr, P9Stat, P9StatFs } from "./p9-server.ts";

const PROC_FD = "/proc/self/fd";
const hasProcFd = existsSync(PROC_FD);
/** Linux's O_PATH: a handle on a directory that needs no read permission (0 elsewhere). */
const O_PATH = process.platform === "linux" ? 0o10000000 : 0;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** A Node error as the Linux errno the guest understands. */
function p9Error(err: unknown): P9Error {
  if (err instanceof P9Error) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const errno = code && code in ERRNO ? ERRNO[code as keyof typeof ERRNO] : ERRNO.EIO;
  return new P9Error(errno, (err as Error)?.message);
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw p9Error(err);
  }
}

function toStat(st: BigIntStats): P9Stat {
  return {
    dev: st.dev,
    ino: st.ino,
    mode: Number(st.mode),
    nlink: st.nlink,
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: st.rdev,
    size: st.size,
    blksize: st.blksize,
    blocks: st.blocks,
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    birthtimeNs: st.birthtimeNs,
  };
}

/** 9P2000.L open flags as the host's (only those that mean the same on every host; O_DIRECT and O_NOATIME are dropped). */
function hostFlags(flags: number): number {
  let out = flags & DOTL.ACCMODE;
  if (out === DOTL.ACCMODE) throw new P9Error(ERRNO.EINVAL, "open with access mode 3");
  const table: Array<[number, number | undefined]> = [
    [DOTL.TRUNC, constants.O_TRUNC],
    [DOTL.APPEND, constants.O_APPEND],
    [DOTL.NONBLOCK, constants.O_NONBLOCK],
    [DOTL.DSYNC, constants.O_DSYNC],
    [DOTL.SYNC, constants.O_SYNC],
    [DOTL.EXCL, constants.O_EXCL],
  ];
  for (const [dotl, host] of table) if (flags & dotl && host !== undefined) out |= host;
  return out | constants.O_NOFOLLOW;
}

/** Whether `real` is `root` or below it. */
function inside(root: string, real: string): boolean {
  return real === root || real.startsWith(root === "/" ? "/" : `${root}/`);
}

/** Open directory handles kept between requests, by "root\0dir" (most recently used last). */
const anchors = new Map<string, number>();
const MAX_ANCHORS = 256;

/**
 * The directory `dir` below `root` as an open handle (O_PATH, O_NOFOLLOW)
 * that is checked, at every use, to still be exactly that directory: Linux
 * says where an open directory is (/proc/self/fd/N), and it must be
 * `root/dir` itself (a directory moved away, or a name swapped for a
 * symlink, no longer is). `fn` acts through `base`, a path that means that
 * open directory. Handles are kept for the next request.
 */
function inDir<T>(root: string, dir: readonly string[], fn: (base: string) => T): T {
  const path = dir.length ? `${root === "/" ? "" : root}/${dir.join("/")}` : root;
  if (!hasProcFd) {
    const real = wrap(() => realpathSync(path));
    if (!inside(root, real)) throw new P9Error(ERRNO.EACCES, "a path that leaves the shared directory");
    return fn(real);
  }
  const key = `${root}\0${path}`;
  let fd = anchors.get(key);
  if (fd !== undefined) {
    anchors.delete(key);
    if (readlinkOr(fd) !== path) {
      closeSync(fd);
      fd = undefined;
    }
  }
  if (fd === undefined) {
    fd = wrap(() => openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | O_PATH));
    const real = readlinkOr(fd);
    if (real !== path) {
      closeSync(fd);
      // Not where the fid's names lead any more: a parent became a symlink, or the directory went.
      if (real.endsWith(" (deleted)") || inside(root, real)) throw new P9Error(ERRNO.ENOENT);
      throw new P9Error(ERRNO.EACCES, "a path that leaves the shared directory");
    }
  }
  anchors.set(key, fd);
  if (anchors.size > MAX_ANCHORS) {
    const [oldest, old] = anchors.entries().next().value as [string, number];
    anchors.delete(oldest);
    closeSync(old);
  }
  return fn(`${PROC_FD}/${fd}`);
}

function readlinkOr(fd: number): string {
  try {
    return readlinkSync(`${PROC_FD}/${fd}`);
  } catch {
    return "";
  }
}

/** `fn` with a path meaning `path`'s last name in its checked parent (`path` must not be empty). */
function atName<T>(root: string, path: readonly string[], fn: (p: string) => T): T {
  if (path.length === 0) throw new P9Error(ERRNO.EBUSY, "the shared directory itself");
  return inDir(root, path.slice(0, -1), (base) => wrap(() => fn(`${base}/${path.at(-1)!}`)));
}

/** Seconds (with a fraction) for utimes. */
function seconds(t: { sec: number; nsec: number } | "now" | undefined, current: bigint): number {
  if (t === "now") return Date.now() / 1000;
  if (t) return t.sec + t.nsec / 1e9;
  return Number(current) / 1e9;
}

/**
 * The host side of a shared directory: resolves a directory given by the
 * host (realpath; it must exist and be a directory) for `P9Server.setExport`.
 */
export function resolveExportRoot(path: string): string {
  const real = wrap(() => realpathSync(path));
  if (!statSync(real).isDirectory()) throw new P9Error(ERRNO.ENOTDIR, `${path} is not a directory`);
  return real;
}

/** Makes a directory and its parents when missing (what `docker run -v` does to a bind's source). */
export function makeDirectory(path: string): void {
  wrap(() => mkdirSync(path, { recursive: true }));
}

/** The 9p server's backend over the host's file system (see the file's head for how paths stay inside). */
export class NodeFsBackend implements P9Backend {
  lstat(root: string, path: readonly string[]): P9Stat {
    if (path.length === 0) return inDir(root, [], (base) => toStat(wrap(() => statSync(base, { bigint: true }))));
    return atName(root, path, (p) => toStat(lstatSync(p, { bigint: true })));
  }

  open(root: string, path: readonly string[], flags: number): number {
    return atName(root, path, (p) => openSync(p, hostFlags(flags)));
  }

  create(root: string, dir: readonly string[], name: string, flags: number, mode: number): number {
    return inDir(root, dir, (base) => wrap(() => openSync(`${base}/${name}`, hostFlags(flags) | constants.O_CREAT, mode)));
  }

  fstat(handle: number): P9Stat {
    return wrap(() => toStat(fstatSync(handle, { bigint: true })));
  }

  read(handle: number, into: Uint8Array, position: number): number {
    return wrap(() => {
      let n = 0;
      // One request, one answer: fill it unless the file ends (a pipe-like short read is not expected of a regular file).
      while (n < into.length) {
        const got = readSync(handle, into, n, into.length - n, position + n);
        if (got === 0) break;
        n += got;
      }
      return n;
    });
  }

  write(handle: number, data: Uint8Array, position: number): number {
    return wrap(() => writeSync(handle, data, 0, data.length, position));
  }

  fsync(handle: number, dataOnly: boolean): void {
    wrap(() => (dataOnly ? fdatasyncSync(handle) : fsyncSync(handle)));
  }

  close(handle: number): void {
    closeSync(handle);
  }

  readdir(root: string, path: readonly string[]): string[] {
    return inDir(root, path, (base) => wrap(() => readdirSync(base)));
  }

  mkdir(root: string, dir: readonly string[], name: string, mode: number): void {
    inDir(root, dir, (base) => wrap(() => mkdirSync(`${base}/${name}`, { mode })));
  }

  symlink(root: string, dir: readonly string[], name: string, target: string): void {
    // The target is text for the guest to resolve in its own view; the server never follows it.
    inDir(root, dir, (base) => wrap(() => symlinkSync(target, `${base}/${name}`)));
  }

  link(root: string, target: readonly string[], dir: readonly string[], name: string): void {
    atName(root, target, (from) => inDir(root, dir, (base) => wrap(() => linkSync(from, `${base}/${name}`))));
  }

  readlink(root: string, path: readonly string[]): string {
    return atName(root, path, (p) => readlinkSync(p));
  }

  rename(root: string, fromDir: readonly string[], fromName: string, toDir: readonly string[], toName: string): void {
    inDir(root, fromDir, (from) => inDir(root, toDir, (to) => wrap(() => renameSync(`${from}/${fromName}`, `${to}/${toName}`))));
  }

  unlink(root: string, dir: readonly string[], name: string, isDir: boolean): void {
    inDir(root, dir, (base) => wrap(() => (isDir ? rmdirSync(`${base}/${name}`) : unlinkSync(`${base}/${name}`))));
  }

  setattr(root: string, path: readonly string[], attrs: P9SetAttr, handle?: number): void {
    const act = (p: string) => {
      const st = lstatSync(p, { bigint: true });
      const link = (Number(st.mode) & S_IFMT) === S_IFLNK;
      if (attrs.size !== undefined) {
        if (handle !== undefined) ftruncateSync(handle, attrs.size);
        else {
          const fd = openSync(p, constants.O_WRONLY | constants.O_NOFOLLOW);
          try {
            ftruncateSync(fd, attrs.size);
          } finally {
            closeSync(fd);
          }
        }
      }
      if (attrs.mode !== undefined) {
        if (link) throw new P9Error(ERRNO.EOPNOTSUPP, "a symlink's mode cannot be changed");
        if (handle !== undefined) fchmodSync(handle, attrs.mode);
        else {
          const fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW | O_PATH);
          try {
            // fchmod does not take an O_PATH handle; chmod through it does, and it is not a symlink.
            fchmodOrChmod(fd, attrs.mode);
          } finally {
            closeSync(fd);
          }
        }
      }
      if (attrs.uid !== undefined || attrs.gid !== undefined) lchownSync(p, attrs.uid ?? -1, attrs.gid ?? -1);
      if (attrs.atime !== undefined || attrs.mtime !== undefined) lutimesSync(p, seconds(attrs.atime, st.atimeNs), seconds(attrs.mtime, st.mtimeNs));
    };
    if (path.length === 0) inDir(root, [], (base) => wrap(() => act(base)));
    else atName(root, path, act);
  }

  statfs(root: string, path: readonly string[]): P9StatFs {
    return inDir(root, path.length ? path.slice(0, -1) : [], (base) =>
      wrap(() => {
        const s = statfsSync(base, { bigint: true });
        return { type: Number(s.type), bsize: Number(s.bsize), blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
      }),
    );
  }
}

function fchmodOrChmod(fd: number, mode: number): void {
  if (hasProcFd) {
    // /proc/self/fd/N of an O_PATH handle names the file itself (it is not a symlink: checked by O_NOFOLLOW).
    wrap(() => chmodSync(`${PROC_FD}/${fd}`, mode));
  } else wrap(() => fchmodSync(fd, mode));
}
