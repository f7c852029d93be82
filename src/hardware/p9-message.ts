// 9P2000.L on the wire: the message numbers, the field codecs and the Linux
// numbers the protocol carries (errno, open flags, getattr/setattr bits), as
// Linux's client speaks them (include/net/9p/9p.h, net/9p/client.c). Every
// message is size[4] type[1] tag[2] body, little-endian; strings are a
// 16-bit length and UTF-8 bytes; a qid is type[1] version[4] path[8].

/** Message types of 9P2000.L (T: request, R: its reply = T + 1). */
export const P9 = {
  Rlerror: 7,
  Tstatfs: 8,
  Tlopen: 12,
  Tlcreate: 14,
  Tsymlink: 16,
  Tmknod: 18,
  Trename: 20,
  Treadlink: 22,
  Tgetattr: 24,
  Tsetattr: 26,
  Txattrwalk: 30,
  Txattrcreate: 32,
  Treaddir: 40,
  Tfsync: 50,
  Tlock: 52,
  Tgetlock: 54,
  Tlink: 70,
  Tmkdir: 72,
  Trenameat: 74,
  Tunlinkat: 76,
  Tversion: 100,
  Tauth: 102,
  Tattach: 104,
  Tflush: 108,
  Twalk: 110,
  Tread: 116,
  Twrite: 118,
  Tclunk: 120,
  Tremove: 122,
} as const;

/** The version string this server speaks. */
export const VERSION_9P2000_L = "9P2000.L";
/** No fid (Tattach's afid when there is no authentication). */
export const NOFID = 0xffffffff;
/** The tag of Tversion. */
export const NOTAG = 0xffff;
/** Bytes of size[4] type[1] tag[2]. */
export const HEADER_BYTES = 7;
/** Rread/Rreaddir header: size[4] type[1] tag[2] count[4]. */
export const IO_HEADER_BYTES = 11;
/** Twalk's most names in one request (Plan 9's MAXWELEM). */
export const MAX_WALK_NAMES = 16;

/** Qid types. */
export const QT = { DIR: 0x80, SYMLINK: 0x02, FILE: 0x00 } as const;

/** Linux errno values (the guest's numbers: 9P2000.L's Rlerror carries them as Linux has them). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EPROTO: 71,
  EOPNOTSUPP: 95,
  EDQUOT: 122,
  ESTALE: 116,
} as const;

/** An error a 9P request is answered with (Rlerror carries the Linux errno). */
export class P9Error extends Error {
  constructor(
    readonly errno: number,
    message = `errno ${errno}`,
  ) {
    super(message);
  }
}

/** 9P2000.L's open flags (P9_DOTL_*: Linux's x86 values). */
export const DOTL = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  ACCMODE: 3,
  CREATE: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DSYNC: 0o10000,
  DIRECT: 0o40000,
  LARGEFILE: 0o100000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  SYNC: 0o4000000,
} as const;

/** Tgetattr's request mask bits; BASIC is all of mode … blocks. */
export const GETATTR_BASIC = 0x7ffn;

/** Tsetattr's valid bits. */
export const SETATTR = {
  MODE: 0x1,
  UID: 0x2,
  GID: 0x4,
  SIZE: 0x8,
  ATIME: 0x10,
  MTIME: 0x20,
  CTIME: 0x40,
  ATIME_SET: 0x80,
  MTIME_SET: 0x100,
} as const;

/** Tunlinkat's flag for a directory. */
export const AT_REMOVEDIR = 0x200;

/** Tlock's status answers and Tgetlock's lock types. */
export const LOCK = { SUCCESS: 0, F_UNLCK: 2 } as const;

/** A qid: what the server says a file is (its type, a version, a path unique in the whole tree). */
export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: false });

/** Reads a request's fields in order; a field past the end is EPROTO (a malformed request). */
export class P9Reader {
  private offset: number;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    offset = HEADER_BYTES,
  ) {
    this.offset = offset;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): number {
    const at = this.offset;
    if (at + n > this.bytes.length) throw new P9Error(ERRNO.EPROTO, `the request ends inside a field (needs ${n} bytes at ${at} of ${this.bytes.length})`);
    this.offset += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.need(1));
  }

  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  u64(): bigint {
    return this.view.getBigUint64(this.need(8), true);
  }

  /** A 64-bit field that must be a safe integer (file offsets, sizes). */
  u64n(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new P9Error(ERRNO.EOVERFLOW, `a 64-bit value too large for this server: ${v}`);
    return Number(v);
  }

  str(): string {
    const n = this.u16();
    const at = this.need(n);
    return fromUtf8.decode(this.bytes.subarray(at, at + n));
  }

  /** `n` raw bytes (a view, not a copy). */
  data(n: number): Uint8Array {
    const at = this.need(n);
    return this.bytes.subarray(at, at + n);
  }
}

/** A buffer replies are built in, reused from one reply to the next (so a reply is valid until the next is built). */
export interface P9Scratch {
  buf: Uint8Array;
}

/** Builds a message into one growing buffer (its own, or a reused scratch buffer); `finish` writes the header. */
export class P9Writer {
  private buf: Uint8Array;
  private view: DataView;
  private offset = HEADER_BYTES;

  constructor(
    private readonly type: number,
    private readonly tag: number,
    capacity = 256,
    private readonly scratch?: P9Scratch,
  ) {
    const need = Math.max(capacity, HEADER_BYTES + 32);
    if (scratch && scratch.buf.length < need) scratch.buf = new Uint8Array(need);
    this.buf = scratch ? scratch.buf : new Uint8Array(need);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Bytes written so far, header included. */
  get length(): number {
    return this.offset;
  }

  private room(n: number): number {
    if (this.offset + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.offset + n));
      bigger.set(this.buf.subarray(0, this.offset));
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
      if (this.scratch) this.scratch.buf = bigger;
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(v: number): this {
    this.view.setUint8(this.room(1), v);
    return this;
  }

  u16(v: number): this {
    this.view.setUint16(this.room(2), v, true);
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.room(4), v >>> 0, true);
    return this;
  }

  u64(v: bigint | number): this {
    this.view.setBigUint64(this.room(8), BigInt.asUintN(64, BigInt(v)), true);
    return this;
  }

  str(s: string): this {
    const bytes = utf8.encode(s);
    if (bytes.length > 0xffff) throw new P9Error(ERRNO.ENAMETOOLONG, "a string longer than 65535 bytes");
    this.u16(bytes.length);
    this.buf.set(bytes, this.room(bytes.length));
    return this;
  }

  qid(q: Qid): this {
    return this.u8(q.type).u32(q.version).u64(q.path);
  }

  bytes(data: Uint8Array): this {
    this.buf.set(data, this.room(data.length));
    return this;
  }

  /** Reserves `n` bytes for the caller to fill in place (a read's data); returns their view. */
  reserve(n: number): Uint8Array {
    const at = this.room(n);
    return this.buf.subarray(at, at + n);
  }

  /** Gives back the last `n` reserved bytes that were not used. */
  unreserve(n: number): void {
    this.offset -= n;
  }

  /** Overwrites a u32 at `at` (a count known only after the data). */
  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }

  /** The finished message (a view of the buffer, exactly as long as the message). */
  finish(): Uint8Array {
    this.view.setUint32(0, this.offset, true);
    this.view.setUint8(4, this.type);
    this.view.setUint16(5, this.tag, true);
    return this.buf.subarray(0, this.offset);
  }
}

/** Rlerror for `tag` with `errno`. */
export function errorReply(tag: number, errno: number): Uint8Array {
  return new P9Writer(P9.Rlerror, tag, 16).u32(errno).finish();
}

/** The header of a message: its declared size, type and tag (undefined when fewer than 7 bytes). */
export function readHeader(bytes: Uint8Array): { size: number; type: number; tag: number } | undefined {
  if (bytes.length < HEADER_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { size: view.getUint32(0, true), type: view.getUint8(4), tag: view.getUint16(5, true) };
}
