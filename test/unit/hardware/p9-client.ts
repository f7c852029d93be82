// A small 9P2000.L client for tests: builds T-messages, sends them to a
// P9Server and decodes the replies (an Rlerror becomes a thrown P9Failure).
import { ERRNO, NOFID, P9, P9Reader, P9Writer, type Qid } from "../../../src/hardware/p9-message.ts";
import type { P9Server } from "../../../src/hardware/p9-server.ts";

/** An Rlerror reply: its errno and that errno's name. */
export class P9Failure extends Error {
  constructor(readonly errno: number) {
    super(Object.entries(ERRNO).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`);
  }
}

/** The errno name a request failed with ("OK" when it succeeded). */
export function errnoName(fn: () => unknown): string {
  try {
    fn();
    return "OK";
  } catch (err) {
    if (err instanceof P9Failure) return err.message;
    throw err;
  }
}

/** Getattr's fields. */
export interface Attr {
  qid: Qid;
  mode: number;
  uid: number;
  gid: number;
  nlink: bigint;
  size: bigint;
  mtimeSec: bigint;
}

export class P9TestClient {
  private tag = 1;
  constructor(private readonly server: P9Server) {}

  /** Sends a raw message; returns the reply's type and a reader positioned after its header. */
  raw(bytes: Uint8Array): { type: number; tag: number; r: P9Reader; bytes: Uint8Array } {
    const reply = this.server.handle(bytes).slice();
    const view = new DataView(reply.buffer);
    if (view.getUint32(0, true) !== reply.length) throw new Error(`reply size field ${view.getUint32(0, true)} != ${reply.length}`);
    return { type: reply[4]!, tag: view.getUint16(5, true), r: new P9Reader(reply), bytes: reply };
  }

  private call(type: number, build: (w: P9Writer) => void): P9Reader {
    const tag = this.tag++ & 0x7fff;
    const w = new P9Writer(type, tag);
    build(w);
    const reply = this.raw(w.finish());
    if (reply.tag !== tag) throw new Error(`reply tag ${reply.tag}, request tag ${tag}`);
    if (reply.type === P9.Rlerror) throw new P9Failure(reply.r.u32());
    if (reply.type !== type + 1) throw new Error(`reply type ${reply.type} to request type ${type}`);
    return reply.r;
  }

  qid(r: P9Reader): Qid {
    return { type: r.u8(), version: r.u32(), path: r.u64() };
  }

  version(msize = 512 * 1024, version = "9P2000.L"): { msize: number; version: string } {
    const r = this.call(P9.Tversion, (w) => w.u32(msize).str(version));
    return { msize: r.u32(), version: r.str() };
  }

  attach(fid: number, aname = ""): Qid {
    return this.qid(this.call(P9.Tattach, (w) => w.u32(fid).u32(NOFID).str("root").str(aname).u32(0)));
  }

  walk(fid: number, newfid: number, ...names: string[]): Qid[] {
    const r = this.call(P9.Twalk, (w) => {
      w.u32(fid).u32(newfid).u16(names.length);
      for (const n of names) w.str(n);
    });
    return Array.from({ length: r.u16() }, () => this.qid(r));
  }

  lopen(fid: number, flags: number): Qid {
    return this.qid(this.call(P9.Tlopen, (w) => w.u32(fid).u32(flags)));
  }

  lcreate(fid: number, name: string, flags: number, mode = 0o644): Qid {
    return this.qid(this.call(P9.Tlcreate, (w) => w.u32(fid).str(name).u32(flags).u32(mode).u32(0)));
  }

  read(fid: number, offset: number, count: number): Uint8Array {
    const r = this.call(P9.Tread, (w) => w.u32(fid).u64(offset).u32(count));
    return r.data(r.u32()).slice();
  }

  write(fid: number, offset: number, data: Uint8Array | string): number {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    return this.call(P9.Twrite, (w) => w.u32(fid).u64(offset).u32(bytes.length).bytes(bytes)).u32();
  }

  clunk(fid: number): void {
    this.call(P9.Tclunk, (w) => w.u32(fid));
  }

  remove(fid: number): void {
    this.call(P9.Tremove, (w) => w.u32(fid));
  }

  getattr(fid: number): Attr {
    const r = this.call(P9.Tgetattr, (w) => w.u32(fid).u64(0x7ffn));
    r.u64();
    const qid = this.qid(r);
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const nlink = r.u64();
    r.u64(); // rdev
    const size = r.u64();
    r.u64();
    r.u64();
    r.u64();
    r.u64(); // atime
    const mtimeSec = r.u64();
    return { qid, mode, uid, gid, nlink, size, mtimeSec };
  }

  setattr(fid: number, a: { valid: number; mode?: number; size?: number; mtime?: number }): void {
    this.call(P9.Tsetattr, (w) =>
      w.u32(fid).u32(a.valid).u32(a.mode ?? 0).u32(0).u32(0).u64(a.size ?? 0).u64(0).u64(0).u64(a.mtime ?? 0).u64(0),
    );
  }

  readdir(fid: number, offset = 0, count = 64 * 1024): Array<{ name: string; type: number; offset: bigint; qid: Qid }> {
    const r = this.call(P9.Treaddir, (w) => w.u32(fid).u64(offset).u32(count));
    const n = r.u32();
    const data = new P9Reader(r.data(n), 0);
    const out = [];
    for (let used = 0; used < n; ) {
      const qid = this.qid(data);
      const off = data.u64();
      const type = data.u8();
      const name = data.str();
      used += 13 + 8 + 1 + 2 + new TextEncoder().encode(name).length;
      out.push({ name, type, offset: off, qid });
    }
    return out;
  }

  /** Every name in a directory fid (opened here and clunked). */
  names(dirFid: number, tmpFid = 900): string[] {
    this.walk(dirFid, tmpFid);
    this.lopen(tmpFid, 0);
    const names = this.readdir(tmpFid).map((e) => e.name);
    this.clunk(tmpFid);
    return names;
  }

  mkdir(dfid: number, name: string, mode = 0o755): Qid {
    return this.qid(this.call(P9.Tmkdir, (w) => w.u32(dfid).str(name).u32(mode).u32(0)));
  }

  symlink(dfid: number, name: string, target: string): Qid {
    return this.qid(this.call(P9.Tsymlink, (w) => w.u32(dfid).str(name).str(target).u32(0)));
  }

  readlink(fid: number): string {
    return this.call(P9.Treadlink, (w) => w.u32(fid)).str();
  }

  link(dfid: number, fid: number, name: string): void {
    this.call(P9.Tlink, (w) => w.u32(dfid).u32(fid).str(name));
  }

  rename(fid: number, dfid: number, name: string): void {
    this.call(P9.Trename, (w) => w.u32(fid).u32(dfid).str(name));
  }

  renameat(olddir: number, oldname: string, newdir: number, newname: string): void {
    this.call(P9.Trenameat, (w) => w.u32(olddir).str(oldname).u32(newdir).str(newname));
  }

  unlinkat(dfid: number, name: string, flags = 0): void {
    this.call(P9.Tunlinkat, (w) => w.u32(dfid).str(name).u32(flags));
  }

  mknod(dfid: number, name: string): void {
    this.call(P9.Tmknod, (w) => w.u32(dfid).str(name).u32(0o10644).u32(0).u32(0).u32(0));
  }

  statfs(fid: number): { type: number; bsize: number } {
    const r = this.call(P9.Tstatfs, (w) => w.u32(fid));
    return { type: r.u32(), bsize: r.u32() };
  }

  fsync(fid: number): void {
    this.call(P9.Tfsync, (w) => w.u32(fid).u32(0));
  }

  xattrwalk(fid: number, newfid: number, name: string): bigint {
    return this.call(P9.Txattrwalk, (w) => w.u32(fid).u32(newfid).str(name)).u64();
  }

  lock(fid: number): number {
    return this.call(P9.Tlock, (w) => w.u32(fid).u8(1).u32(0).u64(0).u64(0).u32(1).str("guest")).u8();
  }

  getlock(fid: number): number {
    return this.call(P9.Tgetlock, (w) => w.u32(fid).u8(1).u64(0).u64(0).u32(1).str("guest")).u8();
  }

  flush(oldtag: number): void {
    this.call(P9.Tflush, (w) => w.u16(oldtag));
  }
}
