// The host end of the machine's virtio 9p device: a 9P2000.L server that
// shares chosen host directories ("exports") with the guest. The guest sees
// a synthetic root holding one directory per export and nothing else; every
// path a request names is a list of names below one export's root, so `..`
// stops at the root, and the backend (p9-node-fs.ts in Node) resolves each
// list against that root without following symlinks. Requests are answered
// synchronously, one at a time, in the VM's thread: no request is pending
// when the machine's state is saved, and a guest cannot race itself.
import {
  AT_REMOVEDIR,
  DOTL,
  ERRNO,
  GETATTR_BASIC,
  HEADER_BYTES,
  IO_HEADER_BYTES,
  LOCK,
  MAX_WALK_NAMES,
  NOFID,
  P9,
  P9Error,
  P9Reader,
  type P9Scratch,
  P9Writer,
  QT,
  type Qid,
  SETATTR,
  VERSION_9P2000_L,
  errorReply,
  readHeader,
} from "./p9-message.ts";

/** A file's attributes as the backend reports them (Linux's stat, times in ns). */
export interface P9Stat {
  dev: bigint;
  ino: bigint;
  /** type and permission bits, Linux's S_IF* values */
  mode: number;
  nlink: bigint;
  uid: number;
  gid: number;
  rdev: bigint;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  birthtimeNs: bigint;
}

/** What Tsetattr asks to change (each field present only when its valid bit is set). */
export interface P9SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** seconds and ns; "now" for the server's clock */
  atime?: { sec: number; nsec: number } | "now";
  mtime?: { sec: number; nsec: number } | "now";
}

/** A file system's figures for Tstatfs. */
export interface P9StatFs {
  type: number;
  bsize: number;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
}

/**
 * The file system behind the server. Every path is an export's root (as the
 * host resolved it) and a list of names below it, none of them "", "." or
 * ".." and none holding "/"; the backend must resolve them so that nothing
 * outside `root` is reached (no symlink followed, parents re-checked after
 * open). Each method throws P9Error with a Linux errno.
 */
export interface P9Backend {
  lstat(root: string, path: readonly string[]): P9Stat;
  /** opens an existing file or directory with 9P2000.L flags (never following a symlink); returns a handle */
  open(root: string, path: readonly string[], flags: number): number;
  /** creates and opens `name` in directory `dir` */
  create(root: string, dir: readonly string[], name: string, flags: number, mode: number): number;
  fstat(handle: number): P9Stat;
  /** reads into `into` at `position`; returns the bytes read */
  read(handle: number, into: Uint8Array, position: number): number;
  write(handle: number, data: Uint8Array, position: number): number;
  fsync(handle: number, dataOnly: boolean): void;
  close(handle: number): void;
  /** the names in a directory (without . and ..) */
  readdir(root: string, path: readonly string[]): string[];
  mkdir(root: string, dir: readonly string[], name: string, mode: number): void;
  symlink(root: string, dir: readonly string[], name: string, target: string): void;
  /** a hard link to `target` named `name` in `dir`, all below one root */
  link(root: string, target: readonly string[], dir: readonly string[], name: string): void;
  readlink(root: string, path: readonly string[]): string;
  rename(root: string, fromDir: readonly string[], fromName: string, toDir: readonly string[], toName: string): void;
  unlink(root: string, dir: readonly string[], name: string, isDir: boolean): void;
  /** changes attributes; `handle`: the file's open handle, if the fid has one */
  setattr(root: string, path: readonly string[], attrs: P9SetAttr, handle?: number): void;
  statfs(root: string, path: readonly string[]): P9StatFs;
}

/** A host directory shared with the guest, as the host gives it. */
export interface P9Export {
  /** its name in the guest's synthetic root: letters, digits, '_', '.', '-' */
  name: string;
  /** the host directory, resolved (absolute, no symlinks) */
  root: string;
  /** refuse every change (EROFS) */
  readOnly: boolean;
}

/** The most bytes a message may have: Linux's virtio transport takes up to 125 pages. */
export const MAX_MSIZE = 512 * 1024;
/** msize until Tversion says otherwise. */
const DEFAULT_MSIZE = 8192;
/** The most fids one guest may hold at once. */
const MAX_FIDS = 65536;
const EXPORT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
/** Linux's d_type for each S_IF* type (index: mode >> 12). */
const DT_OF_TYPE: Record<number, number> = { 0o01: 1, 0o02: 2, 0o04: 4, 0o06: 6, 0o10: 8, 0o12: 10, 0o14: 12 };

interface ExportEntry extends P9Export {
  /** removed by the host: its fids answer ESTALE */
  gone: boolean;
}

interface DirListing {
  entries: Array<{ name: string; qid: Qid; type: number }>;
}

type Fid =
  | { kind: "root"; opened: boolean; listing?: DirListing }
  | { kind: "node"; exp: ExportEntry; path: string[]; qid: Qid; handle?: number; openFlags?: number; opened: boolean; listing?: DirListing }
  | { kind: "xattr"; data: Uint8Array };

type NodeFid = Extract<Fid, { kind: "node" }>;

/** The synthetic root's qid (export roots get paths of 2^48 and above). */
const ROOT_QID: Qid = { type: QT.DIR, version: 0, path: 1n };

function nameCheck(name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new P9Error(ERRNO.EINVAL, `'${name}' is not a file name`);
  }
}

function typeOf(mode: number): number {
  return (mode & S_IFMT) === S_IFDIR ? QT.DIR : (mode & S_IFMT) === S_IFLNK ? QT.SYMLINK : QT.FILE;
}

/**
 * A 9P2000.L server over a backend, for one guest. Legal any time; `handle`
 * answers each request with exactly one reply (Rlerror for anything it
 * cannot do or cannot parse), and never throws.
 */
export class P9Server {
  private readonly exportTable = new Map<string, ExportEntry>();
  private readonly fids = new Map<number, Fid>();
  private readonly devIndex = new Map<bigint, number>();
  private msize = DEFAULT_MSIZE;
  private readonly scratch: P9Scratch = { buf: new Uint8Array(64 * 1024) };
  private readonly started = BigInt(Date.now()) * 1_000_000n;

  constructor(
    /** the file system; without one (a browser) nothing can be exported */
    private readonly backend?: P9Backend,
    private readonly opts: { maxMsize?: number } = {},
  ) {}

  /** Whether host directories can be shared (a backend is present). */
  get canExport(): boolean {
    return this.backend !== undefined;
  }

  /** Shares a host directory as `name` (replacing another one of that name; the same one again changes nothing). Legal any time. */
  setExport(e: P9Export): void {
    if (!this.backend) throw new P9Error(ERRNO.EOPNOTSUPP, "this machine has no host file system to share");
    if (!EXPORT_NAME.test(e.name)) throw new P9Error(ERRNO.EINVAL, `'${e.name}' is not a valid export name`);
    if (!e.root.startsWith("/")) throw new P9Error(ERRNO.EINVAL, `an export's root must be an absolute path, not '${e.root}'`);
    const old = this.exportTable.get(e.name);
    // The same directory again: the guest's open files in it stay as they are.
    if (old && old.root === e.root && old.readOnly === e.readOnly) return;
    if (old) old.gone = true;
    this.exportTable.set(e.name, { name: e.name, root: e.root, readOnly: e.readOnly, gone: false });
  }

  /** Stops sharing `name`: the guest's files under it answer ESTALE from now on. Legal any time. */
  removeExport(name: string): boolean {
    const e = this.exportTable.get(name);
    if (!e) return false;
    e.gone = true;
    this.exportTable.delete(name);
    for (const [id, fid] of this.fids) {
      if (fid.kind === "node" && fid.exp === e) {
        this.closeFid(fid);
        this.fids.delete(id);
      }
    }
    return true;
  }

  /** The exports, in the order they were added. */
  exports(): P9Export[] {
    return [...this.exportTable.values()].map(({ name, root, readOnly }) => ({ name, root, readOnly }));
  }

  /** How many fids the guest holds (for tests and figures). */
  get fidCount(): number {
    return this.fids.size;
  }

  /**
   * Answers one request (a whole 9P message); never throws. The reply is a
   * view of the server's own buffer, valid until the next call: the caller
   * copies it (v86 copies it into guest memory at once).
   */
  handle(request: Uint8Array): Uint8Array {
    const header = readHeader(request);
    if (!header) return errorReply(0xffff, ERRNO.EPROTO);
    const { size, type, tag } = header;
    try {
      if (size < HEADER_BYTES || size > request.length) throw new P9Error(ERRNO.EPROTO, `the size field (${size}) does not match the message (${request.length} bytes)`);
      const r = new P9Reader(request.subarray(0, size));
      const handler = this.handlers[type];
      if (!handler) throw new P9Error(ERRNO.EOPNOTSUPP, `message type ${type} is not 9P2000.L or not served`);
      return handler(r, tag);
    } catch (err) {
      return errorReply(tag, errnoOf(err));
    }
  }

  /** One handler per T-message: it reads the request's fields and returns the whole reply. */
  private readonly handlers: Record<number, (r: P9Reader, tag: number) => Uint8Array> = {
    [P9.Tversion]: (r, tag) => {
      const msize = r.u32();
      const version = r.str();
      // A new session: every fid of the old one goes.
      for (const fid of this.fids.values()) this.closeFid(fid);
      this.fids.clear();
      const max = this.opts.maxMsize ?? MAX_MSIZE;
      this.msize = Math.max(IO_HEADER_BYTES + 64, Math.min(msize, max));
      const reply = this.writer(P9.Tversion + 1, tag).u32(this.msize);
      return reply.str(version.startsWith(VERSION_9P2000_L) ? VERSION_9P2000_L : "unknown").finish();
    },
    [P9.Tauth]: () => {
      throw new P9Error(ERRNO.EOPNOTSUPP, "no authentication: attach with afid NOFID");
    },
    [P9.Tattach]: (r, tag) => {
      const fid = r.u32();
      r.u32(); // afid
      r.str(); // uname
      const aname = r.str();
      r.u32(); // n_uname
      this.freeFid(fid);
      const name = aname.replace(/^\/+|\/+$/g, "");
      let made: Fid;
      if (name === "") made = { kind: "root", opened: false };
      else {
        const exp = this.exportTable.get(name);
        if (!exp) throw new P9Error(ERRNO.ENOENT, `no export named '${name}'`);
        made = { kind: "node", exp, path: [], qid: this.qidOf(this.backendOf().lstat(exp.root, [])), opened: false };
      }
      this.fids.set(fid, made);
      return this.writer(P9.Tattach + 1, tag).qid(this.fidQid(made)).finish();
    },
    [P9.Tflush]: (r, tag) => {
      r.u16(); // oldtag: every request is answered before the next is read, so none is pending
      return this.writer(P9.Tflush + 1, tag).finish();
    },
    [P9.Twalk]: (r, tag) => {
      const fidId = r.u32();
      const fid = this.fid(fidId);
      const newfid = r.u32();
      const n = r.u16();
      if (n > MAX_WALK_NAMES) throw new P9Error(ERRNO.E2BIG, `a walk of ${n} names (at most ${MAX_WALK_NAMES})`);
      const names = Array.from({ length: n }, () => r.str());
      if (fid.kind === "xattr") throw new P9Error(ERRNO.EBADF);
      if (newfid !== fidId) this.freeFid(newfid);
      let cur: { exp?: ExportEntry; path: string[]; qid: Qid } = fid.kind === "root" ? { path: [], qid: ROOT_QID } : { exp: this.live(fid.exp), path: [...fid.path], qid: fid.qid };
      const qids: Qid[] = [];
      for (const name of names) {
        try {
          cur = this.step(cur, name);
        } catch (err) {
          if (qids.length === 0) throw err;
          break;
        }
        qids.push(cur.qid);
      }
      if (qids.length === names.length) {
        const made: Fid = cur.exp ? { kind: "node", exp: cur.exp, path: cur.path, qid: cur.qid, opened: false } : { kind: "root", opened: false };
        if (newfid === fidId) this.closeFid(fid);
        this.fids.set(newfid, made);
      }
      const w = this.writer(P9.Twalk + 1, tag).u16(qids.length);
      for (const q of qids) w.qid(q);
      return w.finish();
    },
    [P9.Tlopen]: (r, tag) => {
      const fid = this.fid(r.u32());
      const flags = r.u32();
      if (fid.kind === "xattr") throw new P9Error(ERRNO.EBADF);
      if (fid.opened) throw new P9Error(ERRNO.EBADF, "the fid is open already");
      const writing = (flags & DOTL.ACCMODE) !== DOTL.RDONLY || (flags & (DOTL.TRUNC | DOTL.CREATE)) !== 0;
      if (fid.kind === "root") {
        if (writing) throw new P9Error(ERRNO.EISDIR);
        fid.opened = true;
        return this.writer(P9.Tlopen + 1, tag).qid(ROOT_QID).u32(0).finish();
      }
      const exp = this.live(fid.exp);
      if (writing && exp.readOnly) throw new P9Error(ERRNO.EROFS);
      const st = this.backendOf().lstat(exp.root, fid.path);
      const kind = st.mode & S_IFMT;
      if (kind === S_IFLNK) throw new P9Error(ERRNO.ELOOP);
      if (kind === S_IFDIR) {
        if (writing) throw new P9Error(ERRNO.EISDIR);
      } else {
        if (flags & DOTL.DIRECTORY) throw new P9Error(ERRNO.ENOTDIR);
        if (kind !== S_IFREG) throw new P9Error(ERRNO.EOPNOTSUPP, "only regular files and directories are opened over 9p");
        fid.handle = this.backendOf().open(exp.root, fid.path, flags & ~(DOTL.CREATE | DOTL.EXCL));
      }
      fid.opened = true;
      fid.openFlags = flags;
      fid.qid = this.qidOf(st);
      return this.writer(P9.Tlopen + 1, tag).qid(fid.qid).u32(0).finish();
    },
    [P9.Tlcreate]: (r, tag) => {
      const fid = this.nodeFid(r.u32());
      const name = r.str();
      const flags = r.u32();
      const mode = r.u32();
      r.u32(); // gid: files belong to the host user that runs the server
      nameCheck(name);
      const exp = this.writable(fid);
      if (fid.opened) throw new P9Error(ERRNO.EBADF, "the fid is open already");
      const b = this.backendOf();
      const handle = b.create(exp.root, fid.path, name, flags, mode & 0o7777);
      fid.path = [...fid.path, name];
      fid.handle = handle;
      fid.opened = true;
      fid.openFlags = flags;
      fid.qid = this.qidOf(b.fstat(handle));
      return this.writer(P9.Tlcreate + 1, tag).qid(fid.qid).u32(0).finish();
    },
    [P9.Tsymlink]: (r, tag) => {
      const dir = this.nodeFid(r.u32());
      const name = r.str();
      const target = r.str();
      r.u32(); // gid
      nameCheck(name);
      const exp = this.writable(dir);
      const b = this.backendOf();
      b.symlink(exp.root, dir.path, name, target);
      return this.writer(P9.Tsymlink + 1, tag).qid(this.qidOf(b.lstat(exp.root, [...dir.path, name]))).finish();
    },
    [P9.Tmknod]: (r) => {
      const dir = this.nodeFid(r.u32());
      nameCheck(r.str());
      this.writable(dir);
      throw new P9Error(ERRNO.EOPNOTSUPP, "device files, FIFOs and sockets cannot be made in a shared host directory");
    },
    [P9.Trename]: (r, tag) => {
      const fid = this.nodeFid(r.u32());
      const dir = this.nodeFid(r.u32());
      const name = r.str();
      nameCheck(name);
      const exp = this.sameExport(fid, dir);
      if (fid.path.length === 0) throw new P9Error(ERRNO.EBUSY, "an export's root cannot be renamed");
      this.backendOf().rename(exp.root, fid.path.slice(0, -1), fid.path.at(-1)!, dir.path, name);
      this.moved(exp, fid.path, [...dir.path, name]);
      return this.writer(P9.Trename + 1, tag).finish();
    },
    [P9.Treadlink]: (r, tag) => {
      const fid = this.nodeFid(r.u32());
      const exp = this.live(fid.exp);
      return this.writer(P9.Treadlink + 1, tag).str(this.backendOf().readlink(exp.root, fid.path)).finish();
    },
    [P9.Tgetattr]: (r, tag) => {
      const fid = this.fid(r.u32());
      r.u64(); // request_mask: every basic field is always sent
      if (fid.kind === "xattr") throw new P9Error(ERRNO.EBADF);
      const st = fid.kind === "root" ? this.rootStat() : this.statOf(fid);
      const qid = fid.kind === "root" ? ROOT_QID : this.qidOf(st);
      const w = this.writer(P9.Tgetattr + 1, tag, 160).u64(GETATTR_BASIC).qid(qid);
      w.u32(st.mode).u32(st.uid).u32(st.gid).u64(st.nlink).u64(st.rdev).u64(st.size).u64(st.blksize).u64(st.blocks);
      for (const ns of [st.atimeNs, st.mtimeNs, st.ctimeNs, st.birthtimeNs]) w.u64(ns / 1_000_000_000n).u64(ns % 1_000_000_000n);
      return w.u64(0).u64(0).finish(); // gen, data_version
    },
    [P9.Tsetattr]: (r, tag) => {
      const fid = this.nodeFid(r.u32());
      const valid = r.u32();
      const mode = r.u32();
      const uid = r.u32();
      const gid = r.u32();
      const size = r.u64n();
      const atime = { sec: r.u64n(), nsec: r.u64n() };
      const mtime = { sec: r.u64n(), nsec: r.u64n() };
      const exp = this.writable(fid);
      const attrs: P9SetAttr = {};
      if (valid & SETATTR.MODE) attrs.mode = mode & 0o7777;
      if (valid & SETATTR.UID) attrs.uid = uid;
      if (valid & SETATTR.GID) attrs.gid = gid;
      if (valid & SETATTR.SIZE) attrs.size = size;
      if (valid & SETATTR.ATIME) attrs.atime = valid & SETATTR.ATIME_SET ? atime : "now";
      if (valid & SETATTR.MTIME) attrs.mtime = valid & SETATTR.MTIME_SET ? mtime : "now";
      if (Object.keys(attrs).length) this.backendOf().setattr(exp.root, fid.path, attrs, fid.handle);
      return this.writer(P9.Tsetattr + 1, tag).finish();
    },
    [P9.Txattrwalk]: (r, tag) => {
      const fidId = r.u32();
      const fid = this.fid(fidId);
      const newfid = r.u32();
      const name = r.str();
      if (fid.kind === "xattr") throw new P9Error(ERRNO.EBADF);
      if (fid.kind === "node") this.live(fid.exp);
      // No extended attributes are kept: the list is empty and every name is absent.
      if (name !== "") throw new P9Error(ERRNO.ENODATA);
      if (newfid !== fidId) this.freeFid(newfid);
      this.fids.set(newfid, { kind: "xattr", data: new Uint8Array(0) });
      return this.writer(P9.Txattrwalk + 1, tag).u64(0).finish();
    },
    [P9.Txattrcreate]: () => {
      throw new P9Error(ERRNO.EOPNOTSUPP, "extended attributes are not kept in shared host directories");
    },
    [P9.Treaddir]: (r, tag) => {
      const fid = this.fid(r.u32());
      const offset = r.u64n();
      const count = Math.min(r.u32(), this.msize - IO_HEADER_BYTES);
      if (fid.kind === "xattr") throw new P9Error(ERRNO.EBADF);
      if (!fid.opened) throw new P9Error(ERRNO.EBADF, "readdir of a fid that is not open");
      if (fid.kind === "node" && fid.qid.type !== QT.DIR) throw new P9Error(ERRNO.ENOTDIR);
      if (offset === 0 || !fid.listing) fid.listing = this.list(fid);
      const w = this.writer(P9.Treaddir + 1, tag, IO_HEADER_BYTES + Math.min(count, 64 * 1024)).u32(0);
      const start = w.length;
      const entries = fid.listing.entries;
      for (let i = offset; i < entries.length; i++) {
        const e = entries[i]!;
        const bytes = 13 + 8 + 1 + 2 + utf8Length(e.name);
        if (w.length - start + bytes > count) break;
        w.qid(e.qid).u64(i + 1).u8(e.type).str(e.name);
      }
      w.patchU32(HEADER_BYTES, w.length - start);
      return w.finish();
    },
    [P9.Tfsync]: (r, tag) => {
      const fid = this.nodeFid(r.u32());
      const dataOnly = r.u32() !== 0;
      this.live(fid.exp);
      if (fid.handle !== undefined) this.backendOf().fsync(fid.handle, dataOnly);
      return this.writer(P9.Tfsync + 1, tag).finish();
    },
    [P9.Tlock]: (r, tag) => {
      this.nodeFid(r.u32());
      // POSIX locks are not shared with the host's processes: each guest's kernel
      // keeps its own, as QEMU's server does.
      return this.writer(P9.Tlock + 1, tag).u8(LOCK.SUCCESS).finish();
    },
    [P9.Tgetlock]: (r, tag) => {
      this.nodeFid(r.u32());
      r.u8();
      const start = r.u64();
      const length = r.u64();
      const procId = r.u32();
      const client = r.str();
      return this.writer(P9.Tgetlock + 1, tag).u8(LOCK.F_UNLCK).u64(start).u64(length).u32(procId).str(client).finish();
    },
    [P9.Tlink]: (r, tag) => {
      const dir = this.nodeFid(r.u32());
      const target = this.nodeFid(r.u32());
      const name = r.str();
      nameCheck(name);
      const exp = this.sameExport(target, dir);
      if (target.qid.type === QT.DIR) throw new P9Error(ERRNO.EPERM, "a directory cannot be hard-linked");
      this.backendOf().link(exp.root, target.path, dir.path, name);
      return this.writer(P9.Tlink + 1, tag).finish();
    },
    [P9.Tmkdir]: (r, tag) => {
      const dir = this.nodeFid(r.u32());
      const name = r.str();
      const mode = r.u32();
      r.u32(); // gid
      nameCheck(name);
      const exp = this.writable(dir);
      const b = this.backendOf();
      b.mkdir(exp.root, dir.path, name, mode & 0o7777);
      return this.writer(P9.Tmkdir + 1, tag).qid(this.qidOf(b.lstat(exp.root, [...dir.path, name]))).finish();
    },
    [P9.Trenameat]: (r, tag) => {
      const from = this.nodeFid(r.u32());
      const oldName = r.str();
      const to = this.nodeFid(r.u32());
      const newName = r.str();
      nameCheck(oldName);
      nameCheck(newName);
      const exp = this.sameExport(from, to);
      this.backendOf().rename(exp.root, from.path, oldName, to.path, newName);
      this.moved(exp, [...from.path, oldName], [...to.path, newName]);
      return this.writer(P9.Trenameat + 1, tag).finish();
    },
    [P9.Tunlinkat]: (r, tag) => {
      const dir = this.nodeFid(r.u32());
      const name = r.str();
      const flags = r.u32();
      nameCheck(name);
      const exp = this.writable(dir);
      this.backendOf().unlink(exp.root, dir.path, name, (flags & AT_REMOVEDIR) !== 0);
      return this.writer(P9.Tunlinkat + 1, tag).finish();
    },
    [P9.Tread]: (r, tag) => {
      const fid = this.fid(r.u32());
      const offset = r.u64n();
      const count = Math.min(r.u32(), this.msize - IO_HEADER_BYTES);
      const w = this.writer(P9.Tread + 1, tag, IO_HEADER_BYTES + count).u32(0);
      if (fid.kind === "xattr") {
        const part = fid.data.subarray(Math.min(offset, fid.data.length), Math.min(offset + count, fid.data.length));
        w.bytes(part).patchU32(HEADER_BYTES, part.length);
        return w.finish();
      }
      if (fid.kind === "root" || fid.qid.type === QT.DIR) throw new P9Error(ERRNO.EISDIR);
      this.live(fid.exp);
      if (fid.handle === undefined || (fid.openFlags! & DOTL.ACCMODE) === DOTL.WRONLY) throw new P9Error(ERRNO.EBADF, "read of a fid not open for reading");
      const into = w.reserve(count);
      const n = this.backendOf().read(fid.handle, into, offset);
      w.unreserve(count - n);
      w.patchU32(HEADER_BYTES, n);
      return w.finish();
    },
    [P9.Twrite]: (r, tag) => {
      const fid = this.nodeFid(r.u32());
      const offset = r.u64n();
      const count = r.u32();
      const data = r.data(count);
      this.writable(fid);
      if (fid.handle === undefined || (fid.openFlags! & DOTL.ACCMODE) === DOTL.RDONLY) throw new P9Error(ERRNO.EBADF, "write to a fid not open for writing");
      const n = this.backendOf().write(fid.handle, data, offset);
      return this.writer(P9.Twrite + 1, tag).u32(n).finish();
    },
    [P9.Tclunk]: (r, tag) => {
      const id = r.u32();
      const fid = this.fid(id);
      this.fids.delete(id);
      this.closeFid(fid);
      return this.writer(P9.Tclunk + 1, tag).finish();
    },
    [P9.Tremove]: (r, tag) => {
      const id = r.u32();
      const fid = this.fid(id);
      // The fid is clunked whether or not the file could be removed.
      this.fids.delete(id);
      this.closeFid(fid);
      if (fid.kind !== "node") throw new P9Error(ERRNO.EACCES);
      const exp = this.writable(fid);
      if (fid.path.length === 0) throw new P9Error(ERRNO.EBUSY, "an export's root cannot be removed");
      this.backendOf().unlink(exp.root, fid.path.slice(0, -1), fid.path.at(-1)!, fid.qid.type === QT.DIR);
      return this.writer(P9.Tremove + 1, tag).finish();
    },
    [P9.Tstatfs]: (r, tag) => {
      const fid = this.fid(r.u32());
      if (fid.kind === "xattr") throw new P9Error(ERRNO.EBADF);
      const s =
        fid.kind === "root"
          ? { type: 0x01021997, bsize: 4096, blocks: 0n, bfree: 0n, bavail: 0n, files: 0n, ffree: 0n }
          : this.backendOf().statfs(this.live(fid.exp).root, fid.path);
      const w = this.writer(P9.Tstatfs + 1, tag).u32(0x01021997).u32(s.bsize); // V9FS_MAGIC
      return w.u64(s.blocks).u64(s.bfree).u64(s.bavail).u64(s.files).u64(s.ffree).u64(0).u32(255).finish();
    },
  };

  /** A reply built in the server's scratch buffer (valid until the next request is handled). */
  private writer(type: number, tag: number, capacity = 256): P9Writer {
    return new P9Writer(type, tag, capacity, this.scratch);
  }

  private backendOf(): P9Backend {
    if (!this.backend) throw new P9Error(ERRNO.ENOENT, "this machine shares no host directories");
    return this.backend;
  }

  private fid(id: number): Fid {
    const fid = this.fids.get(id);
    if (!fid) throw new P9Error(ERRNO.EBADF, `fid ${id} is not in use`);
    return fid;
  }

  private nodeFid(id: number): NodeFid {
    const fid = this.fid(id);
    if (fid.kind === "node") return fid;
    // The synthetic root holds only the exports: nothing can be made, linked or renamed there.
    throw new P9Error(fid.kind === "root" ? ERRNO.EACCES : ERRNO.EBADF);
  }

  /** Refuses a fid number that is taken (or NOFID), and a guest that holds too many. */
  private freeFid(id: number): void {
    if (id === NOFID) throw new P9Error(ERRNO.EBADF, "NOFID cannot name a file");
    if (this.fids.has(id)) throw new P9Error(ERRNO.EBADF, `fid ${id} is in use`);
    if (this.fids.size >= MAX_FIDS) throw new P9Error(ERRNO.ENFILE, `the guest holds ${MAX_FIDS} fids`);
  }

  private live(exp: ExportEntry): ExportEntry {
    if (exp.gone) throw new P9Error(ERRNO.ESTALE, `export ${exp.name} is no longer shared`);
    return exp;
  }

  private writable(fid: NodeFid): ExportEntry {
    const exp = this.live(fid.exp);
    if (exp.readOnly) throw new P9Error(ERRNO.EROFS);
    return exp;
  }

  /** The one export both fids are in (a link or rename never crosses exports: EXDEV), writable. */
  private sameExport(a: NodeFid, b: NodeFid): ExportEntry {
    const exp = this.writable(a);
    if (this.live(b.exp) !== exp) throw new P9Error(ERRNO.EXDEV, "a link or rename cannot cross from one shared directory to another");
    return exp;
  }

  /** One step of a walk from `cur` (at the synthetic root when it has no export). */
  private step(cur: { exp?: ExportEntry; path: string[]; qid: Qid }, name: string): { exp?: ExportEntry; path: string[]; qid: Qid } {
    if (name === ".") return cur;
    if (!cur.exp) {
      if (name === "..") return cur;
      nameCheck(name);
      const exp = this.exportTable.get(name);
      if (!exp) throw new P9Error(ERRNO.ENOENT);
      return { exp, path: [], qid: this.qidOf(this.backendOf().lstat(exp.root, [])) };
    }
    const exp = this.live(cur.exp);
    if (name === "..") {
      // Above an export's root is the synthetic root, never the host's parent directory.
      if (cur.path.length === 0) return { path: [], qid: ROOT_QID };
      const path = cur.path.slice(0, -1);
      return { exp, path, qid: this.qidOf(this.backendOf().lstat(exp.root, path)) };
    }
    nameCheck(name);
    if (cur.qid.type !== QT.DIR) throw new P9Error(ERRNO.ENOTDIR);
    const path = [...cur.path, name];
    return { exp, path, qid: this.qidOf(this.backendOf().lstat(exp.root, path)) };
  }

  /** A fid's attributes: through its open handle when it has one (right even after the file was unlinked). */
  private statOf(fid: NodeFid): P9Stat {
    const exp = this.live(fid.exp);
    return fid.handle !== undefined ? this.backendOf().fstat(fid.handle) : this.backendOf().lstat(exp.root, fid.path);
  }

  /** Unique in the whole tree: exports on different host file systems may share inode numbers. */
  private qidOf(st: P9Stat): Qid {
    let dev = this.devIndex.get(st.dev);
    if (dev === undefined) {
      dev = this.devIndex.size + 1;
      this.devIndex.set(st.dev, dev);
    }
    return { type: typeOf(st.mode), version: 0, path: (BigInt(dev) << 48n) | (st.ino & 0xffffffffffffn) };
  }

  private fidQid(fid: Fid): Qid {
    return fid.kind === "node" ? fid.qid : ROOT_QID;
  }

  private rootStat(): P9Stat {
    const t = this.started;
    return { dev: 0n, ino: 1n, mode: S_IFDIR | 0o555, nlink: BigInt(2 + this.exportTable.size), uid: 0, gid: 0, rdev: 0n, size: 0n, blksize: 4096n, blocks: 0n, atimeNs: t, mtimeNs: t, ctimeNs: t, birthtimeNs: t };
  }

  /** A directory's entries with . and .., each with its qid and d_type. */
  private list(fid: Exclude<Fid, { kind: "xattr" }>): DirListing {
    const entries: DirListing["entries"] = [];
    if (fid.kind === "root") {
      entries.push({ name: ".", qid: ROOT_QID, type: 4 }, { name: "..", qid: ROOT_QID, type: 4 });
      for (const exp of this.exportTable.values()) {
        try {
          entries.push({ name: exp.name, qid: this.qidOf(this.backendOf().lstat(exp.root, [])), type: 4 });
        } catch {
          // An export whose directory is gone is left out of the listing.
        }
      }
      return { entries };
    }
    const exp = this.live(fid.exp);
    const b = this.backendOf();
    const parent = fid.path.length ? this.qidOf(b.lstat(exp.root, fid.path.slice(0, -1))) : ROOT_QID;
    entries.push({ name: ".", qid: fid.qid, type: 4 }, { name: "..", qid: parent, type: 4 });
    for (const name of b.readdir(exp.root, fid.path)) {
      try {
        const st = b.lstat(exp.root, [...fid.path, name]);
        entries.push({ name, qid: this.qidOf(st), type: DT_OF_TYPE[(st.mode & S_IFMT) >> 12] ?? 0 });
      } catch {
        // Removed between the listing and its stat: not listed.
      }
    }
    return { entries };
  }

  /** After a rename in `exp`: fids at or below `from` now name the same files at `to`. */
  private moved(exp: ExportEntry, from: readonly string[], to: readonly string[]): void {
    for (const fid of this.fids.values()) {
      if (fid.kind !== "node" || fid.exp !== exp || fid.path.length < from.length) continue;
      if (from.every((n, i) => fid.path[i] === n)) fid.path = [...to, ...fid.path.slice(from.length)];
    }
  }

  private closeFid(fid: Fid): void {
    if (fid.kind === "node" && fid.handle !== undefined) {
      try {
        this.backend?.close(fid.handle);
      } catch {
        // Closing cannot fail in a way the guest could act on.
      }
      fid.handle = undefined;
    }
  }
}

function errnoOf(err: unknown): number {
  if (err instanceof P9Error) return err.errno;
  return ERRNO.EIO;
}

const utf8 = new TextEncoder();
function utf8Length(s: string): number {
  // ASCII names (nearly all) are their own length.
  return /^[\x00-\x7f]*$/.test(s) ? s.length : utf8.encode(s).length;
}
